// Test harness for generated programs: tables laid out as iptables lays them, crafted packets,
// BPF_PROG_TEST_RUN.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter_ipv4/ip_tables.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "codegen/codegen.hpp"
#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "ir/ir.hpp"
#include "ir/limit.hpp"
#include "loader/conntrack.hpp"
#include "loader/hashlimit.hpp"
#include "loader/jiffies.hpp"
#include "loader/log_ring.hpp"
#include "loader/program.hpp"
#include "loader/recent.hpp"

namespace bpfilter::test
{

using Kind = ir::Target::Kind;

inline uint32_t ip4(const char *s) // network byte order, as the IR keeps -s/-d
{
	in_addr a{};
	EXPECT_EQ(inet_pton(AF_INET, s, &a), 1) << s;
	return a.s_addr;
}
inline uint32_t ip4h(const char *s)
{
	return ntohl(ip4(s));
}

// iptables' encoding of an interface name: "eth+" masks only "eth", "lo" masks the
// name and its NUL.
inline ir::Iface iface(const std::string &name)
{
	ir::Iface i;
	const bool plus = !name.empty() && name.back() == '+';
	const size_t len = plus ? name.size() - 1 : name.size();
	for (size_t k = 0; k < len; k++) {
		i.name[k] = static_cast<uint8_t>(name[k]);
		i.mask[k] = 0xff;
	}
	if (!plus && len < 16)
		i.mask[len] = 0xff;
	return i;
}

inline std::array<uint8_t, 16> devname(const std::string &name)
{
	std::array<uint8_t, 16> a{};
	std::memcpy(a.data(), name.data(), std::min<size_t>(name.size(), 15));
	return a;
}

// A rule under construction. Jump and goto name a user chain by its index in
// TableBuilder::chains; build() turns that into a rule index.
struct R {
	ir::Rule r;
	R &src(const char *a, uint32_t mask_bits = 32, bool inv = false)
	{
		r.ip.src_mask = mask_bits ? htonl(~0u << (32 - mask_bits)) : 0;
		r.ip.src = ip4(a) & r.ip.src_mask;
		if (inv)
			r.ip.invflags |= IPT_INV_SRCIP;
		return *this;
	}
	R &dst(const char *a, uint32_t mask_bits = 32, bool inv = false)
	{
		r.ip.dst_mask = mask_bits ? htonl(~0u << (32 - mask_bits)) : 0;
		r.ip.dst = ip4(a) & r.ip.dst_mask;
		if (inv)
			r.ip.invflags |= IPT_INV_DSTIP;
		return *this;
	}
	R &proto(uint16_t p, bool inv = false)
	{
		r.ip.proto = p;
		if (inv)
			r.ip.invflags |= IPT_INV_PROTO;
		return *this;
	}
	R &in(const std::string &name, bool inv = false)
	{
		r.ip.in = iface(name);
		if (inv)
			r.ip.invflags |= IPT_INV_VIA_IN;
		return *this;
	}
	R &out(const std::string &name, bool inv = false)
	{
		r.ip.out = iface(name);
		if (inv)
			r.ip.invflags |= IPT_INV_VIA_OUT;
		return *this;
	}
	R &frag(bool inv = false)
	{
		r.ip.flags |= IPT_F_FRAG;
		if (inv)
			r.ip.invflags |= IPT_INV_FRAG;
		return *this;
	}
	R &m(ir::Match match)
	{
		r.matches.push_back(std::move(match));
		return *this;
	}
	ir::Rule t(Kind k, uint32_t to = 0)
	{
		r.target = {k, to};
		return r;
	}
	ir::Rule log(uint8_t level, uint8_t flags, const std::string &prefix)
	{
		r.target = {Kind::Log};
		r.target.log.level = level;
		r.target.log.flags = flags;
		std::copy_n(prefix.begin(), std::min<size_t>(prefix.size(), 29),
			    r.target.log.prefix.begin());
		return r;
	}
	ir::Rule accept() { return t(Kind::Accept); }
	ir::Rule drop() { return t(Kind::Drop); }
	ir::Rule ret() { return t(Kind::Return); }
	ir::Rule cont() { return t(Kind::Continue); }
	ir::Rule jump(uint32_t chain) { return t(Kind::Jump, chain); }
	ir::Rule go(uint32_t chain) { return t(Kind::Goto, chain); }
};

inline ir::TcpMatch tcp(ir::PortRange sport = {}, ir::PortRange dport = {}, uint8_t inv = 0)
{
	ir::TcpMatch m;
	m.sport = sport;
	m.dport = dport;
	m.invflags = inv;
	return m;
}

// The filter table as iptables lays it out: INPUT, FORWARD, OUTPUT (rules then
// policy), then each user chain (ERROR head, rules, RETURN), then the final ERROR.
struct TableBuilder {
	struct Chain {
		std::vector<ir::Rule> rules;
	};
	std::vector<ir::Rule> input, forward, output;
	Kind input_policy = Kind::Accept, forward_policy = Kind::Accept,
	     output_policy = Kind::Accept;
	std::vector<Chain> chains;

