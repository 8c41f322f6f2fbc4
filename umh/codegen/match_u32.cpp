// -m u32 (revision 0): u32_match_it() of xt_u32.c on the copy of the datagram the prologue
// left in this CPU's U32Buf value (emit_u32_copy()), pkt_off::u32_len bytes of it.
//
// Each test is unrolled: its first read at a constant position, then each operator, each
// `@` with the kernel's overflow and bounds checks as one comparison in 64 bits (at + pos +
// 4 <= len holds exactly when the kernel's four tests pass), then its ranges. A read the
// checks allow lies below len <= 65535, so the offset masked with 0xffff is the same
// offset, and the verifier sees every 4-byte read inside the value (maps::u32_buf_size).
#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

constexpr uint8_t op_and = 0, op_leftsh = 1, op_rightsh = 2, op_at = 3; // enum xt_u32_ops
// The largest position a 4-byte read can have in a datagram of at most 65535 bytes.
constexpr uint32_t last_pos = 0xffff - 4;

// Registers: R0 the buffer, R1 the value, R2 `at`, R3 and R4 scratch, R5 the length.
constexpr Reg buf = R0, val = R1, at = R2, len = R5;

// val = the big-endian u32 at buf + R4 (clobbers R3).
void emit_read(Emitter &em)
{
	em.emit(mov64(R3, buf));
	em.emit(alu64_reg(BPF_ADD, R3, R4));
	em.emit(ldx(BPF_W, val, R3, 0));
	em.emit(be(val, 32));
}

// Does the test fail for every packet? No range can hold, or a read lies beyond any datagram.
bool never_holds(const ir::U32Match::Test &t)
{
	if (t.locs.at(0).number > last_pos)
		return true;
	for (size_t i = 1; i < t.locs.size(); i++)
		if (t.locs[i].nextop == op_at && t.locs[i].number > last_pos)
			return true;
	for (const ir::U32Match::Range &r : t.values)
		if (r.min <= r.max)
			return false;
	return true;
}

// One test, which never_holds() does not refuse; jumps to `fail` when it does not hold.
void emit_test(Emitter &em, const ir::U32Match::Test &t, Label &fail)
{
	const uint32_t pos0 = t.locs.at(0).number;
	// skb->len < 4 || pos > skb->len - 4, which is len < pos + 4.
	em.jump(jmp_imm(BPF_JLT, len, static_cast<int32_t>(pos0 + 4)), fail);
	em.emit(mov64(R4, static_cast<int32_t>(pos0)));
	emit_read(em);
	em.emit(mov64(at, 0));
	for (size_t i = 1; i < t.locs.size(); i++) {
		const uint32_t number = t.locs[i].number;
		switch (t.locs[i].nextop) {
		case op_and:
			em.emit(alu32_imm(BPF_AND, val, static_cast<int32_t>(number)));
			break;
		case op_leftsh: // below 32: u32_mt_checkentry()
			em.emit(alu32_imm(BPF_LSH, val, static_cast<int32_t>(number)));
			break;
		case op_rightsh:
			em.emit(alu32_imm(BPF_RSH, val, static_cast<int32_t>(number)));
			break;
		case op_at:
			// at + val < at (the u32 sum wraps), at + 4 < at, skb->len < at + 4,
			// pos > skb->len - at - 4: in 64 bits, with the earlier at below 65536 and
			// pos at most last_pos, all four are at + val + pos + 4 > len (a sum that
			// wraps in 32 bits is 2^32 or more here, beyond any len).
			em.emit(alu64_reg(BPF_ADD, at, val));
			em.emit(mov64(R4, at));
			em.emit(alu64_imm(BPF_ADD, R4, static_cast<int32_t>(number + 4)));
			em.jump(jmp_reg(BPF_JGT, R4, len), fail);
			em.emit(mov64(R4, at));
			em.emit(alu64_imm(BPF_ADD, R4, static_cast<int32_t>(number)));
			em.emit(alu64_imm(BPF_AND, R4,
					  0xffff)); // the same offset; bounds for the verifier
			emit_read(em);
			break;
		default: // the kernel's switch does nothing
			break;
		}
	}
	// The "," and ":" operands: the test holds when a range holds the value.
	Label held(em);
	for (const ir::U32Match::Range &r : t.values) {
		if (r.min > r.max)
			continue;
		if (r.min == 0 && r.max == 0xffffffffu) { // holds whatever the value
			em.jump(ja(), held);
			held.bind();
			return;
		}
		Label below(em);
		if (r.min > 0)
			em.jump(jmp32_imm(BPF_JLT, val, static_cast<int32_t>(r.min)), below);
		if (r.max < 0xffffffffu)
			em.jump(jmp32_imm(BPF_JLE, val, static_cast<int32_t>(r.max)), held);
		else
			em.jump(ja(), held);
		below.bind();
	}
	em.jump(ja(), fail);
	held.bind();
}

} // namespace

void emit_u32(Cond &c, const ir::U32Match &m)
{
	// u32_mt(): ret ^ data->invert, a bool xor'ed with a u8.
	if (m.invert > 1)
		return;
	const bool invert = m.invert == 1;
	// u32_match_it() false for every packet (tests have no effects, so one that never
	// holds decides), or true: no tests.
	for (const ir::U32Match::Test &t : m.tests)
		if (never_holds(t)) {
			if (!invert)
				c.fail();
			return;
		}
	if (m.tests.empty()) {
		if (invert)
			c.fail();
		return;
	}

	Emitter &em = c.em();
	Label fail(em), done(em);
	em.emit(call_helper(BPF_FUNC_get_smp_processor_id));
	em.emit(stx(BPF_W, layout::pkt, R0, off::u32_key));
	em.ld_map(R1, MapSlot::U32Buf);
	em.emit(mov64(R2, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::u32_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, buf, 0), fail); // no entry for this CPU: nothing was copied
	em.emit(ldx(BPF_W, len, layout::pkt, off::u32_len));
	for (const ir::U32Match::Test &t : m.tests)
		emit_test(em, t, fail);
	em.emit(mov64(R1, 0));
	em.jump(ja(), done);
	fail.bind();
	em.emit(mov64(R1, 1));
	done.bind();
	// R1: u32_match_it() failed.
	c.fail_if(R1, Cond::Val::Bit, invert);
}

} // namespace bpfilter::codegen
