// Differential check of our errnos against real netfilter in this netns.
//
// Sends the same well-formed and malformed IPT_SO_* requests to the kernel (a raw socket)
// and to a TableService with an in-memory data plane, and compares what each answers. The
// tables are built as in the unit tests (tests/unit/abi_builder.hpp). Cases that change
// the table are sent to both, so both stay in step. Only extensions bpfilter translates
// are used: the host kernel has many more, and for those it answers differently on
// purpose (ENOENT here, as a kernel without the module).
//
// With --fuzz SEED COUNT it sends randomly mutated tables instead (bytes, offsets,
// verdicts, hook offsets, names, revisions of a table using every supported feature), and
// where both accept one, also compares the GET_ENTRIES replies byte for byte.
//
// Usage: ipt_errno [--fuzz SEED COUNT]
// Exit status: 0 all agree, 1 a difference, 2 a setup error.
#include <linux/netfilter_ipv4/ip_tables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>

#include "../unit/abi_builder.hpp"
#include "abi/table.hpp"
#include "service/table_service.hpp"

namespace
{

using namespace bpfilter;
using test::Builder;
using test::Bytes;
using test::Ip;
using test::poke;
using test::Rule;
using test::Target;
constexpr uint32_t H = abi::replace_size;

class CountingOnlyDataplane : public service::Dataplane
{
public:
	Status check(const ir::Table &) const override { return {}; }
	Result<std::vector<ir::Counter>> replace(ir::Table table,
						 service::IrSource /*source*/) override
	{
		std::vector<ir::Counter> old = std::move(counters_);
		counters_.assign(table.rules.size(), ir::Counter{});
		return old;
	}
	Result<std::vector<ir::Counter>> counters() const override { return counters_; }

private:
	std::vector<ir::Counter> counters_;
};

struct Checker {
	int fd;
	service::TableService svc{std::make_unique<CountingOnlyDataplane>()};
	Bytes counters_out = Bytes(1 << 20);
	int cases = 0, diffs = 0;

	uint32_t kernel_entries()
	{
		Bytes info(sizeof(struct ipt_getinfo), 0);
		std::memcpy(info.data(), "filter", 6);
		socklen_t len = static_cast<socklen_t>(info.size());
		if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_INFO, info.data(), &len) != 0)
			return 0;
		return abi::load<uint32_t>(info, abi::getinfo_num_entries);
	}

	// A set: optval from `make(n)` where n is the table's current number of entries.
	void set(const std::string &name, uint32_t optname,
		 const std::function<Bytes(uint32_t)> &make, int expect_ours_differs = 0)
	{
		Bytes optval = make(kernel_entries());
		if (optname == IPT_SO_SET_REPLACE && optval.size() >= H) {
			const uint64_t p = reinterpret_cast<uintptr_t>(counters_out.data());
			std::memcpy(optval.data() + abi::replace_counters, &p, 8);
		}
		const int k = setsockopt(fd, IPPROTO_IP, static_cast<int>(optname), optval.data(),
					 static_cast<socklen_t>(optval.size())) == 0
				      ? 0
				      : -errno;
		const int o = svc.setsockopt(optname, optval).status;
		compare(name, k, o, expect_ours_differs);
	}

	void get(const std::string &name, uint32_t optname, Bytes optval, uint32_t optlen)
	{
		Bytes buf = optval;
		buf.resize(std::max<size_t>(optlen, buf.size()) + 64);
		socklen_t len = optlen;
		const int r =
			getsockopt(fd, IPPROTO_IP, static_cast<int>(optname), buf.data(), &len);
		const int k = r < 0 ? -errno : r;
		// ip_getsockopt turns a handler's positive answer (a revision) into 0.
		const int o = std::min(svc.getsockopt(optname, optlen, optval).status, 0);
		compare(name, k, o, 0);
	}

	void compare(const std::string &name, int k, int o, int expect_ours_differs)
	{
		cases++;
		const bool agree = expect_ours_differs ? o == expect_ours_differs : k == o;
		if (!agree)
			diffs++;
		std::cout << (agree ? "ok   " : "DIFF ") << name << ": kernel " << k << ", ours "
			  << o << (expect_ours_differs && agree ? " (intended)" : "") << "\n";
	}
};

