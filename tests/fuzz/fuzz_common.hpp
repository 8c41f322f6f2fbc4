// What the fuzz targets share: how a finding is reported (an abort, which libFuzzer saves the
// input of) and byte helpers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace bpfilter::fuzz
{

// A property violation: say what and stop, so that libFuzzer keeps the input as a crash.
[[noreturn]] inline void finding(const std::string &what)
{
	std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
	std::fflush(stderr);
	std::abort();
}

inline void require(bool ok, const std::string &what)
{
	if (!ok)
		finding(what);
}

// The first byte where a and b differ, or their common length when one is a prefix.
inline size_t first_difference(std::span<const uint8_t> a, std::span<const uint8_t> b)
{
	size_t k = 0;
	while (k < a.size() && k < b.size() && a[k] == b[k])
		k++;
	return k;
}

inline void require_same(std::span<const uint8_t> a, std::span<const uint8_t> b,
			 const std::string &what)
{
	if (a.size() == b.size() && first_difference(a, b) == a.size())
		return;
	finding(what + ": " + std::to_string(a.size()) + " and " + std::to_string(b.size()) +
		" bytes, first difference at byte " + std::to_string(first_difference(a, b)));
}

} // namespace bpfilter::fuzz
