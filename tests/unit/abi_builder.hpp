// Test helper: builds ipt_replace blobs the way iptables-legacy (libiptc) lays them out.
//
// Built-in chains INPUT, FORWARD, OUTPUT come first in hook order, each ending in its
// policy; then user chains, each an ERROR head carrying the chain name, its rules and an
// unconditional RETURN; then the closing ERROR entry. Jumps name chains and are resolved
// to byte offsets when the blob is built; raw bytes can be patched afterwards to make
// every kind of malformed table.
#pragma once

#include <linux/netfilter/xt_LOG.h>
#include <linux/netfilter/xt_iprange.h>
#include <linux/netfilter/xt_multiport.h>
#include <linux/netfilter/xt_tcpudp.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "abi/layout.hpp"

namespace bpfilter::test
{

using Bytes = std::vector<uint8_t>;

// An xt_entry_match with `data` padded to XT_ALIGN.
inline Bytes match(const std::string &name, uint8_t revision, const void *data, size_t len)
{
	Bytes m(abi::ext_header_size + abi::xt_align(static_cast<uint32_t>(len)), 0);
	const uint16_t size = static_cast<uint16_t>(m.size());
	std::memcpy(m.data(), &size, 2);
	std::memcpy(m.data() + abi::ext_name, name.data(), name.size());
	m[abi::ext_revision] = revision;
	std::memcpy(m.data() + abi::ext_header_size, data, len);
	return m;
}

inline Bytes tcp(uint16_t sp_lo = 0, uint16_t sp_hi = 0xffff, uint16_t dp_lo = 0,
		 uint16_t dp_hi = 0xffff, uint8_t flg_mask = 0, uint8_t flg_cmp = 0,
		 uint8_t invflags = 0, uint8_t option = 0)
{
	struct xt_tcp t = {};
	t.spts[0] = sp_lo, t.spts[1] = sp_hi, t.dpts[0] = dp_lo, t.dpts[1] = dp_hi;
	t.flg_mask = flg_mask, t.flg_cmp = flg_cmp, t.invflags = invflags, t.option = option;
	return match("tcp", 0, &t, sizeof(t));
}

inline Bytes udp(uint16_t sp_lo = 0, uint16_t sp_hi = 0xffff, uint16_t dp_lo = 0,
		 uint16_t dp_hi = 0xffff, uint8_t invflags = 0)
{
	struct xt_udp u = {};
	u.spts[0] = sp_lo, u.spts[1] = sp_hi, u.dpts[0] = dp_lo, u.dpts[1] = dp_hi,
	u.invflags = invflags;
	return match("udp", 0, &u, sizeof(u));
}

inline Bytes icmp(uint8_t type, uint8_t code_min = 0, uint8_t code_max = 0xff, uint8_t invflags = 0)
{
	struct ipt_icmp i = {};
	i.type = type, i.code[0] = code_min, i.code[1] = code_max, i.invflags = invflags;
	return match("icmp", 0, &i, sizeof(i));
}

// ports as (lo, hi) pairs; lo == hi is a single port (pflag 0).
inline Bytes multiport(uint8_t flags, std::vector<std::pair<uint16_t, uint16_t>> ports,
		       bool invert = false)
{
	struct xt_multiport_v1 m = {};
	m.flags = flags;
	unsigned n = 0;
	for (auto [lo, hi] : ports) {
		if (lo == hi) {
			m.ports[n++] = lo;
		} else {
			m.pflags[n] = 1;
			m.ports[n++] = lo;
			m.ports[n++] = hi;
		}
	}
	m.count = static_cast<uint8_t>(n);
	m.invert = invert;
	return match("multiport", 1, &m, sizeof(m));
}

// Bounds in host byte order.
inline Bytes iprange(uint8_t flags, uint32_t src_min, uint32_t src_max, uint32_t dst_min = 0,
		     uint32_t dst_max = 0)
{
	struct xt_iprange_mtinfo r = {};
	r.flags = flags;
	r.src_min.ip = htobe32(src_min), r.src_max.ip = htobe32(src_max);
	r.dst_min.ip = htobe32(dst_min), r.dst_max.ip = htobe32(dst_max);
	return match("iprange", 1, &r, sizeof(r));
}

inline Bytes comment(const std::string &text)
{
	char c[256] = {};
	std::memcpy(c, text.data(), std::min<size_t>(text.size(), 255));
	return match("comment", 0, c, sizeof(c));
}

// ipt_ip built field by field; addresses in host byte order, prefix lengths for masks.
struct Ip {
	struct ipt_ip ip = {};
	Ip &src(uint32_t a, unsigned plen)
	{
		ip.smsk.s_addr = htobe32(plen ? ~0u << (32 - plen) : 0);
		ip.src.s_addr = htobe32(a) & ip.smsk.s_addr;
		return *this;
	}
	Ip &dst(uint32_t a, unsigned plen)
	{
		ip.dmsk.s_addr = htobe32(plen ? ~0u << (32 - plen) : 0);
		ip.dst.s_addr = htobe32(a) & ip.dmsk.s_addr;
		return *this;
	}
	Ip &proto(uint16_t p) { return ip.proto = p, *this; }
	Ip &inv(uint8_t f) { return ip.invflags |= f, *this; }
	Ip &flags(uint8_t f) { return ip.flags |= f, *this; }
	// "eth0" matches the name and its NUL; "eth+" only the prefix.
	static void iface(char *name, unsigned char *mask, const std::string &n)
	{
		const bool wild = !n.empty() && n.back() == '+';
		const size_t len = wild ? n.size() - 1 : n.size();
		std::memcpy(name, n.data(), len);
		std::memset(mask, 0xff, wild ? len : len + 1);
	}
	Ip &in(const std::string &n) { return iface(ip.iniface, ip.iniface_mask, n), *this; }
	Ip &out(const std::string &n) { return iface(ip.outiface, ip.outiface_mask, n), *this; }
};

// A rule's target: a verdict, a jump or goto to a chain, or raw target bytes.
struct Target {
	int32_t verdict = abi::verdict_accept;
	std::string chain; // jump target when not empty
	bool go = false;
	Bytes raw; // used as is when not empty
	static Target accept() { return {}; }
	static Target drop() { return verdict_of(abi::verdict_drop); }
	static Target ret() { return verdict_of(abi::verdict_return); }
	static Target verdict_of(int32_t v) { return {v, "", false, {}}; }
	static Target jump(const std::string &c) { return {0, c, false, {}}; }
	static Target go_to(const std::string &c) { return {0, c, true, {}}; }
};

inline Bytes standard_target(int32_t verdict)
{
	Bytes t(abi::xt_align(abi::standard_target_size), 0);
	const uint16_t size = static_cast<uint16_t>(t.size());
	std::memcpy(t.data(), &size, 2);
	std::memcpy(t.data() + abi::ext_header_size, &verdict, 4);
	return t;
}

inline Bytes error_target(const std::string &errorname)
{
	Bytes t(abi::error_target_size, 0);
	const uint16_t size = static_cast<uint16_t>(t.size());
	std::memcpy(t.data(), &size, 2);
	std::memcpy(t.data() + abi::ext_name, "ERROR", 5);
	std::memcpy(t.data() + abi::ext_header_size, errorname.data(),
		    std::min<size_t>(errorname.size(), 29));
	return t;
}

inline Bytes named_target(const std::string &name, uint8_t revision, size_t data_len)
{
	Bytes t(abi::ext_header_size + abi::xt_align(static_cast<uint32_t>(data_len)), 0);
	const uint16_t size = static_cast<uint16_t>(t.size());
	std::memcpy(t.data(), &size, 2);
	std::memcpy(t.data() + abi::ext_name, name.data(), name.size());
	t[abi::ext_revision] = revision;
	return t;
}

// -j LOG (struct xt_log_info): level, XT_LOG_* flags, prefix (29 characters at most).
inline Bytes log_target(uint8_t level, uint8_t flags, const std::string &prefix)
{
	Bytes t = named_target("LOG", 0, sizeof(struct xt_log_info));
	struct xt_log_info info = {};
	info.level = level;
	info.logflags = flags;
	std::memcpy(info.prefix, prefix.data(), std::min<size_t>(prefix.size(), 30));
	std::memcpy(t.data() + abi::ext_header_size, &info, sizeof(info));
	return t;
}

struct Rule {
	Ip ip;
	std::vector<Bytes> matches;
	Target target;
};

class Builder
{
public:
	Builder()
	{
		for (const char *c : {"INPUT", "FORWARD", "OUTPUT"})
			chains_.push_back({c, true, {}, abi::verdict_accept});
	}

