// Generated XDP programs: user chains, jumps, gotos, RETURN to the caller, policies, and what
// check_xdp refuses.
#include "codegen_harness.hpp"

#include "codegen/plan.hpp"

namespace bpfilter::test
{
namespace
{

TEST(CodegenChain, JumpAndReturnToTheCaller)
{
	// INPUT: -p udp -j A; -p tcp -j DROP     A: --dport 53 -j ACCEPT; -s 10.0.0.1 -j RETURN; -j
	// DROP
	TableBuilder b;
	ir::UdpMatch dns;
	dns.dport = {53, 53};
	b.chains = {{{R().proto(17).m(dns).accept(), R().src("10.0.0.1").ret(), R().drop()}}};
	b.input = {R().proto(17).jump(0), R().proto(6).drop()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	const uint32_t a = b.chain_start[0];
	x.expect(udp_packet(1, 53), pass, {b.input_at[0], a});
	// RETURN from A goes back to INPUT's next rule, not to the end.
	x.expect(udp_packet(1, 54), pass, {b.input_at[0], a + 1, b.input_policy_at});
	Packet other = udp_packet(1, 54);
	other.saddr = ip4h("10.0.0.9");
	x.expect(other, drop, {b.input_at[0], a + 2});
	x.expect(tcp_packet(1, 2), drop, {b.input_at[1]});
}

TEST(CodegenChain, FallingOffAUserChainReturns)
{
	TableBuilder b;
	b.chains = {{{R().src("10.0.0.9").drop()}}};
	b.input = {R().jump(0), R().proto(6).drop()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	// The chain's own closing RETURN counts, as in the kernel.
	x.expect(tcp_packet(1, 2), drop, {b.input_at[0], b.chain_return[0], b.input_at[1]});
}

TEST(CodegenChain, GotoThenReturnGoesToThePolicy)
{
	// INPUT: -g A; -j DROP (never reached)    A: -j RETURN
	TableBuilder b;
	b.chains = {{{R().src("10.0.0.7").accept()}}};
	b.input = {R().go(0), R().drop()};
	b.input_policy = Kind::Accept;
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1, 2), pass, {b.input_at[0], b.chain_return[0], b.input_policy_at});
	Packet p = tcp_packet(1, 2);
	p.saddr = ip4h("10.0.0.7");
	x.expect(p, pass, {b.input_at[0], b.chain_start[0]});
}

TEST(CodegenChain, GotoFromAJumpedChainReturnsToTheJumper)
{
	// INPUT: -j A; -j DROP      A: -g B        B: (empty, RETURN)
	TableBuilder b;
	b.chains = {{{R().go(1)}}, {{}}};
	b.input = {R().jump(0), R().drop()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1, 2), drop,
		 {b.input_at[0], b.chain_start[0], b.chain_return[1], b.input_at[1]});
}

TEST(CodegenChain, ReturnInInputGoesToThePolicy)
{
	TableBuilder b;
	b.input = {R().proto(6).ret(), R().drop()};
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1, 2), drop, {b.input_at[0], b.input_policy_at});
	x.expect(udp_packet(1, 2), drop, {b.input_at[1]});
}

TEST(CodegenChain, NestedChainsAndVerdictsFromDeepInside)
{
	// INPUT -> A -> B -> C; C accepts port 80, B drops port 81, everything else returns up.
	TableBuilder b;
	b.chains = {{{R().jump(1), R().proto(6).m(tcp({}, {82, 82})).drop()}},
		    {{R().jump(2), R().proto(6).m(tcp({}, {81, 81})).drop()}},
		    {{R().proto(6).m(tcp({}, {80, 80})).accept()}}};
	b.input = {R().jump(0)};
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	const auto &s = b.chain_start;
	const auto &r = b.chain_return;
	x.expect(tcp_packet(1, 80), pass, {b.input_at[0], s[0], s[1], s[2]});
	x.expect(tcp_packet(1, 81), drop, {b.input_at[0], s[0], s[1], r[2], s[1] + 1});
	x.expect(tcp_packet(1, 82), drop, {b.input_at[0], s[0], s[1], r[2], r[1], s[0] + 1});
	x.expect(tcp_packet(1, 83), drop,
		 {b.input_at[0], s[0], s[1], r[2], r[1], r[0], b.input_policy_at});
}

