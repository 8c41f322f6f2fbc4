// Classified runs of address rules and of service rules (codegen/classify.hpp) against the
// reference evaluator: random blocklists with nested and duplicate prefixes, /0 and /32, random
// service lists with duplicates, port ranges, short packets and fragments; mixed targets, up to
// 100k rules.
#include <random>
#include <set>
#include <vector>

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

// Every set's keys distinct: the loader fills a set's map with one batch, which cannot
// refuse a key it already has (the kernel's batch takes no BPF_NOEXIST).
void expect_distinct_keys(const ir::Table &t, const codegen::Options &o, const std::string &what)
{
	auto code = codegen::compile(t, o);
	ASSERT_TRUE(code.ok()) << what;
	for (const codegen::AddrSetData &set : code->addr_sets) {
		const size_t w = set.key_words ? set.key_words : 2;
		std::set<std::vector<uint32_t>> seen;
		for (size_t k = 0; k + w <= set.keys.size(); k += w)
			ASSERT_TRUE(seen.emplace(set.keys.begin() + static_cast<long>(k),
						 set.keys.begin() + static_cast<long>(k + w))
					    .second)
				<< what << ": a key twice in a set";
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
		expect_distinct_keys(c.table, o, "table " + std::to_string(ti));
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

// An address with bits beyond its mask (a blob iptables would not write) never matches in
// ip_packet_match(); as a key it would stand for its prefix in the trie (which compares the
// prefix's bits only) and meet its masked twin. fold_ip() drops the rule from the set.
TEST(CodegenClassifyPlan, UnmaskedAddressesAreNotKeys)
{
	TableBuilder b;
	for (uint32_t i = 0; i < 8; i++)
		b.input.push_back(addr_rule(true, 0x0a000000u + (i << 8), i ? 24 : 16).drop());
	ir::Rule odd = addr_rule(true, 0x0b000000u, 24).drop();
	odd.ip.dst |= htonl(5); // 11.0.0.5/24
	b.input.push_back(odd);
	b.input.push_back(addr_rule(true, 0x0b000000u, 16).cont());
	b.input_policy = Kind::Accept;
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 8;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 1u);
	EXPECT_TRUE(plan->addr_sets[0].data.lpm);
	EXPECT_EQ(plan->classified_rules, 9u); // the rules around it
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = udp_packet(1, 2);
	p.daddr = 0x0b000005u; // in the odd rule's prefix: it does not match
	x.expect(p, pass, {b.input_at[9], b.input_policy_at});
	p.daddr = 0x0a000305u;
	x.expect(p, drop, {b.input_at[0]});
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
	EXPECT_EQ(plan->addr_sets.size(), 42u);
	size_t smallest = 0; // 20 runs of each size 8, 9, 10: the larger ones first
	for (const codegen::AddrSet &set : plan->addr_sets)
		smallest += set.data.rules == 8;
	EXPECT_EQ(smallest, 2u);
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

// Service lists: runs of rules that test the same exact fields (tuple sets).
struct Service {
	bool src = false, dst = false;
	uint32_t src_len = 32, dst_len = 32;
	bool sport = false, dport = false;
	bool in = false; // -i eth0 or -i eth1 (the packets come in on eth0)
	bool ports() const { return sport || dport; }
};

ir::UdpMatch udp(ir::PortRange sport, ir::PortRange dport)
{
	ir::UdpMatch m;
	m.sport = sport;
	m.dport = dport;
	return m;
}

struct ServiceGen : Gen {
	using Gen::Gen;
	Service shape;
	struct Used {
		uint8_t proto;
		uint32_t src, dst; // host order
		ir::PortRange sp, dp;
		bool eth1 = false; // -i eth1, not eth0 (shape.in)
	};
	std::vector<Used> services;

	void new_shape()
	{
		new_regions();
		services.clear();
		const Service shapes[] = {
			{true, false, 32, 32, false, true},	   // -s a/32 -p udp --dport P
			{false, true, 32, 24, false, true},	   // -d a/24 -p tcp --dport P
			{false, false, 32, 32, false, true},	   // -p tcp --dport P
			{true, true, 24, 32, true, true},	   // -s -d --sport --dport
			{true, false, 16, 32, false, false},	   // -s a/16 -p P
			{false, true, 32, 32, true, false},	   // -d a --sport P
			{true, false, 32, 32, false, true, true},  // -i -s a -p P --dport
			{false, false, 32, 32, false, true, true}, // -i -p P --dport
		};
		shape = shapes[n(8)];
	}

	uint16_t port() { return static_cast<uint16_t>(coin(3) ? 1 + n(8) : n(65536)); }
	ir::PortRange range()
	{
		const uint16_t lo = port();
		if (coin(5)) // a small range: expanded into keys
			return {lo, static_cast<uint16_t>(std::min<uint32_t>(lo + n(8), 0xffff))};
		return {lo, lo};
	}

	Used service()
	{
		if (!services.empty() && coin(6))
			return services[n(static_cast<uint32_t>(services.size()))]; // a duplicate
		Used u;
		u.proto = shape.ports() ? (coin() ? 6 : 17) : (coin(3) ? 47 : coin() ? 6 : 17);
		u.src = address() & mask_h(shape.src_len);
		u.dst = address() & mask_h(shape.dst_len);
		u.sp = shape.sport ? range() : ir::PortRange{};
		u.dp = shape.dport ? range() : ir::PortRange{};
		if (shape.sport && shape.dport && coin())
			u.sp = {u.sp.lo, u.sp.lo}; // at most 64 keys a rule
		u.eth1 = coin(3);
		services.push_back(u);
		return u;
	}

	R service_rule(const Used &u)
	{
		R r;
		r.proto(u.proto);
		if (shape.src) {
			r.r.ip.src_mask = htonl(mask_h(shape.src_len));
			r.r.ip.src = htonl(u.src);
		}
		if (shape.dst) {
			r.r.ip.dst_mask = htonl(mask_h(shape.dst_len));
			r.r.ip.dst = htonl(u.dst);
		}
		if (shape.ports())
			r.m(u.proto == 6 ? ir::Match(tcp(u.sp, u.dp)) : ir::Match(udp(u.sp, u.dp)));
		if (shape.in)
			r.in(u.eth1 ? "eth1" : "eth0");
		return r;
	}

	ir::Rule target(R r, uint32_t nchains, uint32_t chain_base)
	{
		switch (n(14)) {
		case 0:
			return r.accept();
		case 1:
			return r.ret();
		case 2:
			return r.cont();
		case 3:
			return nchains ? r.jump(chain_base + n(nchains)) : r.accept();
		case 4:
			return nchains ? r.go(chain_base + n(nchains)) : r.drop();
		case 5:
			return coin(3) ? r.log(4, 0, "svc ") : r.drop();
		case 6: {
			ir::Rule x = r.t(Kind::Reject);
			x.target.reject_with = coin() ? 3 : 0;
			return x;
		}
		default:
			return r.drop();
		}
	}

	ir::Rule rule(uint32_t nchains, uint32_t chain_base)
	{
		return target(service_rule(service()), nchains, chain_base);
	}

	// What ends a run: `!`, --tcp-flags, a port range too wide, another shape.
	ir::Rule breaker()
	{
		Used u = service();
		R r = service_rule(u);
		switch (n(4)) {
		case 0: // (a port match takes no `! -p`)
			r.r.ip.invflags |= shape.ports() ? IPT_INV_DSTIP : IPT_INV_PROTO;
			break;
		case 1:
			if (shape.ports() && u.proto == 6) {
				ir::TcpMatch m = tcp(u.sp, u.dp);
				m.flg_mask = 0x12;
				m.flg_cmp = 0x02;
				r.r.matches = {m};
			} else {
				r.r.ip.src_mask = htonl(0xff00ff00u);
				r.r.ip.src = htonl(u.src & 0xff00ff00u);
			}
			break;
		case 2:
			if (shape.ports())
				r.r.matches = {u.proto == 6 ? ir::Match(tcp({}, {1000, 2000}))
							    : ir::Match(udp({}, {1000, 2000}))};
			else
				r.r.ip.proto = 0;
			break;
		default:
			if (shape.in && coin()) {
				r.in("eth+"); // not an exact name
				break;
			}
			r.r.ip.dst_mask = shape.dst ? 0 : htonl(0xffffffffu);
			r.r.ip.dst = shape.dst ? 0 : htonl(u.dst);
			break;
		}
		return r.drop();
	}

	// A packet of some service (or none), whole, cut short, with IP options, fragmented.
	Packet packet()
	{
		Packet p;
		if (!services.empty() && !coin(4)) {
			const Used u = services[n(static_cast<uint32_t>(services.size()))];
			const auto in = [&](const ir::PortRange &r) {
				return static_cast<uint16_t>(r.lo + n(r.hi - r.lo + 1u));
			};
			const uint16_t sp = shape.sport ? in(u.sp) : port();
			const uint16_t dp = shape.dport ? in(u.dp) : port();
			p = u.proto == 17 ? udp_packet(sp, dp) : tcp_packet(sp, dp);
			p.proto = coin(10) ? static_cast<uint8_t>(coin() ? 6 : 17) : u.proto;
			p.saddr = u.src | (static_cast<uint32_t>(rng()) & ~mask_h(shape.src_len));
			p.daddr = u.dst | (static_cast<uint32_t>(rng()) & ~mask_h(shape.dst_len));
			if (coin(5))
				p.saddr = address();
		} else {
			p = coin() ? udp_packet(port(), port()) : tcp_packet(port(), port());
			if (coin(5))
				p.proto = 47;
			p.saddr = address();
			p.daddr = address();
		}
		if (coin(6)) // a transport header cut short: hotdrop where a port rule meets it
			p.l4.resize(n(static_cast<uint32_t>(p.l4.size())));
		if (coin(8))
			p.ip_options.assign(4 * (1 + n(6)), 1);
		if (coin(8)) {
			// A first fragment: judged as its datagram when its last piece comes.
			p.frag = 0x2000;
			p.l4.resize((p.l4.size() + 7) / 8 * 8);
			if (p.l4.empty())
				p.l4.resize(8);
		}
		return p;
	}
};

// INPUT: a service list with a breaker now and then; chain 0: another of the same shape,
// ending in RETURN; chains 1-2: small, jumped to from the lists.
ir::Table service_table(ServiceGen &g, uint32_t rules)
{
	g.new_shape();
	TableBuilder b;
	b.chains.resize(3);
	for (uint32_t i = 0; i < rules; i++)
		b.input.push_back(g.coin(40) ? g.breaker() : g.rule(3, 0));
	for (uint32_t i = 0, k = 1 + rules / 3; i < k; i++)
		b.chains[0].rules.push_back(g.rule(2, 1));
	b.chains[1].rules = {R().proto(1).drop(), R().src("10.0.0.0", 8).accept()};
	for (uint32_t i = 0, k = g.n(12); i < k; i++)
		b.chains[2].rules.push_back(g.rule(0, 0));
	b.input_policy = g.coin() ? Kind::Accept : Kind::Drop;
	return b.build();
}

// `packets` through the program and the evaluator at INPUT: verdicts and every counter. A first
// fragment is judged and counted when its last piece comes (reassembly, as at LOCAL_IN).
void compare_services(Xdp &x, const ir::Table &t, ServiceGen &g, int packets,
		      const std::string &what, std::vector<Packet> extra = {},
		      int *hotdrops = nullptr)
{
	std::vector<ir::Counter> want(t.rules.size());
	const int total = packets + static_cast<int>(extra.size());
	for (int pi = 0; pi < total; pi++) {
		const Packet p =
			pi < packets ? g.packet() : extra[static_cast<size_t>(pi - packets)];
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view;
		view.ip = dgram;
		view.in_ifname = devname("eth0");
		const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
		if (hotdrops)
			*hotdrops += r.hotdrop;
		int got = x.run(p.frame());
		size_t len = dgram.size();
		if (p.frag == 0x2000) {
			Packet last = p;
			last.frag = static_cast<uint16_t>(p.l4.size() / 8);
			last.l4.assign(8, 0xcd);
			last.ip_options.clear();
			ASSERT_EQ(x.run(last.frame()), got)
				<< what << " packet " << pi << " (last piece)";
			len += 8;
		}
		if (r.rejected_by) {
			ASSERT_TRUE(got == XDP_TX || got == XDP_DROP) << what << " packet " << pi;
		} else {
			ASSERT_EQ(got, r.accept ? pass : drop)
				<< what << " packet " << pi << (r.hotdrop ? " (hotdrop)" : "");
		}
		for (uint32_t rule : r.counted_rules) {
			want[rule].packets++;
			want[rule].bytes += len;
		}
		if (pi % 16 == 0 || pi + 1 == total) {
			ASSERT_EQ(x.counters(), want) << what << " packet " << pi;
		}
	}
}

class CodegenClassifyServices : public ::testing::TestWithParam<Tests>
{
};

TEST_P(CodegenClassifyServices, RandomServiceListsAgreeWithTheEvaluator)
{
	const uint32_t seed = seed_from_env();
	ServiceGen g(seed);
	uint64_t sets = 0, rules = 0;
	int hotdrops = 0;
	for (int ti = 0; ti < 60; ti++) {
		const uint32_t size = ti % 10 == 9 ? 300 + g.n(700) : 4 + g.n(60);
		const ir::Table t = service_table(g, size);
		codegen::Options o = local_only_off();
		o.tests = GetParam();
		o.classify_min = ti % 3 == 0   ? 2
				 : ti % 3 == 1 ? 8
					       : codegen::Options::default_classify_min;
		const auto checked = codegen::check(t);
		ASSERT_TRUE(checked.ok()) << checked.error().message;
		sets += classified(t, o) > 0;
		rules += classified(t, o);
		expect_distinct_keys(t, o, "table " + std::to_string(ti));
		Xdp x(t, o);
		ASSERT_TRUE(x.ok()) << "seed " << seed << " table " << ti << ": " << x.error;
		ASSERT_TRUE(x.name_device(1, "eth0"));
		compare_services(x, t, g, 100,
				 "seed " + std::to_string(seed) + " table " + std::to_string(ti),
				 {}, &hotdrops);
	}
	std::printf("%lu of 60 service tables classified, %lu rules in sets, %d hotdrops\n",
		    static_cast<unsigned long>(sets), static_cast<unsigned long>(rules), hotdrops);
	EXPECT_GT(sets, 30u);
	EXPECT_GT(hotdrops, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, CodegenClassifyServices,
			 ::testing::Values(Tests::Auto, Tests::Branch, Tests::Accumulate,
					   Tests::Chunked),
			 [](const auto &info) {
				 return info.param == Tests::Auto      ? "Auto"
					: info.param == Tests::Branch  ? "Branch"
					: info.param == Tests::Chunked ? "Chunked"
								       : "Accumulate";
			 });

// What a tuple set takes, and what ends one; the key's words and the probes.
TEST(CodegenClassifyPlan, WhatAServiceRunIs)
{
	TableBuilder b;
	for (uint32_t i = 0; i < 10; i++) // -s 10.0.0.i -p udp --dport 53
		b.input.push_back(addr_rule(false, 0x0a000000u + i, 32)
					  .proto(17)
					  .m(udp({}, {53, 53}))
					  .drop());
	for (uint32_t i = 0; i < 10; i++) // -p tcp --dport 1000+i: another key
		b.input.push_back(
			R().proto(6).m(tcp({}, {uint16_t(1000 + i), uint16_t(1000 + i)})).accept());
	b.input.push_back(R().proto(6).m(tcp({}, {1, 100})).accept()); // 100 keys: ends it
	for (uint32_t i = 0; i < 10; i++) // ranges of 4 ports: 4 keys each
		b.input.push_back(R().proto(17)
					  .m(udp({}, {uint16_t(10 * i), uint16_t(10 * i + 3)}))
					  .accept());
	b.input.push_back(R().proto(6).m(tcp({}, {22, 22}, XT_TCP_INV_DSTPT)).drop()); // !
	for (uint32_t i = 0; i < 10; i++) // -p 47 -d 10.1.i.0/24: no ports, no probes
		b.input.push_back(addr_rule(true, 0x0a010000u + (i << 8), 24).proto(47).drop());
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 8;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 4u);
	const auto &s = plan->addr_sets;
	EXPECT_TRUE(s[0].tuple);
	EXPECT_EQ(s[0].first, b.input_at[0]);
	EXPECT_EQ(s[0].end, b.input_at[10]);
	EXPECT_EQ(s[0].data.key_words, 3u);	   // protocol, source, ports
	EXPECT_EQ(s[0].data.keys.size(), 3u * 20); // 10 keys and 10 probes
	EXPECT_TRUE(s[0].udp);
	EXPECT_FALSE(s[0].tcp);
	EXPECT_EQ(s[1].first, b.input_at[10]);
	EXPECT_EQ(s[1].end, b.input_at[20]);
	EXPECT_EQ(s[1].data.key_words, 2u);
	EXPECT_EQ(s[1].data.keys.size(), 2u * 11); // 10 keys, one probe
	EXPECT_EQ(s[2].first, b.input_at[21]);
	EXPECT_EQ(s[2].end, b.input_at[31]);
	EXPECT_EQ(s[2].data.keys.size(), 2u * 41);
	EXPECT_EQ(s[3].first, b.input_at[32]);
	EXPECT_EQ(s[3].data.key_words, 2u);
	EXPECT_EQ(s[3].data.keys.size(), 2u * 10);
	EXPECT_EQ(plan->classified_rules, 40u);

	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = udp_packet(5, 53);
	p.saddr = 0x0a000003u;
	x.expect(p, drop, {b.input_at[3]});
	p.saddr = 0x0a000013u;
	x.expect(p, pass, {b.input_at[26]}); // dport 53 is in 50-53
	p = tcp_packet(5, 1004);
	x.expect(p, pass, {b.input_at[14]});
	// A TCP header cut short: the first -p tcp rule hotdrops it, nothing counted.
	p.l4.resize(12);
	x.expect(p, drop, {});
	// UDP cut short from a source no -s rule has: the udp ranges' rules hotdrop.
	p = udp_packet(5, 53);
	p.saddr = 0x0b000001u;
	p.l4.resize(6);
	x.expect(p, drop, {});
	// Not UDP or TCP: past every port rule; -p 47 to 10.1.3.0/24 drops.
	p = icmp_packet(8, 0);
	p.proto = 47;
	p.daddr = 0x0a010307u;
	x.expect(p, drop, {b.input_at[35]});
}

// -i with exact names is a key field; `eth+` ends a run (-o: ForwardServiceListsAndFragments).
TEST(CodegenClassifyPlan, DeviceNamesInKeys)
{
	TableBuilder b;
	for (uint16_t i = 0; i < 10; i++)
		b.input.push_back(R().in(i % 2 ? "eth1" : "eth0")
					  .proto(6)
					  .m(tcp({}, {uint16_t(80 + i), uint16_t(80 + i)}))
					  .drop());
	b.input.push_back(R().in("eth+").proto(6).m(tcp({}, {99, 99})).accept());
	for (uint16_t i = 0; i < 10; i++) // a 15-character name
		b.input.push_back(R().in(i % 2 ? "eth0" : "abcdefghijklmno")
					  .proto(17)
					  .m(udp({}, {uint16_t(80 + i), uint16_t(80 + i)}))
					  .drop());
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 8;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 2u);
	EXPECT_EQ(plan->addr_sets[0].end, b.input_at[10]);
	EXPECT_EQ(plan->addr_sets[0].data.key_words, 6u);
	EXPECT_EQ(plan->addr_sets[1].first, b.input_at[11]);
	EXPECT_EQ(plan->addr_sets[1].data.key_words, 6u);
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "eth0"));
	x.expect(tcp_packet(1, 82), drop, {b.input_at[2]});
	x.expect(tcp_packet(1, 83), pass, {b.input_policy_at}); // eth1's
	x.expect(tcp_packet(1, 99), pass, {b.input_at[10]});
	x.expect(udp_packet(1, 81), drop, {b.input_at[12]});
	x.expect(udp_packet(1, 82), pass, {b.input_policy_at}); // abcdefghijklmno's
	ASSERT_TRUE(x.name_device(1, "eth1"));
	x.expect(tcp_packet(1, 83), drop, {b.input_at[3]});
	ASSERT_TRUE(x.name_device(1, "eth"));
	x.expect(tcp_packet(1, 83), pass, {b.input_policy_at});
	ASSERT_TRUE(x.name_device(1, "eth10"));
	x.expect(tcp_packet(1, 81), pass, {b.input_policy_at});
	// Cut short: the first rule whose device matches hotdrops.
	Packet cut = tcp_packet(1, 80);
	cut.l4.resize(10);
	ASSERT_TRUE(x.name_device(1, "eth0"));
	x.expect(cut, drop, {});
	ASSERT_TRUE(x.name_device(1, "wlan0"));
	x.expect(cut, pass, {b.input_policy_at});
	ASSERT_TRUE(x.name_device(1, "abcdefghijklmno"));
	x.expect(udp_packet(1, 82), drop, {b.input_at[13]});
}

