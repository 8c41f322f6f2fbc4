// Classified runs of address rules (codegen/classify.hpp) against the reference evaluator: random
// blocklists with nested and duplicate prefixes, /0 and /32, mixed targets, up to 100k rules.
#include <random>

#include "codegen/plan.hpp"
#include "codegen_harness.hpp"
#include "ir/eval.hpp"

namespace bpfilter::test
{
namespace
{

using Tests = codegen::Options::Tests;

uint32_t seed_from_env()
{
	const char *s = getenv("BPFILTER_SEED");
	return s ? static_cast<uint32_t>(strtoul(s, nullptr, 0)) : 20261202;
}

uint32_t mask_h(uint32_t len) // host order
{
	return len ? ~0u << (32 - len) : 0;
}

// A rule "-s|-d addr/len" with the target the caller gives (addr in host order).
R addr_rule(bool dst, uint32_t addr, uint32_t len)
{
	R r;
	uint32_t &a = dst ? r.r.ip.dst : r.r.ip.src;
	uint32_t &m = dst ? r.r.ip.dst_mask : r.r.ip.src_mask;
	m = htonl(mask_h(len));
	a = htonl(addr & mask_h(len));
	return r;
}

struct Gen {
	std::mt19937 rng;
	explicit Gen(uint32_t seed) : rng(seed) {}
	uint32_t n(uint32_t bound)
	{
		return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng);
	}
	bool coin(uint32_t one_in = 2) { return n(one_in) == 0; }

	// A few regions that prefixes nest in, so that packets meet several of them.
	std::vector<uint32_t> regions;
	struct Prefix {
		uint32_t addr, len;
	};
	std::vector<Prefix> used;
	// /0 now and then: with a verdict it ends the chain (the rules after it are dead).
	bool zero = true;

	void new_regions()
	{
		regions.clear();
		used.clear();
		for (int k = 0; k < 4; k++)
			regions.push_back(static_cast<uint32_t>(rng()));
	}

	Prefix prefix()
	{
		if (!used.empty() && coin(6))
			return used[n(static_cast<uint32_t>(used.size()))]; // a duplicate
		const uint32_t lens[] = {32, 32, 32, 24, 16, 8, 28, 31, 20, 12, 0};
		uint32_t len = coin(6) ? n(33) : lens[n(11)];
		if (len == 0 && (!zero || !coin(3)))
			len = 32;
		const uint32_t region = regions[n(static_cast<uint32_t>(regions.size()))];
		// Within the region's /16 mostly, so that prefixes nest.
		const uint32_t addr =
			(region & 0xffff0000u) | (static_cast<uint32_t>(rng()) & 0xffff);
		Prefix p{addr & mask_h(len), len};
		used.push_back(p);
		return p;
	}

	// An address in a prefix some rule has, or anywhere in a region, or anywhere.
	uint32_t address()
	{
		if (!used.empty() && !coin(4)) {
			const Prefix p = used[n(static_cast<uint32_t>(used.size()))];
			return p.addr | (static_cast<uint32_t>(rng()) & ~mask_h(p.len));
		}
		if (coin(2))
			return (regions[n(static_cast<uint32_t>(regions.size()))] & 0xffff0000u) |
			       (static_cast<uint32_t>(rng()) & 0xffff);
		return static_cast<uint32_t>(rng());
	}

	// A blocklist-shaped rule with a target drawn from `kinds` (chains: user chains to
	// jump or go to; none when empty).
	ir::Rule rule(bool dst, uint32_t nchains, uint32_t chain_base, bool in_user_chain)
	{
		const Prefix p = prefix();
		R r = addr_rule(dst, p.addr, p.len);
		switch (n(14)) {
		case 0:
			return r.accept();
		case 1:
			return r.ret();
		case 2:
			return r.cont();
		case 3:
			if (nchains)
				return r.jump(chain_base + n(nchains));
			return r.accept();
		case 4:
			if (nchains)
				return r.go(chain_base + n(nchains));
			return r.drop();
		case 5:
			if (coin(3))
				return r.log(4, 0, "cls ");
			return r.drop();
		case 6: {
			ir::Rule x = r.t(Kind::Reject);
			x.target.reject_with =
				coin() ? 3 : 0; // icmp-port-unreachable, net-unreachable
			return x;
		}
		default:
			(void)in_user_chain;
			return r.drop();
		}
	}

