// The program image under construction: label binding, jump and call patching.
#include "codegen/emitter.hpp"

#include <limits>

namespace bpfilter::codegen {

Label::~Label()
{
	if (!bound())
		bind();
}

void Label::bind()
{
	if (bound()) {
		em_.fail("codegen: label bound twice");
		return;
	}
	target_ = em_.pos();
	for (size_t at : pending_)
		patch(at);
	pending_.clear();
}

void Label::patch(size_t at)
{
	// Offsets count from the instruction after the jump and must fit in 16 bits.
	const long rel = static_cast<long>(*target_) - static_cast<long>(at) - 1;
	if (rel < std::numeric_limits<int16_t>::min() || rel > std::numeric_limits<int16_t>::max()) {
		em_.fail("codegen: jump of " + std::to_string(rel) + " instructions is out of range");
		return;
	}
	em_.insns_[at].off = static_cast<int16_t>(rel);
}

void Emitter::jump(bpf_insn jmp, Label &to)
{
	const size_t at = pos();
	emit(jmp);
	if (to.bound())
		to.patch(at);
	else
		to.pending_.push_back(at);
}

void Emitter::ld_imm64(Reg dst, uint64_t value)
{
	emit(insn::ld_imm64_lo(dst, 0, value));
	emit(insn::ld_imm64_hi(value));
}

void Emitter::ld_map(Reg dst, MapSlot slot)
{
	map_refs_.push_back(MapRef{pos(), slot});
	// The loader writes the map's fd into imm.
	emit(insn::ld_imm64_lo(dst, BPF_PSEUDO_MAP_FD, 0));
	emit(insn::ld_imm64_hi(0));
}

void Emitter::call(SubprogId id)
{
	calls_.emplace_back(pos(), id);
	emit(insn::call_pseudo());
}

void Emitter::begin_subprog(SubprogId id)
{
	if (subprog_start_.size() <= id)
		subprog_start_.resize(id + 1);
	if (subprog_start_[id])
		fail("codegen: subprogram " + std::to_string(id) + " started twice");
	subprog_start_[id] = pos();
}

void Emitter::fail(std::string message)
{
	if (!error_)
		error_ = make_error(EOPNOTSUPP, std::move(message));
}

Result<Program> Emitter::finish(uint32_t num_counters) &&
{
	for (auto [at, id] : calls_) {
		if (id >= subprog_start_.size() || !subprog_start_[id]) {
			fail("codegen: call to subprogram " + std::to_string(id) + " that was never emitted");
			break;
		}
		insns_[at].imm = static_cast<int32_t>(static_cast<long>(*subprog_start_[id]) -
						      static_cast<long>(at) - 1);
	}
	if (error_)
		return *error_;
	return Program{std::move(insns_), std::move(map_refs_), num_counters};
}

} // namespace bpfilter::codegen
