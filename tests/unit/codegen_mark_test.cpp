// -m mark, -j MARK and -m connmark through BPF_PROG_TEST_RUN on the tc flavors (the only ones
// with an skb->mark), against the reference evaluator: verdicts, counters and the mark the
// packet leaves with; where a table that needs marks runs; and REJECT's reply mark, which a
// user's MARK must not be able to imitate.
#include <linux/pkt_cls.h>

#include <random>

#include "codegen/plan.hpp"
#include "codegen_harness.hpp"
#include "ir/eval.hpp"

namespace bpfilter::test
{
namespace
{

using Flavor = codegen::Flavor;
using Tests = codegen::Options::Tests;

ir::MarkMatch mark(uint32_t value, uint32_t mask = 0xffffffffu, uint8_t invert = 0)
{
	return {value, mask, invert};
}

ir::Rule set_mark(R r, uint32_t value, uint32_t mask)
{
	ir::Rule rule = r.t(Kind::Mark);
	rule.target.mark = value;
	rule.target.mark_mask = mask;
	return rule;
}

struct Seen {
	int action = 0; // tc's
	uint32_t mark = 0;
};

// One packet through a tc program with skb->mark (and priority) as given.
Seen run_skb(Xdp &x, const std::vector<uint8_t> &frame, uint32_t mark, uint32_t priority = 0,
	     uint32_t ingress_ifindex = 0)
{
	std::vector<uint8_t> in(frame), out(frame.size() + 600);
	if (x.flavor == Flavor::TcIngress)
		std::fill_n(in.begin(), 6, 0); // to lo's MAC address: PACKET_HOST
	__sk_buff skb{}, ctx_out{};
	skb.ifindex = 1;
	skb.ingress_ifindex = ingress_ifindex;
	skb.mark = mark;
	skb.priority = priority;
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = in.data(), .data_out = out.data(),
		    .data_size_in = static_cast<uint32_t>(in.size()),
		    .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &skb,
		    .ctx_out = &ctx_out, .ctx_size_in = sizeof(skb),
		    .ctx_size_out = sizeof(ctx_out), .repeat = 1);
	const int err = bpf_prog_test_run_opts(x.prog->fd(), &topts);
	EXPECT_EQ(err, 0) << strerror(errno);
	return {err ? -100 : static_cast<int>(topts.retval), ctx_out.mark};
}

// The table, the evaluator's answer for the hook, and the program's, packet by packet, for
// marks on either side of each rule's boundaries.
void expect_as_evaluator(const ir::Table &t, Flavor flavor, Tests tests,
			 const std::vector<uint32_t> &marks)
{
	const ir::Hook hook = flavor == Flavor::TcEgress ? ir::Hook::LocalOut : ir::Hook::LocalIn;
	Xdp x(t, {.flavor = flavor, .local_only = false, .tests = tests});
	ASSERT_TRUE(x.ok()) << x.error;
	std::vector<ir::Counter> want(t.rules.size());
	for (const Packet &p : {udp_packet(1000, 53), tcp_packet(1, 22, 0x02)})
		for (uint32_t m : marks) {
			SCOPED_TRACE("mark " + std::to_string(m));
			const std::vector<uint8_t> dgram = p.datagram();
			ir::PacketView view;
			view.ip = dgram;
			if (hook == ir::Hook::LocalIn)
				view.in_ifname = devname("lo");
			else
				view.out_ifname = devname("lo");
			view.mark = m;
			const ir::EvalResult r = ir::evaluate(t, hook, view);
			for (uint32_t i : r.counted_rules) {
				want[i].packets++;
				want[i].bytes += p.header_tot_len();
			}
			const Seen got = run_skb(x, p.frame(), m);
			EXPECT_EQ(got.action, r.accept ? codegen::layout::tc_accept : TC_ACT_SHOT);
			if (r.accept) {
				EXPECT_EQ(got.mark, r.mark);
			}
			EXPECT_EQ(x.counters(), want);
		}
}

// mark_mt with masks, inversion (and an invert byte above 1, which matches everything), and
// mark_tg's (mark & ~mask) ^ value as --set-xmark, --set-mark, --and/--or/--xor-mark send it,
// read back by the rules after it, in a user chain too.
ir::Table marks_table(ir::Hook hook)
{
	TableBuilder b;
	std::vector<ir::Rule> rules = {
		R().m(mark(0xfeedcafe, 0xfeedcafe)).cont(),
		R().m(mark(0)).cont(),
		R().m(mark(0, 0xff0)).cont(),
		R().m(mark(0x10, 0xf0, 1)).cont(),
		R().m(mark(0x5, 0xff, 2)).cont(),
		R().m(mark(0x1, 0x1)).jump(0),
		set_mark(R(), 0x100, 0x100 | 0xf00), // --set-mark 0x100/0xf00
		R().m(mark(0x100, 0xf00)).cont(),
		set_mark(R().proto(6), 0x3, 0),	    // --xor-mark 3
		set_mark(R().proto(17), 0, ~0xffu), // --and-mark 0xff
		R().m(mark(0x3, 0xf)).cont(),
		set_mark(R(), 0xbf4e0000, 0xffffffffu), // --set-xmark REJECT's own magic
		R().m(mark(0xbf4e0000)).drop(),
	};
	if (hook == ir::Hook::LocalOut)
		b.output = rules;
	else
		b.input = rules;
	b.chains = {{{set_mark(R(), 0x40, 0x40), R().m(mark(0x41, 0x41)).ret(),
		      set_mark(R(), 0x80, 0xffffffffu)}}};
	return b.build();
}

const std::vector<uint32_t> some_marks = {
	0, 1, 2, 3, 0x10, 0x11, 0x100, 0x41, 0xfeedcafe, 0xffffffff, 0xbf4e0000, 0x80000001};

TEST(CodegenMark, MatchAndTargetAsTheEvaluatorAtTcIngress)
{
	for (Tests tests : {Tests::Branch, Tests::Accumulate, Tests::FirstBranch})
		expect_as_evaluator(marks_table(ir::Hook::LocalIn), Flavor::TcIngress, tests,
				    some_marks);
}

TEST(CodegenMark, MatchAndTargetAsTheEvaluatorAtTcEgress)
{
	for (Tests tests : {Tests::Branch, Tests::Accumulate})
		expect_as_evaluator(marks_table(ir::Hook::LocalOut), Flavor::TcEgress, tests,
				    some_marks);
}

// Random rules and marks: any difference with mark_mt/mark_tg shows.
TEST(CodegenMark, RandomRulesAsTheEvaluator)
{
	std::mt19937 rng(9);
	const auto word = [&] {
		const uint32_t pick[] = {
			0, 1, 0xff, 0xff00, 0xffffffffu, 0x80000000u, static_cast<uint32_t>(rng())};
		return pick[rng() % 7];
	};
	for (int round = 0; round < 8; round++) {
		TableBuilder b;
		for (int i = 0; i < 12; i++) {
			if (rng() % 3 == 0)
				b.input.push_back(set_mark(R(), word(), word()));
			else
				b.input.push_back(
					R().m(mark(word(), word(), rng() % 4 == 0)).cont());
		}
		b.input.push_back(R().m(mark(word(), word())).drop());
		std::vector<uint32_t> marks;
		for (int k = 0; k < 6; k++)
			marks.push_back(word());
		expect_as_evaluator(b.build(), Flavor::TcIngress, Tests::Branch, marks);
	}
}

// XDP has no skb->mark: a table that reads or sets one in INPUT or FORWARD does not compile
// for XDP (the loader attaches its tc ingress program instead); OUTPUT's alone do not need it.
TEST(CodegenMark, InputAndForwardMarksNeedTheSkb)
{
	TableBuilder in;
	in.input = {R().m(mark(1)).drop()};
	EXPECT_TRUE(codegen::needs_skb_mark(in.build()));
	auto xdp = codegen::compile(in.build(), {.flavor = Flavor::Xdp});
	ASSERT_FALSE(xdp.ok());
	EXPECT_EQ(xdp.error().errnum, EOPNOTSUPP);
	EXPECT_TRUE(codegen::compile(in.build(), {.flavor = Flavor::TcIngress}).ok());

	TableBuilder fwd;
	fwd.forward = {R().jump(0)};
	fwd.chains = {{{set_mark(R(), 1, 1)}}};
	EXPECT_TRUE(codegen::needs_skb_mark(fwd.build()));

	TableBuilder out;
	out.output = {set_mark(R(), 1, 1), R().m(mark(1)).accept()};
	out.input = {R().proto(6).accept()};
	EXPECT_FALSE(codegen::needs_skb_mark(out.build()));
	EXPECT_TRUE(codegen::compile(out.build(), {.flavor = Flavor::Xdp}).ok());

	// A mark rule no chain of INPUT or FORWARD reaches (a chain only OUTPUT jumps to).
	TableBuilder only_out;
	only_out.output = {R().jump(0)};
	only_out.chains = {{{R().m(mark(3)).drop()}}};
	EXPECT_FALSE(codegen::needs_skb_mark(only_out.build()));
}

// REJECT's reply is known at egress by mark and priority together
// (layout::reply_priority_magic): a packet that a user's MARK gave REJECT's mark, forwarded
// with the priority ip_forward() gives, is still a forwarded one (not judged, mark kept).
TEST(CodegenMark, AUsersMarkIsNeverTakenForARejectReply)
{
	TableBuilder te;
	te.output = {R().accept()};
	te.output_policy = Kind::Drop;
	const ir::Table t = te.build();
	Xdp out(t, {.flavor = Flavor::TcEgress, .local_only = true});
	ASSERT_TRUE(out.ok()) << out.error;
	const uint32_t magic = codegen::layout::reply_mark_magic;
	std::vector<uint8_t> f = udp_packet(1, 2).frame();
	std::fill_n(f.begin() + 6, 6, 0); // from the device's own MAC address
	for (uint32_t prio : {0u, 4u, 6u}) {
		const Seen r = run_skb(out, f, magic | 1, prio, 1);
		EXPECT_EQ(r.action, codegen::layout::tc_accept);
		EXPECT_EQ(r.mark, magic | 1) << "priority " << prio;
	}
	EXPECT_EQ(out.counters()[te.output_at[0]].packets, 0u);
	// The reply itself: judged by OUTPUT, mark and priority back to 0.
	const Seen r = run_skb(out, f, magic, codegen::layout::reply_priority_magic, 1);
	EXPECT_EQ(r.action, codegen::layout::tc_accept);
	EXPECT_EQ(r.mark, 0u);
	EXPECT_EQ(out.counters()[te.output_at[0]].packets, 1u);
}

// connmark_mt: no entry (INVALID) matches nothing, inverted or not; a packet that makes an
// entry has the new entry's mark, 0. (Addresses from TEST-NET-2: no entry in the kernel.)
TEST(CodegenMark, ConnmarkReadsTheEntrysMark)
{
	TableBuilder b;
	b.input = {R().m(ir::ConnmarkMatch{0, 0xffffffffu, 0}).cont(),
		   R().m(ir::ConnmarkMatch{0, 0xffffffffu, 1}).cont(),
		   R().m(ir::ConnmarkMatch{5, 0xff, 2}).cont(),
		   R().m(ir::ConnmarkMatch{1, 1, 1}).cont()};
	Xdp x(b.build());
	ASSERT_TRUE(x.ok()) << x.error;
	const auto from = [](Packet p) {
		p.saddr = ip4h("198.51.100.9");
		p.daddr = ip4h("198.51.100.10");
		return p;
	};
	const auto &at = b.input_at;
	// A SYN: NEW, its entry's mark 0.
	x.expect(from(tcp_packet(40000, 80, 0x02)), pass, {at[0], at[2], at[3], b.input_policy_at});
	// SYN+FIN: INVALID, no entry: none of them.
	x.expect(from(tcp_packet(40000, 80, 0x03)), pass, {b.input_policy_at});
	// The evaluator agrees.
	ir::PacketView v;
	v.ct.has_ct = false;
	const std::vector<uint8_t> d = from(tcp_packet(40000, 80, 0x03)).datagram();
	v.ip = d;
	EXPECT_EQ(ir::evaluate(b.build(), ir::Hook::LocalIn, v).counted_rules,
		  std::vector<uint32_t>{b.input_policy_at});
	v.ct.has_ct = true;
	v.ct.mark = 0x105;
	EXPECT_EQ(ir::evaluate(b.build(), ir::Hook::LocalIn, v).counted_rules,
		  (std::vector<uint32_t>{at[1], at[2], b.input_policy_at}));
}

} // namespace
} // namespace bpfilter::test