	// What ends a run: another kind of test, `!`, a non-CIDR mask, the other address.
	ir::Rule breaker(bool dst)
	{
		switch (n(4)) {
		case 0:
			return R().proto(17).drop();
		case 1: {
			const Prefix p = prefix();
			R r = addr_rule(dst, p.addr, p.len ? p.len : 8);
			(dst ? r.r.ip.invflags : r.r.ip.invflags) |=
				dst ? IPT_INV_DSTIP : IPT_INV_SRCIP;
			return r.drop();
		}
		case 2: {
			R r = addr_rule(dst, address(), 32);
			(dst ? r.r.ip.dst_mask : r.r.ip.src_mask) = htonl(0xff00ff00u);
			(dst ? r.r.ip.dst : r.r.ip.src) &= htonl(0xff00ff00u);
			return r.drop();
		}
		default: {
			const Prefix p = prefix();
			return addr_rule(!dst, p.addr, p.len ? p.len : 32).accept();
		}
		}
	}
};

struct Case {
	ir::Table table;
	bool dst = false;
};

// INPUT: a blocklist with a breaker now and then; chain 0: a blocklist ending in RETURN;
// chains 1-2: small, jumped to from the lists.
Case random_case(Gen &g, uint32_t rules)
{
	g.new_regions();
	Case c;
	c.dst = g.coin();
	TableBuilder b;
	const uint32_t nchains = 3;
	b.chains.resize(nchains);
	for (uint32_t i = 0; i < rules; i++)
		b.input.push_back(g.coin(40) ? g.breaker(c.dst) : g.rule(c.dst, nchains, 0, false));
	for (uint32_t i = 0, k = 1 + rules / 3; i < k; i++)
		b.chains[0].rules.push_back(g.rule(c.dst, 2, 1, true));
	b.chains[1].rules = {R().proto(17).drop(), addr_rule(!c.dst, g.address(), 8).accept()};
	b.chains[2].rules = {};
	for (uint32_t i = 0, k = g.n(12); i < k; i++)
		b.chains[2].rules.push_back(g.rule(c.dst, 0, 0, true));
	b.input_policy = g.coin() ? Kind::Accept : Kind::Drop;
	c.table = b.build();
	return c;
}

Packet packet_for(Gen &g)
{
	Packet p = g.coin() ? udp_packet(static_cast<uint16_t>(1 + g.n(60000)), 53)
			    : tcp_packet(static_cast<uint16_t>(1 + g.n(60000)), 80);
	p.saddr = g.address();
	p.daddr = g.address();
	return p;
}

// Run `packets` through the program and the evaluator; the verdicts and every counter agree.
// Returns the packets that some classified rule judged.
void compare(Xdp &x, const ir::Table &t, Gen &g, int packets, const std::string &what,
	     std::vector<Packet> extra = {})
{
	std::vector<ir::Counter> want(t.rules.size());
	for (int pi = 0; pi < packets + static_cast<int>(extra.size()); pi++) {
		const Packet p =
			pi < packets ? packet_for(g) : extra[static_cast<size_t>(pi - packets)];
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view;
		view.ip = dgram;
		view.in_ifname = devname("eth0");
		const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
		const int got = x.run(p.frame());
		if (r.rejected_by) {
			ASSERT_TRUE(got == XDP_TX || got == XDP_DROP) << what << " packet " << pi;
		} else {
			ASSERT_EQ(got, r.accept ? pass : drop) << what << " packet " << pi;
		}
		for (uint32_t rule : r.counted_rules) {
			want[rule].packets++;
			want[rule].bytes += dgram.size();
		}
		if (pi % 16 == 0 || pi + 1 == packets + static_cast<int>(extra.size())) {
			ASSERT_EQ(x.counters(), want) << what << " packet " << pi;
		}
	}
}

uint64_t classified(const ir::Table &t, const codegen::Options &o)
{
	auto plan = codegen::make_plan(t, o);
	EXPECT_TRUE(plan.ok());
	return plan ? plan->classified_rules : 0;
}

class CodegenClassify : public ::testing::TestWithParam<Tests>
{
};

TEST_P(CodegenClassify, RandomBlocklistsAgreeWithTheEvaluator)
{
	const uint32_t seed = seed_from_env();
	Gen g(seed);
	uint64_t sets = 0, rules = 0;
	for (int ti = 0; ti < 60; ti++) {
		const uint32_t size = ti % 10 == 9 ? 300 + g.n(700) : 4 + g.n(60);
		const Case c = random_case(g, size);
		codegen::Options o = local_only_off();
		o.tests = GetParam();
		o.classify_min = ti % 3 == 0   ? 2
				 : ti % 3 == 1 ? 8
					       : codegen::Options::default_classify_min;
		ASSERT_TRUE(codegen::check(c.table).ok());
		sets += classified(c.table, o) > 0;
		rules += classified(c.table, o);
		Xdp x(c.table, o);
		ASSERT_TRUE(x.ok()) << "seed " << seed << " table " << ti << ": " << x.error;
		ASSERT_TRUE(x.name_device(1, "eth0"));
		compare(x, c.table, g, 80,
			"seed " + std::to_string(seed) + " table " + std::to_string(ti));
	}
	std::printf("%lu of 60 tables classified, %lu rules in sets\n",
		    static_cast<unsigned long>(sets), static_cast<unsigned long>(rules));
	EXPECT_GT(sets, 30u); // the generator must make sets
}

INSTANTIATE_TEST_SUITE_P(Modes, CodegenClassify,
			 ::testing::Values(Tests::Auto, Tests::Branch, Tests::Accumulate,
					   Tests::Chunked),
			 [](const auto &info) {
				 return info.param == Tests::Auto      ? "Auto"
					: info.param == Tests::Branch  ? "Branch"
					: info.param == Tests::Chunked ? "Chunked"
								       : "Accumulate";
			 });

// Exactly what the plan takes into a set and what ends one.
TEST(CodegenClassifyPlan, WhatARunIs)
{
	TableBuilder b;
	for (uint32_t i = 0; i < 10; i++)
		b.input.push_back(addr_rule(false, 0x0a000000u + i, 32).drop());
	b.input.push_back(R().src("10.1.0.0", 16, true).drop()); // !: ends the run
	for (uint32_t i = 0; i < 10; i++)
		b.input.push_back(addr_rule(false, 0x0b000000u + (i << 8), 24).drop());
	R odd = addr_rule(false, 0x0c000000u, 32);
	odd.r.ip.src_mask = htonl(0xffff00ffu); // not a prefix
	b.input.push_back(odd.drop());
	for (uint32_t i = 0; i < 10; i++)
		b.input.push_back(addr_rule(true, 0x0d000000u + i, 32).accept());
	for (uint32_t i = 0; i < 10; i++) // -s after -d: another set
		b.input.push_back(addr_rule(false, 0x0e000000u + i, 32).ret());
	b.input.push_back(R().proto(6).drop());
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 8;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 4u);
	const auto &s = plan->addr_sets;
	EXPECT_EQ(s[0].first, b.input_at[0]);
	EXPECT_EQ(s[0].end, b.input_at[10]);
	EXPECT_FALSE(s[0].data.lpm); // all /32: a hash
	EXPECT_EQ(s[1].first, b.input_at[11]);
	EXPECT_EQ(s[1].end, b.input_at[21]);
	EXPECT_EQ(s[2].first, b.input_at[22]);
	EXPECT_TRUE(s[2].dst);
	EXPECT_EQ(s[3].first, b.input_at[32]);
	EXPECT_EQ(s[3].end, b.input_at[42]);
	EXPECT_EQ(plan->classified_rules, 40u);
	// Below the threshold, and offloaded: tested one by one.
	codegen::Options fewer = o;
	fewer.classify_min = 11;
	EXPECT_EQ(classified(t, fewer), 0u);
	EXPECT_EQ(classified(t, local_only_off()), 0u); // runs below the default
	codegen::Options off = o;
	off.offload = true;
	EXPECT_EQ(classified(t, off), 0u);
}