Bytes with_rule(uint32_t n, Ip ip, std::vector<Bytes> matches, Target t = Target::accept())
{
	Builder b;
	b.rule("INPUT", Rule{ip, std::move(matches), std::move(t)});
	return b.replace(n);
}

// The entries of a table as GET_ENTRIES returns them, from the kernel or from us.
Bytes kernel_entries_bytes(int fd, uint32_t size)
{
	Bytes buf(abi::get_entries_size + size, 0);
	std::memcpy(buf.data(), "filter", 6);
	abi::store<uint32_t>(buf, abi::get_entries_size_field, size);
	socklen_t len = static_cast<socklen_t>(buf.size());
	if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_ENTRIES, buf.data(), &len) != 0)
		return {};
	return buf;
}

Builder fuzz_base()
{
	Builder b;
	b.chain("a").chain("b");
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP).src(0x0a000000, 8),
			     {test::tcp(1, 2, 22, 22, 0x17, 2), test::comment("c")},
			     Target::jump("a")});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_ICMP), {test::icmp(8)}, Target::go_to("b")});
	b.rule("INPUT", Rule{Ip().in("eth+"), {test::iprange(IPRANGE_SRC, 1, 2)}, Target::ret()});
	b.rule("a", Rule{Ip().proto(IPPROTO_UDP),
			 {test::udp(53, 53), test::multiport(2, {{1, 1}, {5, 9}})},
			 Target::drop()});
	b.rule("a", Rule{Ip(), {}, Target::jump("b")});
	b.rule("b",
	       Rule{Ip().proto(IPPROTO_TCP), {test::multiport(1, {{80, 80}})}, Target::accept()});
	b.rule("OUTPUT", Rule{Ip(), {}, Target::jump("b")});
	b.policy("INPUT", abi::verdict_drop);
	return b;
}

