// Connection tracking in the prologue: what nf_conntrack_in() would have attached to the
// packet by the time the filter table's hook runs, from the kernel's own connection table.
#pragma once

#include "codegen/codegen.hpp"
#include "codegen/emitter.hpp"

namespace bpfilter::codegen
{

// Zero what emit_ct_parse() fills, for packets it does not see (later fragments).
void emit_ct_parse_reset(Emitter &em);

// While the packet is parsed: the transport header's bytes 4-5 and an ICMP error's quoted
// header, into the parsed packet (layout::pkt_off::ct_l4avail ..). In: `l4` = the transport
// header's address, `data_end`, `l4len` = bytes from l4 to tot_len; all three are kept.
void emit_ct_parse(Emitter &em, Reg l4, Reg data_end, Reg l4len);

// Before a chain runs: the connection-tracking view (layout::pkt_off::ct_statebit ..).
// `ctx` is the program's context, kept; every other register but R9-R10 is clobbered.
void emit_ct_state(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ct);

// tc egress, after emit_ct_state(): REJECT's reply another hook redirected here
// (layout::pkt_off::rj_reply) carries the rejected packet's entry, which nf_ct_attach()
// gave it: RELATED, in the other direction; an entry not yet confirmed (the rejected packet
// made it) is viewed from the packet the reply answers. Clobbers R1-R3.
void emit_ct_reply(Emitter &em);

// After the chains let the packet through (R0 holds layout::ret_accept, kept): make or
// refresh bpfilter's own entry (maps::CtOwnKey) as the kernel would its entry. At tc egress,
// when they drop the first packet of a flow the host starts, expire the kernel's entry that
// packet made. R0 and R6 (the context, `ctx`) are kept.
void emit_ct_confirm(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ct);

// A forwarded packet whose TTL ran out (ip_forward() drops it before FORWARD and sends
// ICMP time exceeded): a TCP or UDP packet that would make a new entry leaves a note, by
// which tc egress gives the kernel's error the state nf_ct_attach() gives it (RELATED,
// reply direction). `ctx` kept; every other register but R9-R10 clobbered.
void emit_ct_expired_note(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ct);

// After emit_ct_state(), for a table with -m connlimit: a call of the function
// emit_connlimit_probe() makes, with the context. Clobbers R0-R5.
void emit_connlimit_probe_call(Emitter &em, Reg ctx, SubprogId id);

// That function (subprogram `id`, arguments the context and the parsed packet): for each of
// the table's connlimit matches whose rule `hooks` can reach, what count_tree() would find
// for this packet (the kernel's entries of its list's tuples looked up, with the kfuncs, as
// find_or_evict() does) into the ConnlimitTmp map (maps::ConnlimitSlot); the match takes
// it from there (emit_connlimit()).
void emit_connlimit_probe(Emitter &em, SubprogId id, Flavor flavor, const CtLayout &ct,
			  const ir::Table &table, HookSet hooks);

} // namespace bpfilter::codegen
