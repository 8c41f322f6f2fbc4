// Generated XDP programs with Options::local_only: only what the stack delivers to this host is
// judged.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "codegen/maps.hpp"
#include "codegen/plan.hpp"
#include "codegen_harness.hpp"

namespace bpfilter::test
{
namespace
{

// Runs the test body in a fresh network namespace (lo up) and comes back after.
class CodegenLocalOnly : public ::testing::Test
{
protected:
	void SetUp() override
	{
		home_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		ASSERT_GE(home_, 0);
		ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno);
		ASSERT_EQ(std::system("/usr/sbin/ip link set lo up"), 0);
	}
	void TearDown() override
	{
		if (home_ >= 0) {
			EXPECT_EQ(setns(home_, CLONE_NEWNET), 0) << strerror(errno);
			close(home_);
		}
	}
	static void forwarding(bool on)
	{
		std::ofstream("/proc/sys/net/ipv4/conf/all/forwarding") << (on ? "1" : "0");
	}
	static Packet to(const char *dst)
	{
		Packet p = udp_packet(1000, 53);
		p.saddr = ip4h("10.9.0.2");
		p.daddr = ip4h(dst);
		return p;
	}
	int home_ = -1;
};

ir::Table drop_all(TableBuilder &b)
{
	b.input = {R().drop()};
	return b.build();
}

TEST_F(CodegenLocalOnly, ForwardingOffUsesTheLocalAddressMap)
{
	forwarding(false);
	TableBuilder b;
	const ir::Table t = drop_all(b);
	Xdp x(t, {.local_only = true});
	ASSERT_TRUE(x.ok()) << x.error;
	// The kernel answers FWD_DISABLED before any lookup: the map decides.
	x.expect(to("127.0.0.1"), pass, {});
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("127.0.0.0"), 8).ok());
	x.expect(to("127.0.0.1"), drop, {0});
	x.expect(to("127.1.2.3"), drop, {0});
	x.expect(to("10.1.2.3"), pass, {});
	// Multicast and the limited broadcast are delivered locally.
	x.expect(to("224.0.0.1"), drop, {0});
	x.expect(to("239.1.2.3"), drop, {0});
	x.expect(to("255.255.255.255"), drop, {0});
	ASSERT_TRUE(loader::delete_local_addr(x.local.get(), ip4("127.0.0.0"), 8).ok());
	x.expect(to("127.0.0.1"), pass, {});
}

TEST_F(CodegenLocalOnly, ForwardingOnAsksTheFib)
{
	ASSERT_EQ(
		std::system("/usr/sbin/ip link add bpf-h2a type veth peer name bpf-h2b && "
			    "/usr/sbin/ip addr add 10.9.0.1/16 dev bpf-h2a && "
			    "/usr/sbin/ip link set bpf-h2a up && /usr/sbin/ip link set bpf-h2b up"),
		0);
	forwarding(true);
	TableBuilder b;
	const ir::Table t = drop_all(b);
	Xdp x(t, {.local_only = true});
	ASSERT_TRUE(x.ok()) << x.error;
	// Local (RTN_LOCAL, RTN_BROADCAST: NOT_FWDED), with an empty local address map.
	x.expect(to("127.0.0.1"), drop, {0});
	x.expect(to("10.9.0.1"), drop, {0});
	x.expect(to("10.9.255.255"), drop, {0});
	// Routed through bpf-h2a: FORWARD's business, not INPUT's.
	x.expect(to("10.9.7.7"), pass, {});
	x.expect(to("224.0.0.251"), drop, {0});
	// Judged packets go through the rules as usual.
	TableBuilder c;
	c.input = {R().dst("10.9.0.1").proto(17).drop()};
	const ir::Table t2 = c.build();
	Xdp y(t2, {.local_only = true});
	ASSERT_TRUE(y.ok()) << y.error;
	y.expect(to("10.9.0.1"), drop, {c.input_at[0]});
	y.expect(to("127.0.0.1"), pass, {c.input_policy_at});
	y.expect(to("10.9.7.7"), pass, {});
}