	// Filled by build(): where things landed.
	std::vector<uint32_t> input_at, output_at, chain_start, chain_return;
	uint32_t input_policy_at = 0, output_policy_at = 0;

	ir::Table build()
	{
		ir::Table t;
		t.valid_hooks = (1u << 1) | (1u << 2) | (1u << 3);
		std::vector<std::pair<size_t, uint32_t>> fix; // rule, chain
		const auto add = [&](ir::Rule r) {
			if (r.target.kind == Kind::Jump || r.target.kind == Kind::Goto)
				fix.emplace_back(t.rules.size(), r.target.to);
			r.offset = static_cast<uint32_t>(t.rules.size() * 152);
			t.rules.push_back(std::move(r));
			return static_cast<uint32_t>(t.rules.size() - 1);
		};
		const auto hook = [&](unsigned h, const std::vector<ir::Rule> &rules, Kind policy,
				      std::vector<uint32_t> *at) {
			t.hook_entry[h] = static_cast<uint32_t>(t.rules.size());
			for (const ir::Rule &r : rules) {
				const uint32_t i = add(r);
				if (at)
					at->push_back(i);
			}
			t.underflow[h] = add(R().t(policy));
		};
		input_at.clear();
		hook(1, input, input_policy, &input_at);
		input_policy_at = *t.underflow[1];
		hook(2, forward, forward_policy, nullptr);
		output_at.clear();
		hook(3, output, output_policy, &output_at);
		output_policy_at = *t.underflow[3];
		chain_start.clear();
		chain_return.clear();
		for (const Chain &c : chains) {
			add(R().t(Kind::Error));
			chain_start.push_back(static_cast<uint32_t>(t.rules.size()));
			for (const ir::Rule &r : c.rules)
				add(r);
			chain_return.push_back(add(R().ret()));
		}
		add(R().t(Kind::Error));
		for (auto [rule, chain] : fix)
			t.rules[rule].target.to = chain_start.at(chain);
		// -m limit's buckets, numbered in rule order as abi::to_ir() numbers them.
		for (ir::Rule &r : t.rules)
			for (ir::Match &m : r.matches)
				if (auto *x = std::get_if<ir::LimitMatch>(&m))
					x->slot = t.limit_slots++;
		return t;
	}
};

// Packets: Ethernet + IPv4 + transport header.
struct Packet {
	uint32_t saddr = 0, daddr = 0; // host order
	uint8_t proto = 6, tos = 0, ttl = 64;
	uint16_t frag = 0; // flags and offset, host order
	uint16_t id = 0;   // IP id: which datagram a fragment belongs to
	std::vector<uint8_t> ip_options;
	std::vector<uint8_t> l4;
	std::optional<uint16_t> tot_len; // as written in the header, when not the truth
	std::optional<uint8_t> ver_ihl;
	uint16_t ethertype = 0x0800;
	size_t cut = 0; // bytes cut off the frame's end
	size_t pad = 0; // bytes after the datagram (Ethernet padding)

	Packet() : saddr(ip4h("10.0.0.1")), daddr(ip4h("10.0.0.2")) {}

	uint16_t true_len() const
	{
		return static_cast<uint16_t>(20 + ip_options.size() + l4.size());
	}
	uint16_t header_tot_len() const { return tot_len ? *tot_len : true_len(); }

