// -m addrtype: the generated lookup against explicit answers and against the reference
// evaluator, and the route resolution the helper does (loader/addrtype.cpp).
#include <linux/rtnetlink.h>

#include <random>

#include "codegen_harness.hpp"
#include "ir/eval.hpp"
#include "loader/addrtype.hpp"

namespace bpfilter::test
{
namespace
{

using Tests = codegen::Options::Tests;
using Dev = ir::AddrtypeMatch::Dev;

constexpr uint16_t t_unicast = 1 << RTN_UNICAST, t_local = 1 << RTN_LOCAL,
		   t_broadcast = 1 << RTN_BROADCAST, t_anycast = 1 << RTN_ANYCAST,
		   t_multicast = 1 << RTN_MULTICAST, t_unspec = 1 << RTN_UNSPEC;

ir::AddrtypeRoute route(const char *addr, uint8_t len, uint8_t type, const std::string &dev)
{
	ir::AddrtypeRoute r;
	r.addr = ip4(addr);
	r.prefixlen = len;
	r.type = type;
	r.has_dev = !dev.empty();
	r.dev = devname(dev);
	return r;
}

// A namespace's routes: eth0 10.0.0.1/24, eth1 10.1.0.1/24, lo, an anycast /16 with a
// unicast /24 inside it, a multicast-typed route outside 224/4, an UNSPEC one.
std::vector<ir::AddrtypeRoute> routes()
{
	return {route("10.0.0.1", 32, RTN_LOCAL, "eth0"),
		route("10.0.0.255", 32, RTN_BROADCAST, "eth0"),
		route("10.1.0.1", 32, RTN_LOCAL, "eth1"),
		route("10.1.0.255", 32, RTN_BROADCAST, "eth1"),
		route("127.0.0.0", 8, RTN_LOCAL, "lo"),
		route("127.255.255.255", 32, RTN_BROADCAST, "lo"),
		route("10.5.0.0", 16, RTN_ANYCAST, "eth0"),
		route("10.5.1.0", 24, RTN_UNICAST, "eth1"),
		route("10.6.0.0", 16, RTN_MULTICAST, ""),
		route("10.7.0.0", 16, RTN_UNSPEC, "eth1")};
}

ir::AddrtypeMatch dst(uint16_t mask, bool inv = false, Dev dev = Dev::None)
{
	ir::AddrtypeMatch m;
	m.dest = mask;
	m.invert_dest = inv;
	m.dev = dev;
	return m;
}

ir::AddrtypeMatch src(uint16_t mask, bool inv = false, Dev dev = Dev::None)
{
	ir::AddrtypeMatch m;
	m.source = mask;
	m.invert_source = inv;
	m.dev = dev;
	return m;
}

Packet from(const char *s, const char *d)
{
	Packet p = udp_packet(1000, 53);
	p.saddr = ip4h(s);
	p.daddr = ip4h(d);
	return p;
}

class CodegenAddrtype : public ::testing::TestWithParam<Tests>
{
};

TEST_P(CodegenAddrtype, EachTypeAsTheKernelGivesIt)
{
	TableBuilder b;
	b.input = {R().m(dst(t_local)).drop(),		  // 0
		   R().m(dst(t_broadcast)).drop(),	  // 1
		   R().m(dst(t_multicast)).drop(),	  // 2
		   R().m(dst(t_anycast)).drop(),	  // 3
		   R().m(dst(t_unspec)).drop(),		  // 4
		   R().m(src(t_unicast, true)).accept()}; // 5: a source that is not UNICAST
	const ir::Table t = b.build();
	Xdp x(t, {.local_only = false, .tests = GetParam()});
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.set_addr_types(routes()));
	const auto at = [&](size_t i) { return b.input_at.at(i); };
	x.expect(from("8.8.8.8", "10.0.0.1"), drop, {at(0)});
	x.expect(from("8.8.8.8", "127.3.4.5"), drop, {at(0)});
	x.expect(from("8.8.8.8", "10.0.0.255"), drop, {at(1)});
	x.expect(from("8.8.8.8", "255.255.255.255"), drop, {at(1)});
	x.expect(from("8.8.8.8", "0.1.2.3"), drop, {at(1)}); // the zero network
	x.expect(from("8.8.8.8", "224.0.0.1"), drop, {at(2)});
	x.expect(from("8.8.8.8", "239.255.255.255"), drop, {at(2)});
	x.expect(from("8.8.8.8", "10.6.9.9"), drop, {at(2)}); // a multicast route
	x.expect(from("8.8.8.8", "10.5.9.9"), drop, {at(3)});
	x.expect(from("8.8.8.8", "10.5.1.9"), pass, {b.input_policy_at}); // the /24 inside
	x.expect(from("8.8.8.8", "10.7.0.1"), drop, {at(4)});
	x.expect(from("10.0.0.255", "8.8.4.4"), pass, {at(5)});
	x.expect(from("10.1.0.1", "8.8.4.4"), pass, {at(5)});
	x.expect(from("8.8.8.8", "8.8.4.4"), pass, {b.input_policy_at});
	// The map follows the namespace: 10.0.0.1 is no longer an address.
	auto r = routes();
	r.erase(r.begin());
	ASSERT_TRUE(x.set_addr_types(r));
	x.expect(from("8.8.8.8", "10.0.0.1"), pass, {b.input_policy_at});
}

TEST_P(CodegenAddrtype, LimitIfaceInComparesTheRoutesDevice)
{
	ir::AddrtypeMatch both = dst(t_local, false, Dev::In);
	both.source = t_unicast;
	TableBuilder b;
	b.input = {R().m(dst(t_local, false, Dev::In)).drop(),
		   R().m(dst(t_broadcast, true, Dev::In)).accept(), R().m(both).drop()};
	const ir::Table t = b.build();
	Xdp x(t, {.local_only = false, .tests = GetParam()});
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.set_addr_types(routes()));
	ASSERT_TRUE(x.name_device(1, "eth0"));
	ASSERT_TRUE(x.name_device(2, "eth1"));
	const auto at = [&](size_t i) { return b.input_at.at(i); };
	x.expect(from("8.8.8.8", "10.0.0.1"), drop, {at(0)}, 1);
	// eth1's address arriving on eth0: UNICAST for eth0's routes.
	x.expect(from("8.8.8.8", "10.1.0.1"), pass, {at(1)}, 1);
	x.expect(from("8.8.8.8", "10.1.0.1"), drop, {at(0)}, 2);
	x.expect(from("8.8.8.8", "10.0.0.255"), pass, {b.input_policy_at}, 1);
	x.expect(from("8.8.8.8", "10.0.0.255"), pass, {at(1)}, 2);
	// 255.255.255.255 is BROADCAST before any route is looked at.
	x.expect(from("8.8.8.8", "255.255.255.255"), pass, {b.input_policy_at}, 2);
	// A route without a device (the multicast one) is UNICAST under a limit.
	x.expect(from("8.8.8.8", "10.6.0.1"), pass, {at(1)}, 1);
}