// What input routing refuses before INPUT is judged (a DROP holds) but not counted.
TEST_F(CodegenLocalOnly, MartiansJudgedNotCounted)
{
	ASSERT_EQ(
		std::system("/usr/sbin/ip link add bpf-m1a type veth peer name bpf-m1b && "
			    "/usr/sbin/ip addr add 10.9.0.1/16 dev bpf-m1a && "
			    "/usr/sbin/ip link set bpf-m1a up && /usr/sbin/ip link set bpf-m1b up"),
		0);
	const uint32_t dev = if_nametoindex("bpf-m1a");
	ASSERT_NE(dev, 0u);
	forwarding(false);
	TableBuilder b;
	const ir::Table t = drop_all(b);
	Xdp x(t, {.local_only = true});
	ASSERT_TRUE(x.ok()) << x.error;
	// What the loader would keep: the local table, and the groups joined; with policy
	// rules or rp_filter, broadcast addresses are martian sources as well as the host's own.
	constexpr uint8_t martian = codegen::maps::local_delivered | codegen::maps::martian_source;
	for (const char *a : {"10.9.0.1", "10.9.255.255"})
		ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4(a), 32, martian).ok());
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("239.1.2.3"), 32).ok());
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("127.0.0.0"), 8).ok());
	auto pkt = [](const char *src, const char *dst) {
		Packet p = udp_packet(1000, 53);
		p.saddr = ip4h(src);
		p.daddr = ip4h(dst);
		return p;
	};
	x.expect(pkt("10.9.0.2", "10.9.0.1"), drop, {0}, dev);
	for (const char *src :
	     {"127.0.0.1", "224.0.0.5", "255.255.255.255", "10.9.0.1", "10.9.255.255", "0.0.0.0"})
		x.expect(pkt(src, "10.9.0.1"), drop, {}, dev);
	x.expect(pkt("0.0.0.0", "255.255.255.255"), drop, {0}, dev); // DHCP's discover
	// Without them (fib_validate_source()'s fast path) only the host's own addresses are.
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.9.255.255"), 32).ok());
	x.expect(pkt("10.9.255.255", "10.9.0.1"), drop, {0}, dev);
	x.expect(pkt("10.9.0.2", "127.0.0.1"), drop, {}, dev);
	x.expect(pkt("10.9.0.2", "224.0.0.1"), drop, {0}, dev);
	x.expect(pkt("10.9.0.2", "239.1.2.3"), drop, {0}, dev);
	x.expect(pkt("10.9.0.2", "239.9.9.9"), drop, {}, dev);
	// On lo the same addresses are the host's own traffic: counted.
	x.expect(pkt("127.0.0.1", "10.9.0.1"), drop, {0}, 1);
	x.expect(pkt("10.9.0.1", "127.0.0.1"), drop, {0}, 1);

	// A fragment of a martian datagram: the first piece judged, the others untouched.
	Packet first = pkt("127.0.0.1", "10.9.0.1");
	first.frag = 0x2000;
	first.l4.resize(16);
	x.expect(first, drop, {}, dev);
	Packet later = first;
	later.frag = 2;
	x.expect(later, pass, {}, dev);

	TableBuilder c;
	c.input = {R().accept()};
	const ir::Table t2 = c.build();
	Xdp y(t2, {.local_only = true});
	ASSERT_TRUE(y.ok()) << y.error;
	ASSERT_TRUE(loader::add_local_addr(y.local.get(), ip4("10.9.0.1"), 32).ok());
	y.expect(pkt("127.0.0.1", "10.9.0.1"), pass, {}, dev);
	y.expect(pkt("10.9.0.2", "10.9.0.1"), pass, {c.input_at[0]}, dev);
}

