// -m owner (xt_owner.c's owner_mt) at tc egress: the sending socket's file credentials, read
// from the kernel's objects with bpf_probe_read_kernel() at offsets from its BTF.
//
// netfilter reads skb_to_full_sk(skb)->sk_socket->file->f_cred at LOCAL_OUT; the skb reaches
// tc egress with the same skb->sk, so the program walks the same pointers: the socket (a
// request socket's listener; a TIME_WAIT socket is none, as sk_to_full_sk() has it since
// 6.13, and 6.1 never hands one to LOCAL_OUT), its struct socket, that socket's namespace
// against the device's, the file, its cred.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"
#include "codegen/plan.hpp"

#include <linux/in.h>

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

constexpr Reg ctx = R6; // the prologue's: struct __sk_buff *, the kernel's struct sk_buff *
constexpr uint8_t xt_uid = 1, xt_gid = 2, xt_socket = 4, xt_suppl = 8; // XT_OWNER_*
constexpr int32_t tcp_time_wait = 6, tcp_new_syn_recv = 12;
// group_info's gid[] holds at most NGROUPS_MAX (65536) ids: 17 halvings find any place.
constexpr int groups_steps = 17;

// bpf_probe_read_kernel(pkt + dst, size, R3); jumps to `failed` when it fails. R3 is the
// kernel address, set by the caller.
void emit_read(Emitter &em, int16_t dst, int32_t size, Label &failed)
{
	em.emit(mov64(R1, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R1, dst));
	em.emit(mov64(R2, size));
	em.emit(call_helper(BPF_FUNC_probe_read_kernel));
	em.jump(jmp_imm(BPF_JNE, R0, 0), failed);
}

// pkt.own_ptr = *(u64 *)(pkt.own_ptr + at); to `none` when it fails or reads NULL.
void emit_follow(Emitter &em, int16_t at, Label &none)
{
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_ptr));
	em.emit(alu64_imm(BPF_ADD, R3, at));
	emit_read(em, off::own_ptr, 8, none);
	em.emit(ldx(BPF_DW, R1, layout::pkt, off::own_ptr));
	em.jump(jmp_imm(BPF_JEQ, R1, 0), none);
}

// To `out` unless some supplementary group is within [lo, hi]. The kernel keeps gid[]
// sorted (groups_sort() before set_groups(), as groups_search() relies on), so the first
// group not below lo is found by halving, and it decides.
void emit_groups_search(Emitter &em, uint32_t lo, uint32_t hi, const OwnerLayout &ly, Label &out)
{
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_gi));
	em.jump(jmp_imm(BPF_JEQ, R3, 0), out);
	em.emit(alu64_imm(BPF_ADD, R3, ly.ngroups));
	emit_read(em, off::own_n, 4, out);
	em.emit(st(BPF_W, layout::pkt, off::own_lo, 0));
	em.emit(ldx(BPF_W, R1, layout::pkt, off::own_n));
	em.emit(stx(BPF_W, layout::pkt, R1, off::own_hi));
	Label found(em);
	for (int k = 0; k < groups_steps; k++) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::own_lo));
		em.emit(ldx(BPF_W, R2, layout::pkt, off::own_hi));
		em.jump(jmp32_reg(BPF_JGE, R1, R2), found);
		em.emit(alu32_reg(BPF_ADD, R1, R2));
		em.emit(alu32_imm(BPF_RSH, R1, 1)); // mid; lo + hi < 2^17
		em.emit(stx(BPF_W, layout::pkt, R1, off::own_g));
		em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_gi));
		em.emit(alu64_imm(BPF_LSH, R1, 2));
		em.emit(alu64_reg(BPF_ADD, R3, R1));
		em.emit(alu64_imm(BPF_ADD, R3, ly.gid));
		em.emit(ldx(BPF_W, R4, layout::pkt, off::own_g)); // mid, kept across the call
		em.emit(stx(BPF_W, layout::pkt, R4, off::own_res));
		emit_read(em, off::own_g, 4, out);
		Label below(em), next(em);
		em.emit(ldx(BPF_W, R1, layout::pkt, off::own_g));
		em.emit(ldx(BPF_W, R2, layout::pkt, off::own_res));
		em.jump(jmp32_imm(BPF_JLT, R1, static_cast<int32_t>(lo)), below);
		em.emit(stx(BPF_W, layout::pkt, R2, off::own_hi)); // gid[mid] >= lo: hi = mid
		em.jump(ja(), next);
		below.bind();
		em.emit(alu32_imm(BPF_ADD, R2, 1)); // lo = mid + 1
		em.emit(stx(BPF_W, layout::pkt, R2, off::own_lo));
		next.bind();
	}
	found.bind();
	em.emit(ldx(BPF_W, R1, layout::pkt, off::own_lo));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::own_n));
	em.jump(jmp32_reg(BPF_JGE, R1, R2), out);
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_gi));
	em.emit(alu64_imm(BPF_LSH, R1, 2));
	em.emit(alu64_reg(BPF_ADD, R3, R1));
	em.emit(alu64_imm(BPF_ADD, R3, ly.gid));
	emit_read(em, off::own_g, 4, out);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::own_g));
	em.jump(jmp32_imm(BPF_JGT, R1, static_cast<int32_t>(hi)), out);
}

