// The BTF of maps' keys and values, so that bpftool map dump prints their fields.
#include "loader/map_btf.hpp"

#include <bpf/btf.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "codegen/maps.hpp"

namespace bpfilter::loader
{

namespace maps = codegen::maps;

void MapBtf::apply(bpf_map_create_opts &opts) const
{
	opts.btf_fd = static_cast<uint32_t>(fd.get());
	opts.btf_key_type_id = key;
	opts.btf_value_type_id = value;
}

MapBtfBuilder::MapBtfBuilder() : b_(btf__new_empty())
{
	if (!b_)
		err_ = errno ? -errno : -ENOMEM;
}

int MapBtfBuilder::keep(int id)
{
	if (id < 0 && !err_)
		err_ = id;
	return id;
}

int MapBtfBuilder::add_int(int &cache, const char *name, uint32_t bytes)
{
	if (!cache && b_)
		cache = keep(btf__add_int(b_.get(), name, bytes, 0));
	return cache;
}

int MapBtfBuilder::u8()
{
	return add_int(u8_, "u8", 1);
}

int MapBtfBuilder::u16()
{
	return add_int(u16_, "u16", 2);
}

int MapBtfBuilder::u32()
{
	return add_int(u32_, "u32", 4);
}

int MapBtfBuilder::u64()
{
	return add_int(u64_, "u64", 8);
}

int MapBtfBuilder::add_struct(const char *name, uint32_t size, std::initializer_list<Field> fields)
{
	if (!b_ || err_)
		return -1;
	const int id = keep(btf__add_struct(b_.get(), name, size));
	for (const Field &f : fields)
		if (!err_)
			keep(btf__add_field(b_.get(), f.name, f.type, f.byte_offset * 8, 0));
	return id;
}

int MapBtfBuilder::add_array(int elem, uint32_t nelems)
{
	const int index = u32();
	if (!b_ || err_)
		return -1;
	return keep(btf__add_array(b_.get(), index, elem, nelems));
}

Result<MapBtf> MapBtfBuilder::load(int key, int value, const std::string &what)
{
	if (err_ || key < 0 || value < 0)
		return make_error(err_ ? -err_ : EINVAL,
				  "loader: making the BTF of the " + what + " map failed");
	if (btf__load_into_kernel(b_.get()) != 0) {
		const int err = errno;
		return make_error(err, "loader: loading the BTF of the " + what +
					       " map: " + std::strerror(err));
	}
	MapBtf out;
	out.fd = Fd(dup(btf__fd(b_.get())));
	if (!out.fd)
		return make_error(errno, "loader: keeping the BTF of the " + what + " map");
	out.key = static_cast<uint32_t>(key);
	out.value = static_cast<uint32_t>(value);
	return out;
}

Result<MapBtf> counters_map_btf(uint32_t value_size)
{
	MapBtfBuilder b;
	const int u64 = b.u64();
	const int rule = b.add_struct("bpfilter_rule_counter", sizeof(maps::CounterValue),
				      {{"packets", u64, offsetof(maps::CounterValue, packets)},
				       {"bytes", u64, offsetof(maps::CounterValue, bytes)}});
	const int rules = b.add_array(rule, value_size / sizeof(maps::CounterValue));
	const int value = b.add_struct("bpfilter_counters", value_size, {{"rule", rules, 0}});
	return b.load(b.u32(), value, "counters");
}

Result<MapBtf> ct_own_map_btf()
{
	MapBtfBuilder b;
	const int u32 = b.u32();
	const int u64 = b.u64();
	using K = maps::CtOwnKey;
	using V = maps::CtOwnValue;
	const int key = b.add_struct("bpfilter_ct_key", sizeof(K),
				     {{"src", u32, offsetof(K, src)},
				      {"dst", u32, offsetof(K, dst)},
				      {"info", u32, offsetof(K, info)},
				      {"proto", u32, offsetof(K, proto)}});
	const int value = b.add_struct("bpfilter_ct_entry", sizeof(V),
				       {{"expires", u64, offsetof(V, expires)},
					{"status", u32, offsetof(V, status)},
					{"pad", u32, offsetof(V, pad)}});
	return b.load(key, value, "own flows");
}

Result<MapBtf> recent_entries_map_btf()
{
	MapBtfBuilder b;
	const int u8 = b.u8();
	const int u16 = b.u16();
	const int u32 = b.u32();
	const int u64 = b.u64();
	using K = maps::RecentKey;
	using V = maps::RecentEntry;
	const int key =
		b.add_struct("bpfilter_recent_key", sizeof(K),
			     {{"list", u32, offsetof(K, list)}, {"addr", u32, offsetof(K, addr)}});
	const int stamps = b.add_array(u64, sizeof(V::stamps) / sizeof(V::stamps[0]));
	const int value = b.add_struct("bpfilter_recent_entry", sizeof(V),
				       {{"seq", u64, offsetof(V, seq)},
					{"ttl", u8, offsetof(V, ttl)},
					{"index", u8, offsetof(V, index)},
					{"nstamps", u16, offsetof(V, nstamps)},
					{"pad", u32, offsetof(V, pad)},
					{"stamps", stamps, offsetof(V, stamps)}});
	return b.load(key, value, "-m recent entries");
}

} // namespace bpfilter::loader
