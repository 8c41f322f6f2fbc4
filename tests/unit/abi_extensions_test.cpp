// The registry as the outside sees it: what --list-extensions prints is what revision
// queries and lookups answer for, so the upstream lane's claim list means what it says.
#include <gtest/gtest.h>

#include <array>
#include <string>

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

} // namespace
} // namespace bpfilter
