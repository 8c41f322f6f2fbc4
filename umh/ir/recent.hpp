// xt_recent's lists (net/netfilter/xt_recent.c of 6.1) in C++: the reference the evaluator
// runs and the data plane is tested against, and the /proc/net/xt_recent line format.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace bpfilter::ir::recent
{

// The module's parameters as 6.1 and later ship them: ip_list_tot (entries a list keeps
// before it forgets the least recently updated) and ip_pkt_list_tot (0: the stamps a
// list keeps come from the rules' --hitcount, 32 without one).
inline constexpr uint32_t ip_list_tot = 100;
inline constexpr uint32_t ip_pkt_list_tot = 0;
inline constexpr uint32_t max_nstamps = 256; // XT_RECENT_MAX_NSTAMPS

// recent_mt_check()'s nstamp_mask for a rule with this --hitcount.
constexpr uint32_t nstamps_mask(uint32_t hit_count)
{
	auto roundup = [](uint32_t v) {
		uint32_t p = 1;
		while (p < v)
			p <<= 1;
		return p;
	};
	if (ip_pkt_list_tot && hit_count < ip_pkt_list_tot)
		return roundup(ip_pkt_list_tot) - 1;
	if (hit_count)
		return roundup(hit_count) - 1;
	return 32 - 1;
}

// struct recent_entry: the ttl of the last update, the ring of jiffies (index is the u8
// the kernel keeps), and where it stands in the LRU order (seq: larger is more recent).
struct Entry {
	uint64_t seq = 0;
	uint8_t ttl = 0;
	uint8_t index = 0;
	uint16_t nstamps = 0;
	uint64_t stamps[max_nstamps] = {};
};

// struct recent_table: its mask, its ring size and its entries by (masked) address.
struct List {
	uint32_t mask = 0xffffffff; // network byte order
	uint32_t nstamps_mask = 31;
	uint64_t seq = 0;
	std::map<uint32_t, Entry> entries; // network byte order

	uint32_t lru_head() const // the least recently updated entry's address
	{
		auto best = entries.begin();
		for (auto it = entries.begin(); it != entries.end(); ++it)
			if (it->second.seq < best->second.seq)
				best = it;
		return best->first;
	}
	// recent_entry_lookup()
	Entry *lookup(uint32_t addr, uint8_t ttl)
	{
		auto it = entries.find(addr);
		if (it == entries.end())
			return nullptr;
		Entry &e = it->second;
		return (ttl == e.ttl || ttl == 0 || e.ttl == 0) ? &e : nullptr;
	}
	// recent_entry_update()
	void update(Entry &e, uint64_t now)
	{
		e.index &= static_cast<uint8_t>(nstamps_mask);
		e.stamps[e.index++] = now;
		if (e.index > e.nstamps)
			e.nstamps = e.index;
		e.seq = ++seq;
	}
	// recent_entry_init()
	Entry &init(uint32_t addr, uint8_t ttl, uint64_t now)
	{
		if (entries.size() >= ip_list_tot)
			entries.erase(lru_head());
		Entry &e = entries[addr];
		e = Entry{};
		e.ttl = ttl;
		e.stamps[0] = now;
		e.nstamps = 1;
		e.index = 1;
		e.seq = ++seq;
		return e;
	}
};

// time_after(a, b)
constexpr bool time_after(uint64_t a, uint64_t b)
{
	return static_cast<int64_t>(b - a) < 0;
}

// recent_mt() for IPv4 on `list`. addr: the packet's address (source or destination, as
// the rule says), ttl: as recent_mt() takes it (one more where the packet is forwarded).
// dry: answer without changing the list (a packet bpfilter judges that netfilter's hook
// never sees). Returns the match's answer; hotdrop never happens here (no allocation
// fails).
inline bool match(List &t, uint32_t addr, uint8_t ttl, uint32_t seconds, uint32_t hit_count,
		  uint8_t check_set, bool invert, uint32_t hz, uint64_t now, bool dry = false)
{
	constexpr uint8_t set = 1 << 1, check = 1 << 0, update = 1 << 2, remove = 1 << 3,
			  ttl_flag = 1 << 4, reap = 1 << 5;
	bool ret = invert;
	const uint32_t a = addr & t.mask;
	Entry *e = t.lookup(a, (check_set & ttl_flag) ? ttl : 0);
	if (!e) {
		if (!(check_set & set))
			return ret;
		if (!dry)
			t.init(a, ttl, now);
		return !ret;
	}
	if (check_set & set) {
		ret = !ret;
	} else if (check_set & remove) {
		if (!dry)
			t.entries.erase(a);
		return !ret;
	} else if (check_set & (check | update)) {
		const uint64_t time = now - static_cast<uint32_t>(seconds * hz);
		uint32_t hits = 0;
		for (uint32_t i = 0; i < e->nstamps; i++) {
			if (seconds && time_after(time, e->stamps[i]))
				continue;
			if (!hit_count || ++hits >= hit_count) {
				ret = !ret;
				break;
			}
		}
		if ((check_set & reap) && !dry) { // recent_entry_reap()
			const uint32_t head = t.lru_head();
			Entry &h = t.entries.at(head);
			const bool upd = (check_set & update) && ret;
			if (!(head == a && upd) &&
			    time_after(time, h.stamps[static_cast<uint8_t>(h.index - 1)])) {
				t.entries.erase(head);
				if (head == a)
					return ret; // removed: nothing left to update
			}
		}
	}
	if (!dry && ((check_set & set) || ((check_set & update) && ret))) {
		t.update(*e, now);
		e->ttl = ttl;
	}
	return ret;
}

// One line of /proc/net/xt_recent/NAME for an IPv4 entry (recent_seq_show()).
inline std::string proc_line(uint32_t addr, const Entry &e, uint32_t nstamps_mask)
{
	const auto *b = reinterpret_cast<const uint8_t *>(&addr);
	std::string s = "src=" + std::to_string(b[0]) + "." + std::to_string(b[1]) + "." +
			std::to_string(b[2]) + "." + std::to_string(b[3]) +
			" ttl: " + std::to_string(e.ttl) +
			" last_seen: " + std::to_string(e.stamps[(e.index - 1u) & nstamps_mask]) +
			" oldest_pkt: " + std::to_string(e.index);
	for (uint32_t i = 0; i < e.nstamps; i++)
		s += std::string(i ? "," : "") + " " + std::to_string(e.stamps[i]);
	return s + "\n";
}

} // namespace bpfilter::ir::recent
