// -m recent (revisions 0 and 1): recent_mt() of xt_recent.c on the namespace's lists
// (MapSlot::RecentEntries, RecentHeads), with the kernel's clock (bpf_jiffies64()).
// The least recently updated entry, which the kernel keeps at the head of a list, is found
// by walking the list (bpf_for_each_map_elem()) when it is needed: to make room for a new
// entry in a full list, and for --reap. ir/recent.hpp is the same logic in C++.
#include <linux/netfilter/xt_recent.h>

#include <cstddef>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "codegen/plan.hpp"
#include "ir/recent.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

constexpr int16_t e_seq = offsetof(maps::RecentEntry, seq);
constexpr int16_t e_ttl = offsetof(maps::RecentEntry, ttl);
constexpr int16_t e_index = offsetof(maps::RecentEntry, index);
constexpr int16_t e_nstamps = offsetof(maps::RecentEntry, nstamps);
constexpr int16_t e_pad = offsetof(maps::RecentEntry, pad);
constexpr int16_t e_stamps = offsetof(maps::RecentEntry, stamps);
constexpr int16_t h_seq = offsetof(maps::RecentHead, seq);
constexpr int16_t h_mask = offsetof(maps::RecentHead, mask);
constexpr int16_t h_nmask = offsetof(maps::RecentHead, nstamps_mask);
// The walk's context: the parsed packet's address, in the frame's map key slot (which no
// lookup uses while a match runs; -m limit uses it the same way).
constexpr int16_t walk_ctx = layout::sub_key;
static_assert(layout::main_key == layout::sub_key);

// R2 = &pkt[field] (a map key in the parsed packet).
void key_ptr(Emitter &em, int16_t field)
{
	em.emit(mov64(R2, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R2, field));
}

// Walk the list rc_key names: rc_count = its entries, rc_min_addr = its least recently
// updated one's address (rc_min_seq its clock).
void walk(Emitter &em, SubprogId cb)
{
	em.emit(st(BPF_W, layout::pkt, off::rc_count, 0));
	em.emit(st(BPF_DW, layout::pkt, off::rc_min_seq, -1));
	em.emit(stx(BPF_DW, R10, layout::pkt, walk_ctx));
	em.ld_map(R1, MapSlot::RecentEntries);
	em.ld_func(R2, cb);
	em.emit(mov64(R3, R10));
	em.emit(alu64_imm(BPF_ADD, R3, walk_ctx));
	em.emit(mov64(R4, 0));
	em.emit(call_helper(BPF_FUNC_for_each_map_elem));
}

// Jump to `to` for a packet judged but not counted (count_inc 0: a martian, a first
// fragment before its datagram is whole, OUTPUT's dry run of a looped-back copy), which
// netfilter's hook never sees: it gets the answer the list gives, and changes nothing.
void if_dry(Emitter &em, Label &to)
{
	em.emit(ldx(BPF_W, R1, layout::pkt, off::count_inc));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), to);
}

// R1 = ++head.seq (the list's LRU clock), with R3 = the head; clobbers nothing else.
void next_seq(Emitter &em, uint32_t head_off)
{
	em.ld_map_value(R3, MapSlot::RecentHeads, head_off);
	em.emit(mov64(R1, 1));
	em.emit(atomic_fetch_add64(R3, R1, h_seq));
	em.emit(alu64_imm(BPF_ADD, R1, 1));
}

} // namespace

void emit_recent_walk(Emitter &em, SubprogId id)
{
	// long cb(map, const RecentKey *key, RecentEntry *value, void **ctx)
	em.begin_subprog(id);
	Label out(em);
	em.emit(ldx(BPF_DW, R5, R4, 0));
	em.emit(ldx(BPF_W, R0, R2, offsetof(maps::RecentKey, list)));
	em.emit(ldx(BPF_W, R1, R5, off::rc_key + offsetof(maps::RecentKey, list)));
	em.jump(jmp32_reg(BPF_JNE, R0, R1), out);
	em.emit(ldx(BPF_W, R1, R5, off::rc_count));
	em.emit(alu32_imm(BPF_ADD, R1, 1));
	em.emit(stx(BPF_W, R5, R1, off::rc_count));
	em.emit(ldx(BPF_DW, R1, R3, e_seq));
	em.emit(ldx(BPF_DW, R0, R5, off::rc_min_seq));
	em.jump(jmp_reg(BPF_JGE, R1, R0), out);
	em.emit(stx(BPF_DW, R5, R1, off::rc_min_seq));
	em.emit(ldx(BPF_W, R1, R2, offsetof(maps::RecentKey, addr)));
	em.emit(stx(BPF_W, R5, R1, off::rc_min_addr));
	out.bind();
	em.emit(mov64(R0, 0));
	em.emit(exit());
}