	std::vector<uint8_t> datagram() const
	{
		std::vector<uint8_t> d(20);
		const size_t ihl = (20 + ip_options.size()) / 4;
		d[0] = ver_ihl ? *ver_ihl : static_cast<uint8_t>(0x40 | ihl);
		d[1] = tos;
		const uint16_t tl = header_tot_len();
		d[2] = tl >> 8;
		d[3] = tl & 0xff;
		d[4] = id >> 8;
		d[5] = id & 0xff;
		d[6] = frag >> 8;
		d[7] = frag & 0xff;
		d[8] = ttl;
		d[9] = proto;
		for (int k = 0; k < 4; k++) {
			d[12 + k] = static_cast<uint8_t>(saddr >> (24 - 8 * k));
			d[16 + k] = static_cast<uint8_t>(daddr >> (24 - 8 * k));
		}
		d.insert(d.end(), ip_options.begin(), ip_options.end());
		d.insert(d.end(), l4.begin(), l4.end());
		uint32_t sum = 0;
		for (size_t k = 0; k + 1 < 20 + ip_options.size(); k += 2)
			sum += d[k] << 8 | d[k + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		d[10] = static_cast<uint8_t>(~sum >> 8);
		d[11] = static_cast<uint8_t>(~sum);
		return d;
	}

	std::vector<uint8_t> frame() const
	{
		std::vector<uint8_t> f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
		f.push_back(ethertype >> 8);
		f.push_back(ethertype & 0xff);
		const std::vector<uint8_t> d = datagram();
		f.insert(f.end(), d.begin(), d.end());
		f.resize(f.size() + pad, 0);
		f.resize(f.size() - std::min(cut, f.size() - 14));
		return f;
	}
};

inline std::vector<uint8_t> tcp_hdr(uint16_t sport, uint16_t dport, uint8_t flags = 0x10,
				    std::vector<uint8_t> options = {},
				    std::optional<uint8_t> doff = {})
{
	while (options.size() % 4)
		options.push_back(0);
	std::vector<uint8_t> h(20 + options.size());
	h[0] = sport >> 8;
	h[1] = sport & 0xff;
	h[2] = dport >> 8;
	h[3] = dport & 0xff;
	h[12] = static_cast<uint8_t>((doff ? *doff : (20 + options.size()) / 4) << 4);
	h[13] = flags;
	std::copy(options.begin(), options.end(), h.begin() + 20);
	return h;
}

inline std::vector<uint8_t> udp_hdr(uint16_t sport, uint16_t dport, size_t payload = 4)
{
	std::vector<uint8_t> h(8 + payload);
	h[0] = sport >> 8;
	h[1] = sport & 0xff;
	h[2] = dport >> 8;
	h[3] = dport & 0xff;
	h[4] = static_cast<uint8_t>((8 + payload) >> 8);
	h[5] = static_cast<uint8_t>(8 + payload);
	return h;
}

inline std::vector<uint8_t> icmp_hdr(uint8_t type, uint8_t code)
{
	std::vector<uint8_t> h(8);
	h[0] = type;
	h[1] = code;
	return h;
}

inline Packet tcp_packet(uint16_t sport, uint16_t dport, uint8_t flags = 0x10)
{
	Packet p;
	p.proto = 6;
	p.l4 = tcp_hdr(sport, dport, flags);
	return p;
}
inline Packet udp_packet(uint16_t sport, uint16_t dport)
{
	Packet p;
	p.proto = 17;
	p.l4 = udp_hdr(sport, dport);
	return p;
}
inline Packet icmp_packet(uint8_t type, uint8_t code)
{
	Packet p;
	p.proto = 1;
	p.l4 = icmp_hdr(type, code);
	return p;
}

// A loaded program with its maps, run through BPF_PROG_TEST_RUN, and the counters we
// expect it to have, kept alongside.
// Options that judge every packet by INPUT (no routing decision).
inline codegen::Options local_only_off()
{
	codegen::Options o;
	o.local_only = false;
	return o;
}

class Xdp
{
public:
	// Compile and load; on failure `error` says why and ok() is false.
	// lists: -m recent's lists of the namespace (a new set when none is given).
	Xdp(const ir::Table &table, codegen::Options opts = local_only_off(),
	    std::shared_ptr<loader::RecentLists> lists = nullptr)
	    : flavor(opts.flavor), recent(std::move(lists))
	{
		auto ifn = loader::create_devices_map();
		auto loc = loader::create_local_addrs_map();
		if (!ifn || !loc) {
			error = "maps: " + (ifn ? loc.error().message : ifn.error().message);
			return;
		}
		ifnames = std::move(*ifn);
		local = std::move(*loc);
		auto at = loader::create_addr_types_map();
		if (!at) {
			error = "maps: " + at.error().message;
			return;
		}
		addr_types = std::move(*at);
		// The tc programs pass packets of a device they do not know: lo is known.
		if (flavor != codegen::Flavor::Xdp)
			(void)name_device(1, "lo");
		loader::LoadOptions lo;
		lo.addr_types_fd = addr_types.get();
		if (loader::tracks_connections(table)) {
			auto c = loader::open_conntrack();
			if (!c) {
				error = c.error().message;
				return;
			}
			ct = std::move(*c);
			opts.ct = ct->layout;
			lo.conntrack = ct.get();
		}
		if (table.limit_slots) {
			// -m limit: the kernel's HZ, and full buckets as of now.
			auto hz_now = loader::measure_hz();
			auto now = loader::read_jiffies();
			if (!hz_now || !now) {
				error = "jiffies: " +
					(hz_now ? now.error().message : hz_now.error().message);
				return;
			}
			hz = *hz_now;
			opts.hz = hz;
			limits_set_at = *now;
			auto m = loader::create_limits_map(table, hz, limits_set_at);
			if (!m) {
				error = m.error().message;
				return;
			}
			limits = std::move(*m);
			lo.limits_fd = limits.get();
			limit_slots = table.limit_slots;
		}
		if (!table.hashlimits.empty()) {
			// -m hashlimit: the kernel's HZ, and the table's htables, empty, in the
			// namespace's maps as the helper keeps them.
			if (hz == 0) {
				auto hz_now = loader::measure_hz();
				if (!hz_now) {
					error = "jiffies: " + hz_now.error().message;
					return;
				}
				hz = *hz_now;
			}
			opts.hz = hz;
			if (!htables) {
				auto h = loader::Htables::create();
				if (!h) {
					error = h.error().message;
					return;
				}
				htables = std::move(*h);
			}
			std::vector<ir::HashlimitTable> hts = table.hashlimits;
			std::vector<std::string> made;
			auto refs = htables->prepare(hts, made);
			if (!refs) {
				error = refs.error().message;
				return;
			}
			opts.hashlimit = *refs;
			for (const ir::HashlimitTable &h : hts)
				htable_names.push_back(h.name);
			lo.hashlimit_fd = htables->map_fd();
			lo.hashlimit_counts_fd = htables->counts_fd();
		}
		if (!table.recent_lists.empty()) {
			auto hz_now = loader::measure_hz();
			if (!hz_now) {
				error = "HZ: " + hz_now.error().message;
				return;
			}
			hz = opts.hz = *hz_now;
			if (!recent) {
				auto r = loader::RecentLists::create();
				if (!r) {
					error = r.error().message;
					return;
				}
				recent = std::move(*r);
			}
			auto refs = recent->prepare(table);
			if (!refs) {
				error = refs.error().message;
				return;
			}
			opts.recent = *refs;
			lo.recent_entries_fd = recent->entries_fd();
			lo.recent_heads_fd = recent->heads_fd();
			lo.recent_tmp_fd = recent->tmp_fd();
		}
		auto code = codegen::compile(table, opts);
		if (!code) {
			error = code.error().message;
			return;
		}
		insns = code->insns.size();
		for (const codegen::MapRef &ref : code->map_refs) {
			if (ref.slot != codegen::MapSlot::LogRing || log)
				continue;
			auto ring = loader::LogRing::create();
			if (!ring) {
				error = ring.error().message;
				return;
			}
			log = std::move(*ring);
			lo.log_ring_fd = log->maps().ring.get();
			lo.log_lost_fd = log->maps().lost.get();
		}
		auto p = loader::load_program(*code, ifnames.get(), local.get(), lo);
		if (!p) {
			error = p.error().message;
			return;
		}
		prog.emplace(std::move(*p));
		expected.assign(table.rules.size(), {});
	}

