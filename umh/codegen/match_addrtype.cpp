// -m addrtype (revisions 0 and 1, IPv4): each address's type as inet_dev_addr_type() gives
// it, looked up in the AddrTypes map (the routes the helper resolved, maps::AddrTypeValue).
#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;
namespace at = maps::addr_type_off;

namespace
{

constexpr int32_t rtn_unicast = 1, rtn_broadcast = 3, rtn_multicast = 5;
static_assert(layout::main_key == layout::sub_key);

// R3 = inet_dev_addr_type() of the address at `field` (network order; `field_h`, host
// order), limited to the device named at `dev_name` (-1: none). Clobbers R0-R5.
void emit_type(Emitter &em, int16_t field, int16_t field_h, int16_t dev_name)
{
	Label have(em), typed(em);
	// __inet_dev_addr_type(): 0/8 and 255.255.255.255 are BROADCAST, 224/4 MULTICAST,
	// before any table is consulted.
	em.emit(mov64(R3, rtn_broadcast));
	em.emit(ldx(BPF_W, R1, layout::pkt, field_h));
	em.emit(mov64(R2, R1));
	em.emit(alu32_imm(BPF_RSH, R2, 24));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0), have);
	em.jump(jmp32_imm(BPF_JEQ, R1, -1), have);
	em.emit(mov64(R3, rtn_multicast));
	em.emit(alu32_imm(BPF_RSH, R1, 28));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0xe), have);
	// The longest route that covers it; none: UNICAST.
	em.emit(st(BPF_W, R10, layout::sub_key, 32));
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	em.emit(stx(BPF_W, R10, R1, layout::sub_key + 4));
	em.ld_map(R1, MapSlot::AddrTypes);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::sub_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.emit(mov64(R3, rtn_unicast));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), have);
	if (dev_name >= 0) {
		// Only a route whose first next hop is on the device counts. A hook without
		// that device (its name is empty) passes NULL: no limit.
		em.emit(ldx(BPF_B, R1, layout::pkt, dev_name));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), typed);
		em.emit(ldx(BPF_B, R1, R0, at::has_dev));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), have);
		for (int16_t k = 0; k < 16; k += 8) {
			em.emit(ldx(BPF_DW, R1, R0, static_cast<int16_t>(at::dev + k)));
			em.emit(ldx(BPF_DW, R2, layout::pkt, static_cast<int16_t>(dev_name + k)));
			em.jump(jmp_reg(BPF_JNE, R1, R2), have);
		}
	}
	typed.bind();
	em.emit(ldx(BPF_B, R3, R0, at::type));
	have.bind();
}

void emit_one(Cond &c, int16_t field, int16_t field_h, int16_t dev_name, uint16_t mask, bool invert)
{
	Emitter &em = c.em();
	emit_type(em, field, field_h, dev_name);
	// match_type(): mask & (1 << type), xor the inversion.
	em.emit(mov64(R1, 1));
	em.emit(alu64_reg(BPF_LSH, R1, R3));
	em.emit(alu32_imm(BPF_AND, R1, mask));
	c.fail_if(R1, Cond::Val::Value32, !invert);
}

} // namespace

void emit_addrtype(Cond &c, const ir::AddrtypeMatch &m)
{
	int16_t dev_name = -1;
	if (m.dev == ir::AddrtypeMatch::Dev::In)
		dev_name = off::ifname;
	else if (m.dev == ir::AddrtypeMatch::Dev::Out)
		dev_name = off::out_ifname;
	if (m.source)
		emit_one(c, off::saddr, off::saddr_h, dev_name, m.source, m.invert_source);
	if (m.dest)
		emit_one(c, off::daddr, off::daddr_h, dev_name, m.dest, m.invert_dest);
}

} // namespace bpfilter::codegen
