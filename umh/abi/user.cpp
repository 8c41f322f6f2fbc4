// What ip_tables writes back to the caller: GET_INFO, GET_ENTRIES and the counters arrays.
#include <algorithm>
#include <climits>

#include "abi/extensions.hpp"
#include "abi/table.hpp"

namespace bpfilter::abi
{
namespace
{

// xt_obj_to_user + xt_data_to_user for one match or target at `pos`: size, the registered
// name with its NUL, revision, then the data up to the extension's size and zeroes up to
// XT_ALIGN(size) (only usersize bytes of data where the extension has one). The rest of the name
// field is left as the (zeroed) buffer had it.
void extension_to_user(std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t pos,
		       ExtKind kind)
{
	const uint16_t size = load<uint16_t>(in, pos + ext_size);
	auto ext = find_extension(kind, in.subspan(pos + ext_name, ext_name_len),
				  in[pos + ext_revision]);
	store<uint16_t>(out, pos + ext_size, size);
	if (!ext.ok()) // a stored table only holds extensions find_extension knows
		return;
	const Extension &x = **ext;
	std::memcpy(out.data() + pos + ext_name, x.name.data(), x.name.size());
	out[pos + ext_name + x.name.size()] = 0;
	out[pos + ext_revision] = x.revision;
	const uint32_t usersize = x.usersize ? x.usersize : x.size;
	std::memcpy(out.data() + pos + ext_header_size, in.data() + pos + ext_header_size,
		    usersize);
	std::memset(out.data() + pos + ext_header_size + usersize, 0, xt_align(x.size) - usersize);
}

} // namespace

std::vector<uint8_t> getinfo_reply(const StoredTable &table)
{
	return getinfo_reply(table, table.entries.size());
}

std::vector<uint8_t> getinfo_reply(const PackedTable &table)
{
	return getinfo_reply(table.meta, table.size);
}

std::vector<uint8_t> getinfo_reply(const StoredTable &table, size_t size)
{
	std::vector<uint8_t> out(getinfo_size, 0);
	std::span<uint8_t> s = out;
	std::memcpy(out.data(), table.name.data(),
		    std::min<size_t>(table.name.size(), table_name_len - 1));
	store<uint32_t>(s, getinfo_valid_hooks, table.valid_hooks);
	for (uint32_t h = 0; h < num_hooks; h++) {
		store<uint32_t>(s, getinfo_hook_entry + 4 * h, table.hook_entry[h]);
		store<uint32_t>(s, getinfo_underflow + 4 * h, table.underflow[h]);
	}
	store<uint32_t>(s, getinfo_num_entries, static_cast<uint32_t>(table.offsets.size()));
	store<uint32_t>(s, getinfo_size_field, static_cast<uint32_t>(size));
	return out;
}

std::vector<uint8_t> entries_to_user(const StoredTable &table,
				     std::span<const ir::Counter> counters)
{
	std::vector<uint8_t> out(table.entries.size(), 0);
	entries_to_user(table, counters, out);
	return out;
}

void entries_to_user(const StoredTable &table, std::span<const ir::Counter> counters,
		     std::span<uint8_t> s)
{
	const std::span<const uint8_t> in = table.entries;
	uint8_t *const out = s.data();
	std::fill(s.begin(), s.end(), uint8_t{0}); // memset's pointer may not be null when empty
	for (uint32_t k = 0; k < table.offsets.size(); k++) {
		const uint32_t off = table.offsets[k];
		// The entry up to its counters, then the counters summed for it.
		std::memcpy(out + off, in.data() + off, entry_counters);
		const ir::Counter c = k < counters.size() ? counters[k] : ir::Counter{};
		store<uint64_t>(s, off + entry_counters, c.packets);
		store<uint64_t>(s, off + entry_counters + 8, c.bytes);
		const uint32_t target_offset = load<uint16_t>(in, off + entry_target_offset);
		for (uint32_t i = entry_size; i < target_offset;
		     i += load<uint16_t>(in, off + i + ext_size))
			extension_to_user(in, s, off + i, ExtKind::Match);
		extension_to_user(in, s, off + target_offset, ExtKind::Target);
	}
}

Result<CountersInfo> parse_counters(std::span<const uint8_t> optval)
{
	// xt_copy_counters()
	if (optval.size() <= counters_info_size)
		return make_error(
			EINVAL,
			"optlen " + std::to_string(optval.size()) +
				" leaves no room for counters after struct xt_counters_info");
	const uint64_t len = optval.size() - counters_info_size;
	CountersInfo info;
	info.name = std::string(field_name(optval, 0, table_name_len - 1));
	const uint32_t num = load<uint32_t>(optval, counters_info_num);
	if (static_cast<uint64_t>(num) * counters_size != len)
		return make_error(EINVAL, "num_counters " + std::to_string(num) +
						  " does not match the " + std::to_string(len) +
						  " bytes of counters given");
	info.counters.resize(num);
	for (uint32_t k = 0; k < num; k++) {
		const size_t at = counters_info_size + static_cast<size_t>(k) * counters_size;
		info.counters[k].packets = load<uint64_t>(optval, at);
		info.counters[k].bytes = load<uint64_t>(optval, at + 8);
	}
	return info;
}

std::vector<uint8_t> counters_to_user(std::span<const ir::Counter> counters)
{
	std::vector<uint8_t> out(counters.size() * counters_size);
	std::span<uint8_t> s = out;
	for (size_t k = 0; k < counters.size(); k++) {
		store<uint64_t>(s, k * counters_size, counters[k].packets);
		store<uint64_t>(s, k * counters_size + 8, counters[k].bytes);
	}
	return out;
}

} // namespace bpfilter::abi