INSTANTIATE_TEST_SUITE_P(Modes, CodegenAddrtype,
			 ::testing::Values(Tests::Branch, Tests::FirstBranch, Tests::Accumulate,
					   Tests::Chunked),
			 [](const auto &info) {
				 return info.param == Tests::Branch	   ? "Branch"
					: info.param == Tests::FirstBranch ? "FirstBranch"
					: info.param == Tests::Chunked	   ? "Chunked"
									   : "Accumulate";
			 });

// Random addrtype rules and packets, the program against the evaluator.
TEST(CodegenAddrtypeDiff, RandomRulesAgreeWithTheEvaluator)
{
	std::mt19937 rng(20261202);
	const auto n = [&](uint32_t bound) {
		return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng);
	};
	const char *const addrs[] = {"10.0.0.1",  "10.0.0.255", "10.1.0.1", "10.1.0.255",
				     "127.0.0.1", "10.5.3.3",	"10.5.1.1", "10.6.0.1",
				     "10.7.7.7",  "8.8.8.8",	"0.0.0.0",  "255.255.255.255",
				     "224.0.0.5", "10.0.0.2"};
	const char *const devs[] = {"eth0", "eth1", "lo"};
	const auto rt = routes();
	int compared = 0, matched = 0;
	for (int ti = 0; ti < 40; ti++) {
		TableBuilder b;
		for (uint32_t i = 0, k = 1 + n(6); i < k; i++) {
			ir::AddrtypeMatch m;
			if (n(3))
				m.source = static_cast<uint16_t>(n(4096));
			if (n(3) || !m.source)
				m.dest = static_cast<uint16_t>(n(4096));
			m.invert_source = n(2);
			m.invert_dest = n(2);
			m.dev = static_cast<Dev>(n(2));
			b.input.push_back(n(2) ? R().m(m).drop() : R().m(m).accept());
		}
		b.input_policy = n(2) ? Kind::Accept : Kind::Drop;
		const ir::Table t = b.build();
		Xdp x(t, {.local_only = false, .tests = n(2) ? Tests::Branch : Tests::Accumulate});
		ASSERT_TRUE(x.ok()) << x.error;
		ASSERT_TRUE(x.set_addr_types(rt));
		std::vector<ir::Counter> want(t.rules.size());
		for (int pi = 0; pi < 50; pi++) {
			const std::string dev = devs[n(3)];
			ASSERT_TRUE(x.name_device(1, dev));
			const Packet p = from(addrs[n(14)], addrs[n(14)]);
			const std::vector<uint8_t> dgram = p.datagram();
			ir::PacketView view{dgram, devname(dev), {}, {}};
			view.addrtype_routes = rt;
			const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
			ASSERT_EQ(x.run(p.frame()), r.accept ? pass : drop)
				<< "table " << ti << " packet " << pi;
			for (uint32_t rule : r.counted_rules) {
				want[rule].packets++;
				want[rule].bytes += dgram.size();
			}
			ASSERT_EQ(x.counters(), want) << "table " << ti << " packet " << pi;
			compared++;
			matched += !r.counted_rules.empty() &&
				   r.counted_rules.back() != b.input_policy_at;
		}
	}
	// Rules decide a good share of the packets, and the policy the rest.
	EXPECT_GT(matched, compared / 5);
	EXPECT_LT(matched, compared - compared / 10);
}