TEST(CodegenChain, TheSameChainFromTwoPlaces)
{
	TableBuilder b;
	b.chains = {{{R().proto(6).m(tcp({}, {22, 22})).drop()}}};
	b.input = {R().src("10.0.0.1").jump(0), R().src("10.0.0.2").jump(0)};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1, 22), drop, {b.input_at[0], b.chain_start[0]});
	Packet p = tcp_packet(1, 22);
	p.saddr = ip4h("10.0.0.2");
	x.expect(p, drop, {b.input_at[1], b.chain_start[0]});
	p.saddr = ip4h("10.0.0.3");
	x.expect(p, pass, {b.input_policy_at});
}

TEST(CodegenChain, ErrorTargetDrops)
{
	TableBuilder b;
	b.input = {R().proto(17).t(Kind::Error)};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(udp_packet(1, 2), drop, {b.input_at[0]});
	x.expect(tcp_packet(1, 2), pass, {b.input_policy_at});
}

TEST(CodegenChain, JumpIntoTheMiddleOfARunAndFallingIntoAnother)
{
	// Hand-made IR (ip_tables allows a jump to any rule): rule 0 jumps into the
	// middle of the chain that rule 1 jumps to, so the run from 4 flows into the
	// run from 5 with the same jump stack.
	ir::Table t;
	t.valid_hooks = (1u << 1) | (1u << 2);
	t.rules = {
		R().t(Kind::Jump, 5),	      // 0 INPUT
		R().t(Kind::Jump, 4),	      // 1
		R().accept(),		      // 2 INPUT policy
		R().accept(),		      // 3 FORWARD policy
		R().src("10.0.0.5").accept(), // 4 chain start
		R().proto(6).cont(),	      // 5 jump target in the middle
		R().proto(17).drop(),	      // 6
		R().ret(),		      // 7
		R().t(Kind::Error),	      // 8
	};
	t.hook_entry[1] = 0;
	t.underflow[1] = 2;
	t.hook_entry[2] = 3;
	t.underflow[2] = 3;
	ASSERT_TRUE(codegen::check(t).ok());
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1, 2), pass, {0, 5, 7, 1, 5, 7, 2});
	x.expect(udp_packet(1, 2), drop, {0, 6});
	Packet p = tcp_packet(1, 2);
	p.saddr = ip4h("10.0.0.5");
	x.expect(p, pass, {0, 5, 7, 1, 4});
}

TEST(CodegenCheck, ForwardAndOutputAreTranslated)
{
	TableBuilder b;
	b.forward = {R().drop()};
	b.output_policy = Kind::Drop;
	ASSERT_TRUE(codegen::check(b.build()).ok());
	for (auto f : {codegen::Flavor::Xdp, codegen::Flavor::TcIngress, codegen::Flavor::TcEgress})
		EXPECT_TRUE(codegen::compile(b.build(), {.flavor = f}).ok());
}

// OUTPUT at tc egress: its rules and policy, counted, as tc's actions.
TEST(CodegenFlavor, OutputAtTcEgress)
{
	TableBuilder b;
	b.input = {R().drop()}; // never reached from OUTPUT
	b.output = {R().proto(6).jump(0), R().proto(17).drop()};
	b.chains = {{{R().proto(6).m(tcp({}, {22, 22})).accept(), R().ret()}}};
	b.output_policy = Kind::Drop;
	const ir::Table t = b.build();
	Xdp x(t, {.flavor = codegen::Flavor::TcEgress, .local_only = false});
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(udp_packet(1, 2), drop, {b.output_at[1]});
	x.expect(tcp_packet(1, 22), pass, {b.output_at[0], b.chain_start[0]});
	x.expect(tcp_packet(1, 23), drop,
		 {b.output_at[0], b.chain_start[0] + 1, b.output_policy_at});
	x.expect(icmp_packet(8, 0), drop, {b.output_policy_at});
}