// Duplicate keys: the first rule's target; rules that go on are walked in order; a key that
// would meet more than 4 rules ends the set before the rule that would.
TEST(CodegenClassifyPlan, DuplicateServicesAreWalkedInOrder)
{
	TableBuilder b;
	b.chains = {{{R().proto(1).drop()}}};
	const auto svc = [](uint16_t port) {
		return addr_rule(false, 0x0a000001u, 32).proto(6).m(tcp({}, {port, port}));
	};
	b.input.push_back(svc(80).cont());
	b.input.push_back(svc(80).jump(0));
	b.input.push_back(svc(80).log(4, 0, "x "));
	b.input.push_back(svc(80).accept());
	b.input.push_back(svc(80).drop()); // never first: a key holds four words
	for (uint16_t i = 0; i < 8; i++)
		b.input.push_back(svc(static_cast<uint16_t>(1000 + i)).drop());
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	o.classify_min = 2;
	auto plan = codegen::make_plan(t, o);
	ASSERT_TRUE(plan.ok());
	ASSERT_EQ(plan->addr_sets.size(), 1u);
	EXPECT_EQ(plan->addr_sets[0].data.slots, 4u);
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = tcp_packet(1, 80);
	p.saddr = 0x0a000001u;
	x.expect(p, pass,
		 {b.input_at[0], b.input_at[1], b.chain_return[0], b.input_at[2], b.input_at[3]});
	p.l4 = tcp_hdr(1, 1007);
	x.expect(p, drop, {b.input_at[12]});
	p.saddr = 0x0a000002u;
	x.expect(p, pass, {b.input_policy_at});

	// Five rules that each go on: the fifth starts another set.
	TableBuilder c;
	for (int k = 0; k < 5; k++)
		c.input.push_back(svc(80).cont());
	for (uint16_t i = 0; i < 8; i++)
		c.input.push_back(svc(static_cast<uint16_t>(1000 + i)).drop());
	const ir::Table t2 = c.build();
	auto plan2 = codegen::make_plan(t2, o);
	ASSERT_TRUE(plan2.ok());
	ASSERT_EQ(plan2->addr_sets.size(), 2u);
	EXPECT_EQ(plan2->addr_sets[0].end, c.input_at[4]);
	Xdp y(t2, o);
	ASSERT_TRUE(y.ok()) << y.error;
	Packet q = tcp_packet(1, 80);
	q.saddr = 0x0a000001u;
	y.expect(q, pass,
		 {c.input_at[0], c.input_at[1], c.input_at[2], c.input_at[3], c.input_at[4],
		  c.input_policy_at});
}

