// Matcher emitters: each adds the tests of one match family to a rule through a Cond.
//
// They read the parsed packet through layout::pkt (R9) and may clobber R0-R5. A match
// that netfilter would answer with hotdrop (its header is not all there) emits
// `r0 = DROP; exit` itself: the packet is dropped and the rule is not counted.
#pragma once

#include <cstdint>

#include "codegen/emitter.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// What a test comes to when the answer does not depend on the packet.
enum class Fold : uint8_t { Always, Never, Test };

// How a rule's tests fail.
//
// Branch: each failing test jumps to the next rule. Fewest instructions per packet, but
// the verifier keeps every such jump of a rule but one pending until it has explored the
// rest of the program, and refuses a program with more than 8192 pending, which a few
// thousand rules reach.
// Accumulate: each test ORs a "mismatch" into layout::acc and the rule has one jump at
// its end; hotdrops are gated on nothing having failed before them (the kernel only
// reaches a match when the earlier ones passed). More instructions per packet, but the
// verifier's pending jumps no longer grow with the rules. With first_branch the rule's
// first test jumps as in Branch: most packets fail a rule there, and it costs the
// verifier one pending jump per rule.
class Cond
{
public:
	enum class Mode : uint8_t { Branch, Accumulate };
	// What a register holds that says "mismatch" when nonzero.
	enum class Val : uint8_t { Bit, Value32, Value64 };

	// first_branch: in Accumulate mode, the first test still jumps (FirstBranch).
	// fragments: the rule may see a datagram's later pieces (FORWARD), which the port
	// matches must not match.
	Cond(Emitter &em, Mode mode, Label &no_match, bool first_branch = false,
	     bool fragments = false)
	    : em_(em), mode_(mode), no_match_(no_match), first_branch_(first_branch),
	      fragments_(fragments)
	{
	}
	Emitter &em() { return em_; }
	Mode mode() const { return mode_; }
	Label &no_match() { return no_match_; }

	// The rule fails when r (clobbered) is nonzero, or when it is zero if `invert`.
	void fail_if(Reg r, Val kind, bool invert);
	// The rule fails when the u32 in r differs from want (equals it, if `invert`).
	void eq32(Reg r, uint32_t want, bool invert);
	// The rule fails when the u32 field of the parsed packet is outside [lo, hi]
	// (inside, if `invert`); max is the field's largest value.
	void range(int16_t field, uint32_t lo, uint32_t hi, uint32_t max, bool invert);
	// The rule fails, whatever the packet.
	void fail();
	// Hotdrop unless `bytes` of transport header are within the datagram.
	void need_l4(uint32_t bytes);
	// Hotdrop when the u32 field (0 or 1) is set.
	void hotdrop_if_field(int16_t field);
	// What tcp, udp, icmp and multiport do first: a packet with a fragment offset
	// matches nothing, and tcp hotdrops one at offset 1 ("Don't allow a fragment of TCP
	// 8 bytes in"). Nothing where the rule cannot see fragments.
	void no_fragment(bool hotdrop_at_one);
	// Accumulate: the rule's one jump. Call once, after every test.
	void finish();
	// Jump to `skip` when an earlier test of the rule failed (Accumulate mode), for a
	// match with effects (-m limit takes a token): the kernel runs a match only when every
	// one before it passed. The tests emitted before `skip` is bound must leave the rule
	// failing on that path, which they do since the mismatch is already accumulated.
	void skip_if_failed(Label &skip);

	// dst = 1 when the u32 field is outside [lo, hi], else 0 (clobbers R1).
	void out_of_range_bit(int16_t field, uint32_t lo, uint32_t hi, uint32_t max, Reg dst);

private:
	// Hotdrop when the bit in r is set and nothing failed before (clobbers r, R2).
	void hotdrop_if_bit(Reg r);
	void or_acc(Reg r);

	Emitter &em_;
	Mode mode_;
	Label &no_match_;
	bool acc_set_ = false; // Accumulate: layout::acc holds something
	bool first_branch_;
	bool fragments_;
	bool tested_ = false; // a test has been emitted

	// Does this test jump? In Branch mode all do; with first_branch, the first.
	bool branching() const { return mode_ == Mode::Branch || (first_branch_ && !tested_); }
};

