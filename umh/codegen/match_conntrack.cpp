// -m conntrack and -m state (conntrack_mt in xt_conntrack.c) on the connection-tracking view
// the prologue leaves in the parsed packet (emit_ct_state()).
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

// XT_CONNTRACK_* match and invert flags.
constexpr uint16_t f_state = 1 << 0, f_proto = 1 << 1, f_origsrc = 1 << 2, f_origdst = 1 << 3,
		   f_replsrc = 1 << 4, f_repldst = 1 << 5, f_status = 1 << 6,
		   f_origsrc_port = 1 << 8, f_origdst_port = 1 << 9, f_replsrc_port = 1 << 10,
		   f_repldst_port = 1 << 11, f_direction = 1 << 12;
// The state bits that come with an entry (ESTABLISHED, RELATED, NEW).
constexpr int32_t st_with_entry = 2 | 4 | 8;

void addr(Cond &c, const ir::ConntrackMatch &m, uint16_t flag, int16_t field, const ir::CtAddr &a)
{
	if (!(m.match_flags & flag))
		return;
	Emitter &em = c.em();
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	if (a.mask != 0xffffffffu)
		em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(a.mask)));
	c.eq32(R1, a.addr & a.mask, m.invert_flags & flag);
}

void port(Cond &c, const ir::ConntrackMatch &m, uint16_t flag, int16_t field,
	  const ir::PortRange &r)
{
	if (m.match_flags & flag)
		c.range(field, r.lo, r.hi, 0xffff, m.invert_flags & flag);
}

} // namespace

void emit_conntrack(Cond &c, const ir::ConntrackMatch &m)
{
	Emitter &em = c.em();
	const auto inv = [&](uint16_t flag) { return (m.invert_flags & flag) != 0; };
	if (m.match_flags & f_state) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::ct_statebit));
		em.emit(alu32_imm(BPF_AND, R1, m.state_mask));
		c.fail_if(R1, Cond::Val::Value32, !inv(f_state));
	}
	const uint16_t rest = f_proto | f_origsrc | f_origdst | f_replsrc | f_repldst | f_status |
			      f_origsrc_port | f_origdst_port | f_replsrc_port | f_repldst_port |
			      f_direction;
	// Without an entry the match is its state test alone (it matches when there is one).
	Label no_entry(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::ct_statebit));
	em.emit(alu32_imm(BPF_AND, R1, st_with_entry));
	if (!(m.match_flags & f_state)) {
		c.fail_if(R1, Cond::Val::Value32, true);
	} else {
		if (!(m.match_flags & rest))
			return;
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), no_entry);
	}
	if (m.match_flags & f_direction) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::ct_dir));
		c.fail_if(R1, Cond::Val::Value32, inv(f_direction));
	}
	addr(c, m, f_origsrc, off::ct_orig_src, m.origsrc);
	addr(c, m, f_origdst, off::ct_orig_dst, m.origdst);
	addr(c, m, f_replsrc, off::ct_repl_src, m.replsrc);
	addr(c, m, f_repldst, off::ct_repl_dst, m.repldst);
	if (m.match_flags & f_proto) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::ct_proto));
		c.eq32(R1, m.l4proto, inv(f_proto));
	}
	port(c, m, f_origsrc_port, off::ct_orig_sport, m.origsrc_port);
	port(c, m, f_origdst_port, off::ct_orig_dport, m.origdst_port);
	port(c, m, f_replsrc_port, off::ct_repl_sport, m.replsrc_port);
	port(c, m, f_repldst_port, off::ct_repl_dport, m.repldst_port);
	if (m.match_flags & f_status) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::ct_status));
		em.emit(alu32_imm(BPF_AND, R1, m.status_mask));
		c.fail_if(R1, Cond::Val::Value32, !inv(f_status));
	}
	no_entry.bind();
}

} // namespace bpfilter::codegen
