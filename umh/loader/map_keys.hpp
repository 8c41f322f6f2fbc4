// Every key of a BPF map, for the helper's walks over its namespace maps.
#pragma once

#include <bpf/bpf.h>

#include <vector>

namespace bpfilter::loader
{

// The keys of map `fd` in the map's order (bpf_map_get_next_key()); Key is the map's key type.
template <class Key> std::vector<Key> map_keys(int fd)
{
	std::vector<Key> keys;
	Key k{}, next{};
	const void *prev = nullptr;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		keys.push_back(next);
		k = next;
		prev = &k;
	}
	return keys;
}

} // namespace bpfilter::loader