// 100k rules of `-s a.b.c.d -p udp --dport P -j DROP` (and tcp): they load (one by one they
// were E2BIG), and the first, the middle, the last and missing services are judged and
// counted as the evaluator does.
TEST(CodegenClassifyLarge, HundredThousandServices)
{
	ServiceGen g(seed_from_env());
	g.new_regions();
	g.shape = {true, false, 32, 32, false, true};
	TableBuilder b;
	const uint32_t n = 100000;
	for (uint32_t i = 0; i < n; i++) {
		ServiceGen::Used u{
			static_cast<uint8_t>(i % 3 ? 17 : 6),
			0x0a000000u + i / 7,
			0,
			{},
			{static_cast<uint16_t>(1000 + i % 7), static_cast<uint16_t>(1000 + i % 7)}};
		g.services.push_back(u);
		b.input.push_back(g.service_rule(u).drop());
	}
	const ir::Table t = b.build();
	codegen::Options o = local_only_off();
	EXPECT_EQ(classified(t, o), n);
	Xdp x(t, o);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "eth0"));
	EXPECT_LT(x.insns, 20000u);
	std::vector<Packet> extra;
	for (uint32_t k : {0u, n / 2, n - 1}) {
		const ServiceGen::Used &u = g.services[k];
		Packet p = u.proto == 17 ? udp_packet(9, u.dp.lo) : tcp_packet(9, u.dp.lo);
		p.saddr = u.src;
		extra.push_back(p);
		p.l4.resize(4); // cut short: hotdrop
		extra.push_back(p);
	}
	Packet none = udp_packet(9, 999);
	none.saddr = 0x0a000001u;
	extra.push_back(none);
	compare_services(x, t, g, 300, "100k services", extra);
}
} // namespace
} // namespace bpfilter::test