// loader::resolve_addrtype_routes(): what fib_table_lookup() would take of each prefix.
loader::rtnl::Route rt_route(const char *addr, uint8_t len, uint32_t table, uint8_t type, int oif,
			     uint8_t tos = 0, uint32_t flags = 0)
{
	loader::rtnl::Route r;
	r.addr = ip4(addr);
	r.prefixlen = len;
	r.table = table;
	r.type = type;
	r.oif = oif;
	r.tos = tos;
	r.flags = flags;
	return r;
}

TEST(AddrtypeRoutes, ResolvedAsTheLookupWouldTakeThem)
{
	std::vector<loader::rtnl::Link> links(2);
	links[0].ifindex = 1;
	links[0].name = devname("lo");
	links[1].ifindex = 2;
	links[1].name = devname("eth0");
	const std::vector<loader::rtnl::Route> dumped = {
		rt_route("10.0.0.1", 32, RT_TABLE_LOCAL, RTN_LOCAL, 2),
		rt_route("10.0.0.255", 32, RT_TABLE_LOCAL, RTN_BROADCAST, 2),
		rt_route("127.0.0.0", 8, RT_TABLE_LOCAL, RTN_LOCAL, 1),
		// A prefix whose first route has a TOS (skipped) and a dead one: the third
		// decides.
		rt_route("10.9.0.0", 16, RT_TABLE_LOCAL, RTN_LOCAL, 2, 0x10),
		rt_route("10.9.0.0", 16, RT_TABLE_LOCAL, RTN_LOCAL, 2, 0, RTNH_F_DEAD),
		rt_route("10.9.0.0", 16, RT_TABLE_LOCAL, RTN_BROADCAST, 2),
		// Only dead: the prefix is as if absent.
		rt_route("10.8.0.0", 16, RT_TABLE_LOCAL, RTN_LOCAL, 2, 0, RTNH_F_DEAD),
		// A blackhole: the lookup fails, UNICAST (and then it matters for nothing).
		rt_route("10.10.0.0", 16, RT_TABLE_LOCAL, RTN_BLACKHOLE, 0),
		// Main's: a unicast route inside 127/8 shadows it when merged, the connected
		// /24 and the default route do not matter, an anycast route does.
		rt_route("127.1.0.0", 16, RT_TABLE_MAIN, RTN_UNICAST, 2),
		rt_route("10.0.0.0", 24, RT_TABLE_MAIN, RTN_UNICAST, 2),
		rt_route("0.0.0.0", 0, RT_TABLE_MAIN, RTN_UNICAST, 2),
		rt_route("10.20.0.0", 16, RT_TABLE_MAIN, RTN_ANYCAST, 2),
		// The same prefix in both tables: the local table's comes first.
		rt_route("10.30.0.0", 16, RT_TABLE_MAIN, RTN_ANYCAST, 2),
		rt_route("10.30.0.0", 16, RT_TABLE_LOCAL, RTN_LOCAL, 1),
	};
	const auto never = [](int) { return false; };
	auto key = [](const ir::AddrtypeRoute &r) {
		char buf[64];
		const uint32_t a = ntohl(r.addr);
		std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u/%u:%u:%s", a >> 24, (a >> 16) & 255,
			      (a >> 8) & 255, a & 255, r.prefixlen, r.type,
			      reinterpret_cast<const char *>(r.dev.data()));
		return std::string(buf);
	};
	std::vector<std::string> got;
	for (const auto &r : loader::resolve_addrtype_routes(dumped, links, false, never))
		got.push_back(key(r));
	std::sort(got.begin(), got.end());
	EXPECT_EQ(got, (std::vector<std::string>{"10.0.0.1/32:2:eth0", "10.0.0.255/32:3:eth0",
						 "10.30.0.0/16:2:lo", "10.9.0.0/16:3:eth0",
						 "127.0.0.0/8:2:lo"}));
	got.clear();
	for (const auto &r : loader::resolve_addrtype_routes(dumped, links, true, never))
		got.push_back(key(r));
	std::sort(got.begin(), got.end());
	EXPECT_EQ(got, (std::vector<std::string>{"10.0.0.1/32:2:eth0", "10.0.0.255/32:3:eth0",
						 "10.20.0.0/16:4:eth0", "10.30.0.0/16:2:lo",
						 "10.9.0.0/16:3:eth0", "127.0.0.0/8:2:lo",
						 "127.1.0.0/16:1:eth0"}));
	// ignore_routes_with_linkdown on eth0: its link-down routes are skipped.
	std::vector<loader::rtnl::Route> down = {
		rt_route("10.0.0.1", 32, RT_TABLE_LOCAL, RTN_LOCAL, 2, 0, RTNH_F_LINKDOWN)};
	EXPECT_EQ(loader::resolve_addrtype_routes(down, links, false, never).size(), 1u);
	EXPECT_TRUE(loader::resolve_addrtype_routes(down, links, false, [](int i) {
			    return i == 2;
		    }).empty());
}
} // namespace
} // namespace bpfilter::test
