// The header matches (-m length, ttl, tos, dscp, ecn, pkttype, mac, ah, esp) through
// BPF_PROG_TEST_RUN against the reference evaluator: random rules of them and random packets,
// the same verdicts and counters, at XDP (pkt_type derived from the frame as
// eth_type_trans() derives it) and at tc ingress (skb->pkt_type from the kernel's own
// eth_type_trans() in BPF_PROG_TEST_RUN, on lo, whose type is not ARPHRD_ETHER).
#include <linux/if_packet.h>

#include <random>

#include "codegen_harness.hpp"
#include "ir/eval.hpp"

namespace bpfilter::test
{
namespace
{

using Mac = std::array<uint8_t, 6>;
const Mac own = {2, 0, 0, 0, 0, 2}, other = {2, 0, 0, 0, 0, 9},
	  bcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mcast = {1, 0, 0x5e, 0, 0, 1},
	  src_a = {2, 0, 0, 0, 0, 1}, src_b = {0x42, 1, 2, 3, 4, 5};

struct Gen {
	std::mt19937 rng;
	explicit Gen(uint32_t seed) : rng(seed) {}
	uint32_t n(uint32_t bound)
	{
		return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng);
	}
	bool coin(uint32_t one_in = 2) { return n(one_in) == 0; }
	uint8_t byte() { return static_cast<uint8_t>(n(256)); }
	uint8_t ttl()
	{
		const uint8_t v[] = {0, 1, 2, 63, 64, 65, 254, 255};
		return coin(3) ? byte() : v[n(8)];
	}
	uint32_t spi()
	{
		const uint32_t v[] = {0, 1, 32, 33, 0x1000, 0xfffffffe, 0xffffffff};
		return coin(3) ? static_cast<uint32_t>(rng()) : v[n(7)];
	}
	// A field as sent: mostly 0 or 1, sometimes another value (the kernel's int xor).
	uint32_t inv() { return coin(8) ? 2 + n(5) : n(2); }

	ir::Match match(uint16_t proto)
	{
		switch (n(proto == 50 || proto == 51 ? 9 : 7)) {
		case 0: {
			const uint16_t a = static_cast<uint16_t>(coin() ? 20 + n(80) : n(2000));
			const uint16_t b = static_cast<uint16_t>(coin(4) ? 0xffff : a + n(100));
			return ir::LengthMatch{coin(8) ? b : a, b, static_cast<uint8_t>(inv())};
		}
		case 1:
			return ir::TtlMatch{static_cast<uint8_t>(n(coin(10) ? 6 : 4)), ttl()};
		case 2:
			if (coin()) // dscp
				return ir::TosMatch{0xfc, static_cast<uint8_t>(n(64) << 2), coin()};
			return ir::TosMatch{static_cast<uint8_t>(coin() ? 0x3f : byte()), byte(),
					    coin()};
		case 3: {
			ir::EcnMatch m;
			m.operation = static_cast<uint8_t>((coin() ? 0x01 : 0) |
							   (proto == 6 ? n(4) << 4 : 0));
			m.invert = static_cast<uint8_t>(n(2) | n(4) << 4);
			m.ip_ect = static_cast<uint8_t>(n(coin(10) ? 8 : 4));
			return m;
		}
		case 4:
			return ir::PkttypeMatch{coin(20) ? 300 : n(4) + (coin(10) ? 2u : 0u),
						inv()};
		case 5:
			return ir::MacMatch{coin() ? src_a : src_b, inv()};
		case 6:
			return ir::LengthMatch{0, static_cast<uint16_t>(n(200)), 0};
		default: {
			ir::SpiMatch m;
			m.min = spi();
			m.max = coin(3) ? m.min : (coin() ? 0xffffffff : spi());
			m.invert = coin(3);
			m.ah = proto == 51;
			return m;
		}
		}
	}

	TableBuilder table()
	{
		TableBuilder b;
		for (uint32_t i = 0, k = 1 + n(8); i < k; i++) {
			R r;
			const uint16_t protos[] = {0, 6, 17, 50, 51};
			const uint16_t proto = protos[n(5)];
			if (proto)
				r.proto(proto);
			for (uint32_t j = 0, c = 1 + n(3); j < c; j++)
				r.m(match(proto));
			const uint32_t t = n(4);
			b.input.push_back(t == 0 ? r.accept() : t == 1 ? r.drop() : r.cont());
		}
		b.input_policy = coin() ? Kind::Accept : Kind::Drop;
		return b;
	}