// FORWARD judges every fragment (without connection tracking): a service list classified
// into one lookup (classify.hpp's tuple sets) must treat later pieces as tcp_mt() and udp_mt()
// do: no port rule matches one, and TCP at offset 1 hotdrops where a -p tcp rule's addresses
// match. The same table tested one by one gives the same verdicts and counters.
TEST_F(CodegenLocalOnly, ForwardServiceListsAndFragments)
{
	ASSERT_EQ(
		std::system("/usr/sbin/ip link add bpf-s1a type veth peer name bpf-s1b && "
			    "/usr/sbin/ip addr add 10.9.0.1/16 dev bpf-s1a && "
			    "/usr/sbin/ip link set bpf-s1a address 02:00:00:00:00:5a && "
			    "/usr/sbin/ip link set bpf-s1a up && /usr/sbin/ip link set bpf-s1b up"),
		0);
	forwarding(true);
	TableBuilder b;
	for (uint16_t i = 0; i < 40; i++) {
		const auto port = static_cast<uint16_t>(1000 + i);
		R r = R().dst("10.9.7.0", 24);
		if (i % 2) {
			ir::UdpMatch u;
			u.dport = {port, port};
			b.forward.push_back(r.proto(17).m(u).drop());
		} else {
			b.forward.push_back(r.proto(6).m(tcp({}, {port, port})).drop());
		}
	}
	b.forward_policy = Kind::Accept;
	const ir::Table t = b.build();
	codegen::Options classified{.local_only = true};
	codegen::Options one_by_one{.local_only = true, .classify_min = 0};
	auto plan = codegen::make_plan(t, classified);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 1u);
	EXPECT_TRUE(plan->addr_sets[0].tuple);
	Xdp x(t, classified), y(t, one_by_one);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(y.ok()) << y.error;
	// Come in on bpf-s1a, to its MAC address (ip_forward() takes only what is sent to us),
	// routed back out of it.
	const uint32_t dev = if_nametoindex("bpf-s1a");
	ASSERT_NE(dev, 0u);
	const std::array<uint8_t, 6> mac{2, 0, 0, 0, 0, 0x5a};
	loader::DeviceInfo info;
	std::copy_n("bpf-s1a", 7, info.name.begin());
	info.mac = mac;
	info.l2len = 14;
	info.flags = codegen::maps::device_ether;
	for (Xdp *z : {&x, &y})
		ASSERT_TRUE(loader::set_device(z->ifnames.get(), dev, info).ok());
	const auto both = [&](const Packet &p, int action, std::vector<uint32_t> rules) {
		std::vector<uint8_t> frame = p.frame();
		std::copy(mac.begin(), mac.end(), frame.begin());
		for (Xdp *z : {&x, &y}) {
			EXPECT_EQ(z->run(frame, dev), action)
				<< (z == &x ? "classified" : "one by one");
			for (uint32_t r : rules) {
				z->expected.at(r).packets++;
				z->expected.at(r).bytes += p.header_tot_len();
			}
			EXPECT_EQ(z->counters(), z->expected)
				<< (z == &x ? "classified" : "one by one");
		}
	};
	const uint32_t fwd_policy = *t.underflow[2];
	const uint32_t first = *t.hook_entry[2];
	Packet tcp_p = tcp_packet(5, 1000);
	tcp_p.saddr = ip4h("10.9.0.2");
	tcp_p.daddr = ip4h("10.9.7.7");
	both(tcp_p, drop, {first});
	Packet udp_p = udp_packet(5, 1001);
	udp_p.saddr = tcp_p.saddr;
	udp_p.daddr = tcp_p.daddr;
	both(udp_p, drop, {first + 1});
	// A first piece with its ports: judged by them.
	Packet piece = tcp_p;
	piece.frag = 0x2000;
	piece.l4.resize(24);
	both(piece, drop, {first});
	// TCP at offset 1: hotdrop (nothing counted), whatever its bytes.
	piece.frag = 1;
	both(piece, drop, {});
	// Later pieces: no port rule matches, the policy counts.
	piece.frag = 2;
	both(piece, pass, {fwd_policy});
	Packet later_udp = udp_p;
	later_udp.frag = 1;
	both(later_udp, pass, {fwd_policy});
	// Offset 1 to an address no rule has: no rule got that far.
	piece.frag = 1;
	piece.daddr = ip4h("10.9.8.7");
	both(piece, pass, {fwd_policy});
	// Headers cut short: hotdrop where the rules' addresses match.
	Packet cut = tcp_p;
	cut.l4.resize(19);
	both(cut, drop, {});
	cut.daddr = ip4h("10.9.8.7");
	both(cut, pass, {fwd_policy});
	Packet cut_udp = udp_p;
	cut_udp.l4.resize(7);
	both(cut_udp, drop, {});
	// Not the port: the policy.
	Packet other = udp_p;
	other.l4 = udp_hdr(5, 1000); // 1000 is a tcp rule's
	both(other, pass, {fwd_policy});

	// -i and -o names in the key: in and out of bpf-s1a here.
	TableBuilder c;
	for (uint16_t i = 0; i < 40; i++) {
		const auto port = static_cast<uint16_t>(1000 + i);
		c.forward.push_back(R().in(i % 2 ? "bpf-s1a" : "eth0")
					    .out(i % 4 < 2 ? "bpf-s1a" : "bpf-s1b")
					    .proto(6)
					    .m(tcp({}, {port, port}))
					    .drop());
	}
	const ir::Table t2 = c.build();
	auto plan2 = codegen::make_plan(t2, classified);
	ASSERT_TRUE(plan2.ok());
	ASSERT_EQ(plan2->addr_sets.size(), 1u);
	EXPECT_EQ(plan2->addr_sets[0].data.key_words, 10u);
	Xdp x2(t2, classified), y2(t2, one_by_one);
	ASSERT_TRUE(x2.ok()) << x2.error;
	ASSERT_TRUE(y2.ok()) << y2.error;
	for (Xdp *z : {&x2, &y2})
		ASSERT_TRUE(loader::set_device(z->ifnames.get(), dev, info).ok());
	const uint32_t policy2 = *t2.underflow[2], first2 = *t2.hook_entry[2];
	const auto both2 = [&](const Packet &p, int action, std::vector<uint32_t> rules) {
		std::vector<uint8_t> frame = p.frame();
		std::copy(mac.begin(), mac.end(), frame.begin());
		for (Xdp *z : {&x2, &y2}) {
			EXPECT_EQ(z->run(frame, dev), action)
				<< (z == &x2 ? "classified" : "one by one");
			for (uint32_t r : rules) {
				z->expected.at(r).packets++;
				z->expected.at(r).bytes += p.header_tot_len();
			}
			EXPECT_EQ(z->counters(), z->expected)
				<< (z == &x2 ? "classified" : "one by one");
		}
	};
	for (uint16_t i = 0; i < 8; i++) {
		Packet q = tcp_p;
		q.l4 = tcp_hdr(5, static_cast<uint16_t>(1000 + i));
		// In and out of bpf-s1a: the rules of odd i with i % 4 < 2 (i = 1, 5).
		const bool hit = i % 2 == 1 && i % 4 < 2;
		both2(q, hit ? drop : pass, {hit ? first2 + i : policy2});
	}
}

} // namespace
} // namespace bpfilter::test