	Builder &rule(const std::string &chain, Rule r)
	{
		find(chain).rules.push_back(std::move(r));
		return *this;
	}
	Builder &policy(const std::string &chain, int32_t verdict)
	{
		find(chain).policy = verdict;
		return *this;
	}
	Builder &chain(const std::string &name)
	{
		chains_.push_back({name, false, {}, 0});
		return *this;
	}

	// The entries, plus where things landed.
	struct Layout {
		Bytes entries;
		std::vector<uint32_t> offsets;
		std::map<std::string, uint32_t> chain_start; // first rule (or RETURN/policy)
		std::map<std::string, uint32_t> chain_head;  // ERROR head of a user chain
		uint32_t hook_entry[abi::num_hooks] = {};
		uint32_t underflow[abi::num_hooks] = {};
	};

	Layout layout() const
	{
		Layout l;
		struct Pending {
			size_t at;
			std::string chain;
		};
		std::vector<Pending> jumps;
		auto add = [&](const Ip &ip, const std::vector<Bytes> &matches,
			       const Bytes &target) {
			const uint32_t off = static_cast<uint32_t>(l.entries.size());
			size_t msize = 0;
			for (const Bytes &m : matches)
				msize += m.size();
			Bytes e(abi::entry_size, 0);
			std::memcpy(e.data(), &ip.ip, sizeof(ip.ip));
			const uint16_t to = static_cast<uint16_t>(abi::entry_size + msize);
			const uint16_t next = static_cast<uint16_t>(to + target.size());
			std::memcpy(e.data() + abi::entry_target_offset, &to, 2);
			std::memcpy(e.data() + abi::entry_next_offset, &next, 2);
			for (const Bytes &m : matches)
				e.insert(e.end(), m.begin(), m.end());
			e.insert(e.end(), target.begin(), target.end());
			l.entries.insert(l.entries.end(), e.begin(), e.end());
			l.offsets.push_back(off);
			return off;
		};
		const unsigned hooks[] = {1, 2, 3};
		for (size_t c = 0; c < chains_.size(); c++) {
			const Chain &ch = chains_[c];
			if (!ch.builtin)
				l.chain_head[ch.name] = add(Ip{}, {}, error_target(ch.name));
			l.chain_start[ch.name] = static_cast<uint32_t>(l.entries.size());
			if (ch.builtin)
				l.hook_entry[hooks[c]] = static_cast<uint32_t>(l.entries.size());
			for (const Rule &r : ch.rules) {
				Ip ip = r.ip;
				if (r.target.go)
					ip.ip.flags |= IPT_F_GOTO;
				const Bytes t = !r.target.raw.empty()
							? r.target.raw
							: standard_target(r.target.verdict);
				const uint32_t off = add(ip, r.matches, t);
				if (!r.target.chain.empty() && r.target.raw.empty())
					jumps.push_back(
						{off +
							 load_u16(l.entries,
								  off + abi::entry_target_offset) +
							 abi::ext_header_size,
						 r.target.chain});
			}
			const uint32_t end =
				add(Ip{}, {},
				    standard_target(ch.builtin ? ch.policy : abi::verdict_return));
			if (ch.builtin)
				l.underflow[hooks[c]] = end;
		}
		add(Ip{}, {}, error_target("ERROR"));
		for (const Pending &p : jumps) {
			const int32_t v = static_cast<int32_t>(l.chain_start.at(p.chain));
			std::memcpy(l.entries.data() + p.at, &v, 4);
		}
		return l;
	}

