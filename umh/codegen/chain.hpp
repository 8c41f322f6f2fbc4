// Emitting runs of rules: matches, counters, targets, and the calls that stand for ip_tables' jump
// stack.
#pragma once

#include "codegen/emitter.hpp"
#include "codegen/plan.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// The main program's run from INPUT's entry. A RETURN here has an empty jump stack:
// the kernel goes on at the policy rule, and so do we.
void emit_main_run(Emitter &em, const ir::Table &table, const Plan &plan);

// Subprogram `id`: R1 holds the parsed packet; it exits with a verdict or RETURN.
void emit_subprog(Emitter &em, const ir::Table &table, const Plan &plan, SubprogId id);

// With Plan::chunks: the main program's calls of each chunk in turn, and chunk k.
void emit_main_chunks(Emitter &em, const ir::Table &table, const Plan &plan);
void emit_chunk(Emitter &em, const ir::Table &table, const Plan &plan, size_t k);

} // namespace bpfilter::codegen
