// xt_limit's credit arithmetic (net/netfilter/xt_limit.c), for the kernel's HZ: shared by the
// reference evaluator, the code generator and the loader, which must agree to the credit.
#pragma once

#include <cstdint>

namespace bpfilter::ir::limit
{

inline constexpr uint32_t scale = 10000; // XT_LIMIT_SCALE

// CREDITS_PER_JIFFY: the largest power of two not above 0xFFFFFFFF / (HZ*60*60*24)
// (POW2_BELOW32(MAX_CPJ)).
constexpr uint32_t credits_per_jiffy(uint32_t hz)
{
	if (hz == 0 || hz > 0xFFFFFFFFu / (60 * 60 * 24))
		return 0; // no such kernel: callers refuse an HZ without credits
	const uint32_t max_cpj = 0xFFFFFFFFu / (hz * 60 * 60 * 24);
	uint32_t p = 1;
	while (p <= max_cpj / 2)
		p <<= 1;
	return max_cpj ? p : 0;
}

// user2credits(): u32 arithmetic, wrapping as the kernel's does.
constexpr uint32_t user2credits(uint32_t user, uint32_t hz)
{
	const uint32_t k = hz * credits_per_jiffy(hz);
	if (k == 0)
		return 0;
	if (user > 0xFFFFFFFFu / k)
		return (user / scale) * k; // divide first
	return (user * k) / scale;
}

// limit_mt_check()'s overflow test: ERANGE ("Overflow, try lower").
constexpr bool overflows(uint32_t avg, uint32_t burst, uint32_t hz)
{
	return burst == 0 || user2credits(avg * burst, hz) < user2credits(avg, hz);
}

// What limit_mt_check() leaves: the bucket's first credit, and the cap and cost it keeps
// (from the rule when the caller gave a cost, as libxt_limit never does).
struct Params {
	uint32_t credit = 0, credit_cap = 0, cost = 0;
};
constexpr Params params(uint32_t avg, uint32_t burst, uint32_t credit_cap, uint32_t cost,
			uint32_t hz)
{
	Params p;
	p.credit = user2credits(avg * burst, hz);
	if (cost == 0) {
		p.credit_cap = p.credit;
		p.cost = user2credits(avg, hz);
	} else {
		p.credit_cap = credit_cap;
		p.cost = cost;
	}
	return p;
}

// One bucket (struct xt_limit_priv): jiffies of the last refill, and the credit.
struct Bucket {
	uint64_t prev = 0;
	uint32_t credit = 0;
	bool operator==(const Bucket &) const = default;
};

// limit_mt() at `now` (jiffies), on one CPU.
constexpr bool take(Bucket &b, const Params &p, uint64_t now, uint32_t hz)
{
	if (b.credit < p.cost && b.prev == now) // the fast path
		return false;
	const auto increase = static_cast<uint32_t>((now - b.prev) * credits_per_jiffy(hz));
	b.prev = now;
	uint32_t credit = b.credit + increase;
	if (credit > p.credit_cap)
		credit = p.credit_cap;
	const bool ret = credit >= p.cost;
	if (ret)
		credit -= p.cost;
	b.credit = credit;
	return ret;
}

static_assert(credits_per_jiffy(250) == 128 && credits_per_jiffy(1000) == 32 &&
	      credits_per_jiffy(100) == 256 && credits_per_jiffy(300) == 128);

} // namespace bpfilter::ir::limit
