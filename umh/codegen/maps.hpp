// Layouts of the maps that generated programs read and write, shared with the loader.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

namespace bpfilter::codegen::maps {

// Counters: BPF_MAP_TYPE_PERCPU_ARRAY, key u32 rule index, one entry per rule.
struct CounterValue {
	uint64_t packets;
	uint64_t bytes; // IP datagram (tot_len), as netfilter counts skb->len
};
inline constexpr uint32_t counters_type = BPF_MAP_TYPE_PERCPU_ARRAY;

// Ifnames: BPF_MAP_TYPE_HASH, key u32 ifindex, value the device's name as the kernel
// keeps it (NUL padded to 16 bytes). A missing ifindex reads as the all-zero name.
struct IfnameValue {
	uint8_t name[16];
};
inline constexpr uint32_t ifnames_type = BPF_MAP_TYPE_HASH;
inline constexpr uint32_t ifnames_max_entries = 4096;

// LocalAddrs: BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC), the namespace's local routing
// table (local and broadcast routes, 127/8 among them). Value: 1.
struct LocalAddrKey {
	uint32_t prefixlen;
	uint32_t addr; // network byte order
};
using LocalAddrValue = uint8_t;
inline constexpr uint32_t local_addrs_type = BPF_MAP_TYPE_LPM_TRIE;
inline constexpr uint32_t local_addrs_max_entries = 4096;

static_assert(sizeof(CounterValue) == 16);
static_assert(sizeof(IfnameValue) == 16);
static_assert(sizeof(LocalAddrKey) == 8);

} // namespace bpfilter::codegen::maps
