// -m u32's ABI: the size xt_u32 has, u32_mt_checkentry()'s errnos in its order, and the IR
// the tests become.
#include <linux/netfilter/xt_u32.h>

#include <gtest/gtest.h>

#include "abi/extensions.hpp"
#include "abi/table.hpp"
#include "abi_builder.hpp"

namespace bpfilter
{
namespace
{

using test::Builder;
using test::Bytes;
using test::Ip;
using test::Rule;
using test::Target;

Bytes u32m(const struct xt_u32 &data, size_t size = sizeof(struct xt_u32))
{
	return test::match("u32", 0, &data, size);
}

Result<ir::Table> table_of(Bytes match, const char *chain = "INPUT")
{
	Builder b;
	b.rule(chain, Rule{Ip(), {std::move(match)}, Target::accept()});
	auto r = abi::parse_replace(b.replace());
	if (!r.ok())
		return r.error();
	return abi::to_ir(r->table);
}

int errnum(Bytes match, const char *chain = "INPUT")
{
	auto t = table_of(std::move(match), chain);
	return t.ok() ? 0 : t.error().errnum;
}

// "0>>22&0x3C@12>>26&0x3C@0>>24=0x45", as libxt_u32 sends it.
struct xt_u32 payload_check()
{
	struct xt_u32 u = {};
	u.ntests = 1;
	struct xt_u32_test &t = u.tests[0];
	t.nnums = 7;
	t.location[0] = {0, 0};
	t.location[1] = {22, XT_U32_RIGHTSH};
	t.location[2] = {0x3c, XT_U32_AND};
	t.location[3] = {12, XT_U32_AT};
	t.location[4] = {26, XT_U32_RIGHTSH};
	t.location[5] = {0x3c, XT_U32_AND};
	t.location[6] = {0, XT_U32_AT};
	// ... >>24 would be an 8th element; kept to 7 here on purpose: any count is valid.
	t.nvalues = 1;
	t.value[0] = {0x45, 0x45};
	return u;
}

TEST(AbiU32, SizeAndRevision)
{
	EXPECT_EQ(sizeof(struct xt_u32), 1984u);
	struct xt_u32 u = payload_check();
	EXPECT_EQ(errnum(u32m(u)), 0);
	// xt_check_match(): XT_ALIGN(sizeof(struct xt_u32)) exactly.
	EXPECT_EQ(errnum(u32m(u, sizeof(u) - 8)), EINVAL);
	// Registered for NFPROTO_UNSPEC: the name is found, not the revision.
	EXPECT_EQ(errnum(test::match("u32", 1, &u, sizeof(u))), EPROTOTYPE);
	// Any chain: NFPROTO_UNSPEC, no hooks mask.
	EXPECT_EQ(errnum(u32m(u), "FORWARD"), 0);
	EXPECT_EQ(errnum(u32m(u), "OUTPUT"), 0);
}

TEST(AbiU32, ChecksAsU32MtCheckentry)
{
	struct xt_u32 u = payload_check();
	u.ntests = XT_U32_MAXSIZE + 1;
	EXPECT_EQ(errnum(u32m(u)), 0);
	u.ntests = XT_U32_MAXSIZE + 2;
	EXPECT_EQ(errnum(u32m(u)), EINVAL);
	u = payload_check();
	u.tests[0].nnums = XT_U32_MAXSIZE + 2;
	EXPECT_EQ(errnum(u32m(u)), EINVAL);
	u = payload_check();
	u.tests[0].nvalues = XT_U32_MAXSIZE + 2;
	EXPECT_EQ(errnum(u32m(u)), EINVAL);
	u.tests[0].nvalues = XT_U32_MAXSIZE + 1;
	EXPECT_EQ(errnum(u32m(u)), 0);
	// Shifts of 32 or more; location[0]'s operator is never looked at.
	u = payload_check();
	u.tests[0].location[1].number = 31;
	EXPECT_EQ(errnum(u32m(u)), 0);
	u.tests[0].location[1].number = 32;
	EXPECT_EQ(errnum(u32m(u)), EINVAL);
	u = payload_check();
	u.tests[0].location[4] = {40, XT_U32_LEFTSH};
	EXPECT_EQ(errnum(u32m(u)), EINVAL);
	u = payload_check();
	u.tests[0].location[0] = {4, XT_U32_LEFTSH};
	u.tests[0].location[3] = {1000, XT_U32_AT}; // @ and & take any number
	u.tests[0].location[2] = {0xffffffff, XT_U32_AND};
	EXPECT_EQ(errnum(u32m(u)), 0);
	// A shift beyond nnums is not looked at, nor an unknown operator.
	u = payload_check();
	u.tests[0].location[8] = {99, XT_U32_LEFTSH};
	u.tests[0].location[5].nextop = 7;
	EXPECT_EQ(errnum(u32m(u)), 0);
	// A test beyond ntests is not looked at.
	u = payload_check();
	u.tests[3].nnums = 200;
	EXPECT_EQ(errnum(u32m(u)), 0);
}

TEST(AbiU32, TheIrIsTheTestsAsSent)
{
	struct xt_u32 u = payload_check();
	u.invert = 1;
	u.tests[1].nnums = 0; // u32_match_it() still reads location[0]
	u.tests[1].location[0] = {16, XT_U32_AND};
	u.tests[1].nvalues = 2;
	u.tests[1].value[0] = {1, 2};
	u.tests[1].value[1] = {9, 3};
	u.ntests = 2;
	auto t = table_of(u32m(u));
	ASSERT_TRUE(t.ok()) << t.error().message;
	const auto &m = std::get<ir::U32Match>(t->rules.at(0).matches.at(0));
	EXPECT_EQ(m.invert, 1);
	ASSERT_EQ(m.tests.size(), 2u);
	ASSERT_EQ(m.tests[0].locs.size(), 7u);
	EXPECT_EQ(m.tests[0].locs[3], (ir::U32Match::Loc{12, XT_U32_AT}));
	EXPECT_EQ(m.tests[0].values, (std::vector<ir::U32Match::Range>{{0x45, 0x45}}));
	ASSERT_EQ(m.tests[1].locs.size(), 1u);
	EXPECT_EQ(m.tests[1].locs[0].number, 16u);
	EXPECT_EQ(m.tests[1].values, (std::vector<ir::U32Match::Range>{{1, 2}, {9, 3}}));
}

} // namespace
} // namespace bpfilter
