// xt_connlimit's counting (nf_conncount.c and xt_connlimit.c of Debian's 6.1) in C++: the
// reference the evaluator runs, and that a data plane for -m connlimit is to be tested
// against. Each function names the kernel function it follows.
//
// One rule's connlimit match owns an nf_conncount_data: a list of connection tuples per key
// (the masked address; IPv4 keys also hold the zone, always the default one here). A packet
// that reaches the match adds its connection's tuple to its key's list unless the list has
// it already, first dropping the tuples whose connection is gone from the kernel's table
// or closed (find_or_evict(), already_closed()), and the match compares the list's length
// with the limit. Not modelled: insert_tree() also collects the lists it passes in the
// tree on its way to a new key, and tree_gc_worker() collects lists in the background;
// which lists those are depends on a random hash seed (conncount_rnd). Both only drop
// tuples that the key's own next walk would drop.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace bpfilter::ir::connlimit
{

inline constexpr uint32_t gc_max_collect = 64; // CONNCOUNT_GC_MAX_COLLECT
inline constexpr uint8_t ipproto_tcp = 6;
// enum tcp_conntrack: the states already_closed() drops.
inline constexpr uint8_t tcp_time_wait = 7, tcp_close = 8;

// The IPv4 part of struct nf_conntrack_tuple as nf_ct_get_tuple() fills it: addresses in
// network order; for TCP, UDP, UDP-Lite, SCTP and DCCP the ports, for ICMP the id (sport)
// and type << 8 | code (dport), host order; 0 for every other protocol.
struct Tuple {
	uint32_t src = 0, dst = 0;
	uint16_t sport = 0, dport = 0;
	uint8_t proto = 0;
	auto operator<=>(const Tuple &) const = default;
};

// What nf_conntrack_find_get() finds for a tuple: a confirmed entry of the kernel's table,
// its TCP state (enum tcp_conntrack) and whether it is IPS_ASSURED.
struct Entry {
	uint8_t tcp_state = 0;
	bool assured = false;
};
// The kernel's confirmed entries, by each tuple that finds them (both directions').
using Conntrack = std::map<Tuple, Entry>;

// struct nf_conncount_tuple (the zone is the default one).
struct Conn {
	Tuple tuple;
	uint32_t cpu = 0;
	uint32_t jiffies32 = 0;
};

// struct nf_conncount_list: its count is conns.size().
struct List {
	std::vector<Conn> conns;
	uint32_t last_gc = 0;
	uint32_t last_gc_count = 0;
};

// One match's nf_conncount_data: the lists by key (the masked address, network order).
using Data = std::map<uint32_t, List>;

// What get_ct_or_tuple_from_skb() finds for the packet: the tuple (the attached entry's
// original one, or nf_ct_get_tuplepr()'s; none when that fails), and whether the entry it
// stands for is confirmed (attached and confirmed, or found by nf_conntrack_find_get())
// and assured. `cpu` and `jiffies` are the processor and (u32)jiffies it is counted on.
struct Packet {
	std::optional<Tuple> tuple;
	bool confirmed = false;
	bool assured = false;
	uint32_t cpu = 0;
	uint32_t jiffies = 0;
};

// already_closed()
inline bool already_closed(const Tuple &t, const Entry &e)
{
	return t.proto == ipproto_tcp && (e.tcp_state == tcp_time_wait || e.tcp_state == tcp_close);
}

// find_or_evict(): the entry for conns[i], or nothing; `evicted` says whether conns[i] was
// dropped (it is gone from the table, and this CPU added it or it is two jiffies old).
inline std::optional<Entry> find_or_evict(const Conntrack &ct, List &list, size_t i,
					  const Packet &pkt, bool &evicted)
{
	evicted = false;
	if (auto it = ct.find(list.conns[i].tuple); it != ct.end())
		return it->second;
	const uint32_t age = pkt.jiffies - list.conns[i].jiffies32;
	if (list.conns[i].cpu == pkt.cpu || age >= 2) {
		list.conns.erase(list.conns.begin() + static_cast<std::ptrdiff_t>(i));
		evicted = true;
	}
	return std::nullopt;
}

enum class AddResult : uint8_t { Ok, Exists, NoTuple };

// __nf_conncount_add()
inline AddResult add(const Conntrack &ct, List &list, const Packet &pkt)
{
	if (!pkt.tuple)
		return AddResult::NoTuple;
	const Tuple &tuple = *pkt.tuple;
	bool walk = true;
	if (pkt.confirmed) {
		// Confirmed but maybe still being set up: only a fully assured one is skipped.
		if (pkt.assured)
			return AddResult::Exists;
	} else if (pkt.jiffies == list.last_gc &&
		   static_cast<uint32_t>(list.conns.size()) - list.last_gc_count < gc_max_collect) {
		walk = false;
	}
	if (walk) {
		uint32_t collect = 0;
		for (size_t i = 0; i < list.conns.size();) {
			if (collect > gc_max_collect)
				break;
			const Tuple seen = list.conns[i].tuple;
			bool evicted = false;
			const std::optional<Entry> found = find_or_evict(ct, list, i, pkt, evicted);
			if (!found) {
				if (!evicted) { // might be about to be confirmed
					if (seen == tuple)
						return AddResult::Ok; // already there
					i++;
				} else {
					collect++;
				}
				continue;
			}
			if (seen == tuple)
				return AddResult::Ok; // seen twice: no re-add
			if (already_closed(seen, *found)) {
				list.conns.erase(list.conns.begin() +
						 static_cast<std::ptrdiff_t>(i));
				collect++;
				continue;
			}
			i++;
		}
		list.last_gc = pkt.jiffies;
		list.last_gc_count = static_cast<uint32_t>(list.conns.size());
	}
	list.conns.push_back({tuple, pkt.cpu, pkt.jiffies});
	return AddResult::Ok;
}

// __nf_conncount_gc_list(), with the list lock taken (nf_conncount_gc_list()).
inline void gc_list(const Conntrack &ct, List &list, const Packet &pkt)
{
	if (pkt.jiffies == list.last_gc)
		return; // just done
	uint32_t collected = 0;
	for (size_t i = 0; i < list.conns.size();) {
		const Tuple seen = list.conns[i].tuple;
		bool evicted = false;
		const std::optional<Entry> found = find_or_evict(ct, list, i, pkt, evicted);
		if (!found) {
			if (evicted)
				collected++;
			else
				i++;
			continue;
		}
		if (already_closed(seen, *found)) {
			list.conns.erase(list.conns.begin() + static_cast<std::ptrdiff_t>(i));
			collected++;
			continue;
		}
		i++;
		if (collected > gc_max_collect)
			break;
	}
	list.last_gc = pkt.jiffies;
	list.last_gc_count = static_cast<uint32_t>(list.conns.size());
}

// count_tree() with a packet (insert_tree() for a key without a list): the connections
// counted for `key`, 0 when the packet's tuple cannot be had (connlimit_mt() hotdrops).
inline uint32_t count(Data &data, uint32_t key, const Conntrack &ct, const Packet &pkt)
{
	auto it = data.find(key);
	if (it != data.end()) {
		List &list = it->second;
		// An emptied list is about to be freed: insert_tree() adds to it, and does not
		// collect it after a skipped add (it is empty either way).
		const bool emptied = list.conns.empty();
		const AddResult r = add(ct, list, pkt);
		if (r == AddResult::NoTuple)
			return 0;
		if (r == AddResult::Exists && !emptied)
			gc_list(ct, list, pkt);
		return static_cast<uint32_t>(list.conns.size());
	}
	if (!pkt.tuple)
		return 0;
	List list; // nf_conncount_list_init()
	list.last_gc = pkt.jiffies;
	list.conns.push_back({*pkt.tuple, pkt.cpu, pkt.jiffies});
	data.emplace(key, std::move(list));
	return 1;
}

// connlimit_mt() on the count: more than `limit`, xor the inversion (--connlimit-upto);
// a count of 0 drops the packet.
struct Verdict {
	bool match = false;
	bool hotdrop = false;
};
inline Verdict decide(uint32_t connections, uint32_t limit, bool invert)
{
	if (connections == 0)
		return {false, true};
	return {(connections > limit) != invert, false};
}

} // namespace bpfilter::ir::connlimit
