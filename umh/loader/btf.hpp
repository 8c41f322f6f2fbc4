#pragma once
// Offsets of kernel structures from the running kernel's BTF, for the programs that read
// them (nf_conn's fields for conntrack, a socket's file credentials for -m owner).

#include <bpf/btf.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>

namespace bpfilter::loader
{

struct BtfFree {
	void operator()(struct btf *b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<struct btf, BtfFree>;

// The byte offset of a member path in struct `type`: member names, looked for in
// anonymous structs and unions as C does, or "[n]" for an array's element n. Empty when a
// part is missing or the offset does not fit an instruction's 16-bit offset.
std::optional<int16_t> offset_of(const struct btf *b, const char *type,
				 std::initializer_list<std::string_view> path);

} // namespace bpfilter::loader