// INPUT at tc ingress: the same rules as at XDP, with tc's actions.
TEST(CodegenFlavor, InputAtTcIngress)
{
	TableBuilder b;
	b.input = {R().proto(17).drop(), R().proto(6).m(tcp({}, {80, 80})).accept()};
	b.input_policy = Kind::Drop;
	const ir::Table t = b.build();
	Xdp x(t, {.flavor = codegen::Flavor::TcIngress, .local_only = false});
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(udp_packet(1, 2), drop, {b.input_at[0]});
	x.expect(tcp_packet(1, 80), pass, {b.input_at[1]});
	x.expect(tcp_packet(1, 81), drop, {b.input_policy_at});
}

// INPUT -j C0, C0 -j C1, ..., C(n-1) -j DROP: n + 1 frames.
TableBuilder nest(unsigned n)
{
	TableBuilder b;
	b.input = {R().jump(0)};
	for (unsigned i = 0; i < n; i++)
		b.chains.push_back({{i + 1 < n ? R().jump(i + 1) : R().proto(6).drop()}});
	return b;
}

TEST(CodegenCheck, NestingUpToTheVerifiersCallDepth)
{
	TableBuilder deepest = nest(7);
	ir::Table t = deepest.build();
	ASSERT_TRUE(codegen::check(t).ok());
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	std::vector<uint32_t> counted{deepest.input_at[0]};
	for (uint32_t s : deepest.chain_start)
		counted.push_back(s);
	x.expect(tcp_packet(1, 2), drop, counted);

	auto st = codegen::check(nest(8).build());
	ASSERT_FALSE(st.ok());
	EXPECT_EQ(st.error().errnum, EOPNOTSUPP);
	EXPECT_NE(st.error().message.find("deep"), std::string::npos) << st.error().message;
}

TEST(CodegenCheck, LoopsAndBadTargets)
{
	TableBuilder b;
	b.chains = {{{R().jump(1)}}, {{R().go(0)}}};
	b.input = {R().jump(0)};
	auto st = codegen::check(b.build());
	ASSERT_FALSE(st.ok());
	EXPECT_EQ(st.error().errnum, ELOOP);

	TableBuilder c;
	c.input = {R().drop()};
	ir::Table t = c.build();
	t.rules[0].target = {Kind::Jump, static_cast<uint32_t>(t.rules.size())};
	EXPECT_EQ(codegen::check(t).error().errnum, EINVAL);

	TableBuilder d;
	d.input = {R().m(tcp()).drop()}; // -m tcp without -p tcp
	EXPECT_EQ(codegen::check(d.build()).error().errnum, EINVAL);
}

TEST(CodegenDeterminism, SameTableSameInstructions)
{
	TableBuilder b;
	ir::TcpMatch opt = tcp({}, {22, 22});
	opt.option = 2;
	b.chains = {{{R().in("eth+").m(tcp({}, {80, 80})).proto(6).accept()}}, {{R().drop()}}};
	b.input = {R().src("10.0.0.0", 8).jump(0), R().proto(6).m(opt).go(1),
		   R().in("lo").accept()};
	const ir::Table t = b.build();
	const ir::Table copy = t;
	for (bool local : {false, true}) {
		auto a = codegen::compile(t, {.local_only = local});
		auto c = codegen::compile(copy, {.local_only = local});
		ASSERT_TRUE(a.ok() && c.ok());
		ASSERT_EQ(a->insns.size(), c->insns.size());
		EXPECT_EQ(0, std::memcmp(a->insns.data(), c->insns.data(),
					 a->insns.size() * sizeof(bpf_insn)));
		EXPECT_EQ(a->map_refs, c->map_refs);
		EXPECT_EQ(a->num_counters, t.rules.size());
		// Every map reference is the first half of an ld_imm64 of a map fd.
		for (const codegen::MapRef &r : a->map_refs) {
			ASSERT_LT(r.insn + 1, a->insns.size());
			EXPECT_EQ(a->insns[r.insn].code, BPF_LD | BPF_DW | BPF_IMM);
			EXPECT_EQ(a->insns[r.insn].src_reg, BPF_PSEUDO_MAP_FD);
		}
	}
}

