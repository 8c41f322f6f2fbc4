// -m limit through BPF_PROG_TEST_RUN against the reference evaluator's model of xt_limit's
// buckets: the verdict of every packet and the bucket it leaves (credit and prev, to the
// credit), over bursts within a tick and packets spread over refills.
#include "codegen_harness.hpp"

#include <time.h>

#include "ir/eval.hpp"

namespace bpfilter::test
{
namespace
{

// libxt_limit's encoding of "--limit N/second --limit-burst B" (avg in 1/10000 s).
ir::LimitMatch limit(uint32_t per_second_scaled, uint32_t burst)
{
	ir::LimitMatch m;
	m.avg = per_second_scaled;
	m.burst = burst;
	return m;
}
constexpr uint32_t per_hour = 3600 * 10000;

ir::UdpMatch udp(ir::PortRange sport, ir::PortRange dport)
{
	ir::UdpMatch m;
	m.sport = sport;
	m.dport = dport;
	return m;
}

void sleep_ms(long ms)
{
	const timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
	nanosleep(&ts, nullptr);
}

// Runs packets through the program and the evaluator side by side. The evaluator's clock
// is the one the program read: the buckets it touched carry it as prev (limit_mt() sets
// prev = now on every path but the fast one, where prev == now already).
struct Twin {
	ir::Table table;
	Xdp x;
	ir::EvalState state;
	Twin(ir::Table t, codegen::Options o) : table(std::move(t)), x(table, o)
	{
		state = ir::initial_state(table, x.hz, x.limits_set_at);
	}

	// One packet: the program's verdict, the evaluator's, and their buckets after it.
	void send(const Packet &p, const std::string &what)
	{
		auto before = loader::read_jiffies();
		ASSERT_TRUE(before.ok());
		const int got = x.run(p.frame());
		const auto buckets = x.limit_buckets();
		uint64_t now = *before;
		for (const auto &b : buckets)
			now = std::max(now, b.prev);
		state.jiffies = now;
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view{dgram, devname(""), {}, {}};
		const ir::EvalResult r = ir::evaluate(table, ir::Hook::LocalIn, view, state);
		ASSERT_EQ(got, r.accept ? XDP_PASS : XDP_DROP) << what;
		ASSERT_EQ(buckets, state.limits) << what;
		for (uint32_t rule : r.counted_rules) {
			x.expected.at(rule).packets++;
			x.expected.at(rule).bytes += p.header_tot_len();
		}
		const auto c = x.counters();
		ASSERT_EQ(c, x.expected) << what;
	}
};

class Limit : public ::testing::TestWithParam<codegen::Options::Tests>
{
protected:
	codegen::Options opts() const
	{
		codegen::Options o = local_only_off();
		o.tests = GetParam();
		return o;
	}
};

// --limit 1/hour --limit-burst 5: five pass, then none (a token comes back after 720 s).
TEST_P(Limit, BurstThenNothing)
{
	TableBuilder b;
	b.input.push_back(R().m(limit(per_hour, 5)).accept());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 9; i++)
		t.send(udp_packet(1000, 53), "packet " + std::to_string(i));
	EXPECT_EQ(t.x.counters()[0].packets, 5u);
}

// Matches before the limit decide whether a packet takes a token; the ones after do not
// give it back.
TEST_P(Limit, OnlyPacketsThatReachItTakeTokens)
{
	TableBuilder b;
	b.input.push_back(R().proto(17).m(udp({}, {53, 53})).m(limit(per_hour, 3)).accept());
	b.input.push_back(R().proto(17).m(limit(per_hour, 2)).m(udp({}, {7, 7})).accept());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 6; i++) {
		t.send(udp_packet(1000, 54), "to 54, " + std::to_string(i));
		t.send(udp_packet(1000, 53), "to 53, " + std::to_string(i));
		t.send(udp_packet(1000, 7), "to 7, " + std::to_string(i));
	}
	const auto c = t.x.counters();
	EXPECT_EQ(c[0].packets, 3u);
	// The second rule's two tokens went to the first two packets that reached it: the
	// first to 54 (which then failed --dport 7) and the first to 7.
	EXPECT_EQ(c[1].packets, 1u);
}

// --limit 50/second --limit-burst 3: a token every 5 jiffies at HZ 250; packets a few
// milliseconds apart meet buckets part refilled, with the kernel's rounding.
TEST_P(Limit, RefillOverTime)
{
	TableBuilder b;
	b.input.push_back(R().m(limit(200, 3)).accept());
	b.input.push_back(R().m(limit(10000 / 7, 1)).accept()); // 7/second
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 60; i++) {
		t.send(udp_packet(1000, 53), "packet " + std::to_string(i));
		if (i % 4 == 3)
			sleep_ms(3 + i % 7);
	}
	const auto c = t.x.counters();
	EXPECT_GT(c[0].packets, 3u);
	EXPECT_LT(c[0].packets, 60u);
}

INSTANTIATE_TEST_SUITE_P(Tests, Limit,
			 ::testing::Values(codegen::Options::Tests::Branch,
					   codegen::Options::Tests::Accumulate,
					   codegen::Options::Tests::FirstBranch));

TEST(LimitArithmetic, AsXtLimitComputesIt)
{
	namespace L = ir::limit;
	// HZ 250: 128 credits a jiffy, 32000 a second.
	EXPECT_EQ(L::user2credits(10000, 250), 32000u);
	EXPECT_EQ(L::user2credits(per_hour, 250), 3600u * 32000u);
	// Divided first above 0xFFFFFFFF / 32000.
	EXPECT_EQ(L::user2credits(134218, 250), (134218u / 10000) * 32000u);
	EXPECT_EQ(L::user2credits(134217, 250), 134217u * 32000u / 10000);
	// limit_mt_check's overflow test.
	EXPECT_TRUE(L::overflows(200, 0, 250));
	EXPECT_FALSE(L::overflows(per_hour, 5, 250));
	EXPECT_TRUE(L::overflows(500'000'000, 9, 250));	     // avg * burst wraps in u32
	EXPECT_FALSE(L::overflows(216'000'000, 10000, 250)); // wraps, but to more
	// A given cost and cap are kept.
	const auto p = L::params(200, 3, 999, 77, 250);
	EXPECT_EQ(p.cost, 77u);
	EXPECT_EQ(p.credit_cap, 999u);
	EXPECT_EQ(p.credit, 1920u);
}

} // namespace
} // namespace bpfilter::test
