// nf_conncount's counting in C++ (ir/connlimit.hpp), case by case against the kernel's
// code paths: the first tuple of a key, a tuple seen twice, tuples gone from the
// connection table (evicted by this CPU, after two jiffies, or kept as maybe unconfirmed),
// closed TCP connections, the same-jiffy skip of the walk, assured connections that add
// nothing, the walk's collection bound, and the counts that make connlimit_mt() hotdrop.
#include <gtest/gtest.h>

#include "ir/connlimit.hpp"

namespace bpfilter
{
namespace
{

namespace cl = ir::connlimit;

cl::Tuple tcp(uint16_t sport, uint32_t src = 0x0200000a)
{
	return {src, 0x0100000a, sport, 22, cl::ipproto_tcp};
}

cl::Packet syn(uint16_t sport, uint32_t jiffies, uint32_t cpu = 0)
{
	cl::Packet p;
	p.tuple = tcp(sport);
	p.jiffies = jiffies;
	p.cpu = cpu;
	return p;
}

constexpr uint32_t key = 0x0200000a;
constexpr uint8_t tcp_established = 3;

TEST(Connlimit, FirstTupleMakesTheListAndCountsOne)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(1000, 100)), 1u);
	ASSERT_EQ(data.size(), 1u);
	EXPECT_EQ(data[key].last_gc, 100u);
	EXPECT_EQ(data[key].last_gc_count, 0u);
}

TEST(Connlimit, NoTupleCountsZeroAndTheMatchHotdrops)
{
	cl::Data data;
	cl::Conntrack ct;
	cl::Packet p;
	p.jiffies = 5;
	EXPECT_EQ(cl::count(data, key, ct, p), 0u);
	EXPECT_TRUE(data.empty());
	// With a list: __nf_conncount_add()'s -ENOENT is a hotdrop too.
	EXPECT_EQ(cl::count(data, key, ct, syn(1, 5)), 1u);
	EXPECT_EQ(cl::count(data, key, ct, p), 0u);
	const cl::Verdict v = cl::decide(0, 10, false);
	EXPECT_TRUE(v.hotdrop);
	EXPECT_FALSE(v.match);
	EXPECT_TRUE(cl::decide(0, 10, true).hotdrop);
}

TEST(Connlimit, LiveConnectionsAreCountedAndATupleSeenTwiceIsNotAddedAgain)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(1, 10)), 1u);
	ct[tcp(1)] = {tcp_established, true};
	EXPECT_EQ(cl::count(data, key, ct, syn(2, 20)), 2u);
	ct[tcp(2)] = {tcp_established, true};
	EXPECT_EQ(cl::count(data, key, ct, syn(3, 30)), 3u);
	// A retransmitted SYN of the third, before its entry is confirmed: another CPU added
	// it within two jiffies, so it may be about to be confirmed, and it is the same tuple.
	EXPECT_EQ(cl::count(data, key, ct, syn(3, 31, 1)), 3u);
	// Its entry confirmed and not yet assured: the walk finds it, nothing is added.
	ct[tcp(3)] = {1, false};
	cl::Packet p = syn(3, 40);
	p.confirmed = true;
	EXPECT_EQ(cl::count(data, key, ct, p), 3u);
	EXPECT_EQ(data[key].conns.size(), 3u);
}

TEST(Connlimit, GoneTuplesAreEvictedByTheirCpuOrAfterTwoJiffies)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(1, 10, 0)), 1u); // never confirmed (dropped)
	// Next jiffy, another CPU: tuple 1 is one jiffy old and not this CPU's: kept.
	EXPECT_EQ(cl::count(data, key, ct, syn(2, 11, 1)), 2u);
	// Jiffy 12 on CPU 1: tuple 1 is two jiffies old and goes; tuple 2 is CPU 1's and goes.
	EXPECT_EQ(cl::count(data, key, ct, syn(3, 12, 1)), 1u);
	ASSERT_EQ(data[key].conns.size(), 1u);
	EXPECT_EQ(data[key].conns[0].tuple, tcp(3));
}

TEST(Connlimit, ClosedTcpConnectionsAreDropped)
{
	cl::Data data;
	cl::Conntrack ct;
	for (uint16_t s = 1; s <= 3; s++) {
		EXPECT_EQ(cl::count(data, key, ct, syn(s, 10 * s)), s);
		ct[tcp(s)] = {tcp_established, true};
	}
	ct[tcp(1)].tcp_state = cl::tcp_time_wait;
	ct[tcp(2)].tcp_state = cl::tcp_close;
	EXPECT_EQ(cl::count(data, key, ct, syn(4, 100)), 2u);
	ct[tcp(4)] = {tcp_established, true};
	// A closed UDP "connection" does not exist: only TCP has states that close.
	cl::Tuple u{key, 0x0100000a, 5000, 53, 17};
	ct[u] = {cl::tcp_close, true};
	cl::Packet p;
	p.tuple = u;
	p.jiffies = 200;
	EXPECT_EQ(cl::count(data, key, ct, p), 3u);
	cl::Packet q = syn(6, 300);
	EXPECT_EQ(cl::count(data, key, ct, q), 4u);
}