// To `out` when the u32 field is outside [lo, hi].
void emit_outside(Emitter &em, int16_t field, uint32_t lo, uint32_t hi, Label &out)
{
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	em.jump(jmp32_imm(BPF_JLT, R1, static_cast<int32_t>(lo)), out);
	em.jump(jmp32_imm(BPF_JGT, R1, static_cast<int32_t>(hi)), out);
}

} // namespace

void emit_owner(Emitter &em, const OwnerLayout &ly)
{
	Label none(em), done(em), own(em);
	em.emit(st(BPF_W, layout::pkt, off::own_kind, layout::owner_none));
	em.emit(st(BPF_DW, layout::pkt, off::own_gi, 0));
	em.emit(st(BPF_W, layout::pkt, off::own_req, 0));
	// REJECT's reply that another hook (or OUTPUT itself) redirected here carries the
	// rejected packet's skb->sk; netfilter's has nf_send_reset()'s (none: ip_local_out() of
	// a fresh skb) or icmp_send()'s (the namespace's ICMP control socket: no file).
	em.emit(ldx(BPF_W, R1, layout::pkt, off::rj_reply));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), own);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
	em.jump(jmp32_imm(BPF_JNE, R1, IPPROTO_ICMP), done);
	em.emit(st(BPF_W, layout::pkt, off::own_kind, layout::owner_socket));
	em.jump(ja(), done);
	own.bind();
	// skb->sk, skb_to_full_sk()
	em.emit(mov64(R3, ctx));
	em.emit(alu64_imm(BPF_ADD, R3, ly.skb_sk));
	emit_read(em, off::own_ptr, 8, none);
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_ptr));
	em.jump(jmp_imm(BPF_JEQ, R3, 0), none);
	em.emit(st(BPF_W, layout::pkt, off::own_g, 0));
	em.emit(alu64_imm(BPF_ADD, R3, ly.sk_state));
	emit_read(em, off::own_g, 1, none);
	Label full(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::own_g));
	em.jump(jmp32_imm(BPF_JEQ, R1, tcp_time_wait), none);
	em.jump(jmp32_imm(BPF_JNE, R1, tcp_new_syn_recv), full);
	em.emit(st(BPF_W, layout::pkt, off::own_req, 1));
	emit_follow(em, ly.rsk_listener, none);
	full.bind();
	// !net_eq(net, sock_net(sk)): the device's namespace is the hook's.
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_ptr));
	em.emit(alu64_imm(BPF_ADD, R3, ly.sk_net));
	emit_read(em, off::own_net, 8, none);
	em.emit(mov64(R3, ctx));
	em.emit(alu64_imm(BPF_ADD, R3, ly.skb_dev));
	emit_read(em, off::own_gi, 8, none);
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_gi));
	em.jump(jmp_imm(BPF_JEQ, R3, 0), none);
	em.emit(alu64_imm(BPF_ADD, R3, ly.dev_net));
	emit_read(em, off::own_gi, 8, none);
	em.emit(ldx(BPF_DW, R1, layout::pkt, off::own_gi));
	em.emit(ldx(BPF_DW, R2, layout::pkt, off::own_net));
	em.emit(st(BPF_DW, layout::pkt, off::own_gi, 0));
	em.jump(jmp_reg(BPF_JNE, R1, R2), none);
	emit_follow(em, ly.sk_socket, none); // sk->sk_socket
	em.emit(st(BPF_W, layout::pkt, off::own_kind, layout::owner_socket));
	emit_follow(em, ly.sock_file, done); // ->file
	emit_follow(em, ly.file_cred, done); // ->f_cred
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_ptr));
	em.emit(alu64_imm(BPF_ADD, R3, ly.fsuid));
	emit_read(em, off::own_uid, 4, done);
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_ptr));
	em.emit(alu64_imm(BPF_ADD, R3, ly.fsgid));
	emit_read(em, off::own_gid, 4, done);
	em.emit(ldx(BPF_DW, R3, layout::pkt, off::own_ptr));
	em.emit(alu64_imm(BPF_ADD, R3, ly.group_info));
	emit_read(em, off::own_gi, 8, done);
	em.emit(st(BPF_W, layout::pkt, off::own_kind, layout::owner_file));
	em.jump(ja(), done);
	none.bind();
	em.emit(st(BPF_W, layout::pkt, off::own_kind, layout::owner_none));
	em.emit(st(BPF_DW, layout::pkt, off::own_gi, 0));
	done.bind();
}

