// -m u32 through BPF_PROG_TEST_RUN against the reference evaluator (u32_mt()): random
// expressions (`&`, `<<`, `>>`, `@` chains, positions in and out of the datagram, `@` sums that
// overflow, ranges, invert, the u8 invert above 1) on random datagrams, short and long, at
// XDP and tc ingress, in both test modes; the expressions iptables users write; and a
// fragmented datagram, of which the data plane holds only the last piece when INPUT judges it.
#include <random>

#include "codegen_harness.hpp"
#include "ir/eval.hpp"

namespace bpfilter::test
{
namespace
{

constexpr uint8_t op_and = 0, op_lsh = 1, op_rsh = 2, op_at = 3;
using U32Test = ir::U32Match::Test;

struct Gen {
	std::mt19937 rng;
	explicit Gen(uint32_t seed) : rng(seed) {}
	uint32_t n(uint32_t bound)
	{
		return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng);
	}
	bool coin(uint32_t one_in = 2) { return n(one_in) == 0; }
	uint32_t word() { return static_cast<uint32_t>(rng()); }

	// A position: mostly in a datagram's first bytes, sometimes near or past its end, or
	// past any datagram.
	uint32_t pos()
	{
		const uint32_t v[] = {0, 2, 4, 8, 12, 16, 20, 65531, 65532, 0xfffffffc, 0xffffffff};
		return coin(3) ? v[n(11)] : n(coin(4) ? 1600 : 64);
	}
	ir::U32Match::Loc op()
	{
		switch (n(coin(10) ? 6 : 4)) {
		case 0: {
			const uint32_t masks[] = {0xff, 0xffff, 0x3c, 0x1fff, 0xf0000000, 0};
			return {coin() ? masks[n(6)] : word(), op_and};
		}
		case 1:
			return {n(32), op_lsh};
		case 2:
			return {coin() ? 22u + n(10) : n(32), op_rsh};
		case 3:
			return {pos(), op_at};
		default: // an operator the kernel's switch ignores
			return {word(), static_cast<uint8_t>(4 + n(250))};
		}
	}
	ir::U32Match::Range range()
	{
		const uint32_t a = coin() ? n(256) : (coin() ? n(0x10000) : word());
		if (coin(4))
			return {a, a};
		if (coin(10))
			return {a, coin() ? 0 : a - 1}; // empty when min > max
		const uint32_t b = coin(4) ? 0xffffffffu : a + n(coin() ? 64 : 0x100000);
		return {a, b < a ? 0xffffffffu : b};
	}
	U32Test test()
	{
		U32Test t;
		t.locs.push_back({pos(), static_cast<uint8_t>(n(4))});
		if (coin()) {
			// The idiom of real rules: a small offset out of a word (0>>22&0x3C), then
			// `@` near the datagram's end, so that the bounds are met at their edge.
			for (uint32_t i = 0, k = 1 + n(3); i < k && t.locs.size() + 3 <= 11; i++) {
				t.locs.push_back({22u + n(10), op_rsh});
				t.locs.push_back({coin() ? 0x3cu : n(128), op_and});
				t.locs.push_back({coin(8) ? pos() : n(96), op_at});
			}
			return values(t);
		}
		for (uint32_t i = 0, k = n(coin(8) ? 11 : 6); i < k; i++)
			t.locs.push_back(op());
		return values(t);
	}
	U32Test values(U32Test t)
	{
		for (uint32_t i = 0, k = coin(20) ? 0 : 1 + n(coin(8) ? 11 : 3); i < k; i++)
			t.values.push_back(range());
		return t;
	}
	ir::U32Match match()
	{
		ir::U32Match m;
		for (uint32_t i = 0, k = coin(20) ? 0 : 1 + n(coin(8) ? 11 : 2); i < k; i++)
			m.tests.push_back(test());
		m.invert = static_cast<uint8_t>(coin(15) ? 2 + n(10) : n(2));
		return m;
	}