// Nested prefixes whose rules go on (no target, jumps): the value lists them in order, and a
// run that would list more than a value holds ends before the rule that would.
TEST(CodegenClassifyPlan, RulesThatGoOnAreWalkedInOrder)
{
	TableBuilder b;
	b.chains = {{{R().proto(17).drop()}}};
	// 10.0.0.0/8 .. 10.1.2.3/32, each counting only, then a jump, then DROP.
	const uint32_t lens[] = {8, 16, 24, 32};
	for (uint32_t len : lens)
		b.input.push_back(addr_rule(false, 0x0a010203u, len).cont());
	b.input.push_back(addr_rule(false, 0x0a010203u, 16).jump(0));
	b.input.push_back(addr_rule(false, 0x0a010203u, 12).drop());
	for (uint32_t i = 0; i < 8; i++)
		b.input.push_back(addr_rule(false, 0x0b000000u + i, 32).accept());
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 2;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 2u);
	// 10.1.2.3 meets six rules: the first set stops at the fifth (four words), the
	// rules from there on form a second set with the /32s.
	EXPECT_EQ(plan->addr_sets[0].first, b.input_at[0]);
	EXPECT_EQ(plan->addr_sets[0].end, b.input_at[4]);
	EXPECT_EQ(plan->addr_sets[0].data.slots, 4u);
	EXPECT_EQ(plan->addr_sets[1].first, b.input_at[4]);
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = tcp_packet(1, 2);
	p.saddr = 0x0a010203u;
	x.expect(p, drop,
		 {b.input_at[0], b.input_at[1], b.input_at[2], b.input_at[3], b.input_at[4],
		  b.chain_return[0], b.input_at[5]});
	p.saddr = 0x0a01ff01u; // in the /8 and /16 only
	x.expect(p, drop,
		 {b.input_at[0], b.input_at[1], b.input_at[4], b.chain_return[0], b.input_at[5]});
	p.saddr = 0x0b000007u;
	x.expect(p, pass, {b.input_at[13]});
	p.saddr = 0x0c000000u;
	x.expect(p, pass, {b.input_policy_at});
}

