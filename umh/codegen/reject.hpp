// REJECT's replies: what the main program does with a ret_reject verdict.
#pragma once

#include <cstdint>

#include "codegen/codegen.hpp"
#include "codegen/emitter.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// Does reject_tg() send something for this `with` (enum ipt_reject_with)? For any other
// value it only returns NF_DROP.
bool rejects(uint32_t with);
bool rejects_icmp(uint32_t with);

// Has the table a REJECT rule that sends replies?
bool table_rejects(const ir::Table &table);

// In the main program, after hook `hook`'s verdict came back as layout::ret_reject + with
// in R0 (R6 = the context, R9 = the parsed packet): drop the packet and send the reply
// nf_send_unreach() or nf_send_reset() would, from the packet itself. Native XDP leaves
// the verdict in the packet's metadata for the device's tc ingress program
// (layout::xdp_mark_magic) and passes it; generic XDP sends with XDP_TX; tc ingress
// redirects the reply along the route back to the sender, marked with
// layout::reply_mark_magic so that the tc egress program of the device it leaves by judges
// it by OUTPUT; tc egress into lo's ingress. `tracks`: the table
// tracks connections (the parsed packet's ct_* view is there to give the reply).
// Where the kernel would send nothing, to `drop`.
void emit_reject(Emitter &em, Flavor flavor, ir::Hook hook, const ReplySysctls &sysctls,
		 bool tracks, Label &drop);

} // namespace bpfilter::codegen
