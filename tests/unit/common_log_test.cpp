// The helper's log lines: long messages split into records /dev/kmsg takes, rate-limited per
// namespace.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "common/log.hpp"

namespace bpfilter
{
namespace
{

using namespace std::chrono_literals;

TEST(LogSplit, ShortLineIsOneRecord)
{
	auto r = log::split_records("bpfilter: netns 1: ", "refused (22)", 900);
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0], "bpfilter: netns 1: refused (22)");
}

// A verifier log (many lines, 1,500 characters) becomes one record a line, each numbered,
// none over the limit, nothing lost.
TEST(LogSplit, VerifierLogOneRecordALine)
{
	std::string msg = "IPT_SO_SET_REPLACE refused by the data plane: verifier:";
	std::string body;
	for (int i = 0; i < 40; i++)
		body += "\n" + std::to_string(i) + ": (bf) r1 = r10 ; R1_w=fp0 R10=fp0 padding";
	auto r = log::split_records("bpfilter: netns 7, pid 42 (iptables): ", msg + body, 900);
	ASSERT_EQ(r.size(), 41u);
	EXPECT_EQ(r[0], "bpfilter: netns 7, pid 42 (iptables): [1/41] " + msg);
	EXPECT_EQ(r[40].rfind("bpfilter: netns 7, pid 42 (iptables): [41/41] 39: (bf)", 0), 0u);
	for (const auto &rec : r)
		EXPECT_LE(rec.size(), 900u);
}

// A line longer than a record is cut into pieces; put back together they are the line.
TEST(LogSplit, LongLineIsCut)
{
	const std::string prefix = "bpfilter: ";
	std::string line(3000, 'x');
	for (size_t i = 0; i < line.size(); i++)
		line[i] = static_cast<char>('a' + i % 26);
	auto r = log::split_records(prefix, line, 900);
	ASSERT_EQ(r.size(), 4u);
	std::string joined;
	for (size_t i = 0; i < r.size(); i++) {
		EXPECT_LE(r[i].size(), 900u);
		const std::string head = prefix + "[" + std::to_string(i + 1) + "/4] ";
		ASSERT_EQ(r[i].rfind(head, 0), 0u);
		joined += r[i].substr(head.size());
	}
	EXPECT_EQ(joined, line);
}

// One namespace's flood uses up its own budget only; another's lines still go out, and the
// flooding one's next line says how many were dropped.
TEST(LogLimiter, PerNamespace)
{
	log::Limiter lim;
	const auto t0 = std::chrono::steady_clock::time_point{} + 1000s;
	uint64_t dropped = 0;
	int allowed = 0;
	for (int i = 0; i < 500; i++)
		allowed += lim.allow(1, t0, dropped);
	EXPECT_EQ(allowed, static_cast<int>(log::Limiter::burst));
	EXPECT_TRUE(lim.allow(2, t0, dropped));
	EXPECT_EQ(dropped, 0u);
	// Five seconds later, namespace 1 has ten lines again and hears of the 450 dropped.
	EXPECT_TRUE(lim.allow(1, t0 + 5s, dropped));
	EXPECT_EQ(dropped, 450u);
	int later = 1;
	while (lim.allow(1, t0 + 5s, dropped))
		later++;
	EXPECT_EQ(later, static_cast<int>(5 * log::Limiter::refill));
}

} // namespace
} // namespace bpfilter
