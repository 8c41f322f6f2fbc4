// Offsets of kernel structures from BTF (btf.hpp).
#include "loader/btf.hpp"

#include <linux/btf.h>

#include <cstdint>
#include <string>

namespace bpfilter::loader
{

namespace
{

// The byte offset of member `name` in the composite type `id`, looking into anonymous
// structs and unions as C does.
std::optional<uint32_t> member_in(const struct btf *b, int32_t id, std::string_view name,
				  uint32_t &type_out)
{
	id = btf__resolve_type(b, static_cast<uint32_t>(id));
	if (id < 0)
		return std::nullopt;
	const struct btf_type *t = btf__type_by_id(b, static_cast<uint32_t>(id));
	if (!btf_is_composite(t))
		return std::nullopt;
	const struct btf_member *m = btf_members(t);
	for (uint16_t k = 0; k < btf_vlen(t); k++, m++) {
		const std::string_view n = btf__name_by_offset(b, m->name_off);
		const uint32_t at = btf_member_bit_offset(t, k) / 8;
		if (n == name) {
			type_out = m->type;
			return at;
		}
		if (n.empty()) {
			auto inner = member_in(b, static_cast<int32_t>(m->type), name, type_out);
			if (inner)
				return at + *inner;
		}
	}
	return std::nullopt;
}

} // namespace

std::optional<int16_t> offset_of(const struct btf *b, const char *type,
				 std::initializer_list<std::string_view> path)
{
	int32_t id = btf__find_by_name_kind(b, type, BTF_KIND_STRUCT);
	if (id < 0)
		return std::nullopt;
	uint64_t at = 0;
	for (std::string_view part : path) {
		if (!part.empty() && part.front() == '[') {
			id = btf__resolve_type(b, static_cast<uint32_t>(id));
			if (id < 0)
				return std::nullopt;
			const struct btf_type *t = btf__type_by_id(b, static_cast<uint32_t>(id));
			if (!btf_is_array(t))
				return std::nullopt;
			const uint32_t elem = btf_array(t)->type;
			const int64_t size = btf__resolve_size(b, elem);
			if (size <= 0)
				return std::nullopt;
			at += std::stoul(std::string(part.substr(1))) * static_cast<uint64_t>(size);
			id = static_cast<int32_t>(elem);
			continue;
		}
		uint32_t next = 0;
		auto o = member_in(b, id, part, next);
		if (!o)
			return std::nullopt;
		at += *o;
		id = static_cast<int32_t>(next);
	}
	if (at > 32767)
		return std::nullopt;
	return static_cast<int16_t>(at);
}

} // namespace bpfilter::loader
