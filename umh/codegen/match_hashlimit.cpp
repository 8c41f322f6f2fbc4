// -m hashlimit (revisions 1 to 3): hashlimit_mt_common() of xt_hashlimit.c on the rule's
// htable, the entries of its number in the namespace's hash map (MapSlot::Hashlimit), which
// are updated under their bpf_spin_lock as the kernel updates a dsthash_ent under its
// spinlock, and counted against the htable's max (MapSlot::HashlimitCounts). Everything the
// configuration decides is decided here, at compile time: the generated code is the
// straight path of ir/hashlimit.hpp for this rule, revision and HZ.
#include <cerrno>
#include <cstddef>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "ir/hashlimit.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace hl = ir::hashlimit;
namespace off = layout::pkt_off;

namespace
{

constexpr int16_t v_expires = offsetof(maps::HashlimitValue, expires);
constexpr int16_t v_prev = offsetof(maps::HashlimitValue, prev);
constexpr int16_t v_w0 = offsetof(maps::HashlimitValue, w);
constexpr int16_t v_w1 = v_w0 + 8, v_w2 = v_w0 + 16, v_w3 = v_w0 + 24;
// The entry holds the clock and the credits; the one the program makes or peeks at is
// built in the parsed packet's work area.
static_assert(off::hl_val % 8 == 0 && off::hl_now % 8 == 0);
static_assert(off::hl_key + static_cast<int16_t>(sizeof(maps::HashlimitKey)) <= off::hl_ports);
constexpr int16_t k_src = off::hl_key + offsetof(maps::HashlimitKey, src);
constexpr int16_t k_dst = off::hl_key + offsetof(maps::HashlimitKey, dst);
constexpr int16_t k_sport = off::hl_key + offsetof(maps::HashlimitKey, sport);
constexpr int16_t k_dport = off::hl_key + offsetof(maps::HashlimitKey, dport);
// Where the entry's address waits while the lock is taken and given back: the frame's map key
// slot, which no lookup uses while a match runs (as -m limit's retries use it).
constexpr int16_t entry_slot = layout::sub_key;
static_assert(layout::main_key == layout::sub_key);

int32_t log2(uint64_t pow2)
{
	int32_t n = 0;
	while (pow2 > 1) {
		pow2 >>= 1;
		n++;
	}
	return n;
}

void store_imm64(Emitter &em, Reg p, int16_t at, uint64_t v)
{
	em.ld_imm64(R2, v);
	em.emit(stx(BPF_DW, p, R2, at));
}

// rateinfo_init() into the value at p + base, and expires. In: R1 = now.
void emit_init(Emitter &em, Reg p, int16_t base, const hl::Cfg &h, uint8_t rev, uint32_t hz)
{
	hl::Entry e;
	hl::init(e, h, rev, 0, hz);
	em.emit(st(BPF_DW, p, base, 0)); // the lock word, which an update leaves alone
	em.emit(stx(BPF_DW, p, R1, static_cast<int16_t>(base + v_prev)));
	em.ld_imm64(R2, hl::msecs_to_jiffies(h.expire, hz));
	em.emit(alu64_reg(BPF_ADD, R2, R1));
	em.emit(stx(BPF_DW, p, R2, static_cast<int16_t>(base + v_expires)));
	for (int k = 0; k < 4; k++)
		store_imm64(em, p, static_cast<int16_t>(base + v_w0 + 8 * k), e.w[k]);
}

// expires, rateinfo_recalc() and the decision on the entry at p + base, with no call (it
// runs under the entry's lock). In: hl_now, layout::len; p is R1 or layout::pkt. Out: R5 = 1
// when the match passes. Clobbers R0 and R2-R5.
void emit_body(Emitter &em, Reg p, int16_t base, const ir::HashlimitMatch &m, const hl::Cfg &h,
	       uint32_t hz)
{
	const auto at = [&](int16_t f) { return static_cast<int16_t>(base + f); };
	const uint8_t rev = m.revision;
	const auto now = [&](Reg r) { em.emit(ldx(BPF_DW, r, layout::pkt, off::hl_now)); };
	em.ld_imm64(R2, hl::msecs_to_jiffies(h.expire, hz));
	now(R0);
	em.emit(alu64_reg(BPF_ADD, R2, R0));
	em.emit(stx(BPF_DW, p, R2, at(v_expires)));
	{ // rateinfo_recalc(), with the htable's mode
		Label done(em);
		em.emit(ldx(BPF_DW, R3, p, at(v_prev)));
		now(R4);
		em.emit(alu64_reg(BPF_SUB, R4, R3)); // delta
		em.jump(jmp_imm(BPF_JEQ, R4, 0), done);
		if (rev >= 3 && (h.mode & hl::rate_match)) {
			em.emit(ldx(BPF_W, R3, p, at(v_w0))); // interval
			em.emit(alu32_imm(BPF_MUL, R3, static_cast<int32_t>(hz)));
			em.jump(jmp_reg(BPF_JLT, R4, R3), done);
			now(R2);
			em.emit(stx(BPF_DW, p, R2, at(v_prev)));
			em.emit(ldx(BPF_DW, R5, p, at(v_w1)));
			em.emit(alu64_reg(BPF_MUL, R5, R3)); // current_rate * interval
			em.emit(ldx(BPF_DW, R0, p, at(v_w2)));
			em.emit(alu64_reg(BPF_MUL, R0, R4)); // delta * rate
			em.emit(mov64(R2, 0));
			{
				Label le(em);
				em.jump(jmp_reg(BPF_JLE, R5, R0), le);
				em.emit(mov64(R2, 1));
				le.bind();
			}
			em.emit(stx(BPF_W, p, R2, at(v_w0 + 4))); // prev_window
			em.emit(st(BPF_DW, p, at(v_w1), 0));
		} else if (h.mode & hl::bytes) {
			now(R2);
			em.emit(stx(BPF_DW, p, R2, at(v_prev)));
			em.emit(ldx(BPF_DW, R3, p, at(v_w0)));
			em.emit(alu64_imm(BPF_LSH, R4, log2(hl::cpj_bytes(hz))));
			em.emit(alu64_reg(BPF_ADD, R4, R3));
			em.ld_imm64(R0, hl::bytes_cap(hz));
			Label no_wrap(em), store(em);
			em.jump(jmp_reg(BPF_JLT, R3, R4), no_wrap);
			em.emit(mov64(R4, R0)); // overflow: the cap
			em.jump(ja(), store);
			no_wrap.bind();
			em.jump(jmp_reg(BPF_JLE, R4, R0), store);
			em.emit(mov64(R4, R0));
			store.bind();
			em.emit(stx(BPF_DW, p, R4, at(v_w0)));
		} else {
			now(R2);
			em.emit(stx(BPF_DW, p, R2, at(v_prev)));
			em.emit(alu64_imm(BPF_LSH, R4,
					  log2(rev == 1 ? hl::cpj_v1(hz) : hl::cpj(hz))));
			em.emit(ldx(BPF_DW, R3, p, at(v_w0)));
			em.emit(alu64_reg(BPF_ADD, R4, R3));
			em.emit(ldx(BPF_DW, R3, p, at(v_w1))); // credit_cap
			Label within(em);
			em.jump(jmp_reg(BPF_JLE, R4, R3), within);
			em.emit(mov64(R4, R3));
			within.bind();
			em.emit(stx(BPF_DW, p, R4, at(v_w0)));
		}
		done.bind();
	}
	// The decision, with the rule's mode.
	const uint32_t rm = m.cfg.mode;
	Label over(em);
	em.emit(mov64(R5, 0));
	if (rm & hl::rate_match) {
		if (rm & hl::bytes)
			em.emit(alu32_reg(BPF_MOV, R2, layout::len));
		else
			em.emit(mov64(R2, 1));
		em.emit(ldx(BPF_DW, R3, p, at(v_w1)));
		em.emit(alu64_reg(BPF_ADD, R3, R2));
		em.emit(stx(BPF_DW, p, R3, at(v_w1)));
		em.emit(ldx(BPF_W, R4, p, at(v_w0 + 4)));
		em.jump(jmp_imm(BPF_JNE, R4, 0), over);
		em.emit(ldx(BPF_DW, R4, p, at(v_w3)));
		em.jump(jmp_reg(BPF_JGT, R3, R4), over);
		em.emit(mov64(R5, 1));
	} else {
		if (rm & hl::bytes) { // hashlimit_byte_cost()
			em.emit(alu32_reg(BPF_MOV, R2, layout::len));
			em.emit(alu32_imm(BPF_RSH, R2, hl::byte_shift));
			em.emit(alu32_imm(BPF_ADD, R2, 1));
			em.emit(ldx(BPF_DW, R3, p, at(v_w2)));
			em.emit(alu64_reg(BPF_MUL, R2, R3));
			em.ld_imm64(R0, hl::bytes_cap(hz));
			{
				Label within(em);
				em.jump(jmp_reg(BPF_JLE, R2, R0), within);
				em.emit(mov64(R2, R0));
				within.bind();
			}
			Label enough(em);
			em.emit(ldx(BPF_DW, R3, p, at(v_w0)));
			em.jump(jmp_reg(BPF_JGE, R3, R2), enough);
			em.emit(ldx(BPF_DW, R4, p, at(v_w1)));
			em.jump(jmp_imm(BPF_JEQ, R4, 0), enough);
			em.emit(alu64_imm(BPF_SUB, R4, 1));
			em.emit(stx(BPF_DW, p, R4, at(v_w1)));
			em.emit(stx(BPF_DW, p, R0, at(v_w0)));
			enough.bind();
			em.emit(alu32_reg(BPF_MOV, R2, R2)); // (u32) tmp
		} else {
			em.emit(ldx(BPF_DW, R2, p, at(v_w2)));
		}
		em.emit(ldx(BPF_DW, R3, p, at(v_w0)));
		em.jump(jmp_reg(BPF_JLT, R3, R2), over);
		em.emit(alu64_reg(BPF_SUB, R3, R2));
		em.emit(stx(BPF_DW, p, R3, at(v_w0)));
		em.emit(mov64(R5, 1));
	}
	over.bind();
	if (rm & hl::invert)
		em.emit(alu64_imm(BPF_XOR, R5, 1));
}

// hashlimit_init_dst(): the key in hl_key, behind the htable's number; hl_drop = 1 where
// the kernel cannot read the ports (skb_header_pointer() fails).
void emit_key(Emitter &em, const hl::Cfg &h, uint32_t id)
{
	em.emit(st(BPF_W, layout::pkt, off::hl_key, static_cast<int32_t>(id)));
	for (int16_t f : {k_src, k_dst, k_sport}) // not hl_ports, just after
		em.emit(st(BPF_W, layout::pkt, f, 0));
	em.emit(st(BPF_W, layout::pkt, off::hl_drop, 0));
	const auto addr = [&](int16_t field, uint8_t bits, int16_t to) {
		if (bits == 0)
			return; // maskl(a, 0) = 0
		em.emit(ldx(BPF_W, R1, layout::pkt, field));
		if (bits < 32)
			em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(hl::maskl_be(bits))));
		em.emit(stx(BPF_W, layout::pkt, R1, to));
	};
	if (h.mode & hl::hash_dip)
		addr(off::daddr, h.dstmask, k_dst);
	if (h.mode & hl::hash_sip)
		addr(off::saddr, h.srcmask, k_src);
	if (!(h.mode & (hl::hash_dpt | hl::hash_spt)))
		return;
	Label done(em), ports(em), ah(em), have(em), cut(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::l4len));
	for (int32_t p : {6, 17, 33, 50, 132, 136}) // proto_ports_offset(): 0
		em.jump(jmp32_imm(BPF_JEQ, R1, p), ports);
	em.jump(jmp32_imm(BPF_JEQ, R1, 51), ah); // AH: 4
	em.jump(ja(), done);			 // others: no ports, zeroes
	ports.bind();
	em.jump(jmp32_imm(BPF_JLT, R2, 4), cut);
	em.emit(ldx(BPF_W, R3, layout::pkt, off::hl_ports));
	em.jump(ja(), have);
	ah.bind();
	em.jump(jmp32_imm(BPF_JLT, R2, 8), cut);
	em.emit(ldx(BPF_W, R3, layout::pkt, off::hl_ah));
	have.bind(); // R3: the two ports as they are in the packet
	if (h.mode & hl::hash_spt)
		em.emit(stx(BPF_H, layout::pkt, R3, k_sport));
	if (h.mode & hl::hash_dpt) {
		em.emit(alu32_imm(BPF_RSH, R3, 16));
		em.emit(stx(BPF_H, layout::pkt, R3, k_dport));
	}
	em.jump(ja(), done);
	cut.bind();
	em.emit(st(BPF_W, layout::pkt, off::hl_drop, 1));
	done.bind();
}