// Duplicates: the first rule of a prefix wins, the others never count.
TEST(CodegenClassifyPlan, DuplicatesAndSlashZero)
{
	TableBuilder b;
	b.input.push_back(addr_rule(true, 0x0a000001u, 32).accept());
	b.input.push_back(addr_rule(true, 0x0a000001u, 32).drop());
	b.input.push_back(addr_rule(true, 0, 0).cont()); // every packet: counts, goes on
	for (uint32_t i = 0; i < 8; i++)
		b.input.push_back(addr_rule(true, 0x0a000000u + (i << 8), 24).drop());
	b.input.push_back(addr_rule(true, 0x0a000001u, 32).ret());
	b.input_policy = Kind::Accept;
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 8;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 1u);
	EXPECT_TRUE(plan->addr_sets[0].data.lpm);
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = udp_packet(1, 2);
	p.daddr = 0x0a000001u;
	x.expect(p, pass, {b.input_at[0]});
	p.daddr = 0x0a000301u;
	x.expect(p, drop, {b.input_at[2], b.input_at[6]});
	p.daddr = 0x0b000001u;
	x.expect(p, pass, {b.input_at[2], b.input_policy_at});
}

// A program has room for 64 maps: past what the other maps leave, the largest runs get one
// and the others are tested one by one (difftest seed 206: 400 runs of a few rules).
TEST(CodegenClassifyPlan, AtMostTheMapsAProgramMayUse)
{
	TableBuilder b;
	for (uint32_t k = 0; k < 60; k++) {
		for (uint32_t i = 0; i < 8 + k % 3; i++)
			b.input.push_back(addr_rule(false, 0x0a000000u + (k << 8) + i, 32).drop());
		b.input.push_back(R().proto(17).drop());
	}
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 8;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	EXPECT_EQ(plan->addr_sets.size(), 44u);
	size_t smallest = 0; // 20 runs of each size 8, 9, 10: the larger ones first
	for (const codegen::AddrSet &set : plan->addr_sets)
		smallest += set.data.rules == 8;
	EXPECT_EQ(smallest, 4u);
	Gen g(seed_from_env());
	g.new_regions();
	for (uint32_t k = 0; k < 60; k++)
		g.used.push_back({0x0a000000u + (k << 8), 28});
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "eth0"));
	compare(x, t, g, 200, "60 runs");
}

// 100k rules: they load (sequentially they were E2BIG), and the first, the last, nested and
// missing addresses are judged and counted as the evaluator does.
TEST(CodegenClassifyLarge, HundredThousandRules)
{
	const uint32_t seed = seed_from_env();
	Gen g(seed);
	for (int variant = 0; variant < 2; variant++) {
		g.new_regions();
		g.zero = false;
		TableBuilder b;
		b.chains.resize(1);
		b.chains[0].rules = {R().proto(17).drop()};
		std::vector<Packet> extra;
		const uint32_t n = 100000;
		for (uint32_t i = 0; i < n; i++) {
			if (variant == 0) {
				// /32s only: a hash.
				const uint32_t a = 0x0a000000u + i * 7;
				b.input.push_back(addr_rule(false, a, 32).drop());
				g.used.push_back({a, 32});
			} else {
				b.input.push_back(g.rule(false, 1, 0, false));
			}
		}
		const ir::Table t = b.build();
		codegen::Options o = local_only_off();
		const uint64_t c = classified(t, o);
		EXPECT_GT(c, n / 2) << "variant " << variant;
		std::printf("variant %d: %lu of %u rules classified\n", variant,
			    static_cast<unsigned long>(c), n);
		Xdp x(t, o);
		ASSERT_TRUE(x.ok()) << "variant " << variant << ": " << x.error;
		ASSERT_TRUE(x.name_device(1, "eth0"));
		EXPECT_LT(x.insns, 20000u) << "variant " << variant;
		for (uint32_t k : {0u, n / 2, n - 1}) {
			Packet p = tcp_packet(1, 2);
			const ir::Rule &r = t.rules[b.input_at[k]];
			p.saddr = ntohl(r.ip.src) | (~ntohl(r.ip.src_mask) & 0x5a5a5a5au);
			extra.push_back(p);
		}
		Packet none = tcp_packet(1, 2);
		none.saddr = 0x01020304u;
		extra.push_back(none);
		compare(x, t, g, 300, "variant " + std::to_string(variant), extra);
	}
}

} // namespace
} // namespace bpfilter::test
