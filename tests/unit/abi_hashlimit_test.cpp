// -m hashlimit's checkentry (hashlimit_mt_check_v1/_v2/hashlimit_mt_check), its errnos in
// its order, on the three revisions' layouts, and cfg_copy()'s widening.
#include <gtest/gtest.h>
#include <linux/netfilter/xt_hashlimit.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "abi/extensions.hpp"
#include "ir/hashlimit.hpp"

namespace bpfilter
{
namespace
{

namespace hl = ir::hashlimit;

// A valid rule of each revision: --hashlimit-upto 1/sec --hashlimit-name x.
std::vector<uint8_t> info(uint8_t rev, const std::string &name = "x")
{
	if (rev == 1) {
		struct xt_hashlimit_mtinfo1 m = {};
		std::memcpy(m.name, name.data(), std::min(name.size(), sizeof(m.name)));
		m.cfg.avg = 10000;
		m.cfg.burst = 5;
		m.cfg.gc_interval = 1000;
		m.cfg.expire = 10000;
		m.cfg.srcmask = m.cfg.dstmask = 32;
		const auto *p = reinterpret_cast<const uint8_t *>(&m);
		return {p, p + sizeof(m)};
	}
	struct xt_hashlimit_mtinfo3 m = {};
	std::memcpy(m.name, name.data(), std::min(name.size(), sizeof(m.name)));
	m.cfg.avg = 1000000;
	m.cfg.burst = 5;
	m.cfg.gc_interval = 1000;
	m.cfg.expire = 10000;
	m.cfg.srcmask = m.cfg.dstmask = 32;
	const auto *p = reinterpret_cast<const uint8_t *>(&m);
	return {p, p + (rev == 2 ? sizeof(struct xt_hashlimit_mtinfo2) : sizeof(m))};
}

template <typename T> void put(std::vector<uint8_t> &d, size_t off, T v)
{
	std::memcpy(d.data() + off, &v, sizeof(v));
}

constexpr size_t cfg3 = offsetof(struct xt_hashlimit_mtinfo3, cfg);

TEST(AbiHashlimit, ValidRulesOfEachRevisionPass)
{
	for (uint8_t rev : {1, 2, 3})
		EXPECT_EQ(abi::check_hashlimit(info(rev), rev).err, 0) << +rev;
}

TEST(AbiHashlimit, Names)
{
	EXPECT_EQ(abi::check_hashlimit(info(3, ""), 3).err, -EINVAL);
	EXPECT_EQ(abi::check_hashlimit(info(3, "."), 3).err, -EINVAL);
	EXPECT_EQ(abi::check_hashlimit(info(3, ".."), 3).err, -EINVAL);
	EXPECT_EQ(abi::check_hashlimit(info(3, "a/b"), 3).err, -EINVAL);
	EXPECT_EQ(abi::check_hashlimit(info(3, "..."), 3).err, 0);
	EXPECT_EQ(abi::check_hashlimit(info(1, std::string(16, 'a')), 1).err, -ENAMETOOLONG);
	EXPECT_EQ(abi::check_hashlimit(info(1, std::string(15, 'a')), 1).err, 0);
	EXPECT_EQ(abi::check_hashlimit(info(3, std::string(255, 'a')), 3).err, -ENAMETOOLONG);
	EXPECT_EQ(abi::check_hashlimit(info(2, std::string(254, 'a')), 2).err, 0);
}

TEST(AbiHashlimit, ConfigurationChecksInTheKernelsOrder)
{
	auto d = info(3);
	put<uint32_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, gc_interval), 0);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, -EINVAL);
	d = info(3);
	put<uint8_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, srcmask), 33);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, -EINVAL);
	d = info(3);
	put<uint32_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, mode), 1u << 7);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, -EINVAL);
	d = info(3);
	put<uint64_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, burst), 0);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, -ERANGE);
	// Rate match: revision 3 only, a rate within u32, an interval.
	d = info(3);
	put<uint32_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, mode), hl::rate_match);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, -EINVAL); // interval 0
	put<uint32_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, interval), 1);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, 0);
	put<uint64_t>(d, cfg3 + offsetof(struct hashlimit_cfg3, avg), 1ull << 32);
	EXPECT_EQ(abi::check_hashlimit(d, 3).err, -ERANGE);
	d = info(2);
	put<uint32_t>(d, cfg3 + offsetof(struct hashlimit_cfg2, mode), hl::rate_match);
	EXPECT_EQ(abi::check_hashlimit(d, 2).err, -EINVAL);
}

TEST(AbiHashlimit, HzDependentChecks)
{
	hl::Cfg c;
	c.avg = 1;
	c.burst = UINT64_MAX / hl::user2credits(1, 3, 250) + 1; // just past 2^64 credits
	EXPECT_EQ(hl::check_rate(c, 3, 250), -ERANGE);		// avg * burst overflows in credits
	c.burst = 5;
	EXPECT_EQ(hl::check_rate(c, 3, 250), 0);
	c.mode = hl::bytes;
	c.avg = 1; // a cost of 0 credits per chunk
	EXPECT_EQ(hl::check_rate(c, 3, 250), -EINVAL);
	c.avg = 1024;
	EXPECT_EQ(hl::check_rate(c, 3, 250), 0);
}

TEST(AbiHashlimit, CfgCopyWidensAndTruncates)
{
	auto d = info(1);
	put<uint32_t>(d,
		      offsetof(struct xt_hashlimit_mtinfo1, cfg) +
			      offsetof(struct hashlimit_cfg1, size),
		      2000000);
	const auto h = abi::hashlimit_info(d, 1);
	EXPECT_EQ(h.name, "x");
	EXPECT_EQ(h.cfg.avg, 10000u);
	EXPECT_EQ(h.cfg.size, hl::max_size);
	EXPECT_EQ(hl::table_max(h.cfg, 8ull << 30), 8 * hl::max_size);
	hl::Cfg dflt;
	EXPECT_EQ(hl::table_max(dflt, 8ull << 30), 65536u);
}

} // namespace
} // namespace bpfilter
