// The iptables ABI's byte layout (offsets, sizes, constants) and safe accessors over raw bytes.
//
// The kernel's structs come from the uapi headers so that every offset below is checked
// against them at compile time; the bytes themselves are only ever read and written with
// memcpy at a checked offset, never through a cast, because a blob from a caller carries no
// alignment or aliasing promise.
#pragma once

#include <linux/netfilter/x_tables.h>
#include <linux/netfilter_ipv4/ip_tables.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace bpfilter::abi
{

inline constexpr uint32_t num_hooks = 5;	      // NF_INET_NUMHOOKS
inline constexpr uint32_t unset_offset = 0xFFFFFFFFu; // translate_table's "impossible value"

// XT_ALIGN: netfilter aligns every match and target to the largest scalar (8 on x86-64).
constexpr uint32_t xt_align(uint32_t n)
{
	return (n + 7u) & ~7u;
}

// struct ipt_entry
inline constexpr uint32_t entry_size = sizeof(struct ipt_entry); // 112
inline constexpr uint32_t entry_ip = offsetof(struct ipt_entry, ip);
inline constexpr uint32_t ip_size = sizeof(struct ipt_ip); // 84
inline constexpr uint32_t ip_src = offsetof(struct ipt_ip, src);
inline constexpr uint32_t ip_dst = offsetof(struct ipt_ip, dst);
inline constexpr uint32_t ip_smsk = offsetof(struct ipt_ip, smsk);
inline constexpr uint32_t ip_dmsk = offsetof(struct ipt_ip, dmsk);
inline constexpr uint32_t ip_iniface = offsetof(struct ipt_ip, iniface);
inline constexpr uint32_t ip_outiface = offsetof(struct ipt_ip, outiface);
inline constexpr uint32_t ip_iniface_mask = offsetof(struct ipt_ip, iniface_mask);
inline constexpr uint32_t ip_outiface_mask = offsetof(struct ipt_ip, outiface_mask);
inline constexpr uint32_t ip_proto = offsetof(struct ipt_ip, proto);
inline constexpr uint32_t ip_flags = offsetof(struct ipt_ip, flags);
inline constexpr uint32_t ip_invflags = offsetof(struct ipt_ip, invflags);
inline constexpr uint32_t entry_nfcache = offsetof(struct ipt_entry, nfcache);
inline constexpr uint32_t entry_target_offset = offsetof(struct ipt_entry, target_offset);
inline constexpr uint32_t entry_next_offset = offsetof(struct ipt_entry, next_offset);
inline constexpr uint32_t entry_comefrom = offsetof(struct ipt_entry, comefrom);
inline constexpr uint32_t entry_counters = offsetof(struct ipt_entry, counters);
static_assert(entry_size == 112 && ip_size == 84 && entry_counters == 96);

// struct xt_entry_match / xt_entry_target: same header, 32 bytes.
inline constexpr uint32_t ext_header_size = sizeof(struct xt_entry_match);
inline constexpr uint32_t ext_size = 0; // u.user.match_size / target_size
inline constexpr uint32_t ext_name = offsetof(struct xt_entry_match, u.user.name);
inline constexpr uint32_t ext_name_len = XT_EXTENSION_MAXNAMELEN; // 29
inline constexpr uint32_t ext_revision = offsetof(struct xt_entry_match, u.user.revision);
static_assert(ext_header_size == 32 && sizeof(struct xt_entry_target) == 32);
static_assert(ext_name == 2 && ext_revision == 31);
static_assert(offsetof(struct xt_entry_target, u.user.name) == ext_name);

// struct xt_standard_target (verdict after the header) and xt_error_target.
inline constexpr uint32_t standard_target_size =
	sizeof(struct xt_standard_target); // 40: the header is 8-aligned
inline constexpr uint32_t error_target_size = sizeof(struct xt_error_target); // 64
inline constexpr uint32_t error_name_len = XT_FUNCTION_MAXNAMELEN;	      // 30
static_assert(standard_target_size == 40 && error_target_size == 64);

// struct ipt_replace, ipt_getinfo, ipt_get_entries, xt_counters_info, xt_get_revision.
inline constexpr uint32_t table_name_len = XT_TABLE_MAXNAMELEN;	     // 32
inline constexpr uint32_t replace_size = sizeof(struct ipt_replace); // 96
inline constexpr uint32_t replace_valid_hooks = offsetof(struct ipt_replace, valid_hooks);
inline constexpr uint32_t replace_num_entries = offsetof(struct ipt_replace, num_entries);
inline constexpr uint32_t replace_size_field = offsetof(struct ipt_replace, size);
inline constexpr uint32_t replace_hook_entry = offsetof(struct ipt_replace, hook_entry);
inline constexpr uint32_t replace_underflow = offsetof(struct ipt_replace, underflow);
inline constexpr uint32_t replace_num_counters = offsetof(struct ipt_replace, num_counters);
inline constexpr uint32_t replace_counters = offsetof(struct ipt_replace, counters);
static_assert(replace_size == 96 && replace_counters == 88);
inline constexpr uint32_t getinfo_size = sizeof(struct ipt_getinfo); // 84
inline constexpr uint32_t getinfo_valid_hooks = offsetof(struct ipt_getinfo, valid_hooks);
inline constexpr uint32_t getinfo_hook_entry = offsetof(struct ipt_getinfo, hook_entry);
inline constexpr uint32_t getinfo_underflow = offsetof(struct ipt_getinfo, underflow);
inline constexpr uint32_t getinfo_num_entries = offsetof(struct ipt_getinfo, num_entries);
inline constexpr uint32_t getinfo_size_field = offsetof(struct ipt_getinfo, size);
static_assert(getinfo_size == 84);
inline constexpr uint32_t get_entries_size = sizeof(struct ipt_get_entries); // 40
inline constexpr uint32_t get_entries_size_field = offsetof(struct ipt_get_entries, size);
static_assert(get_entries_size == 40);
inline constexpr uint32_t counters_info_size = sizeof(struct xt_counters_info); // 40
inline constexpr uint32_t counters_info_num = offsetof(struct xt_counters_info, num_counters);
inline constexpr uint32_t counters_size = sizeof(struct xt_counters); // 16: pcnt, bcnt
static_assert(counters_info_size == 40 && counters_size == 16);
inline constexpr uint32_t get_revision_size = sizeof(struct xt_get_revision); // 30
static_assert(get_revision_size == 30);

// sizeof(struct xt_table_info) on x86-64: xt_alloc_table_info refuses sizes that, added to
// it, reach XT_MAX_TABLE_SIZE.
inline constexpr uint64_t xt_table_info_size = 64;
inline constexpr uint64_t xt_max_table_size = 512u * 1024 * 1024;

// Standard verdicts as stored: -NF_x - 1; XT_RETURN is -NF_REPEAT - 1.
inline constexpr int32_t verdict_drop = -0 - 1;
inline constexpr int32_t verdict_accept = -1 - 1;
inline constexpr int32_t verdict_queue = -3 - 1;
inline constexpr int32_t verdict_return = XT_RETURN;
static_assert(XT_RETURN == -5);

// Reads and writes at an offset the caller has bounds-checked.
template <typename T> T load(std::span<const uint8_t> bytes, size_t off)
{
	T v;
	std::memcpy(&v, bytes.data() + off, sizeof(T));
	return v;
}

template <typename T> void store(std::span<uint8_t> bytes, size_t off, T v)
{
	std::memcpy(bytes.data() + off, &v, sizeof(T));
}

// The bytes of a fixed-size name field up to its first NUL (or all of them).
inline std::string_view field_name(std::span<const uint8_t> bytes, size_t off, size_t len)
{
	const char *p = reinterpret_cast<const char *>(bytes.data() + off);
	return std::string_view(p, strnlen(p, len));
}

// strnlen(name, len) == len: the kernel's test for a name without its NUL.
inline bool field_unterminated(std::span<const uint8_t> bytes, size_t off, size_t len)
{
	return std::memchr(bytes.data() + off, 0, len) == nullptr;
}

} // namespace bpfilter::abi