// The ipt_ip part of a rule as judged at each of `hooks` (HookSet: INPUT has no output
// device, OUTPUT no input device, and only FORWARD sees a datagram's later fragments): a
// constant where the answer is the same at each, else tests.
Fold fold_ip(const ir::IpHeaderMatch &ip, HookSet hooks);
void emit_ip(Cond &c, const ir::IpHeaderMatch &ip, HookSet hooks);
// Does the rule's ipt_ip test the input (output) device's name at some of `hooks`?
bool tests_in_iface(const ir::IpHeaderMatch &ip, HookSet hooks);
bool tests_out_iface(const ir::IpHeaderMatch &ip, HookSet hooks);

void emit_tcp(Cond &c, const ir::TcpMatch &m);
void emit_udp(Cond &c, const ir::UdpMatch &m);
void emit_icmp(Cond &c, const ir::IcmpMatch &m);
void emit_multiport(Cond &c, const ir::MultiportMatch &m);
void emit_iprange(Cond &c, const ir::IprangeMatch &m);
// -m conntrack / -m state, on the connection-tracking view the prologue leaves in the
// parsed packet (layout::pkt_off::ct_*).
void emit_conntrack(Cond &c, const ir::ConntrackMatch &m);
// -m addrtype: a lookup of each address in the AddrTypes map.
void emit_addrtype(Cond &c, const ir::AddrtypeMatch &m);

// The header matches (match_header.cpp), on the fields the prologue parsed: ip_len, ttl,
// tos, th13 and l4w0/l4w4 always or where the plan asks, pkttype and mac_* where
// Plan::uses_l2.
void emit_length(Cond &c, const ir::LengthMatch &m);
void emit_ttl(Cond &c, const ir::TtlMatch &m);
void emit_tos(Cond &c, const ir::TosMatch &m);
void emit_ecn(Cond &c, const ir::EcnMatch &m);
void emit_pkttype(Cond &c, const ir::PkttypeMatch &m);
void emit_mac(Cond &c, const ir::MacMatch &m);
void emit_spi(Cond &c, const ir::SpiMatch &m);
struct Plan;
// -m owner on what emit_owner() found of the sending socket (layout::pkt_off::own_*); reads
// the supplementary groups with the kernel's layout (Plan::owner).
void emit_owner_match(Cond &c, const ir::OwnerMatch &m, const Plan &plan);
// tc egress prologue, for a table with -m owner: the sending socket as owner_mt() finds it,
// into pkt_off::own_kind, own_uid, own_gid, own_gi. R6 = the context.
void emit_owner(Emitter &em, const OwnerLayout &ly);

// -m limit: takes a token from the rule's bucket (MapSlot::Limits) as limit_mt() does;
// hz is the kernel's.
void emit_limit(Cond &c, const ir::LimitMatch &m, uint32_t hz);
// -m hashlimit: hashlimit_mt_common() on the rule's htable (`h`, number and max in `ref`),
// in the namespace's MapSlot::Hashlimit.
void emit_hashlimit(Cond &c, const ir::HashlimitMatch &m, const ir::HashlimitTable &h,
		    const Options::HashlimitRef &ref, uint32_t hz);

// -m mark on the mark the chains see (layout::pkt_off::mark), -m connmark on the connection
// tracking view's (pkt_off::ct_mark).
void emit_mark(Cond &c, const ir::MarkMatch &m);
void emit_connmark(Cond &c, const ir::ConnmarkMatch &m);

// -m u32: u32_mt() on the datagram the prologue copied (emit_u32_copy()).
void emit_u32(Cond &c, const ir::U32Match &m);

// -m connlimit: connlimit_mt() on what the prologue worked out (emit_connlimit_probe()):
// the rule's list stored, the count compared, 0 a hotdrop.
void emit_connlimit(Cond &c, const ir::ConnlimitMatch &m);

struct Plan;
// -m recent: recent_mt() on the rule's list in the namespace's RecentEntries map.
void emit_recent(Cond &c, const ir::RecentMatch &m, const Plan &plan);
// The callback emit_recent() walks a list with (Plan::recent_walk_id()).
void emit_recent_walk(Emitter &em, SubprogId id);

} // namespace bpfilter::codegen