	Packet packet()
	{
		Packet p;
		const uint8_t protos[] = {6, 17, 1, 47};
		p.proto = protos[n(4)];
		if (coin(4))
			p.ip_options.assign(4 * (1 + n(10)), static_cast<uint8_t>(n(256)));
		p.l4.resize(coin(4) ? n(8) : (coin() ? n(64) : n(1400)));
		for (uint8_t &c : p.l4)
			c = static_cast<uint8_t>(coin() ? n(4) : n(256));
		if (p.proto == 6 && p.l4.size() >= 20)
			p.l4[12] = static_cast<uint8_t>((5 + n(11)) << 4);
		return p;
	}
};

using Tests = codegen::Options::Tests;
struct Case {
	codegen::Flavor flavor;
	Tests tests;
};

class U32 : public ::testing::TestWithParam<Case>
{
};

TEST_P(U32, RandomExpressionsAgreeWithTheEvaluator)
{
	const char *s = getenv("BPFILTER_SEED");
	const uint32_t seed = s ? static_cast<uint32_t>(strtoul(s, nullptr, 0)) : 20261203;
	Gen g(seed);
	int compared = 0, accepted = 0;
	for (int ti = 0; ti < 120; ti++) {
		TableBuilder b;
		for (uint32_t i = 0, k = 1 + g.n(6); i < k; i++) {
			R r;
			for (uint32_t j = 0, c = 1 + g.n(2); j < c; j++)
				r.m(g.match());
			const uint32_t t = g.n(4);
			b.input.push_back(t == 0 ? r.accept() : t == 1 ? r.drop() : r.cont());
		}
		b.input_policy = g.coin() ? Kind::Accept : Kind::Drop;
		const ir::Table t = TableBuilder(b).build();
		ASSERT_TRUE(codegen::check(t).ok()) << "table " << ti;
		codegen::Options o = local_only_off();
		o.flavor = GetParam().flavor;
		o.tests = GetParam().tests;
		Xdp x(t, o);
		ASSERT_TRUE(x.ok()) << "table " << ti << ": " << x.error;
		for (int pi = 0; pi < 40; pi++) {
			const Packet p = g.packet();
			const std::vector<uint8_t> dgram = p.datagram();
			ir::PacketView view{dgram, devname(""), {}, {}};
			const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
			EXPECT_EQ(x.run(p.frame()), r.accept ? pass : drop)
				<< "seed " << seed << " table " << ti << " packet " << pi;
			for (uint32_t rule : r.counted_rules) {
				x.expected.at(rule).packets++;
				x.expected.at(rule).bytes += dgram.size();
			}
			ASSERT_EQ(x.counters(), x.expected)
				<< "seed " << seed << " table " << ti << " packet " << pi;
			compared++;
			accepted += r.accept;
		}
	}
	std::printf("seed %u: %d packets agree (%d accepted)\n", seed, compared, accepted);
	EXPECT_GT(accepted, compared / 10);
	EXPECT_LT(accepted, compared - compared / 10);
}

INSTANTIATE_TEST_SUITE_P(, U32,
			 ::testing::Values(Case{codegen::Flavor::Xdp, Tests::Branch},
					   Case{codegen::Flavor::Xdp, Tests::Accumulate},
					   Case{codegen::Flavor::TcIngress, Tests::Branch},
					   Case{codegen::Flavor::TcIngress, Tests::Accumulate}));

U32Test t(std::vector<ir::U32Match::Loc> locs, std::vector<ir::U32Match::Range> values)
{
	return U32Test{std::move(locs), std::move(values)};
}

// The expressions of real rulesets, each on packets it matches and packets it does not, and
// the answer the evaluator gives is the one the program gives: checked on their own rules so
// that a count tells which matched.
TEST(U32Known, RealExpressions)
{
	// 0>>22&0x3C@12>>26&0x3C@0>>24=0x45: the first byte of TCP payload is 0x45.
	const U32Test payload = t({{0, 0},
				   {22, op_rsh},
				   {0x3c, op_and},
				   {12, op_at},
				   {26, op_rsh},
				   {0x3c, op_and},
				   {0, op_at},
				   {24, op_rsh}},
				  {{0x45, 0x45}});
	// 0>>22&0x3C@8>>15&1=1: a DNS response (QR bit).
	const U32Test dns =
		t({{0, 0}, {22, op_rsh}, {0x3c, op_and}, {8, op_at}, {15, op_rsh}, {1, op_and}},
		  {{1, 1}});
	// 0>>24&0xF=6:15: IP options present (ihl 6 to 15); 4&0x3FFF=0x2000: a first fragment
	// header (MF, offset 0); 6&0xFF=1,17: ICMP or UDP.
	const U32Test options = t({{0, 0}, {24, op_rsh}, {0xf, op_and}}, {{6, 15}});
	const U32Test proto = t({{6, 0}, {0xff, op_and}}, {{1, 1}, {17, 17}});
	TableBuilder b;
	b.input.push_back(R().m(ir::U32Match{{payload}, 0}).cont());
	b.input.push_back(R().m(ir::U32Match{{payload}, 1}).cont());
	b.input.push_back(R().m(ir::U32Match{{dns}, 0}).cont());
	b.input.push_back(R().m(ir::U32Match{{options}, 0}).cont());
	b.input.push_back(R().m(ir::U32Match{{proto, dns}, 0}).cont());
	b.input.push_back(R().m(ir::U32Match{{}, 1}).cont()); // no tests, inverted: never
	const ir::Table tb = b.build();
	Xdp x(tb);
	ASSERT_TRUE(x.ok()) << x.error;
	std::vector<Packet> pkts;
	Packet tcp = tcp_packet(1000, 80);
	tcp.l4.resize(tcp.l4.size() + 10, 0x45);
	pkts.push_back(tcp); // payload 0x45
	tcp.l4.resize(20);
	pkts.push_back(tcp); // no payload: the read is out of bounds
	tcp.l4.resize(30, 0x44);
	tcp.ip_options.assign(8, 1);
	pkts.push_back(tcp); // options, payload 0x44
	Packet dns_reply = udp_packet(53, 5353);
	dns_reply.l4.resize(8 + 12, 0);
	dns_reply.l4[10] = 0x81; // QR
	pkts.push_back(dns_reply);
	dns_reply.l4[10] = 0x01;
	pkts.push_back(dns_reply);
	dns_reply.l4.resize(9);
	pkts.push_back(dns_reply); // too short for the 4 bytes at 8
	for (const Packet &p : pkts) {
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view{dgram, devname(""), {}, {}};
		const ir::EvalResult r = ir::evaluate(tb, ir::Hook::LocalIn, view);
		EXPECT_EQ(x.run(p.frame()), r.accept ? pass : drop);
		for (uint32_t rule : r.counted_rules) {
			x.expected.at(rule).packets++;
			x.expected.at(rule).bytes += dgram.size();
		}
		ASSERT_EQ(x.counters(), x.expected);
	}
	// What u32_match_it() answers, by hand: payload 0x45 once, inverted the rest.
	EXPECT_EQ(x.counters().at(b.input_at[0]).packets, 1u);
	EXPECT_EQ(x.counters().at(b.input_at[1]).packets, 5u);
	EXPECT_EQ(x.counters().at(b.input_at[2]).packets, 1u);
	EXPECT_EQ(x.counters().at(b.input_at[3]).packets, 1u);
	EXPECT_EQ(x.counters().at(b.input_at[4]).packets, 1u);
	EXPECT_EQ(x.counters().at(b.input_at[5]).packets, 0u);
}

// A datagram in two pieces at INPUT: netfilter reads the reassembled datagram; the data plane
// judges the last piece on the first one's headers and holds neither's payload, so every
// u32 read is out of bounds there (u32_match_it() false): the difference supported.md names.
TEST(U32Fragments, AReassembledDatagramReadsNothing)
{
	const U32Test first_byte = t({{0, 0}, {24, op_rsh}}, {{0x45, 0x45}});
	TableBuilder b;
	b.input.push_back(R().m(ir::U32Match{{first_byte}, 0}).cont());
	b.input.push_back(R().m(ir::U32Match{{first_byte}, 1}).cont());
	const ir::Table tb = b.build();
	Xdp x(tb);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet first = udp_packet(1000, 2000);
	first.l4.resize(16, 0x77);
	first.frag = 0x2000;
	first.id = 7;
	Packet last = first;
	last.frag = 2;
	last.l4.assign(8, 0x66);
	EXPECT_EQ(x.run(first.frame()), pass);
	EXPECT_EQ(x.run(last.frame()), pass);
	EXPECT_EQ(x.counters().at(b.input_at[0]).packets, 0u);
	EXPECT_EQ(x.counters().at(b.input_at[1]).packets, 1u);
	// A whole datagram reads its bytes.
	EXPECT_EQ(x.run(udp_packet(1, 2).frame()), pass);
	EXPECT_EQ(x.counters().at(b.input_at[0]).packets, 1u);
	EXPECT_EQ(x.counters().at(b.input_at[1]).packets, 1u);
}

} // namespace
} // namespace bpfilter::test