void emit_owner_match(Cond &c, const ir::OwnerMatch &m, const Plan &plan)
{
	Emitter &em = c.em();
	// The answers that do not depend on the credentials, as owner_mt() gives them.
	const bool if_none = (m.match ^ m.invert) == 0;
	const bool if_socket = !(m.match & m.invert & xt_socket) &&
			       ((m.match ^ m.invert) & (xt_uid | xt_gid)) == 0;
	Label no(em), yes(em), done(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::own_kind));
	em.jump(jmp32_imm(BPF_JEQ, R1, layout::owner_none), if_none ? yes : no);
	em.jump(jmp32_imm(BPF_JEQ, R1, layout::owner_socket), if_socket ? yes : no);
	if (m.match & m.invert & xt_socket) {
		em.jump(ja(), no);
	} else {
		if (m.match & xt_uid) {
			if (m.invert & xt_uid) {
				Label outside(em);
				emit_outside(em, off::own_uid, m.uid_min, m.uid_max, outside);
				em.jump(ja(), no);
				outside.bind();
			} else {
				emit_outside(em, off::own_uid, m.uid_min, m.uid_max, no);
			}
		}
		if (m.match & xt_gid) {
			Label in(em), out(em), fsgid_out(em);
			emit_outside(em, off::own_gid, m.gid_min, m.gid_max, fsgid_out);
			em.jump(ja(), in);
			fsgid_out.bind();
			if (m.match & xt_suppl)
				emit_groups_search(em, m.gid_min, m.gid_max, plan.owner, out);
			else
				em.jump(ja(), out);
			// Here when a group is within the range.
			in.bind();
			if (m.invert & xt_gid)
				em.jump(ja(), no);
			else
				em.jump(ja(), yes);
			out.bind();
			if (!(m.invert & xt_gid))
				em.jump(ja(), no);
		}
		em.jump(ja(), yes);
	}
	yes.bind();
	em.emit(st(BPF_W, layout::pkt, off::own_res, 1));
	em.jump(ja(), done);
	no.bind();
	em.emit(st(BPF_W, layout::pkt, off::own_res, 0));
	done.bind();
	em.emit(ldx(BPF_W, R1, layout::pkt, off::own_res));
	c.fail_if(R1, Cond::Val::Value32, true);
}

} // namespace bpfilter::codegen