	bool ok() const { return prog.has_value(); }

	// What the programs know of device `ifindex` (an Ethernet device, all-zero MAC).
	bool name_device(uint32_t ifindex, const std::string &name, uint8_t l2len = 14)
	{
		loader::DeviceInfo info;
		const auto n = std::min(name.size(), info.name.size() - 1);
		std::copy_n(name.begin(), n, info.name.begin());
		info.l2len = l2len;
		return loader::set_device(ifnames.get(), ifindex, info).ok();
	}

	// What -m addrtype finds (the AddrTypes map), as the helper would resolve it.
	bool set_addr_types(const std::vector<ir::AddrtypeRoute> &routes)
	{
		return loader::sync_addr_types(addr_types.get(), routes, addr_types_held).ok();
	}

	// The action for one frame arriving on ifindex (tc: leaving it, sent by this host),
	// as an XDP action: tc's TC_ACT_UNSPEC reads as XDP_PASS, TC_ACT_SHOT as XDP_DROP.
	int run(const std::vector<uint8_t> &frame, uint32_t ifindex = 1)
	{
		std::vector<uint8_t> data(frame);
		xdp_md ctx{};
		__sk_buff skb{};
		ctx.data_end = static_cast<uint32_t>(data.size());
		ctx.ingress_ifindex = ifindex;
		skb.ifindex = ifindex;
		const bool tc = flavor != codegen::Flavor::Xdp;
		// For this host: lo's MAC address (all zero), or eth_type_trans() makes it
		// PACKET_OTHERHOST, which tc ingress leaves to the stack.
		if (flavor == codegen::Flavor::TcIngress && data.size() >= 6)
			std::fill_n(data.begin(), 6, 0);
		LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = data.data(),
			    .data_size_in = static_cast<uint32_t>(data.size()),
			    .ctx_in = tc ? static_cast<void *>(&skb) : static_cast<void *>(&ctx),
			    .ctx_size_in = static_cast<uint32_t>(tc ? sizeof(skb) : sizeof(ctx)),
			    .repeat = 1);
		const int err = bpf_prog_test_run_opts(prog->fd(), &topts);
		EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << strerror(errno);
		if (err)
			return -1;
		if (!tc)
			return static_cast<int>(topts.retval);
		const auto r = static_cast<int32_t>(topts.retval);
		return r == codegen::layout::tc_drop	 ? XDP_DROP
		       : r == codegen::layout::tc_accept ? XDP_PASS
							 : 100 + r;
	}

