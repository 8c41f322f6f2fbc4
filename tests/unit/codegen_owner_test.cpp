// -m owner: the reference evaluator against owner_mt()'s answers for every kind of sender, and
// the tc egress program against the evaluator through BPF_PROG_TEST_RUN, where the skb's
// socket is the test run's own (no struct socket: owner_mt()'s "no socket"), for every
// combination of the match and invert bits. The socket and file paths run against netfilter
// in the difftest corpus (tests/difftest/corpus/owner).
#include <linux/pkt_cls.h>

#include "abi/extensions.hpp"
#include "codegen_harness.hpp"
#include "ir/eval.hpp"
#include "loader/owner.hpp"

namespace bpfilter::test
{
namespace
{

using Flavor = codegen::Flavor;
using Tests = codegen::Options::Tests;
using Kind_ = ir::PacketView::OwnerView::Kind;
constexpr uint8_t uid = 1, gid = 2, sock = 4, suppl = 8;

ir::OwnerMatch owner(uint8_t match, uint8_t invert, uint32_t uid_min = 1000,
		     uint32_t uid_max = 1000, uint32_t gid_min = 100, uint32_t gid_max = 200)
{
	return {uid_min, uid_max, gid_min, gid_max, match, invert};
}

bool eval_one(const ir::OwnerMatch &m, const ir::PacketView::OwnerView &o)
{
	TableBuilder b;
	b.output = {R().m(m).drop()};
	const ir::Table t = b.build();
	const std::vector<uint8_t> dgram = udp_packet(1000, 53).datagram();
	ir::PacketView view;
	view.ip = dgram;
	view.owner = o;
	return !ir::evaluate(t, ir::Hook::LocalOut, view).accept;
}

TEST(EvalOwner, AnswersAsOwnerMt)
{
	const std::vector<uint32_t> groups = {5, 150, 4000};
	const ir::PacketView::OwnerView none{}, socket{Kind_::Socket, 0, 0, {}},
		file{Kind_::File, 1000, 50, groups};
	// No socket: true only when match ^ invert is 0 (every bit given is inverted).
	EXPECT_FALSE(eval_one(owner(sock, 0), none));
	EXPECT_TRUE(eval_one(owner(sock, sock), none));
	EXPECT_TRUE(eval_one(owner(uid, uid), none));
	EXPECT_FALSE(eval_one(owner(uid | sock, uid), none));
	// A socket without a file: --socket-exists, and nothing about ids unless inverted.
	EXPECT_TRUE(eval_one(owner(sock, 0), socket));
	EXPECT_FALSE(eval_one(owner(sock, sock), socket));
	EXPECT_FALSE(eval_one(owner(uid, 0), socket));
	EXPECT_TRUE(eval_one(owner(uid, uid), socket));
	EXPECT_FALSE(eval_one(owner(uid | sock, uid | sock), socket));
	// A file: fsuid, fsgid, then the supplementary groups with --suppl-groups alone.
	EXPECT_TRUE(eval_one(owner(uid, 0), file));
	EXPECT_FALSE(eval_one(owner(uid, uid), file));
	EXPECT_FALSE(eval_one(owner(gid, 0), file));
	EXPECT_TRUE(eval_one(owner(gid | suppl, 0), file));
	EXPECT_FALSE(eval_one(owner(gid | suppl, gid), file));
	EXPECT_TRUE(eval_one(owner(gid | suppl, 0, 0, 0, 4000, 4000), file));
	EXPECT_FALSE(eval_one(owner(gid | suppl, 0, 0, 0, 151, 3999), file));
	EXPECT_TRUE(eval_one(owner(gid, 0, 0, 0, 50, 50), file));
	EXPECT_FALSE(eval_one(owner(uid | gid, 0, 1000, 1000, 51, 60), file));
	EXPECT_FALSE(eval_one(owner(sock | uid, sock), file));
}

TEST(AbiOwner, ChecksAsOwnerCheck)
{
	const abi::Extension *ext = nullptr;
	for (const abi::Extension &e : abi::registered_extensions())
		if (e.name == "owner")
			ext = &e;
	ASSERT_NE(ext, nullptr);
	EXPECT_EQ(ext->revision, 1);
	EXPECT_EQ(ext->hooks, (1u << 3) | (1u << 4)); // OUTPUT, POSTROUTING
	auto check = [&](ir::OwnerMatch m) {
		std::vector<uint8_t> b(24);
		std::memcpy(b.data(), &m.uid_min, 4);
		std::memcpy(b.data() + 4, &m.uid_max, 4);
		std::memcpy(b.data() + 8, &m.gid_min, 4);
		std::memcpy(b.data() + 12, &m.gid_max, 4);
		b[16] = m.match;
		b[17] = m.invert;
		return abi::check_extension(*ext, b, 0, 0);
	};
	EXPECT_EQ(check(owner(uid, 0)), 0);
	EXPECT_EQ(check(owner(16, 0)), -EINVAL);		  // an unknown bit
	EXPECT_EQ(check(owner(uid, 0, 5, 4)), -EINVAL);		  // max below min
	EXPECT_EQ(check(owner(gid, 0, 0, 0, 7, 6)), -EINVAL);	  // the same for groups
	EXPECT_EQ(check(owner(uid, 0, 0, 0xffffffffu)), -EINVAL); // not an id
	EXPECT_EQ(check(owner(sock, sock, 5, 4)), 0);		  // ids not given: not checked
}

// Every match/invert pair over the four bits, as count-only rules: the program's counts
// for a packet without a socket are the evaluator's.
TEST(CodegenOwner, NoSocketAsTheEvaluatorForEveryBitCombination)
{
	auto layout = loader::owner_layout();
	ASSERT_TRUE(layout.ok()) << layout.error().message;
	TableBuilder b;
	for (uint8_t match = 0; match < 16; match++)
		for (uint8_t invert = 0; invert < 16; invert++)
			b.output.push_back(R().m(owner(match, invert, 0, 100, 0, 100)).cont());
	b.output.push_back(R().m(owner(gid | suppl, 0, 7, 9)).drop());
	const ir::Table t = b.build();
	for (Tests tests : {Tests::Branch, Tests::Accumulate}) {
		codegen::Options o = {
			.flavor = Flavor::TcEgress, .local_only = false, .tests = tests};
		o.owner = *layout;
		Xdp x(t, o);
		ASSERT_TRUE(x.ok()) << x.error;
		const Packet p = udp_packet(1000, 53);
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view;
		view.ip = dgram;
		view.out_ifname = devname("lo");
		const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalOut, view);
		std::vector<ir::Counter> want(t.rules.size());
		for (uint32_t i : r.counted_rules) {
			want[i].packets++;
			want[i].bytes += p.header_tot_len();
		}
		std::vector<uint8_t> in = p.frame(), out(in.size() + 600);
		__sk_buff skb{};
		skb.ifindex = 1;
		LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = in.data(), .data_out = out.data(),
			    .data_size_in = static_cast<uint32_t>(in.size()),
			    .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &skb,
			    .ctx_size_in = sizeof(skb), .repeat = 1);
		ASSERT_EQ(bpf_prog_test_run_opts(x.prog->fd(), &topts), 0) << strerror(errno);
		EXPECT_EQ(static_cast<int>(topts.retval),
			  r.accept ? codegen::layout::tc_accept : TC_ACT_SHOT);
		EXPECT_EQ(x.counters(), want);
	}
}

TEST(CodegenOwner, WithoutTheKernelsLayoutTheTableIsRefused)
{
	TableBuilder b;
	b.output = {R().m(owner(uid, 0)).drop()};
	auto p = codegen::compile(b.build(), {.flavor = Flavor::TcEgress});
	ASSERT_FALSE(p.ok());
	EXPECT_EQ(p.error().errnum, EOPNOTSUPP);
	// INPUT's program does not read the socket: it has no owner rule to run.
	EXPECT_TRUE(codegen::compile(b.build(), {.flavor = Flavor::Xdp}).ok());
}

} // namespace
} // namespace bpfilter::test
