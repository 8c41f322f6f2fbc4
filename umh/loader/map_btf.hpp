// The BTF of maps' keys and values, so that bpftool map dump prints their fields.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/result.hpp"
#include "loader/btf.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

// A map's key and value types, in BTF loaded into the kernel: what bpf_map_create_opts'
// btf_fd, btf_key_type_id and btf_value_type_id take. The map keeps its own reference to
// the BTF, so fd may go once the map exists.
struct MapBtf {
	Fd fd;
	uint32_t key = 0, value = 0;
	// Sets opts' BTF fields to these types.
	void apply(bpf_map_create_opts &opts) const;
};

// Builds one map's BTF: integers, structs, arrays; the first error sticks and load()
// reports it.
class MapBtfBuilder
{
public:
	struct Field {
		const char *name;
		int type;
		uint32_t byte_offset;
	};

	MapBtfBuilder();
	int u8();
	int u16();
	int u32();
	int u64();
	int add_struct(const char *name, uint32_t size, std::initializer_list<Field> fields);
	int add_array(int elem, uint32_t nelems);
	// Loads it into the kernel; `what` names the map in an error.
	Result<MapBtf> load(int key, int value, const std::string &what);

private:
	int keep(int id);
	int add_int(int &cache, const char *name, uint32_t bytes);

	BtfPtr b_;
	int err_ = 0;
	int u8_ = 0, u16_ = 0, u32_ = 0, u64_ = 0;
};

// Counters (codegen/maps.hpp): key u32, the block's number; value struct bpfilter_counters
// { struct bpfilter_rule_counter rule[n]; }, n = value_size / 16, each { packets, bytes }.
Result<MapBtf> counters_map_btf(uint32_t value_size);
// CtOwn: struct bpfilter_ct_key { src, dst, info, proto } to struct bpfilter_ct_entry.
Result<MapBtf> ct_own_map_btf();
// RecentEntries: struct bpfilter_recent_key { list, addr } to struct bpfilter_recent_entry.
Result<MapBtf> recent_entries_map_btf();

} // namespace bpfilter::loader