	Packet packet()
	{
		Packet p;
		const uint8_t protos[] = {6, 17, 50, 51, 1};
		p.proto = protos[n(5)];
		p.tos = coin(3) ? byte() : static_cast<uint8_t>(n(4));
		p.ttl = ttl();
		switch (p.proto) {
		case 6:
			p.l4 = tcp_hdr(80, 1000, byte());
			break;
		case 17:
			p.l4 = udp_hdr(53, 53, n(8));
			break;
		case 50:
		case 51: {
			p.l4.assign(p.proto == 51 ? 12 : 8, 0);
			const uint32_t s = spi();
			const size_t at = p.proto == 51 ? 4 : 0;
			for (int k = 0; k < 4; k++)
				p.l4[at + k] = static_cast<uint8_t>(s >> (24 - 8 * k));
			break;
		}
		default:
			p.l4 = icmp_hdr(8, 0);
		}
		p.l4.resize(p.l4.size() + (coin() ? n(40) : n(1500)), 0x5a);
		if (coin(6)) // a transport header cut short
			p.l4.resize(
				n(static_cast<uint32_t>(std::min<size_t>(p.l4.size(), 24)) + 1));
		return p;
	}
};

// eth_type_trans() on an Ethernet device whose address is `own`.
uint8_t pkt_type_of(const Mac &dst)
{
	if (dst[0] & 1)
		return dst == bcast ? PACKET_BROADCAST : PACKET_MULTICAST;
	return dst == own ? PACKET_HOST : PACKET_OTHERHOST;
}

std::vector<uint8_t> frame_with(const Packet &p, const Mac &dst, const Mac &src)
{
	std::vector<uint8_t> f = p.frame();
	std::copy(dst.begin(), dst.end(), f.begin());
	std::copy(src.begin(), src.end(), f.begin() + 6);
	return f;
}

using Tests = codegen::Options::Tests;

struct Case {
	codegen::Flavor flavor;
	Tests tests;
};

class Header : public ::testing::TestWithParam<Case>
{
};

TEST_P(Header, RandomRulesAgreeWithTheEvaluator)
{
	const char *s = getenv("BPFILTER_SEED");
	const uint32_t seed = s ? static_cast<uint32_t>(strtoul(s, nullptr, 0)) : 20261202;
	const bool xdp = GetParam().flavor == codegen::Flavor::Xdp;
	Gen g(seed);
	int compared = 0, accepted = 0, hotdrops = 0;
	for (int ti = 0; ti < 150; ti++) {
		const TableBuilder b = g.table();
		const ir::Table t = TableBuilder(b).build();
		ASSERT_TRUE(codegen::check(t).ok()) << "table " << ti;
		codegen::Options o = local_only_off();
		o.flavor = GetParam().flavor;
		o.tests = GetParam().tests;
		Xdp x(t, o);
		ASSERT_TRUE(x.ok()) << "table " << ti << ": " << x.error;
		if (xdp) {
			loader::DeviceInfo info;
			std::copy_n("eth0", 4, info.name.begin());
			info.mac = own;
			info.l2len = 14;
			info.flags = codegen::maps::device_ether;
			ASSERT_TRUE(loader::set_device(x.ifnames.get(), 1, info).ok());
		}
		for (int pi = 0; pi < 40; pi++) {
			const Packet p = g.packet();
			const Mac dsts[] = {own, own, other, bcast, mcast};
			const Mac dst = dsts[g.n(5)];
			const Mac src = g.coin() ? src_a : src_b;
			const std::vector<uint8_t> dgram = p.datagram();
			ir::PacketView view{dgram, devname(xdp ? "eth0" : "lo"), {}, {}};
			// tc ingress in the harness: sent to lo's address (all zero), PACKET_HOST;
			// lo is not ARPHRD_ETHER, so mac_mt() answers false.
			view.pkt_type = xdp ? pkt_type_of(dst) : PACKET_HOST;
			if (xdp)
				view.mac_source = src;
			const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
			EXPECT_EQ(x.run(frame_with(p, dst, src)), r.accept ? pass : drop)
				<< "seed " << seed << " table " << ti << " packet " << pi
				<< (r.hotdrop ? " (hotdrop)" : "");
			for (uint32_t rule : r.counted_rules) {
				x.expected.at(rule).packets++;
				x.expected.at(rule).bytes += dgram.size();
			}
			ASSERT_EQ(x.counters(), x.expected)
				<< "seed " << seed << " table " << ti << " packet " << pi;
			compared++;
			accepted += r.accept;
			hotdrops += r.hotdrop;
		}
	}
	std::printf("seed %u: %d packets agree (%d accepted, %d hotdrops)\n", seed, compared,
		    accepted, hotdrops);
	EXPECT_GT(accepted, compared / 10);
	EXPECT_LT(accepted, compared - compared / 10);
	EXPECT_GT(hotdrops, 0);
}

INSTANTIATE_TEST_SUITE_P(, Header,
			 ::testing::Values(Case{codegen::Flavor::Xdp, Tests::Branch},
					   Case{codegen::Flavor::Xdp, Tests::Accumulate},
					   Case{codegen::Flavor::TcIngress, Tests::Branch},
					   Case{codegen::Flavor::TcIngress, Tests::Accumulate}));

// pkt_type as the kernel's eth_type_trans() sets it in BPF_PROG_TEST_RUN (lo: all-zero
// address and broadcast address), read by tc ingress: ff:ff:ff:ff:ff:ff is MULTICAST there.
TEST(HeaderPkttype, TcIngressReadsTheKernelsPktType)
{
	TableBuilder b;
	for (uint32_t type : {PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST})
		b.input.push_back(R().m(ir::PkttypeMatch{type, 0}).cont());
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.flavor = codegen::Flavor::TcIngress;
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	const Packet p = udp_packet(1, 2);
	// The harness sends tc frames to lo's address (HOST); the rules count what they see.
	x.expect(p, pass, {b.input_at[0], b.input_policy_at});
}

// XDP on lo (ARPHRD_LOOPBACK, generic XDP): no broadcast address to meet, no MAC for -m mac.
TEST(HeaderPkttype, XdpOnLoopback)
{
	TableBuilder b;
	b.input.push_back(R().m(ir::PkttypeMatch{PACKET_BROADCAST, 0}).cont());
	b.input.push_back(R().m(ir::PkttypeMatch{PACKET_MULTICAST, 0}).cont());
	b.input.push_back(R().m(ir::MacMatch{src_a, 1}).cont());
	const ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "lo")); // all-zero MAC, not Ethernet
	const Packet p = udp_packet(1, 2);
	EXPECT_EQ(x.run(frame_with(p, bcast, src_b)), pass);
	x.expected.at(b.input_at[1]) = {1, p.header_tot_len()};
	x.expected.at(b.input_policy_at) = {1, p.header_tot_len()};
	EXPECT_EQ(x.counters(), x.expected);
}

} // namespace
} // namespace bpfilter::test

