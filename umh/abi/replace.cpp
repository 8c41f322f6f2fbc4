// IPT_SO_SET_REPLACE's argument checked as ip_tables' do_replace and translate_table do.
//
// Each function mirrors one kernel function (named in its comment) and returns the errno
// the kernel returns at the same point, so a table is refused by us exactly when, and with
// the errno that, net/ipv4/netfilter/ip_tables.c of Linux 6.1 would refuse it.
#include <algorithm>
#include <array>
#include <climits>
#include <string>

#include "abi/extensions.hpp"
#include "abi/table.hpp"
#include "common/log.hpp"

namespace bpfilter::abi
{
namespace
{

// A view of the entry blob that translate_table works on, with the entry offsets found.
struct Blob {
	std::span<uint8_t> bytes;
	uint32_t size() const { return static_cast<uint32_t>(bytes.size()); }
	std::span<const uint8_t> cbytes() const { return bytes; }
};

// The ipt_replace fields translate_table reads.
struct ReplaceHeader {
	std::string name;
	uint32_t valid_hooks = 0;
	uint32_t num_entries = 0;
	uint32_t size = 0;
	std::array<uint32_t, num_hooks> hook_entry{};
	std::array<uint32_t, num_hooks> underflow{};
};

Error entry_error(int errnum, uint32_t index, uint32_t off, const std::string &what)
{
	return make_error(errnum, "entry " + std::to_string(index) + " at offset " +
					  std::to_string(off) + ": " + what);
}

uint16_t target_offset_of(std::span<const uint8_t> b, uint32_t off)
{
	return load<uint16_t>(b, off + entry_target_offset);
}

uint16_t next_offset_of(std::span<const uint8_t> b, uint32_t off)
{
	return load<uint16_t>(b, off + entry_next_offset);
}

// strcmp(t->u.user.name, want) for a name field that may lack its NUL: only the first
// strlen(want) + 1 bytes can decide, and they lie inside the 29-byte field.
bool target_name_is(std::span<const uint8_t> b, uint32_t t, std::string_view want)
{
	return std::memcmp(b.data() + t + ext_name, want.data(), want.size()) == 0 &&
	       b[t + ext_name + want.size()] == 0;
}

// unconditional(): the target right after the header and an all-zero ipt_ip.
bool unconditional(std::span<const uint8_t> b, uint32_t off)
{
	if (target_offset_of(b, off) != entry_size)
		return false;
	for (uint32_t i = 0; i < ip_size; i++)
		if (b[off + entry_ip + i] != 0)
			return false;
	return true;
}

// verdict_ok() in x_tables.c.
bool verdict_ok(int32_t verdict)
{
	if (verdict > 0)
		return true;
	if (verdict < 0) {
		if (verdict == verdict_return)
			return true;
		return verdict == verdict_accept || verdict == verdict_drop ||
		       verdict == verdict_queue;
	}
	return false;
}

// ip_checkentry()
bool ip_checkentry(std::span<const uint8_t> b, uint32_t off)
{
	return !(b[off + ip_flags] & ~IPT_F_MASK) && !(b[off + ip_invflags] & ~IPT_INV_MASK);
}

// xt_check_entry_match(): the matches tile [elems, target) and each is aligned and big
// enough for its header.
Status check_entry_match(std::span<const uint8_t> b, uint32_t off, uint32_t index)
{
	const uint32_t target_offset = target_offset_of(b, off);
	int length = static_cast<int>(target_offset) - static_cast<int>(entry_size);
	uint32_t pos = off + entry_size;
	if (length == 0)
		return {};
	do {
		if (pos % alignof(struct xt_entry_match))
			return entry_error(EINVAL, index, off,
					   "match at " + std::to_string(pos - off) +
						   " is not aligned");
		if (length < static_cast<int>(ext_header_size))
			return entry_error(EINVAL, index, off,
					   "no room for a match header before the target");
		const uint16_t match_size = load<uint16_t>(b, pos + ext_size);
		if (match_size < ext_header_size)
			return entry_error(EINVAL, index, off,
					   "match_size " + std::to_string(match_size) +
						   " is smaller than its header");
		if (match_size > length)
			return entry_error(EINVAL, index, off,
					   "match_size " + std::to_string(match_size) +
						   " runs past target_offset");
		length -= match_size;
		pos += match_size;
	} while (length > 0);
	return {};
}

// xt_check_entry_offsets()
Status check_entry_offsets(std::span<const uint8_t> b, uint32_t off, uint32_t index)
{
	const uint32_t target_offset = target_offset_of(b, off);
	const uint32_t next_offset = next_offset_of(b, off);
	if (target_offset < entry_size)
		return entry_error(EINVAL, index, off,
				   "target_offset " + std::to_string(target_offset) +
					   " lies inside the entry header");
	if (target_offset + ext_header_size > next_offset)
		return entry_error(EINVAL, index, off,
				   "no room for the target header before next_offset");
	const uint32_t t = off + target_offset;
	const uint16_t target_size = load<uint16_t>(b, t + ext_size);
	if (target_size < ext_header_size)
		return entry_error(EINVAL, index, off,
				   "target_size " + std::to_string(target_size) +
					   " is smaller than its header");
	if (target_offset + target_size > next_offset)
		return entry_error(EINVAL, index, off, "target runs past next_offset");
	if (target_name_is(b, t, XT_STANDARD_TARGET)) {
		if (xt_align(target_offset + standard_target_size) != next_offset)
			return entry_error(
				EINVAL, index, off,
				"standard target: next_offset is not XT_ALIGN(target_offset + 40)");
		const auto verdict = load<int32_t>(b, t + ext_header_size);
		if (!verdict_ok(verdict))
			return entry_error(EINVAL, index, off,
					   "standard target: bad verdict " +
						   std::to_string(verdict));
	} else if (target_name_is(b, t, XT_ERROR_TARGET)) {
		if (target_size != error_target_size ||
		    field_unterminated(b, t + ext_header_size, error_name_len))
			return entry_error(EINVAL, index, off,
					   "ERROR target: bad size or unterminated name");
	}
	return check_entry_match(b, off, index);
}

// check_underflow(): a policy is an unconditional standard ACCEPT or DROP.
bool check_underflow(std::span<const uint8_t> b, uint32_t off)
{
	if (!unconditional(b, off))
		return false;
	const uint32_t t = off + target_offset_of(b, off);
	if (!target_name_is(b, t, XT_STANDARD_TARGET))
		return false;
	const uint32_t verdict = -static_cast<uint32_t>(load<int32_t>(b, t + ext_header_size)) - 1;
	return verdict == 0 /* NF_DROP */ || verdict == 1 /* NF_ACCEPT */;
}

// check_entry_size_and_hooks()
Status check_entry_size_and_hooks(Blob blob, uint32_t off, uint32_t index,
				  const ReplaceHeader &repl, StoredTable &info)
{
	const auto b = blob.cbytes();
	if (off % alignof(struct ipt_entry) != 0)
		return entry_error(EINVAL, index, off, "entry is not 8-byte aligned");
	if (static_cast<uint64_t>(off) + entry_size >= blob.size())
		return entry_error(EINVAL, index, off,
				   "entry header runs to or past the end of the table");
	const uint32_t next_offset = next_offset_of(b, off);
	if (static_cast<uint64_t>(off) + next_offset > blob.size())
		return entry_error(EINVAL, index, off,
				   "next_offset " + std::to_string(next_offset) +
					   " runs past the end of the table");
	if (next_offset < entry_size + ext_header_size)
		return entry_error(EINVAL, index, off,
				   "next_offset " + std::to_string(next_offset) +
					   " leaves no room for a target");
	if (!ip_checkentry(b, off))
		return entry_error(EINVAL, index, off, "unknown bits in ip.flags or ip.invflags");
	BF_TRY(check_entry_offsets(b, off, index));
	for (uint32_t h = 0; h < num_hooks; h++) {
		if (!(repl.valid_hooks & (1u << h)))
			continue;
		if (off == repl.hook_entry[h])
			info.hook_entry[h] = repl.hook_entry[h];
		if (off == repl.underflow[h]) {
			if (!check_underflow(b, off))
				return entry_error(
					EINVAL, index, off,
					"underflow of hook " + std::to_string(h) +
						" is not an unconditional ACCEPT or DROP");
			info.underflow[h] = repl.underflow[h];
		}
	}
	// Clear counters and comefrom.
	std::memset(blob.bytes.data() + off + entry_counters, 0, counters_size);
	store<uint32_t>(blob.bytes, off + entry_comefrom, 0);
	return {};
}

// xt_check_table_hooks()
Status check_table_hooks(const StoredTable &info, uint32_t valid_hooks)
{
	uint32_t max_entry = 0, max_uflow = 0;
	bool check_hooks = false;
	for (uint32_t i = 0; i < num_hooks; i++) {
		if (!(valid_hooks & (1u << i)))
			continue;
		if (info.hook_entry[i] == unset_offset)
			return make_error(EINVAL,
					  "hook " + std::to_string(i) +
						  ": hook_entry is not the offset of an entry");
		if (info.underflow[i] == unset_offset)
			return make_error(EINVAL,
					  "hook " + std::to_string(i) +
						  ": underflow is not the offset of an entry");
		if (check_hooks) {
			const char *err = nullptr;
			if (max_uflow > info.underflow[i])
				err = "unsorted underflow";
			else if (max_uflow == info.underflow[i])
				err = "duplicate underflow";
			else if (max_entry > info.hook_entry[i])
				err = "unsorted entry";
			else if (max_entry == info.hook_entry[i])
				err = "duplicate entry";
			if (err)
				return make_error(EINVAL, std::string(err) + " at hook " +
								  std::to_string(i));
		}
		max_entry = info.hook_entry[i];
		max_uflow = info.underflow[i];
		check_hooks = true;
	}
	return {};
}

// xt_find_jump_offset(): binary search of the sorted entry offsets.
bool find_jump_offset(const std::vector<uint32_t> &offsets, uint32_t target)
{
	return std::binary_search(offsets.begin(), offsets.end(), target);
}

// mark_source_chains(), step for step: the kernel keeps its back pointers in each entry's
// packet counter; we keep them beside the blob (they are zeroed and never returned). The
// comefrom words it leaves are part of what GET_ENTRIES returns.
bool mark_source_chains(StoredTable &info, uint32_t valid_hooks)
{
	std::span<uint8_t> b = info.entries;
	const uint32_t size = static_cast<uint32_t>(b.size());
	std::vector<uint32_t> back(info.offsets.size(), 0);
	auto idx = [&](uint32_t pos) {
		return static_cast<size_t>(
			std::lower_bound(info.offsets.begin(), info.offsets.end(), pos) -
			info.offsets.begin());
	};
	auto comefrom = [&](uint32_t pos) { return load<uint32_t>(b, pos + entry_comefrom); };
	auto set_comefrom = [&](uint32_t pos, uint32_t v) {
		store<uint32_t>(b, pos + entry_comefrom, v);
	};
	constexpr uint32_t on_path = 1u << num_hooks;

	for (uint32_t hook = 0; hook < num_hooks; hook++) {
		if (!(valid_hooks & (1u << hook)))
			continue;
		uint32_t pos = info.hook_entry[hook];
		uint32_t e = pos;
		back[idx(e)] = pos;
		for (;;) {
			const uint32_t t = e + target_offset_of(b, e);
			const bool standard = target_name_is(b, t, XT_STANDARD_TARGET);
			const bool visited = comefrom(e) & (1u << hook);
			if (comefrom(e) & on_path)
				return false;
			set_comefrom(e, comefrom(e) | (1u << hook) | on_path);
			if ((unconditional(b, e) && standard &&
			     load<int32_t>(b, t + ext_header_size) < 0) ||
			    visited) {
				// Return: backtrack through the last big jump.
				uint32_t oldpos;
				do {
					set_comefrom(e, comefrom(e) ^ on_path);
					oldpos = pos;
					pos = back[idx(e)];
					back[idx(e)] = 0;
					if (pos == oldpos)
						goto next;
					e = pos;
				} while (oldpos == pos + next_offset_of(b, e));
				// Move along one.
				const uint32_t step = next_offset_of(b, e);
				e = pos + step;
				if (pos + step >= size)
					return false;
				back[idx(e)] = pos;
				pos += step;
			} else {
				int32_t newpos =
					standard ? load<int32_t>(b, t + ext_header_size) : -1;
				if (standard && newpos >= 0) {
					// This is a jump; chase it.
					if (!find_jump_offset(info.offsets,
							      static_cast<uint32_t>(newpos)))
						return false;
				} else {
					// ... this is a fallthru.
					const uint32_t fall = pos + next_offset_of(b, e);
					if (fall >= size)
						return false;
					newpos = static_cast<int32_t>(fall);
				}
				e = static_cast<uint32_t>(newpos);
				back[idx(e)] = pos;
				pos = static_cast<uint32_t>(newpos);
			}
		}
	next:;
	}
	return true;
}

// textify_hooks(): "INPUT/FORWARD".
std::string hook_names(uint32_t mask)
{
	static constexpr std::array<const char *, num_hooks> names = {
		"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
	std::string out;
	for (uint32_t h = 0; h < num_hooks; h++)
		if (mask & (1u << h))
			out += (out.empty() ? "" : "/") + std::string(names[h]);
	return out;
}

// find_check_entry() for one entry: each match looked up and checked (xt_check_match and
// the match's checkentry), then the target (xt_check_target).
Status find_check_entry(std::span<const uint8_t> b, uint32_t off, uint32_t index,
			std::string_view table_name)
{
	const uint32_t target_offset = target_offset_of(b, off);
	const auto proto = load<uint16_t>(b, off + ip_proto);
	const uint8_t invflags = b[off + ip_invflags];
	for (uint32_t i = entry_size; i < target_offset;) {
		const uint32_t m = off + i;
		const uint16_t match_size = load<uint16_t>(b, m + ext_size);
		auto ext = find_extension(ExtKind::Match, b.subspan(m + ext_name, ext_name_len),
					  b[m + ext_revision]);
		if (!ext.ok())
			return entry_error(ext.error().errnum, index, off, ext.error().message);
		const Extension &x = **ext;
		if (xt_align(x.size) != match_size - ext_header_size)
			return entry_error(EINVAL, index, off,
					   std::string(x.name) + " match: invalid size " +
						   std::to_string(xt_align(x.size)) +
						   " (kernel) != (user) " +
						   std::to_string(match_size - ext_header_size));
		const uint32_t match_hooks =
			load<uint32_t>(b, off + entry_comefrom) & ((1u << num_hooks) - 1);
		if (x.hooks && (match_hooks & ~x.hooks))
			return entry_error(EINVAL, index, off,
					   std::string(x.name) + " match: used from hooks " +
						   hook_names(match_hooks) +
						   ", but only valid from " + hook_names(x.hooks));
		if (x.proto && (x.proto != proto || (invflags & XT_INV_PROTO)))
			return entry_error(EINVAL, index, off,
					   std::string(x.name) +
						   " match: only valid for protocol " +
						   std::to_string(x.proto));
		if (x.id == ExtId::Addrtype && x.revision == 1) {
			const uint32_t hook_mask =
				load<uint32_t>(b, off + entry_comefrom) & ((1u << num_hooks) - 1);
			const std::string_view why = check_addrtype_hooks(
				b.subspan(m + ext_header_size, xt_align(x.size)), hook_mask);
			if (!why.empty())
				return entry_error(EINVAL, index, off,
						   "addrtype match: " + std::string(why));
		}
		const int ret = check_extension(x, b.subspan(m + ext_header_size, xt_align(x.size)),
						proto, invflags);
		if (ret < 0 && x.id == ExtId::Hashlimit)
			return entry_error(
				-ret, index, off,
				"hashlimit match: " +
					std::string(check_hashlimit(b.subspan(m + ext_header_size,
									      xt_align(x.size)),
								    x.revision)
							    .why));
		if (ret < 0)
			return entry_error(-ret, index, off,
					   std::string(x.name) + " match: checkentry refused it");
		i += match_size;
	}
	const uint32_t t = off + target_offset;
	const uint16_t target_size = load<uint16_t>(b, t + ext_size);
	auto ext = find_extension(ExtKind::Target, b.subspan(t + ext_name, ext_name_len),
				  b[t + ext_revision]);
	if (!ext.ok())
		return entry_error(ext.error().errnum, index, off, ext.error().message);
	const Extension &x = **ext;
	const std::string what = "target \"" + std::string(x.name) + "\": ";
	if (xt_align(x.size) != target_size - ext_header_size)
		return entry_error(EINVAL, index, off,
				   what + "invalid size " + std::to_string(xt_align(x.size)) +
					   " (kernel) != (user) " +
					   std::to_string(target_size - ext_header_size));
	if (!x.table.empty() && x.table != table_name)
		return entry_error(EINVAL, index, off,
				   what + "only valid in " + std::string(x.table) + " table, not " +
					   std::string(table_name));
	// xt_check_target's hook_mask is the entry's comefrom, as mark_source_chains left it.
	const uint32_t hook_mask =
		load<uint32_t>(b, off + entry_comefrom) & ((1u << num_hooks) - 1);
	if (x.hooks && (hook_mask & ~x.hooks))
		return entry_error(EINVAL, index, off,
				   what + "used from hooks " + hook_names(hook_mask) +
					   ", but only usable from " + hook_names(x.hooks));
	if (x.proto && (x.proto != proto || (invflags & XT_INV_PROTO)))
		return entry_error(EINVAL, index, off,
				   what + "only valid for protocol " + std::to_string(x.proto));
	const int ret = check_extension(x, b.subspan(t + ext_header_size, xt_align(x.size)), proto,
					invflags);
	if (ret < 0)
		return entry_error(-ret, index, off, what + "checkentry refused it");
	return {};
}

// translate_table()
Result<StoredTable> translate_table(const ReplaceHeader &repl, std::vector<uint8_t> entries)
{
	StoredTable info;
	info.name = repl.name;
	info.valid_hooks = repl.valid_hooks;
	info.hook_entry.fill(unset_offset);
	info.underflow.fill(unset_offset);
	info.entries = std::move(entries);
	Blob blob{info.entries};

	// xt_alloc_entry_offsets(): the array is allocated for num_entries up front.
	if (repl.num_entries > xt_max_table_size / sizeof(uint32_t))
		return make_error(ENOMEM, "num_entries " + std::to_string(repl.num_entries) +
						  " is too large");

	// Walk through entries, checking offsets. Only the first num_entries offsets are
	// kept, as the kernel's array holds no more.
	uint32_t i = 0;
	for (uint32_t off = 0; off < blob.size(); off += next_offset_of(blob.cbytes(), off)) {
		BF_TRY(check_entry_size_and_hooks(blob, off, i, repl, info));
		if (i < repl.num_entries)
			info.offsets.push_back(off);
		++i;
	}
	if (i != repl.num_entries)
		return make_error(EINVAL, "the table holds " + std::to_string(i) +
						  " entries, num_entries says " +
						  std::to_string(repl.num_entries));
	BF_TRY(check_table_hooks(info, repl.valid_hooks));
	if (!mark_source_chains(info, repl.valid_hooks))
		return make_error(ELOOP,
				  "mark_source_chains: a loop, a jump to no entry's start, or "
				  "a chain that falls off the end of the table");
	// Finally, each sanity check must pass.
	for (uint32_t k = 0; k < info.offsets.size(); k++)
		BF_TRY(find_check_entry(info.entries, info.offsets[k], k, repl.name));
	return info;
}

ReplaceHeader read_header(std::span<const uint8_t> optval)
{
	ReplaceHeader h;
	// tmp.name[sizeof(tmp.name)-1] = 0
	h.name = std::string(field_name(optval, 0, table_name_len - 1));
	h.valid_hooks = load<uint32_t>(optval, replace_valid_hooks);
	h.num_entries = load<uint32_t>(optval, replace_num_entries);
	h.size = load<uint32_t>(optval, replace_size_field);
	for (uint32_t k = 0; k < num_hooks; k++) {
		h.hook_entry[k] = load<uint32_t>(optval, replace_hook_entry + 4 * k);
		h.underflow[k] = load<uint32_t>(optval, replace_underflow + 4 * k);
	}
	return h;
}

} // namespace

namespace
{

// do_replace's checks of the header, before the entries are copied in.
Result<Replace> check_header(std::span<const uint8_t> optval, ReplaceHeader &h)
{
	const uint64_t len = optval.size();
	if (len < replace_size)
		return make_error(EINVAL, "optlen " + std::to_string(len) +
						  " is shorter than struct ipt_replace");
	h = read_header(optval);
	Replace repl;
	repl.num_counters = load<uint32_t>(optval, replace_num_counters);
	repl.counters_ptr = load<uint64_t>(optval, replace_counters);
	// overflow check
	if (repl.num_counters >= INT_MAX / counters_size)
		return make_error(ENOMEM, "num_counters " + std::to_string(repl.num_counters) +
						  " is too large");
	if (repl.num_counters == 0)
		return make_error(EINVAL, "num_counters is 0");
	if (len < static_cast<uint64_t>(h.size) + replace_size)
		return make_error(EINVAL, "optlen " + std::to_string(len) +
						  " is shorter than the " + std::to_string(h.size) +
						  " bytes of entries it announces");
	// xt_alloc_table_info()
	if (xt_table_info_size + h.size >= xt_max_table_size)
		return make_error(ENOMEM, "table size " + std::to_string(h.size) + " is too large");
	return repl;
}

} // namespace

Result<Replace> parse_replace(std::span<const uint8_t> optval)
{
	ReplaceHeader h;
	auto repl = check_header(optval, h);
	if (!repl.ok())
		return repl;
	std::vector<uint8_t> entries(optval.begin() + replace_size,
				     optval.begin() + replace_size + h.size);
	auto table = translate_table(h, std::move(entries));
	if (!table.ok())
		return table.error();
	repl->table = std::move(*table);
	return repl;
}

Result<Replace> parse_replace(std::vector<uint8_t> &&optval)
{
	ReplaceHeader h;
	auto repl = check_header(optval, h);
	if (!repl.ok())
		return repl;
	optval.erase(optval.begin(), optval.begin() + replace_size);
	optval.resize(h.size);
	auto table = translate_table(h, std::move(optval));
	if (!table.ok())
		return table.error();
	repl->table = std::move(*table);
	return repl;
}

Status check_replace(const Replace &repl, const StoredTable &current)
{
	// xt_counters_alloc()
	if (repl.num_counters == 0 || repl.num_counters > INT_MAX / counters_size ||
	    static_cast<uint64_t>(repl.num_counters) * counters_size > xt_max_table_size)
		return make_error(ENOMEM,
				  "cannot hold " + std::to_string(repl.num_counters) + " counters");
	if (repl.table.name != current.name)
		return make_error(ENOENT, "no table \"" + repl.table.name + "\"");
	if (repl.table.valid_hooks != current.valid_hooks)
		return make_error(EINVAL, "valid_hooks " + std::to_string(repl.table.valid_hooks) +
						  " differs from the table's " +
						  std::to_string(current.valid_hooks));
	if (repl.num_counters != current.offsets.size())
		return make_error(EAGAIN, "num_counters " + std::to_string(repl.num_counters) +
						  " but the table has " +
						  std::to_string(current.offsets.size()) +
						  " entries: it changed since it was read");
	return {};
}

std::vector<uint8_t> initial_filter_entries()
{
	// ipt_alloc_initial_table(): one IPT_STANDARD_INIT(NF_ACCEPT) per hook, then
	// IPT_ERROR_INIT, all other bytes zero (kzalloc).
	constexpr uint32_t standard_entry = entry_size + xt_align(standard_target_size); // 152
	constexpr uint32_t error_entry = entry_size + error_target_size;		 // 176
	std::vector<uint8_t> b(3 * standard_entry + error_entry, 0);
	std::span<uint8_t> s = b;
	for (uint32_t k = 0; k < 3; k++) {
		const uint32_t off = k * standard_entry;
		store<uint16_t>(s, off + entry_target_offset, entry_size);
		store<uint16_t>(s, off + entry_next_offset, standard_entry);
		store<uint16_t>(s, off + entry_size + ext_size, xt_align(standard_target_size));
		store<int32_t>(s, off + entry_size + ext_header_size, verdict_accept);
	}
	const uint32_t off = 3 * standard_entry;
	store<uint16_t>(s, off + entry_target_offset, entry_size);
	store<uint16_t>(s, off + entry_next_offset, error_entry);
	store<uint16_t>(s, off + entry_size + ext_size, error_target_size);
	std::memcpy(b.data() + off + entry_size + ext_name, "ERROR", 5);
	std::memcpy(b.data() + off + entry_size + ext_header_size, "ERROR", 5);
	return b;
}

StoredTable initial_filter_table()
{
	ReplaceHeader h;
	h.name = std::string(filter_name);
	h.valid_hooks = filter_valid_hooks;
	h.num_entries = 4;
	h.size = static_cast<uint32_t>(initial_filter_entries().size());
	h.hook_entry = {0, 0, 152, 304, 0};
	h.underflow = {0, 0, 152, 304, 0};
	auto table = translate_table(h, initial_filter_entries());
	// The initial table is a constant; translate_table accepting it is checked by the
	// unit tests, so a failure here is a bug in this file.
	if (!table.ok()) {
		log::error("initial filter table refused: " + table.error().message);
		return StoredTable{};
	}
	return std::move(*table);
}

} // namespace bpfilter::abi