// n rules "-s 10.0.0.0/8 -p tcp --dport 1000+i -j DROP", four tests each as the planner
// counts them.
std::vector<ir::Rule> port_rules(uint32_t n)
{
	std::vector<ir::Rule> rules;
	for (uint32_t i = 0; i < n; i++)
		rules.push_back(R().src("10.0.0.0", 8)
					.proto(6)
					.m(tcp({}, {static_cast<uint16_t>(1000 + i),
						    static_cast<uint16_t>(1000 + i)}))
					.drop());
	return rules;
}

// These tables are service lists, which classification would judge with one lookup
// (classify.hpp): these tests are about the rules tested one by one at scale.
codegen::Options one_by_one(codegen::Options o = local_only_off())
{
	o.classify_min = 0;
	return o;
}

constexpr uint32_t kRules = 10000; // past one verification's reach: INPUT goes in chunks
TEST(CodegenScale, ManyRulesLoad)
{
	TableBuilder b;
	b.input = port_rules(kRules);
	ir::Table t = b.build();
	Xdp x(t, one_by_one());
	ASSERT_TRUE(x.ok()) << x.error.substr(x.error.size() > 600 ? x.error.size() - 600 : 0);
	x.expect(tcp_packet(1, 1000 + kRules - 1), drop, {b.input_at[kRules - 1]});
	x.expect(tcp_packet(1, 999), pass, {b.input_policy_at});
	std::printf("%u rules: %zu instructions\n", kRules, x.insns);
}

// The largest tables Auto tests with a jump per test, and with a jump for the first test
// of each rule: the kernel must take them (on 6.1 too: make codegen-guest). The loader
// falls back to Accumulate if not, but that is slower to load and to run.
void auto_mode_edge(uint32_t n, codegen::Options::Tests want)
{
	TableBuilder b;
	b.input = port_rules(n);
	ir::Table t = b.build();
	auto code = codegen::compile(t, one_by_one());
	ASSERT_TRUE(code.ok());
	ASSERT_EQ(code->tests, want) << "the table must be at the edge, on the faster side";
	Xdp x(t, one_by_one({.local_only = false, .tests = codegen::Options::Tests::Auto}));
	ASSERT_TRUE(x.ok()) << x.error.substr(x.error.size() > 600 ? x.error.size() - 600 : 0);
	x.expect(tcp_packet(1, static_cast<uint16_t>(1000 + n - 1)), drop, {b.input_at[n - 1]});
	x.expect(tcp_packet(1, 999), pass, {b.input_policy_at});
	std::printf("%u rules: %zu instructions\n", n, x.insns);
}

TEST(CodegenScale, AutoBranchTablesVerify)
{
	auto_mode_edge(static_cast<uint32_t>(codegen::max_branch_tests / 4) - 1,
		       codegen::Options::Tests::Branch);
}