namespace bpfilter::test
{
namespace
{

// A datagram in two pieces: judged and counted once whole, with the reassembled length and
// the TOS byte ip_frag_reasm() leaves (CE or'ed in when a piece was CE and the others ECT),
// as the evaluator judges the reassembled datagram.
TEST(HeaderFragments, ReassembledLengthAndEcn)
{
	TableBuilder b;
	b.input.push_back(R().m(ir::LengthMatch{0, 60, 0}).cont());
	b.input.push_back(R().m(ir::EcnMatch{0x01, 0, 3}).cont());
	b.input.push_back(R().m(ir::TosMatch{0x03, 0x02, false}).cont());
	b.input.push_back(R().m(ir::LengthMatch{44, 44, 0}).cont());
	const ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	uint16_t id = 100;
	for (uint8_t last_tos : {0x03, 0x02, 0x01}) {
		Packet first = udp_packet(1000, 2000);
		first.l4.resize(16, 0x77); // the UDP header and 8 bytes
		first.tos = 0x02;	   // ECT(0)
		first.frag = 0x2000;
		first.id = ++id;
		Packet last = first;
		last.frag = 2; // offset 16
		last.l4.assign(8, 0x66);
		last.tos = last_tos;
		// The first piece is judged, not counted; the last makes it whole.
		EXPECT_EQ(x.run(first.frame()), pass);
		EXPECT_EQ(x.counters(), x.expected);
		EXPECT_EQ(x.run(last.frame()), pass);
		Packet whole = first;
		whole.frag = 0;
		whole.l4.resize(24, 0x66);
		whole.tos = static_cast<uint8_t>(last_tos == 0x03 ? 0x03 : 0x02);
		const std::vector<uint8_t> dgram = whole.datagram();
		ir::PacketView view{dgram, devname(""), {}, {}};
		const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
		for (uint32_t rule : r.counted_rules)
			x.expected.at(rule) = {x.expected.at(rule).packets + 1,
					       x.expected.at(rule).bytes + 44};
		EXPECT_EQ(x.counters(), x.expected) << "last piece's TOS " << int(last_tos);
	}
	// Length 44 each time; ECN CE once (ECT(0) + CE), ECT(0) twice (the mixed ECT(0) and
	// ECT(1) datagram stays ECT(0)).
	EXPECT_EQ(x.counters().at(b.input_at[0]).packets, 3u);
	EXPECT_EQ(x.counters().at(b.input_at[1]).packets, 1u);
	EXPECT_EQ(x.counters().at(b.input_at[2]).packets, 2u);
	EXPECT_EQ(x.counters().at(b.input_at[3]).packets, 3u);
}

} // namespace
} // namespace bpfilter::test