void emit_recent(Cond &c, const ir::RecentMatch &m, const Plan &plan)
{
	Emitter &em = c.em();
	if (m.list >= plan.recent.size()) {
		em.fail("codegen: a -m recent match without its list");
		return;
	}
	const uint32_t list = plan.recent[m.list].id;
	const uint32_t nmask = plan.recent[m.list].nstamps_mask & 0xff;
	const uint32_t head_off = list * static_cast<uint32_t>(sizeof(maps::RecentHead));
	const uint8_t mode = m.check_set & (XT_RECENT_SET | XT_RECENT_REMOVE | XT_RECENT_CHECK |
					    XT_RECENT_UPDATE);
	const int32_t inv = m.invert ? 1 : 0;
	const SubprogId cb = plan.recent_walk_id();
	constexpr int16_t key_list = off::rc_key + offsetof(maps::RecentKey, list);
	constexpr int16_t key_addr = off::rc_key + offsetof(maps::RecentKey, addr);
	constexpr int16_t key2_list = off::rc_key2 + offsetof(maps::RecentKey, list);
	constexpr int16_t key2_addr = off::rc_key2 + offsetof(maps::RecentKey, addr);

	Label skip(em);
	c.skip_if_failed(skip);
	Label done(em); // R5: the match's answer, 0 or 1

	em.emit(call_helper(BPF_FUNC_jiffies64));
	em.emit(stx(BPF_DW, layout::pkt, R0, off::rc_now));
	// The address, masked with the list's mask.
	em.ld_map_value(R3, MapSlot::RecentHeads, head_off);
	em.emit(ldx(BPF_W, R2, R3, h_mask));
	em.emit(ldx(BPF_W, R1, layout::pkt, m.side == XT_RECENT_DEST ? off::daddr : off::saddr));
	em.emit(alu32_reg(BPF_AND, R1, R2));
	em.emit(stx(BPF_W, layout::pkt, R1, key_addr));
	em.emit(st(BPF_W, layout::pkt, key_list, static_cast<int32_t>(list)));
	// "use TTL as seen before forwarding": FORWARD, where a device goes out. OUTPUT's
	// packets are taken to have a socket of the namespace (supported.md).
	em.emit(ldx(BPF_W, R1, layout::pkt, off::ttl));
	if (!(plan.hookset & hook_bit(ir::Hook::LocalOut))) {
		em.emit(ldx(BPF_DW, R2, layout::pkt, off::out_ifname));
		em.emit(mov64(R3, R2));
		em.emit(alu64_imm(BPF_NEG, R3, 0));
		em.emit(alu64_reg(BPF_OR, R2, R3));
		em.emit(alu64_imm(BPF_RSH, R2, 63));
		em.emit(alu32_reg(BPF_ADD, R1, R2));
		em.emit(alu32_imm(BPF_AND, R1, 0xff));
	}
	em.emit(stx(BPF_W, layout::pkt, R1, off::rc_ttl));

	Label notfound(em);
	em.ld_map(R1, MapSlot::RecentEntries);
	key_ptr(em, off::rc_key);
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), notfound);
	if (m.check_set & XT_RECENT_TTL) {
		// recent_entry_lookup(): ttl == e->ttl || ttl == 0 || e->ttl == 0
		Label same(em);
		em.emit(ldx(BPF_B, R1, R0, e_ttl));
		em.emit(ldx(BPF_W, R2, layout::pkt, off::rc_ttl));
		em.jump(jmp32_reg(BPF_JEQ, R1, R2), same);
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), same);
		em.jump(jmp32_imm(BPF_JEQ, R2, 0), same);
		em.jump(ja(), notfound);
		same.bind();
	}

	// Found, R0 = the entry.
	Label update(em); // recent_entry_update(), e->ttl = ttl; R0 = the entry
	if (mode == XT_RECENT_SET) {
		em.jump(ja(), update);
	} else if (mode == XT_RECENT_REMOVE) {
		Label answer(em);
		if_dry(em, answer);
		em.ld_map(R1, MapSlot::RecentEntries);
		key_ptr(em, off::rc_key);
		em.emit(call_helper(BPF_FUNC_map_delete_elem));
		answer.bind();
		em.emit(mov64(R5, 1 ^ inv));
		em.jump(ja(), done);
	} else {
		// Hits: stamps within --seconds, of the first nstamps.
		em.emit(ldx(BPF_H, R5, R0, e_nstamps));
		if (m.seconds) {
			const uint32_t back = m.seconds * plan.hz; // u32, as the kernel's
			em.emit(ldx(BPF_DW, R4, layout::pkt, off::rc_now));
			em.ld_imm64(R1, back);
			em.emit(alu64_reg(BPF_SUB, R4, R1));
			em.emit(stx(BPF_DW, layout::pkt, R4, off::rc_time));
			em.emit(mov64(R3, 0));
			for (uint32_t k = 0; k <= nmask; k++) {
				// !time_after(time, stamp) && k < nstamps, without branches
				em.emit(ldx(BPF_DW, R1, R0,
					    static_cast<int16_t>(e_stamps + 8 * k)));
				em.emit(alu64_reg(BPF_SUB, R1, R4));
				em.emit(alu64_imm(BPF_RSH, R1, 63));
				em.emit(alu64_imm(BPF_XOR, R1, 1));
				em.emit(mov64(R2, static_cast<int32_t>(k)));
				em.emit(alu64_reg(BPF_SUB, R2, R5));
				em.emit(alu64_imm(BPF_RSH, R2, 63));
				em.emit(alu64_reg(BPF_AND, R1, R2));
				em.emit(alu64_reg(BPF_ADD, R3, R1));
			}
		} else {
			em.emit(mov64(R3, R5));
		}
		// Matched: hits >= hit_count (at least one without --hitcount).
		const int32_t need = m.hit_count ? static_cast<int32_t>(m.hit_count) : 1;
		{
			Label few(em);
			em.emit(mov64(R5, inv));
			em.jump(jmp_imm(BPF_JLT, R3, need), few);
			em.emit(mov64(R5, 1 ^ inv));
			few.bind();
		}
		em.emit(stx(BPF_W, layout::pkt, R5, off::rc_ret));
		if (m.check_set & XT_RECENT_REAP) {
			// recent_entry_reap(): the list's head goes when its last stamp is older
			// than `time`, unless it is this entry and it is about to be updated.
			Label reaped(em);
			if_dry(em, reaped);
			walk(em, cb);
			em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_count));
			em.jump(jmp32_imm(BPF_JEQ, R1, 0), reaped);
			if (mode == XT_RECENT_UPDATE) {
				Label other(em);
				em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_ret));
				em.jump(jmp32_imm(BPF_JEQ, R1, 0), other);
				em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_min_addr));
				em.emit(ldx(BPF_W, R2, layout::pkt, key_addr));
				em.jump(jmp32_reg(BPF_JEQ, R1, R2), reaped);
				other.bind();
			}
			em.emit(st(BPF_W, layout::pkt, key2_list, static_cast<int32_t>(list)));
			em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_min_addr));
			em.emit(stx(BPF_W, layout::pkt, R1, key2_addr));
			em.ld_map(R1, MapSlot::RecentEntries);
			key_ptr(em, off::rc_key2);
			em.emit(call_helper(BPF_FUNC_map_lookup_elem));
			em.jump(jmp_imm(BPF_JEQ, R0, 0), reaped);
			// e->stamps[e->index - 1]: the u8 index wraps to 0 after 256 updates of
			// a 256-stamp ring, where the kernel reads before the array; we read
			// stamps[255].
			em.emit(ldx(BPF_B, R1, R0, e_index));
			em.emit(alu64_imm(BPF_SUB, R1, 1));
			em.emit(alu64_imm(BPF_AND, R1, 0xff));
			em.emit(alu64_imm(BPF_LSH, R1, 3));
			em.emit(alu64_reg(BPF_ADD, R0, R1));
			em.emit(ldx(BPF_DW, R2, R0, e_stamps));
			em.emit(ldx(BPF_DW, R3, layout::pkt, off::rc_time));
			em.emit(alu64_reg(BPF_SUB, R2, R3));
			em.jump(jmp_imm(BPF_JSGE, R2, 0), reaped); // !time_after(time, stamp)
			em.ld_map(R1, MapSlot::RecentEntries);
			key_ptr(em, off::rc_key2);
			em.emit(call_helper(BPF_FUNC_map_delete_elem));
			reaped.bind();
		}
		em.emit(ldx(BPF_W, R5, layout::pkt, off::rc_ret));
		if (mode == XT_RECENT_UPDATE) {
			em.jump(jmp32_imm(BPF_JEQ, R5, 0), done);
			if (m.check_set & XT_RECENT_REAP) { // the entry again, after the calls
				em.ld_map(R1, MapSlot::RecentEntries);
				key_ptr(em, off::rc_key);
				em.emit(call_helper(BPF_FUNC_map_lookup_elem));
				em.emit(ldx(BPF_W, R5, layout::pkt, off::rc_ret));
				em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
			}
			em.jump(ja(), update);
		}
		em.jump(ja(), done);
	}

	if (mode == XT_RECENT_SET || mode == XT_RECENT_UPDATE) {
		update.bind();
		Label updated(em);
		em.emit(mov64(R4, R0));
		if_dry(em, updated);
		em.emit(mov64(R0, R4));
		next_seq(em, head_off);
		em.emit(stx(BPF_DW, R0, R1, e_seq));
		em.emit(ldx(BPF_W, R2, R3, h_nmask));
		em.emit(alu32_imm(BPF_AND, R2, 0xff));
		em.emit(ldx(BPF_B, R1, R0, e_index));
		em.emit(alu32_reg(BPF_AND, R1, R2)); // e->index &= nstamps_max_mask
		em.emit(mov64(R4, R1));
		em.emit(alu64_imm(BPF_LSH, R4, 3));
		em.emit(mov64(R5, R0));
		em.emit(alu64_reg(BPF_ADD, R5, R4));
		em.emit(ldx(BPF_DW, R2, layout::pkt, off::rc_now));
		em.emit(stx(BPF_DW, R5, R2, e_stamps)); // e->stamps[e->index++] = jiffies
		em.emit(alu32_imm(BPF_ADD, R1, 1));
		em.emit(alu32_imm(BPF_AND, R1, 0xff)); // a u8
		em.emit(stx(BPF_B, R0, R1, e_index));
		{
			Label kept(em);
			em.emit(ldx(BPF_H, R2, R0, e_nstamps));
			em.jump(jmp32_reg(BPF_JGE, R2, R1), kept);
			em.emit(stx(BPF_H, R0, R1, e_nstamps));
		}
		em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_ttl));
		em.emit(stx(BPF_B, R0, R1, e_ttl));
		updated.bind();
		if (mode == XT_RECENT_SET)
			em.emit(mov64(R5, 1 ^ inv));
		else
			em.emit(ldx(BPF_W, R5, layout::pkt, off::rc_ret));
		em.jump(ja(), done);
	}

	notfound.bind();
	if (mode == XT_RECENT_SET) {
		// recent_entry_init(): room made by forgetting the head of a full list.
		Label made(em);
		if_dry(em, made);
		{
			Label room(em);
			walk(em, cb);
			em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_count));
			em.jump(jmp32_imm(BPF_JLT, R1,
					  static_cast<int32_t>(ir::recent::ip_list_tot)),
				room);
			em.emit(st(BPF_W, layout::pkt, key2_list, static_cast<int32_t>(list)));
			em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_min_addr));
			em.emit(stx(BPF_W, layout::pkt, R1, key2_addr));
			em.ld_map(R1, MapSlot::RecentEntries);
			key_ptr(em, off::rc_key2);
			em.emit(call_helper(BPF_FUNC_map_delete_elem));
		}
		// The new entry, built in RecentTmp.
		em.emit(st(BPF_W, R10, walk_ctx, 0));
		em.ld_map(R1, MapSlot::RecentTmp);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, walk_ctx));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		Label failed(em);
		em.emit(st(BPF_W, layout::pkt, off::rc_count, 1)); // hotdrop unless inserted
		em.jump(jmp_imm(BPF_JEQ, R0, 0), failed);
		next_seq(em, head_off);
		em.emit(stx(BPF_DW, R0, R1, e_seq));
		em.emit(ldx(BPF_W, R1, layout::pkt, off::rc_ttl));
		em.emit(stx(BPF_B, R0, R1, e_ttl));
		em.emit(st(BPF_B, R0, e_index, 1));
		em.emit(st(BPF_H, R0, e_nstamps, 1));
		em.emit(st(BPF_W, R0, e_pad, 0));
		em.emit(ldx(BPF_DW, R1, layout::pkt, off::rc_now));
		em.emit(stx(BPF_DW, R0, R1, e_stamps));
		em.emit(mov64(R3, R0));
		em.ld_map(R1, MapSlot::RecentEntries);
		key_ptr(em, off::rc_key);
		em.emit(mov64(R4, BPF_ANY));
		em.emit(call_helper(BPF_FUNC_map_update_elem));
		em.emit(alu64_imm(BPF_NEG, R0, 0));
		em.emit(alu64_imm(BPF_RSH, R0, 63));
		em.emit(stx(BPF_W, layout::pkt, R0, off::rc_count));
		// A failed insert is recent_entry_init()'s failed allocation: hotdrop.
		failed.bind();
		c.hotdrop_if_field(off::rc_count);
		made.bind();
		em.emit(mov64(R5, 1 ^ inv));
	} else {
		em.emit(mov64(R5, inv));
	}

	done.bind();
	em.emit(alu64_imm(BPF_XOR, R5, 1));
	c.fail_if(R5, Cond::Val::Bit, false);
	skip.bind();
}

} // namespace bpfilter::codegen
