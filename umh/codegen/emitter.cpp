// The program image under construction: label binding, jump and call patching.
#include "codegen/emitter.hpp"

#include <algorithm>

#include <limits>

namespace bpfilter::codegen
{

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
	if (!pending_.empty())
		em_.live_ = true;
	bound_dead_ = !em_.live_;
	for (size_t at : pending_)
		patch(at);
	pending_.clear();
}

void Label::patch(size_t at)
{
	// Offsets count from the instruction after the jump and must fit in 16 bits.
	const long rel = static_cast<long>(*target_) - static_cast<long>(at) - 1;
	if (rel < std::numeric_limits<int16_t>::min() ||
	    rel > std::numeric_limits<int16_t>::max()) {
		em_.fail("codegen: jump of " + std::to_string(rel) +
			 " instructions is out of range");
		return;
	}
	em_.insns_[at].off = static_cast<int16_t>(rel);
}

void Emitter::emit(bpf_insn i)
{
	if (!live_)
		return;
	insns_.push_back(i);
	const uint8_t op = BPF_OP(i.code), cls = BPF_CLASS(i.code);
	if (cls == BPF_JMP && (op == BPF_JA || op == BPF_EXIT))
		live_ = false;
}

void Emitter::jump(bpf_insn jmp, Label &to)
{
	if (!live_)
		return;
	if (to.bound_dead_) {
		fail("codegen: a jump back to code that was dropped as unreachable");
		return;
	}
	const size_t at = pos();
	emit(jmp);
	if (to.bound())
		to.patch(at);
	else
		to.pending_.push_back(at);
}

void Emitter::ld_imm64(Reg dst, uint64_t value)
{
	if (!live_)
		return;
	emit(insn::ld_imm64_lo(dst, 0, value));
	emit(insn::ld_imm64_hi(value));
}

void Emitter::ld_map(Reg dst, MapSlot slot, uint32_t index)
{
	if (!live_)
		return;
	map_refs_.push_back(MapRef{pos(), slot, index});
	// The loader writes the map's fd into imm.
	emit(insn::ld_imm64_lo(dst, BPF_PSEUDO_MAP_FD, 0));
	emit(insn::ld_imm64_hi(0));
}

void Emitter::ld_map_value(Reg dst, MapSlot slot, uint32_t off)
{
	if (!live_)
		return;
	map_refs_.push_back(MapRef{pos(), slot});
	emit(insn::ld_imm64_lo(dst, BPF_PSEUDO_MAP_VALUE, 0));
	emit(insn::make(0, 0, 0, 0, static_cast<int32_t>(off)));
}

void Emitter::call_kfunc(Kfunc func)
{
	if (!live_)
		return;
	kfunc_refs_.push_back(KfuncRef{pos(), func});
	emit(insn::make(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, 0));
}

void Emitter::call(SubprogId id)
{
	if (!live_)
		return;
	if (called_.size() <= id)
		called_.resize(id + 1);
	called_[id] = true;
	calls_.emplace_back(pos(), id);
	emit(insn::call_pseudo());
}

void Emitter::ld_func(Reg dst, SubprogId id)
{
	if (!live_)
		return;
	if (called_.size() <= id)
		called_.resize(id + 1);
	called_[id] = true;
	calls_.emplace_back(pos(), id); // imm: the offset from the next instruction, as a call's
	func_refs_ = true;
	emit(insn::ld_imm64_lo(dst, BPF_PSEUDO_FUNC, 0));
	emit(insn::ld_imm64_hi(0));
}

void Emitter::begin_subprog(SubprogId id, bool global)
{
	if (subprog_start_.size() <= id) {
		subprog_start_.resize(id + 1);
		global_.resize(id + 1);
	}
	global_[id] = global;
	if (subprog_start_[id])
		fail("codegen: subprogram " + std::to_string(id) + " started twice");
	subprog_start_[id] = pos();
	live_ = true;
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
			fail("codegen: call to subprogram " + std::to_string(id) +
			     " that was never emitted");
			break;
		}
		insns_[at].imm = static_cast<int32_t>(static_cast<long>(*subprog_start_[id]) -
						      static_cast<long>(at) - 1);
	}
	if (error_)
		return *error_;
	std::vector<Function> functions;
	// The kernel wants BTF for every function once one is global or taken as a callback
	// ("missing btf func_info").
	if (func_refs_ || std::find(global_.begin(), global_.end(), true) != global_.end()) {
		functions.push_back({0, false});
		for (size_t id = 0; id < subprog_start_.size(); id++)
			if (subprog_start_[id])
				functions.push_back({*subprog_start_[id], global_[id]});
		std::sort(functions.begin(), functions.end(),
			  [](const Function &a, const Function &b) { return a.insn < b.insn; });
	}
	return Program{std::move(insns_), std::move(map_refs_), std::move(kfunc_refs_),
		       std::move(functions), num_counters};
}

} // namespace bpfilter::codegen