void lookup(Emitter &em)
{
	em.ld_map(R1, MapSlot::Hashlimit);
	em.emit(mov64(R2, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::hl_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
}

} // namespace

// ht->count += add, atomically; with fetch, R2 = the count before. Clobbers R1 and R2.
void count_add(Emitter &em, uint32_t id, int32_t add, bool fetch)
{
	em.ld_map_value(R1, MapSlot::HashlimitCounts, id * static_cast<uint32_t>(sizeof(uint64_t)));
	em.emit(mov64(R2, add));
	em.emit(fetch ? atomic_fetch_add64(R1, R2, 0) : atomic_add(BPF_DW, R1, R2, 0));
}

void emit_hashlimit(Cond &c, const ir::HashlimitMatch &m, const ir::HashlimitTable &t,
		    const Options::HashlimitRef &ref, uint32_t hz)
{
	Emitter &em = c.em();
	const hl::Cfg &h = t.cfg;
	Label skip(em);
	c.skip_if_failed(skip);
	em.emit(call_helper(BPF_FUNC_jiffies64));
	em.emit(stx(BPF_DW, layout::pkt, R0, off::hl_now));
	emit_key(em, h, ref.id);
	if (h.mode & (hl::hash_dpt | hl::hash_spt))
		c.hotdrop_if_field(off::hl_drop);

	Label peek(em), result(em), have(em), relook(em), give_back(em);
	em.emit(ldx(BPF_W, R2, layout::pkt, off::count_inc));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0), peek);
	lookup(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), have);
	// dsthash_alloc_init(): a place in the htable, "max count of %u reached" when its
	// count is at max. The place is taken first, so that the count never passes max.
	count_add(em, ref.id, 1, true);
	em.jump(jmp_imm(BPF_JGE, R2, static_cast<int32_t>(ref.max)), give_back);
	// rateinfo_init(): the entry as the kernel makes it, added unless another CPU added
	// it first (then it is found, as the kernel's race path).
	em.emit(ldx(BPF_DW, R1, layout::pkt, off::hl_now));
	emit_init(em, layout::pkt, off::hl_val, h, m.revision, hz);
	em.ld_map(R1, MapSlot::Hashlimit);
	em.emit(mov64(R2, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::hl_key));
	em.emit(mov64(R3, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R3, off::hl_val));
	em.emit(mov64(R4, BPF_NOEXIST));
	em.emit(call_helper(BPF_FUNC_map_update_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), relook);
	// Not added (another CPU's entry is there, or the namespace's map is full): the
	// place goes back, and the entry is looked for again (another CPU's may be there).
	give_back.bind();
	count_add(em, ref.id, -1, false);
	relook.bind();
	lookup(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), have);
	// Neither found nor made: hotdrop.
	em.emit(st(BPF_W, layout::pkt, off::hl_drop, 1));
	em.emit(st(BPF_W, layout::pkt, off::hl_res, 0));
	em.jump(ja(), result);

	// The entry, under its lock; its address kept across the calls in the frame's key slot.
	have.bind();
	em.emit(stx(BPF_DW, R10, R0, entry_slot));
	em.emit(mov64(R1, R0));
	em.emit(call_helper(BPF_FUNC_spin_lock));
	em.emit(ldx(BPF_DW, R1, R10, entry_slot));
	emit_body(em, R1, 0, m, h, hz);
	em.emit(stx(BPF_W, layout::pkt, R5, off::hl_res));
	em.emit(ldx(BPF_DW, R1, R10, entry_slot));
	em.emit(call_helper(BPF_FUNC_spin_unlock));
	em.jump(ja(), result);

	// A packet judged but not counted (count_inc 0: see emit_limit()): the answer the
	// entry (or a new one) would give, on a copy, with nothing made or taken.
	peek.bind();
	{
		Label fresh(em), body(em);
		lookup(em);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), fresh);
		for (int16_t f = v_expires; f < static_cast<int16_t>(sizeof(maps::HashlimitValue));
		     f += 8) {
			em.emit(ldx(BPF_DW, R1, R0, f));
			em.emit(stx(BPF_DW, layout::pkt, R1,
				    static_cast<int16_t>(off::hl_val + f)));
		}
		em.jump(ja(), body);
		fresh.bind();
		em.emit(ldx(BPF_DW, R1, layout::pkt, off::hl_now));
		emit_init(em, layout::pkt, off::hl_val, h, m.revision, hz);
		body.bind();
		emit_body(em, layout::pkt, off::hl_val, m, h, hz);
		em.emit(stx(BPF_W, layout::pkt, R5, off::hl_res));
	}

	result.bind();
	c.hotdrop_if_field(off::hl_drop);
	em.emit(ldx(BPF_W, R5, layout::pkt, off::hl_res));
	em.emit(alu64_imm(BPF_XOR, R5, 1));
	c.fail_if(R5, Cond::Val::Bit, false);
	skip.bind();
}

} // namespace bpfilter::codegen