	// The LOG records the runs so far wrote (maps::LogRecord each), oldest first.
	std::vector<std::vector<uint8_t>> log_records()
	{
		std::vector<std::vector<uint8_t>> out;
		if (!log)
			return out;
		auto n = log->drain(
			[&](std::span<const uint8_t> r) { out.emplace_back(r.begin(), r.end()); });
		EXPECT_TRUE(n.ok());
		return out;
	}

	// -m limit's buckets as the program left them (maps::LimitBucket), by slot.
	std::vector<ir::limit::Bucket> limit_buckets()
	{
		std::vector<codegen::maps::LimitBucket> raw(limit_slots);
		const uint32_t key = 0;
		std::vector<ir::limit::Bucket> out;
		if (limit_slots == 0)
			return out;
		EXPECT_EQ(bpf_map_lookup_elem(limits.get(), &key, raw.data()), 0);
		out.reserve(raw.size());
		for (const auto &b : raw)
			out.push_back({b.prev, b.credit});
		return out;
	}

	std::vector<ir::Counter> counters()
	{
		auto c = prog->counters();
		EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
		return c.ok() ? *c : std::vector<ir::Counter>{};
	}

	// Run `p`, expect `action`, and expect exactly `rules` to have counted it.
	void expect(const Packet &p, int action, std::vector<uint32_t> rules, uint32_t ifindex = 1)
	{
		EXPECT_EQ(run(p.frame(), ifindex), action);
		for (uint32_t r : rules) {
			expected.at(r).packets++;
			expected.at(r).bytes += p.header_tot_len();
		}
		const auto got = counters();
		ASSERT_EQ(got.size(), expected.size());
		for (size_t i = 0; i < got.size(); i++) {
			EXPECT_EQ(got[i].packets, expected[i].packets) << "rule " << i;
			EXPECT_EQ(got[i].bytes, expected[i].bytes) << "rule " << i;
		}
	}

	codegen::Flavor flavor = codegen::Flavor::Xdp;
	std::string error;
	loader::Fd ifnames, local, addr_types;
	std::vector<ir::AddrtypeRoute> addr_types_held;
	// -m hashlimit's htables as the program left them, by ir::Table::hashlimits index.
	std::vector<std::map<ir::hashlimit::Key, ir::hashlimit::Entry>> hashlimit_entries()
	{
		std::vector<std::map<ir::hashlimit::Key, ir::hashlimit::Entry>> out;
		if (htable_names.empty())
			return out;
		auto all = htables->entries(htable_names);
		EXPECT_TRUE(all.ok());
		if (!all.ok())
			return out;
		for (const auto &entries : *all) {
			out.emplace_back();
			for (const auto &x : entries)
				out.back()[x.key] = x.entry;
		}
		return out;
	}
	std::shared_ptr<loader::Htables> htables;    // -m hashlimit's maps
	std::vector<std::string> htable_names;	     // by ir::Table::hashlimits index
	loader::Fd limits;			     // -m limit's buckets
	std::shared_ptr<loader::RecentLists> recent; // -m recent's lists
	uint32_t limit_slots = 0, hz = 0;
	uint64_t limits_set_at = 0; // jiffies
	std::unique_ptr<loader::LogRing> log;
	std::optional<loader::LoadedProgram> prog;
	std::unique_ptr<loader::Conntrack> ct;
	std::vector<ir::Counter> expected;
	size_t insns = 0;
};

inline constexpr int pass = XDP_PASS;
inline constexpr int drop = XDP_DROP;

} // namespace bpfilter::test
