// xt_hashlimit's arithmetic (net/netfilter/xt_hashlimit.c, revisions 1 to 3) for the kernel's
// HZ: shared by the reference evaluator, the code generator and the loader, which must agree
// to the credit. An entry is struct dsthash_ent's rateinfo, its union as four u64 words.
#pragma once

#include <cstdint>

namespace bpfilter::ir::hashlimit
{

// enum XT_HASHLIMIT_*
inline constexpr uint32_t hash_dip = 1u << 0, hash_dpt = 1u << 1, hash_sip = 1u << 2,
			  hash_spt = 1u << 3, invert = 1u << 4, bytes = 1u << 5,
			  rate_match = 1u << 6;
inline constexpr uint32_t all_modes = 0x7f;   // XT_HASHLIMIT_ALL
inline constexpr uint32_t max_size = 1048576; // HASHLIMIT_MAX_SIZE
inline constexpr uint32_t byte_shift = 4;     // XT_HASHLIMIT_BYTE_SHIFT

// struct hashlimit_cfg3, every revision's configuration widened to it (cfg_copy()).
struct Cfg {
	uint64_t avg = 0, burst = 0;
	uint32_t mode = 0, size = 0, max = 0, gc_interval = 0, expire = 0, interval = 0;
	uint8_t srcmask = 0, dstmask = 0;
	bool operator==(const Cfg &) const = default;
};

// The highest power of two not above x (POW2_BELOW32/64).
constexpr uint64_t pow2_below(uint64_t x)
{
	uint64_t p = 1;
	while (p <= x / 2)
		p <<= 1;
	return x ? p : 0;
}
constexpr uint64_t cpj(uint32_t hz) // CREDITS_PER_JIFFY
{
	return pow2_below(0xFFFFFFFFFFFFFFFFull / (uint64_t{hz} * 60 * 60 * 24));
}
constexpr uint64_t cpj_v1(uint32_t hz) // CREDITS_PER_JIFFY_v1
{
	return pow2_below(0xFFFFFFFFu / (hz * 60 * 60 * 24));
}
constexpr uint32_t cpj_bytes(uint32_t hz) // CREDITS_PER_JIFFY_BYTES
{
	return static_cast<uint32_t>(pow2_below(0xFFFFFFFFu / hz));
}
// CREDITS_PER_JIFFY_BYTES * HZ, in the unsigned int the kernel computes it in.
constexpr uint32_t bytes_cap(uint32_t hz)
{
	return cpj_bytes(hz) * hz;
}

// user2credits()
constexpr uint64_t user2credits(uint64_t user, uint8_t revision, uint32_t hz)
{
	const uint64_t scale = revision == 1 ? 10000 : 1000000;
	const uint64_t k = hz * (revision == 1 ? cpj_v1(hz) : cpj(hz));
	if (k == 0) // no HZ (unknown): no credit, as the callers refuse such tables anyway
		return 0;
	if (scale >= k)
		return user / (scale / k);
	return user * (k / scale);
}
// user2credits_byte()
constexpr uint32_t user2credits_byte(uint32_t user, uint32_t hz)
{
	const uint64_t us = uint64_t{user} * bytes_cap(hz);
	return static_cast<uint32_t>(us >> 32);
}
constexpr uint64_t user2rate(uint64_t user)
{
	return user ? 1000000ull / user : 0;
}
constexpr uint64_t user2rate_bytes(uint32_t user)
{
	const uint64_t r = user ? 0xFFFFFFFFu / user : 0xFFFFFFFFu;
	return (r - 1) << byte_shift;
}

// msecs_to_jiffies() for a HZ that divides 1000 (100, 250, 1000), and rounded up likewise
// for 300.
constexpr uint64_t msecs_to_jiffies(uint32_t ms, uint32_t hz)
{
	return (uint64_t{ms} * hz + 999) / 1000;
}

// hashlimit_mt_check_common()'s tests that depend on HZ: 0, or the errno.
constexpr int check_rate(const Cfg &c, uint8_t revision, uint32_t hz)
{
	if (c.mode & rate_match)
		return 0;
	if (c.mode & bytes)
		return user2credits_byte(static_cast<uint32_t>(c.avg), hz) == 0 ? -22 /* EINVAL */
										: 0;
	if (c.burst == 0 ||
	    user2credits(c.avg * c.burst, revision, hz) < user2credits(c.avg, revision, hz))
		return -34; // ERANGE
	return 0;
}

// htable_create(): the number of entries an htable holds (cfg.max as adjusted), for a
// machine of `ram` bytes (totalram_pages() << PAGE_SHIFT).
constexpr uint32_t table_max(const Cfg &c, uint64_t ram)
{
	uint64_t size = c.size;
	if (size == 0) {
		size = ram / 16384 / 8;
		if (ram > (1ull << 30))
			size = 8192;
		if (size < 16)
			size = 16;
	}
	if (c.max == 0)
		return static_cast<uint32_t>(8 * size);
	return c.max < size ? static_cast<uint32_t>(size) : c.max;
}

// struct dsthash_ent's key (struct dsthash_dst, IPv4): addresses and ports in network order.
struct Key {
	uint32_t src = 0, dst = 0;
	uint16_t sport = 0, dport = 0;
	bool operator==(const Key &) const = default;
	auto operator<=>(const Key &) const = default;
};

// maskl(): the address (network order) cut to its first l bits.
constexpr uint32_t maskl_be(uint32_t l)
{
	if (l == 0)
		return 0;
	const uint32_t m = ~0u << (32 - l);
	return ((m & 0xff) << 24) | ((m & 0xff00) << 8) | ((m >> 8) & 0xff00) | (m >> 24);
}

// struct dsthash_ent's expires and rateinfo. The union: w[0] is credit (or interval in its
// low half and prev_window in its high half), w[1] credit_cap (current_rate), w[2] cost
// (rate), w[3] burst.
struct Entry {
	uint64_t expires = 0, prev = 0;
	uint64_t w[4] = {};
	bool operator==(const Entry &) const = default;
};

// rateinfo_init(), with the htable's configuration and the rule's revision.
constexpr void init(Entry &e, const Cfg &h, uint8_t revision, uint64_t now, uint32_t hz)
{
	e.prev = now;
	if (revision >= 3 && (h.mode & rate_match)) {
		e.w[0] = h.interval; // prev_window 0
		e.w[1] = 0;
		if (h.mode & bytes) {
			e.w[2] = user2rate_bytes(static_cast<uint32_t>(h.avg));
			e.w[3] = h.burst ? h.burst * e.w[2] : e.w[2];
		} else {
			e.w[2] = user2rate(h.avg);
			e.w[3] = h.burst + e.w[2];
		}
	} else if (h.mode & bytes) {
		e.w[0] = bytes_cap(hz);
		e.w[2] = user2credits_byte(static_cast<uint32_t>(h.avg), hz);
		e.w[1] = h.burst;
	} else {
		e.w[0] = user2credits(h.avg * h.burst, revision, hz);
		e.w[2] = user2credits(h.avg, revision, hz);
		e.w[1] = e.w[0];
	}
}

// rateinfo_recalc(), with the htable's mode and the rule's revision.
constexpr void recalc(Entry &e, uint64_t now, uint32_t mode, uint8_t revision, uint32_t hz)
{
	const uint64_t delta = now - e.prev;
	if (delta == 0)
		return;
	if (revision >= 3 && (mode & rate_match)) {
		// dh->rateinfo.interval * HZ, in unsigned int.
		const uint64_t interval = static_cast<uint32_t>((e.w[0] & 0xffffffffu) * hz);
		if (delta < interval)
			return;
		e.prev = now;
		const uint64_t window = (e.w[1] * interval) > (delta * e.w[2]) ? 1 : 0;
		e.w[0] = (e.w[0] & 0xffffffffu) | (window << 32);
		e.w[1] = 0;
		return;
	}
	e.prev = now;
	uint64_t cap;
	if (mode & bytes) {
		const uint64_t tmp = e.w[0];
		e.w[0] += cpj_bytes(hz) * delta;
		cap = bytes_cap(hz);
		if (tmp >= e.w[0]) {
			e.w[0] = cap;
			return;
		}
	} else {
		e.w[0] += delta * (revision == 1 ? cpj_v1(hz) : cpj(hz));
		cap = e.w[1];
	}
	if (e.w[0] > cap)
		e.w[0] = cap;
}

// The rest of hashlimit_mt_common() once the entry is found or made and recalculated: the
// rule's mode decides (rate match, bytes, inversion); len is skb->len.
constexpr bool decide(Entry &e, uint32_t rule_mode, uint32_t len, uint32_t hz)
{
	const bool inv = (rule_mode & invert) != 0;
	if (rule_mode & rate_match) {
		e.w[1] += (rule_mode & bytes) ? len : 1;
		if ((e.w[0] >> 32) == 0 && e.w[1] <= e.w[3])
			return !inv;
		return inv;
	}
	uint64_t cost;
	if (rule_mode & bytes) { // hashlimit_byte_cost()
		uint64_t tmp = uint64_t{(len >> byte_shift) + 1} * e.w[2];
		if (tmp > bytes_cap(hz))
			tmp = bytes_cap(hz);
		if (e.w[0] < tmp && e.w[1]) {
			e.w[1]--;
			e.w[0] = bytes_cap(hz);
		}
		cost = static_cast<uint32_t>(tmp);
	} else {
		cost = e.w[2];
	}
	if (e.w[0] >= cost) {
		e.w[0] -= cost;
		return !inv;
	}
	return inv;
}

// time_after_eq(jiffies, expires): what the garbage collector removes.
constexpr bool expired(const Entry &e, uint64_t now)
{
	return static_cast<int64_t>(now - e.expires) >= 0;
}

static_assert(cpj(250) == (1ull << 39) && cpj_v1(250) == 128 && cpj_bytes(250) == (1u << 24));
static_assert(user2credits(1, 1, 250) == 3 && user2credits(1, 3, 250) == 137438953ull);

} // namespace bpfilter::ir::hashlimit
