// Matcher emitters: each adds code that falls through when its test passes and jumps to `no_match` when it fails.
//
// They read the parsed packet through layout::pkt (R9) and may clobber R0-R5. A match
// that netfilter would answer with hotdrop (its header is not all there) emits
// `r0 = DROP; exit` itself: the packet is dropped and the rule is not counted.
#pragma once

#include <cstdint>

#include "codegen/emitter.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen {

// What a test comes to when the answer does not depend on the packet.
enum class Fold : uint8_t { Always, Never, Test };

// The ipt_ip part of a rule as judged at INPUT of a reassembled datagram: no output
// device, never a fragment.
Fold fold_ip(const ir::IpHeaderMatch &ip);
void emit_ip(Emitter &em, const ir::IpHeaderMatch &ip, Label &no_match);

void emit_tcp(Emitter &em, const ir::TcpMatch &m, Label &no_match);
void emit_udp(Emitter &em, const ir::UdpMatch &m, Label &no_match);
void emit_icmp(Emitter &em, const ir::IcmpMatch &m, Label &no_match);
void emit_multiport(Emitter &em, const ir::MultiportMatch &m, Label &no_match);
void emit_iprange(Emitter &em, const ir::IprangeMatch &m, Label &no_match);

// Shared pieces.
// Pass when lo <= field <= hi (u32 field of the parsed packet; max is the field's
// largest value), inverted when `invert`.
void emit_range(Emitter &em, int16_t field, uint32_t lo, uint32_t hi, uint32_t max, bool invert,
		Label &no_match);
// Hotdrop unless at least `bytes` of transport header are within the datagram.
void emit_need_l4(Emitter &em, uint32_t bytes);

} // namespace bpfilter::codegen
