// The program image under construction: instructions, labels with jump fixups, map and call references.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "codegen/codegen.hpp"
#include "codegen/insn.hpp"
#include "common/result.hpp"

namespace bpfilter::codegen {

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
class Label {
public:
	explicit Label(Emitter &em) : em_(em) {}
	~Label();
	Label(const Label &) = delete;
	Label &operator=(const Label &) = delete;

	// The next instruction emitted is the target.
	void bind();
	bool bound() const { return target_.has_value(); }

private:
	friend class Emitter;
	void patch(size_t at);

	Emitter &em_;
	std::optional<size_t> target_;
	std::vector<size_t> pending_;
};

// Subprograms are numbered by the caller; calls to them are patched in finish().
using SubprogId = uint32_t;

class Emitter {
public:
	size_t pos() const { return insns_.size(); }

	void emit(bpf_insn i) { insns_.push_back(i); }
	// A jump instruction (conditional or ja) whose offset is taken from `to`.
	void jump(bpf_insn jmp, Label &to);
	void ld_imm64(Reg dst, uint64_t value);
	void ld_map(Reg dst, MapSlot slot);
	// Call subprogram `id`; it must be started with begin_subprog() before finish().
	void call(SubprogId id);
	void begin_subprog(SubprogId id);

	// Remember the first thing that went wrong (a jump out of range, ...).
	void fail(std::string message);

	// Patch the calls and hand the image over.
	Result<Program> finish(uint32_t num_counters) &&;

private:
	friend class Label;
	std::vector<bpf_insn> insns_;
	std::vector<MapRef> map_refs_;
	std::vector<std::pair<size_t, SubprogId>> calls_;
	std::vector<std::optional<size_t>> subprog_start_;
	std::optional<Error> error_;
};

} // namespace bpfilter::codegen
