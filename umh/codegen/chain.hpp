// Emitting runs of rules: matches, counters, targets, and the calls that stand for ip_tables' jump
// stack.
#pragma once

#include "codegen/emitter.hpp"
#include "codegen/plan.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// The main program's run of a built-in chain. A RETURN here has an empty jump stack: the
// kernel goes on at the policy rule, and so do we. Verdicts exit with R0 (XDP's codes).
void emit_main_run(Emitter &em, const ir::Table &table, const Plan &plan, const HookRun &run);

// Hook k's run as a function (Plan::hook_is_fn): R1 holds the parsed packet; it returns
// the hook's verdict (the policy's where the chain falls through or RETURNs).
void emit_hook_fn(Emitter &em, const ir::Table &table, const Plan &plan, size_t k);

// Subprogram `id`: R1 holds the parsed packet; it exits with a verdict or RETURN.
void emit_subprog(Emitter &em, const ir::Table &table, const Plan &plan, SubprogId id);

// With HookRun::chunks: the main program's calls of each chunk in turn, and chunk k.
void emit_main_chunks(Emitter &em, const ir::Table &table, const Plan &plan, const HookRun &run);
void emit_chunk(Emitter &em, const ir::Table &table, const Plan &plan, const HookRun &run,
		size_t k);

} // namespace bpfilter::codegen