int fuzz(Checker &c, uint32_t seed, int count)
{
	std::mt19937 rng(seed);
	const Builder base = fuzz_base();
	const auto layout = base.layout();
	int accepted = 0;
	std::map<int, int> by_errno;
	for (int n = 0; n < count; n++) {
		// Both back to a 4-entry table first, so that num_counters 4 is right for both.
		Bytes reset = Builder().replace(c.kernel_entries());
		setsockopt(c.fd, IPPROTO_IP, IPT_SO_SET_REPLACE, reset.data(),
			   static_cast<socklen_t>(reset.size()));
		Bytes oinfo(84, 0);
		std::memcpy(oinfo.data(), "filter", 6);
		auto oi = c.svc.getsockopt(IPT_SO_GET_INFO, 84, oinfo);
		c.svc.setsockopt(IPT_SO_SET_REPLACE, Builder().replace(abi::load<uint32_t>(
							     oi.data, abi::getinfo_num_entries)));

		Bytes b = Builder::replace_of(layout, 4);
		std::string what;
		const unsigned mutations = 1 + rng() % 3;
		for (unsigned m = 0; m < mutations; m++) {
			const uint32_t e = layout.offsets[rng() % layout.offsets.size()];
			const int16_t delta =
				static_cast<int16_t>(static_cast<int>(rng() % 17) - 8);
			switch (rng() % 8) {
			case 0: { // any byte of the entries
				const size_t at = H + rng() % layout.entries.size();
				b[at] = static_cast<uint8_t>(rng());
				what += " byte@" + std::to_string(at - H);
				break;
			}
			case 1: // target_offset
				poke<uint16_t>(
					b, H + e + abi::entry_target_offset,
					static_cast<uint16_t>(
						test::peek<uint16_t>(
							b, H + e + abi::entry_target_offset) +
						delta));
				what += " target_offset@" + std::to_string(e);
				break;
			case 2: // next_offset
				poke<uint16_t>(b, H + e + abi::entry_next_offset,
					       static_cast<uint16_t>(
						       test::peek<uint16_t>(
							       b, H + e + abi::entry_next_offset) +
						       8 * (delta / 4)));
				what += " next_offset@" + std::to_string(e);
				break;
			case 3: { // a verdict: another entry, a near miss, or a small negative
				const uint32_t t = e + test::peek<uint16_t>(
							       b, H + e + abi::entry_target_offset);
				if (t + 36 > layout.entries.size())
					break;
				const int32_t v =
					rng() % 3 == 0
						? static_cast<int32_t>(
							  layout.offsets[rng() %
									 layout.offsets.size()])
					: rng() % 2
						? static_cast<int32_t>(
							  layout.offsets[rng() %
									 layout.offsets.size()]) +
							  delta
						: -static_cast<int32_t>(rng() % 7);
				poke<int32_t>(b, H + t + abi::ext_header_size, v);
				what += " verdict@" + std::to_string(e) + "=" + std::to_string(v);
				break;
			}
			case 4: { // a hook entry or underflow
				const uint32_t h = 1 + rng() % 3;
				const size_t field = (rng() % 2 ? abi::replace_hook_entry
								: abi::replace_underflow) +
						     4 * h;
				poke<uint32_t>(b, field,
					       layout.offsets[rng() % layout.offsets.size()]);
				what += " hook" + std::to_string(h);
				break;
			}
			case 5: // ip flags and invflags
				b[H + e + abi::ip_flags + rng() % 2] =
					static_cast<uint8_t>(1u << (rng() % 8));
				what += " ipflags@" + std::to_string(e);
				break;
			case 6: { // a match or target revision or name byte
				const uint32_t to =
					test::peek<uint16_t>(b, H + e + abi::entry_target_offset);
				const uint32_t at =
					e +
					(rng() % 2 && to > abi::entry_size ? abi::entry_size : to);
				if (at + 32 > layout.entries.size())
					break;
				b[H + at +
				  (rng() % 2 ? abi::ext_revision : abi::ext_name + rng() % 6)] =
					static_cast<uint8_t>(rng() % 4);
				what += " ext@" + std::to_string(at);
				break;
			}
			default: // ip proto
				poke<uint16_t>(b, H + e + abi::ip_proto,
					       static_cast<uint16_t>(std::vector<int>{
						       0, 1, 6, 17, 132}[rng() % 5]));
				what += " proto@" + std::to_string(e);
				break;
			}
		}
		const uint64_t p = reinterpret_cast<uintptr_t>(c.counters_out.data());
		std::memcpy(b.data() + abi::replace_counters, &p, 8);
		const int k = setsockopt(c.fd, IPPROTO_IP, IPT_SO_SET_REPLACE, b.data(),
					 static_cast<socklen_t>(b.size())) == 0
				      ? 0
				      : -errno;
		const int o = c.svc.setsockopt(IPT_SO_SET_REPLACE, b).status;
		const std::string name = "fuzz " + std::to_string(n) + what;
		by_errno[k]++;
		if (k == 0 && o == -EOPNOTSUPP) {
			c.compare(name, k, o, -EOPNOTSUPP); // NF_QUEUE: refused on purpose
			continue;
		}
		if (k != o || k != 0) {
			if (k != o)
				c.compare(name, k, o, 0);
			else
				c.cases++;
			continue;
		}
		accepted++;
		const uint32_t size = static_cast<uint32_t>(layout.entries.size());
		const Bytes kb = kernel_entries_bytes(c.fd, size);
		Bytes req(kb.begin(),
			  kb.begin() + std::min<size_t>(kb.size(), abi::get_entries_size));
		const Bytes ob =
			c.svc.getsockopt(IPT_SO_GET_ENTRIES, abi::get_entries_size + size, req)
				.data;
		c.compare(name + " (entries " + (kb == ob ? "equal" : "DIFFER") + ")", 0,
			  kb == ob ? 0 : -1, 0);
	}
	std::cout << accepted << " mutated tables accepted by both; kernel answers:";
	for (auto [e, num] : by_errno)
		std::cout << " " << (e ? strerrorname_np(-e) : "0") << " x" << num;
	std::cout << "\n";
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	const int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0) {
		std::perror("socket");
		return 2;
	}
	Checker c{fd};
	if (auto s = c.svc.init(); !s.ok()) {
		std::cerr << s.error().message << "\n";
		return 2;
	}
	if (c.kernel_entries() != 4) {
		std::cerr << "run in a fresh network namespace (the kernel's filter table is not "
			     "the initial one)\n";
		return 2;
	}
	if (argc == 4 && std::string(argv[1]) == "--fuzz") {
		fuzz(c, static_cast<uint32_t>(std::stoul(argv[2])), std::stoi(argv[3]));
		close(fd);
		std::cout << (c.cases - c.diffs) << " passed, " << c.diffs << " failed\n";
		return c.diffs ? 1 : 0;
	}
	const Ip tcp = Ip().proto(IPPROTO_TCP);
	auto patch = [](auto f) {
		return [f](uint32_t n) {
			Bytes b = Builder().replace(n);
			f(b);
			return b;
		};
	};
	const uint32_t R = IPT_SO_SET_REPLACE;

	// do_replace header checks.
	c.set("optlen < sizeof(ipt_replace)", R, [](uint32_t n) {
		Bytes b = Builder().replace(n);
		b.resize(95);
		return b;
	});
	c.set("num_counters 0", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_num_counters, 0); }));
	c.set("num_counters huge", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_num_counters, INT_MAX / 16); }));
	c.set("size past optlen", R, patch([](Bytes &b) { b.pop_back(); }));
	c.set("num_entries too high", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_num_entries, 5); }));
	c.set("num_entries too low", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_num_entries, 3); }));
	// Hooks.
	c.set("hook entry mid-entry", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_hook_entry + 4, 8); }));
	c.set("underflow on ERROR", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_underflow + 8, 456); }));
	c.set("duplicate hook entry", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_hook_entry + 8, 0); }));
	c.set("valid_hooks with PREROUTING", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_valid_hooks, 0x1f); }));
	c.set("valid_hooks lied", R,
	      patch([](Bytes &b) { poke<uint32_t>(b, abi::replace_valid_hooks, 0x06); }));
	c.set("conditional policy", R,
	      patch([](Bytes &b) { b[H + 304 + abi::ip_proto] = IPPROTO_TCP; }));
	c.set("RETURN policy", R, [](uint32_t n) {
		Builder b;
		b.policy("OUTPUT", abi::verdict_return);
		return b.replace(n);
	});
	// Entry offsets.
	c.set("target_offset in header", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + abi::entry_target_offset, 104); }));
	c.set("next_offset too small", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + abi::entry_next_offset, 136); }));
	c.set("next_offset past end", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + 456 + abi::entry_next_offset, 184); }));
	c.set("standard next_offset", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + abi::entry_next_offset, 160); }));
	c.set("target_size < header", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + abi::entry_size, 24); }));
	c.set("target past next_offset", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + abi::entry_size, 48); }));
	c.set("target_size 36 (xt_check_target)", R,
	      patch([](Bytes &b) { poke<uint16_t>(b, H + abi::entry_size, 36); }));
	c.set("ip.flags 0x04", R, patch([](Bytes &b) { b[H + abi::ip_flags] = 0x04; }));
	c.set("ip.invflags 0x80", R, patch([](Bytes &b) { b[H + abi::ip_invflags] = 0x80; }));
	for (int32_t v : {0, -3, -6, INT32_MIN})
		c.set("verdict " + std::to_string(v), R,
		      patch([v](Bytes &b) { poke<int32_t>(b, H + 152 + 144, v); }));
	c.set("ERROR name unterminated", R,
	      patch([](Bytes &b) { std::memset(b.data() + H + 456 + 144, 'E', 30); }));
	c.set("standard target revision 1", R,
	      patch([](Bytes &b) { b[H + abi::entry_size + abi::ext_revision] = 1; }));
	// Matches.
	c.set("match_size < header", R, [&](uint32_t n) {
		Bytes b = with_rule(n, tcp, {test::tcp()});
		poke<uint16_t>(b, H + 112, 24);
		return b;
	});
	c.set("match past target", R, [&](uint32_t n) {
		Bytes b = with_rule(n, tcp, {test::tcp()});
		poke<uint16_t>(b, H + 112, 56);
		return b;
	});
	c.set("tcp without -p tcp", R,
	      [&](uint32_t n) { return with_rule(n, Ip(), {test::tcp()}); });
	c.set("tcp with ! -p tcp", R, [&](uint32_t n) {
		return with_rule(n, Ip().proto(IPPROTO_TCP).inv(IPT_INV_PROTO), {test::tcp()});
	});
	c.set("tcp invflags 0x10", R, [&](uint32_t n) {
		return with_rule(n, tcp, {test::tcp(0, 0xffff, 0, 0xffff, 0, 0, 0x10)});
	});
	c.set("udp invflags 0x04", R, [&](uint32_t n) {
		return with_rule(n, Ip().proto(IPPROTO_UDP), {test::udp(0, 0xffff, 0, 0xffff, 4)});
	});
	c.set("icmp invflags 0x02", R, [&](uint32_t n) {
		return with_rule(n, Ip().proto(IPPROTO_ICMP), {test::icmp(8, 0, 255, 2)});
	});
	c.set("icmp with -p udp", R,
	      [&](uint32_t n) { return with_rule(n, Ip().proto(IPPROTO_UDP), {test::icmp(8)}); });
	c.set("tcp matchsize 8", R, [&](uint32_t n) {
		uint8_t d[8] = {};
		return with_rule(n, tcp, {test::match("tcp", 0, d, 8)});
	});
	c.set("tcp revision 1", R, [&](uint32_t n) {
		Bytes m = test::tcp();
		m[abi::ext_revision] = 1;
		return with_rule(n, tcp, {m});
	});
	c.set("comment revision 1", R, [&](uint32_t n) {
		Bytes m = test::comment("x");
		m[abi::ext_revision] = 1;
		return with_rule(n, Ip(), {m});
	});
	c.set("multiport revision 2", R, [&](uint32_t n) {
		Bytes m = test::multiport(0, {{1, 1}});
		m[abi::ext_revision] = 2;
		return with_rule(n, tcp, {m});
	});
	c.set("unknown match", R, [&](uint32_t n) {
		uint8_t d[8] = {};
		return with_rule(n, Ip(), {test::match("nosuchmatch", 0, d, 8)});
	});
	c.set("match name unterminated", R, [&](uint32_t n) {
		Bytes m = test::comment("x");
		std::memset(m.data() + 2, 'a', 29);
		return with_rule(n, Ip(), {m});
	});
	c.set("multiport -p icmp", R, [&](uint32_t n) {
		return with_rule(n, Ip().proto(IPPROTO_ICMP), {test::multiport(0, {{1, 1}})});
	});
	c.set("multiport no -p", R, [&](uint32_t n) {
		return with_rule(n, Ip(), {test::multiport(0, {{1, 1}})});
	});
	c.set("multiport flags 3", R, [&](uint32_t n) {
		return with_rule(n, tcp, {test::multiport(3, {{1, 1}})});
	});
	c.set("multiport range reversed", R, [&](uint32_t n) {
		return with_rule(n, tcp, {test::multiport(0, {{9, 5}})});
	});
	c.set("multiport count 16", R, [&](uint32_t n) {
		Bytes m = test::multiport(0, {{1, 1}});
		m[32 + 1] = 16;
		return with_rule(n, tcp, {m});
	});
	c.set("multiport open range", R, [&](uint32_t n) {
		Bytes m = test::multiport(0, {{1, 1}});
		m[32 + 32] = 1;
		return with_rule(n, tcp, {m});
	});
	c.set("unknown target", R, [&](uint32_t n) {
		return with_rule(n, Ip(), {},
				 Target{0, "", false, test::named_target("NOSUCHTARGET", 0, 8)});
	});
	// Loops and jumps.
	c.set("loop", R, [](uint32_t n) {
		Builder b;
		b.chain("a").chain("b");
		b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
		b.rule("a", Rule{Ip(), {}, Target::jump("b")});
		b.rule("b", Rule{Ip().proto(6), {}, Target::jump("a")});
		return b.replace(n);
	});
	c.set("goto loop", R, [](uint32_t n) {
		Builder b;
		b.chain("a");
		b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
		b.rule("a", Rule{Ip().proto(17), {}, Target::go_to("a")});
		return b.replace(n);
	});
	c.set("jump mid-entry", R, [](uint32_t n) {
		Builder b;
		b.chain("a");
		b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
		auto l = b.layout();
		poke<int32_t>(l.entries, 144, static_cast<int32_t>(l.chain_start.at("a") + 8));
		return Builder::replace_of(l, n);
	});
	c.set("jump past end", R, [](uint32_t n) {
		Builder b;
		b.chain("a");
		b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
		auto l = b.layout();
		poke<int32_t>(l.entries, 144, 1 << 30);
		return Builder::replace_of(l, n);
	});
	c.set("fall off the end", R, [](uint32_t n) {
		Builder b;
		b.chain("z");
		b.rule("INPUT", Rule{Ip(), {}, Target::jump("z")});
		auto l = b.layout();
		l.entries[l.offsets[l.offsets.size() - 2] + abi::ip_proto] = 6;
		return Builder::replace_of(l, n);
	});
	c.set("unreachable bad jump", R, [](uint32_t n) {
		Builder b;
		b.chain("orphan");
		b.rule("orphan", Rule{Ip(), {}, Target::accept()});
		auto l = b.layout();
		poke<int32_t>(l.entries, l.chain_start.at("orphan") + 144, 12345);
		return Builder::replace_of(l, n);
	});
	// Table checks of __do_replace.
	// The host kernel has a nat table; bpfilter has only filter.
	c.set(
		"table nat", R,
		[](uint32_t n) { return Builder::replace_of(Builder().layout(), n, "nat"); },
		-ENOENT);
	c.set("table nosuch", R,
	      [](uint32_t n) { return Builder::replace_of(Builder().layout(), n, "nosuch"); });
	c.set("stale num_counters", R, [](uint32_t n) { return Builder().replace(n + 1); });
	// Good tables (they change the table, for both).
	c.set("good: all matches", R, [&](uint32_t n) {
		Builder b;
		b.chain("web");
		b.rule("INPUT", Rule{tcp,
				     {test::tcp(1, 2, 22, 22, 0x17, 2), test::comment("ssh")},
				     Target::jump("web")});
		b.rule("INPUT",
		       Rule{Ip().proto(IPPROTO_ICMP), {test::icmp(8)}, Target::go_to("web")});
		b.rule("web", Rule{Ip().proto(IPPROTO_UDP),
				   {test::udp(53, 53), test::multiport(2, {{1, 1}, {5, 9}})},
				   Target::drop()});
		b.rule("web", Rule{Ip(), {test::iprange(IPRANGE_SRC, 1, 2)}, Target::ret()});
		return b.replace(n);
	});
	c.set("good: back to empty", R, [](uint32_t n) { return Builder().replace(n); });
	// ADD_COUNTERS.
	auto counters = [](uint32_t num, uint32_t given, const char *name) {
		Bytes b(abi::counters_info_size, 0);
		std::memcpy(b.data(), name, std::strlen(name));
		poke<uint32_t>(b, abi::counters_info_num, num);
		b.resize(b.size() + 16 * given, 1);
		return b;
	};
	const uint32_t A = IPT_SO_SET_ADD_COUNTERS;
	c.set("add_counters ok", A, [&](uint32_t n) { return counters(n, n, "filter"); });
	c.set("add_counters header only", A, [&](uint32_t) { return counters(0, 0, "filter"); });
	c.set("add_counters short", A, [&](uint32_t n) {
		Bytes b = counters(n, n, "filter");
		b.pop_back();
		return b;
	});
	c.set("add_counters wrong number", A,
	      [&](uint32_t n) { return counters(n + 1, n + 1, "filter"); });
	c.set(
		"add_counters table nat", A, [&](uint32_t n) { return counters(n, n, "nat"); },
		-ENOENT);
	c.set("add_counters table nosuch", A, [&](uint32_t n) { return counters(n, n, "nosuch"); });
	// Gets.
	Bytes info(84, 0);
	std::memcpy(info.data(), "filter", 6);
	c.get("get_info", IPT_SO_GET_INFO, info, 84);
	c.get("get_info len 83", IPT_SO_GET_INFO, info, 83);
	Bytes nosuch(84, 0);
	std::memcpy(nosuch.data(), "nosuch", 6);
	c.get("get_info nosuch", IPT_SO_GET_INFO, nosuch, 84);
	Bytes ge(40, 0);
	std::memcpy(ge.data(), "filter", 6);
	poke<uint32_t>(ge, 32, 632);
	c.get("get_entries", IPT_SO_GET_ENTRIES, ge, 40 + 632);
	c.get("get_entries len 39", IPT_SO_GET_ENTRIES, ge, 39);
	c.get("get_entries len mismatch", IPT_SO_GET_ENTRIES, ge, 40 + 640);
	poke<uint32_t>(ge, 32, 640);
	c.get("get_entries stale size", IPT_SO_GET_ENTRIES, ge, 40 + 640);
	for (auto [what, name, rev] : {std::tuple{IPT_SO_GET_REVISION_MATCH, "tcp", 0},
				       {IPT_SO_GET_REVISION_MATCH, "tcp", 1},
				       {IPT_SO_GET_REVISION_MATCH, "udp", 0},
				       {IPT_SO_GET_REVISION_MATCH, "icmp", 0},
				       {IPT_SO_GET_REVISION_MATCH, "multiport", 1},
				       {IPT_SO_GET_REVISION_MATCH, "multiport", 0},
				       {IPT_SO_GET_REVISION_MATCH, "iprange", 1},
				       {IPT_SO_GET_REVISION_MATCH, "iprange", 0},
				       {IPT_SO_GET_REVISION_MATCH, "comment", 0},
				       {IPT_SO_GET_REVISION_MATCH, "nosuchmatch", 0},
				       {IPT_SO_GET_REVISION_TARGET, "ERROR", 0},
				       {IPT_SO_GET_REVISION_TARGET, "", 0},
				       {IPT_SO_GET_REVISION_TARGET, "NOSUCHTARGET", 0}}) {
		Bytes r(30, 0);
		std::memcpy(r.data(), name, std::strlen(name));
		r[29] = static_cast<uint8_t>(rev);
		c.get(std::string(what == IPT_SO_GET_REVISION_MATCH ? "revision match "
								    : "revision target ") +
			      name + "." + std::to_string(rev),
		      what, r, 30);
	}
	Bytes r(30, 0);
	std::memcpy(r.data(), "tcp", 3);
	c.get("revision len 29", IPT_SO_GET_REVISION_MATCH, r, 29);
	c.get("unknown get optname", IPT_SO_GET_REVISION_TARGET + 1, r, 30);

	// Last, as the kernel takes it and we do not, so the tables part here.
	c.set(
		"NF_QUEUE verdict", R,
		[&](uint32_t n) {
			return with_rule(n, Ip(), {}, Target::verdict_of(abi::verdict_queue));
		},
		-EOPNOTSUPP);

	close(fd);
	std::cout << (c.cases - c.diffs) << " passed, " << c.diffs << " failed\n";
	return c.diffs ? 1 : 0;
}