	// The whole IPT_SO_SET_REPLACE optval.
	Bytes replace(uint32_t num_counters = 4) const
	{
		return replace_of(layout(), num_counters);
	}

	static Bytes replace_of(const Layout &l, uint32_t num_counters,
				const std::string &name = "filter", uint32_t valid_hooks = 0x0e)
	{
		Bytes r(abi::replace_size, 0);
		std::memcpy(r.data(), name.data(), std::min<size_t>(name.size(), 32));
		const uint32_t num = static_cast<uint32_t>(l.offsets.size());
		const uint32_t size = static_cast<uint32_t>(l.entries.size());
		std::memcpy(r.data() + abi::replace_valid_hooks, &valid_hooks, 4);
		std::memcpy(r.data() + abi::replace_num_entries, &num, 4);
		std::memcpy(r.data() + abi::replace_size_field, &size, 4);
		std::memcpy(r.data() + abi::replace_hook_entry, l.hook_entry, 20);
		std::memcpy(r.data() + abi::replace_underflow, l.underflow, 20);
		std::memcpy(r.data() + abi::replace_num_counters, &num_counters, 4);
		const uint64_t ptr = 0x7fff0000;
		std::memcpy(r.data() + abi::replace_counters, &ptr, 8);
		r.insert(r.end(), l.entries.begin(), l.entries.end());
		return r;
	}

	static uint16_t load_u16(const Bytes &b, size_t off)
	{
		uint16_t v;
		std::memcpy(&v, b.data() + off, 2);
		return v;
	}

private:
	struct Chain {
		std::string name;
		bool builtin;
		std::vector<Rule> rules;
		int32_t policy;
	};
	Chain &find(const std::string &name)
	{
		for (Chain &c : chains_)
			if (c.name == name)
				return c;
		chains_.push_back({name, false, {}, 0});
		return chains_.back();
	}
	std::vector<Chain> chains_;
};

// Patch helpers for malformed tables: write a value at an offset of a replace blob.
template <typename T> void poke(Bytes &b, size_t off, T v)
{
	std::memcpy(b.data() + off, &v, sizeof(T));
}

template <typename T> T peek(const Bytes &b, size_t off)
{
	T v;
	std::memcpy(&v, b.data() + off, sizeof(T));
	return v;
}

} // namespace bpfilter::test