// FirstBranch is Auto's choice for large user chains (a long INPUT is cut into chunks).
TEST(CodegenScale, AutoFirstBranchTablesVerify)
{
	TableBuilder b;
	const uint32_t n = static_cast<uint32_t>(codegen::max_first_branch_rules) - 10;
	b.chains = {TableBuilder::Chain{port_rules(n)}};
	b.input = {R().jump(0)};
	ir::Table t = b.build();
	auto code = codegen::compile(t, one_by_one());
	ASSERT_TRUE(code.ok());
	ASSERT_EQ(code->tests, codegen::Options::Tests::FirstBranch);
	Xdp x(t, one_by_one());
	ASSERT_TRUE(x.ok()) << x.error.substr(x.error.size() > 600 ? x.error.size() - 600 : 0);
	x.expect(tcp_packet(1, static_cast<uint16_t>(1000 + n - 1)), drop,
		 {b.input_at[0], b.chain_start[0] + n - 1});
	x.expect(tcp_packet(1, 999), pass, {b.input_at[0], b.chain_return[0], b.input_policy_at});
	std::printf("%u rules in a user chain: %zu instructions\n", n, x.insns);
}

// A long INPUT chain is cut into chunks, each verified on its own: rules in every chunk,
// a jump to a user chain and back, RETURN to the policy, all as in one piece.
TEST(CodegenScale, LongInputChainInChunks)
{
	TableBuilder b;
	constexpr uint32_t n = 6000, jump_at = 3000, return_at = 5000;
	b.input = port_rules(n);
	b.input[jump_at] = R().proto(17).jump(0);
	b.input[return_at] = R().proto(1).ret();
	b.chains = {{{R().src("10.0.0.9").ret(), R().drop()}}};
	ir::Table t = b.build();
	auto plan = codegen::make_plan(t, one_by_one({}));
	ASSERT_TRUE(plan.ok());
	ASSERT_GE(plan->num_chunks, 2u);
	ASSERT_FALSE(plan->accumulate);
	Xdp x(t, one_by_one());
	ASSERT_TRUE(x.ok()) << x.error.substr(x.error.size() > 600 ? x.error.size() - 600 : 0);
	for (uint32_t i : {0u, 10u, 2999u, 3001u, 4999u, 5001u, n - 1})
		x.expect(tcp_packet(1, static_cast<uint16_t>(1000 + i)), drop, {b.input_at[i]});
	x.expect(udp_packet(1, 2), drop, {b.input_at[jump_at], b.chain_start[0] + 1});
	Packet back = udp_packet(1, 2);
	back.saddr = ip4h("10.0.0.9");
	x.expect(back, pass, {b.input_at[jump_at], b.chain_start[0], b.input_policy_at});
	x.expect(icmp_packet(8, 0), pass, {b.input_at[return_at], b.input_policy_at});
	x.expect(tcp_packet(1, 999), pass, {b.input_policy_at});
	std::printf("%u rules in %zu chunks: %zu instructions\n", n, plan->num_chunks, x.insns);
}

} // namespace
} // namespace bpfilter::test

namespace bpfilter::test
{
namespace
{

TEST(CodegenScale, AutoAccumulatesOnlyWhenBranchesWouldNotVerify)
{
	TableBuilder small;
	small.input = {R().proto(6).m(tcp({}, {22, 22})).accept()};
	auto a = codegen::make_plan(small.build(), {});
	ASSERT_TRUE(a.ok());
	EXPECT_FALSE(a->accumulate);

	// Large user chains: no chunks, Accumulate (with a jump for each first test).
	TableBuilder big;
	std::vector<ir::Rule> chain;
	for (uint32_t i = 0; i < 5000; i++)
		chain.push_back(R().proto(6).m(tcp({}, {22, 22})).accept());
	big.chains = {TableBuilder::Chain{chain}};
	big.input = {R().jump(0)};
	// (one by one: as a service list it would be one lookup)
	codegen::Options o;
	o.classify_min = 0;
	auto b = codegen::make_plan(big.build(), o);
	ASSERT_TRUE(b.ok());
	EXPECT_TRUE(b->accumulate);
	EXPECT_TRUE(b->first_branch);
	EXPECT_TRUE((b->num_chunks == 0));
	o.tests = codegen::Options::Tests::Branch;
	auto forced = codegen::make_plan(big.build(), o);
	ASSERT_TRUE(forced.ok());
	EXPECT_FALSE(forced->accumulate);
}

} // namespace
} // namespace bpfilter::test
