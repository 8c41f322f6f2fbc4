// The program image under construction: instructions, labels with jump fixups, map and call
// references.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "codegen/codegen.hpp"
#include "codegen/insn.hpp"
#include "common/result.hpp"

namespace bpfilter::codegen
{

class Emitter;

// A place in the program that jumps aim at. Jumps emitted before the label is bound are
// patched when it is; jumps after that are resolved at once. A label still unbound when
// it goes out of scope binds itself there, so
//
//	{
//		Label next(em);
//		em.jump(insn::jmp32_imm(BPF_JNE, R1, 6), next);
//		...
//	} // `next` lands here
//
// reads like the structured code it stands for.
//
// The emitter drops code that nothing can reach (after a `ja` or `exit`, until a label
// that some jump aims at), because the verifier refuses unreachable instructions and
// constant tests make them easy to produce.
class Label
{
public:
	explicit Label(Emitter &em) : em_(em) {}
	~Label();
	Label(const Label &) = delete;
	Label &operator=(const Label &) = delete;

	// The next instruction emitted is the target.
	void bind();
	bool bound() const { return target_.has_value(); }
	// Does some jump aim here (so far)?
	bool aimed_at() const { return !pending_.empty(); }

private:
	friend class Emitter;
	void patch(size_t at);

	Emitter &em_;
	std::optional<size_t> target_;
	std::vector<size_t> pending_;
	bool bound_dead_ = false; // bound where nothing falls or jumps in
};

// Subprograms are numbered by the caller; calls to them are patched in finish().
using SubprogId = uint32_t;

class Emitter
{
public:
	size_t pos() const { return insns_.size(); }
	// Can control reach the next instruction?
	bool live() const { return live_; }

	void emit(bpf_insn i);
	// A jump instruction (conditional or ja) whose offset is taken from `to`.
	void jump(bpf_insn jmp, Label &to);
	void ld_imm64(Reg dst, uint64_t value);
	void ld_map(Reg dst, MapSlot slot, uint32_t index = 0);
	// dst = the address of byte `off` of an array map's single value
	// (BPF_PSEUDO_MAP_VALUE).
	void ld_map_value(Reg dst, MapSlot slot, uint32_t off);
	// Call a kernel function; the loader fills in its BTF id.
	void call_kfunc(Kfunc func);
	// Call subprogram `id`; it must be started with begin_subprog() before finish().
	void call(SubprogId id);
	// dst = subprogram `id` as a callback (BPF_PSEUDO_FUNC), for helpers that take one.
	void ld_func(Reg dst, SubprogId id);
	// global: verified on its own (BTF says its argument is the parsed packet).
	void begin_subprog(SubprogId id, bool global = false);
	bool called(SubprogId id) const { return id < called_.size() && called_[id]; }
	bool started(SubprogId id) const
	{
		return id < subprog_start_.size() && subprog_start_[id].has_value();
	}

	// Remember the first thing that went wrong (a jump out of range, ...).
	void fail(std::string message);

	// Patch the calls and hand the image over.
	Result<Program> finish(uint32_t num_counters) &&;

private:
	friend class Label;
	std::vector<bpf_insn> insns_;
	std::vector<MapRef> map_refs_;
	std::vector<KfuncRef> kfunc_refs_;
	std::vector<std::pair<size_t, SubprogId>> calls_;
	std::vector<std::optional<size_t>> subprog_start_;
	std::vector<bool> global_;
	std::vector<bool> called_;
	std::optional<Error> error_;
	bool live_ = true;
	bool func_refs_ = false; // some ld_func(): the program needs BTF for its functions
};

} // namespace bpfilter::codegen
