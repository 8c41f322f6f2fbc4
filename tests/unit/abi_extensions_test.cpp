// The registry as the outside sees it: what --list-extensions prints is what revision
// queries and lookups answer for, so the upstream lane's claim list means what it says.
#include <gtest/gtest.h>
#include <linux/netfilter/xt_recent.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "abi/extensions.hpp"

namespace bpfilter
{
namespace
{

using abi::ExtKind;

std::array<uint8_t, 29> name_field(std::string_view name)
{
	std::array<uint8_t, 29> f{};
	for (size_t i = 0; i < name.size() && i < f.size() - 1; i++)
		f[i] = static_cast<uint8_t>(name[i]);
	return f;
}

TEST(AbiExtensions, EveryRegisteredExtensionIsFoundAndAnswersItsRevision)
{
	const auto all = abi::registered_extensions();
	ASSERT_FALSE(all.empty());
	for (const abi::Extension &ext : all) {
		SCOPED_TRACE(std::string(ext.name) + " revision " + std::to_string(ext.revision));
		auto hit = abi::find_extension(ext.kind, name_field(ext.name), ext.revision);
		ASSERT_TRUE(hit.ok());
		EXPECT_EQ(*hit, &ext);
		EXPECT_GE(abi::find_revision(ext.kind, ext.name, ext.revision), ext.revision);
	}
}

TEST(AbiExtensions, WhatIsNotRegisteredIsNotFound)
{
	constexpr std::string_view name = "no-such-ext";
	for (const abi::Extension &ext : abi::registered_extensions())
		ASSERT_NE(ext.name, name);
	for (ExtKind kind : {ExtKind::Match, ExtKind::Target}) {
		EXPECT_EQ(abi::find_revision(kind, name, 0), -ENOENT);
		EXPECT_EQ(abi::find_extension(kind, name_field(name), 0).error().errnum, ENOENT);
	}
}

// recent_mt_check()'s refusals, in its order, with its errnos.
TEST(AbiExtensions, RecentChecksAsTheKernel)
{
	auto hit = abi::find_extension(ExtKind::Match, name_field("recent"), 1);
	ASSERT_TRUE(hit.ok());
	const abi::Extension &ext = **hit;
	auto check = [&](uint8_t flags, uint32_t seconds, uint32_t hits, const char *name) {
		xt_recent_mtinfo_v1 info{};
		info.check_set = flags;
		info.seconds = seconds;
		info.hit_count = hits;
		std::memcpy(info.name, name, std::min<size_t>(strlen(name), sizeof(info.name)));
		std::vector<uint8_t> b(sizeof(info) + 4, 0);
		std::memcpy(b.data(), &info, sizeof(info));
		return abi::check_extension(ext, b, 0, 0);
	};
	EXPECT_EQ(check(XT_RECENT_SET, 0, 0, "DEFAULT"), 0);
	EXPECT_EQ(check(XT_RECENT_UPDATE | XT_RECENT_TTL | XT_RECENT_REAP, 30, 255, "a"), 0);
	EXPECT_EQ(check(0x40 | XT_RECENT_SET, 0, 0, "a"), -EINVAL); // unknown flag
	EXPECT_EQ(check(0, 0, 0, "a"), -EINVAL);		    // no mode
	EXPECT_EQ(check(XT_RECENT_SET | XT_RECENT_CHECK, 0, 0, "a"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_SET, 1, 0, "a"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_REMOVE, 0, 1, "a"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_SET | XT_RECENT_TTL, 0, 0, "a"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_CHECK | XT_RECENT_REAP, 0, 0, "a"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_CHECK, 0, 256, "a"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_CHECK, 0, 0, ""), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_CHECK, 0, 0, ".."), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_CHECK, 0, 0, "a/b"), -EINVAL);
	EXPECT_EQ(check(XT_RECENT_CHECK, 0, 0, std::string(200, 'x').c_str()), -ENAMETOOLONG);
}

} // namespace
} // namespace bpfilter