TEST(Connlimit, ASecondPacketInTheSameJiffyDoesNotWalk)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(1, 10)), 1u);
	// Tuple 1 was never confirmed and this CPU added it: the walk at jiffy 20 drops it.
	EXPECT_EQ(cl::count(data, key, ct, syn(2, 20)), 1u);
	ASSERT_EQ(data[key].conns.size(), 1u);
	// Jiffy 20 again: last_gc is 20, so tuple 3 is added without a walk, and tuple 2,
	// gone from the table, still counts.
	EXPECT_EQ(cl::count(data, key, ct, syn(3, 20)), 2u);
	// The same tuple again in that jiffy is added once more: only the walk finds twins.
	EXPECT_EQ(cl::count(data, key, ct, syn(3, 20)), 3u);
	// Next jiffy: the walk drops all three (this CPU's, gone) and adds the fourth.
	EXPECT_EQ(cl::count(data, key, ct, syn(4, 21)), 1u);
}

TEST(Connlimit, TheSameJiffySkipEndsAfterSixtyFourAdds)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(0, 7)), 1u);
	// last_gc 7, last_gc_count 0: 64 more adds in jiffy 7 go without a walk.
	for (uint16_t s = 1; s < 64; s++)
		EXPECT_EQ(cl::count(data, key, ct, syn(s, 7)), s + 1u);
	// count - last_gc_count = 64: this one walks, and drops all 64 (gone, this CPU's).
	EXPECT_EQ(cl::count(data, key, ct, syn(64, 7)), 1u);
}

TEST(Connlimit, TheWalkStopsAfterCollectingSixtyFive)
{
	cl::Data data;
	cl::Conntrack ct;
	cl::List &list = data[key];
	list.last_gc = 1;
	for (uint16_t s = 0; s < 100; s++)
		list.conns.push_back({tcp(s), 0, 1});
	// At jiffy 10 every tuple is gone and old: 65 are dropped, then the walk stops.
	EXPECT_EQ(cl::count(data, key, ct, syn(500, 10)), 100u - 65u + 1u);
	EXPECT_EQ(list.conns.front().tuple, tcp(65));
	EXPECT_EQ(list.last_gc, 10u);
	EXPECT_EQ(list.last_gc_count, 35u);
}

TEST(Connlimit, AnAssuredConnectionAddsNothingAndCollectsTheList)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(1, 10)), 1u);
	ct[tcp(1)] = {tcp_established, true};
	EXPECT_EQ(cl::count(data, key, ct, syn(2, 20)), 2u);
	ct[tcp(2)] = {tcp_established, true};
	// Connection 9 was assured before the table was set: its packets add nothing, and
	// the list is collected (nf_conncount_gc_list()) unless it was in this jiffy.
	cl::Packet p = syn(9, 20);
	p.confirmed = p.assured = true;
	EXPECT_EQ(cl::count(data, key, ct, p), 2u);
	ct.erase(tcp(1));
	EXPECT_EQ(cl::count(data, key, ct, p), 2u); // jiffy 20: just collected
	p.jiffies = 30;
	EXPECT_EQ(cl::count(data, key, ct, p), 1u);
	// Once every tuple has gone, the count is 0: connlimit_mt() drops the packet.
	ct.erase(tcp(2));
	p.jiffies = 40;
	EXPECT_EQ(cl::count(data, key, ct, p), 0u);
	EXPECT_TRUE(cl::decide(0, 2, false).hotdrop);
	// A key without a list takes an assured connection's tuple all the same.
	EXPECT_EQ(cl::count(data, key + 1, ct, p), 1u);
}

TEST(Connlimit, AnEmptiedListTakesTheNextTuple)
{
	cl::Data data;
	cl::Conntrack ct;
	EXPECT_EQ(cl::count(data, key, ct, syn(1, 10)), 1u);
	ct[tcp(1)] = {tcp_established, true};
	cl::Packet p = syn(9, 20);
	p.confirmed = p.assured = true;
	ct.erase(tcp(1));
	EXPECT_EQ(cl::count(data, key, ct, p), 0u);
	ASSERT_EQ(data.count(key), 1u);
	EXPECT_EQ(cl::count(data, key, ct, syn(2, 30)), 1u);
	// An assured packet on the emptied list counts 0 (and is not collected again).
	data[key].conns.clear();
	EXPECT_EQ(cl::count(data, key, ct, p), 0u);
}

TEST(Connlimit, DecideIsAboveXorUpto)
{
	EXPECT_TRUE(cl::decide(3, 2, false).match); // --connlimit-above 2
	EXPECT_FALSE(cl::decide(2, 2, false).match);
	EXPECT_FALSE(cl::decide(3, 2, true).match); // --connlimit-upto 2
	EXPECT_TRUE(cl::decide(2, 2, true).match);
	EXPECT_FALSE(cl::decide(1, 4294967295u, false).match);
	EXPECT_TRUE(cl::decide(1, 0, false).match); // --connlimit-above 0
	EXPECT_FALSE(cl::decide(1, 0, true).match); // --connlimit-upto 0
}

} // namespace
} // namespace bpfilter
