// The IR: a validated iptables table as plain data, the contract between the ABI parser and
// codegen.
//
// The table keeps ip_tables' own shape: a flat list of rules (one per ipt_entry, in blob
// order) with a jump stack at run time. Chains are not a separate structure because the
// kernel has none: a jump may land on any rule, a built-in chain starts at its hook entry
// and ends at its underflow (policy) rule, a user chain ends with an unconditional RETURN.
// Rule indices are also counter indices.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ir/hashlimit.hpp"

namespace bpfilter::ir
{

// netfilter's hooks, numbered as NF_INET_*.
enum class Hook : uint8_t {
	PreRouting = 0,
	LocalIn = 1,
	Forward = 2,
	LocalOut = 3,
	PostRouting = 4
};
inline constexpr unsigned num_hooks = 5;

// An interface name test as the kernel does it: (devname[i] ^ name[i]) & mask[i] == 0 for
// all 16 bytes. iptables sets mask to 0xff over the name and its NUL, or only over the
// name for "eth+". An all-zero mask matches every interface.
struct Iface {
	std::array<uint8_t, 16> name{};
	std::array<uint8_t, 16> mask{};
	bool operator==(const Iface &) const = default;
};

// The ipt_ip part of an entry, kept as the kernel evaluates it (ip_packet_match):
// (saddr & src_mask) != src fails the rule unless inverted; proto 0 is any; proto is
// 16 bits wide as in struct ipt_ip.
struct IpHeaderMatch {
	uint32_t src = 0, src_mask = 0; // network byte order
	uint32_t dst = 0, dst_mask = 0; // network byte order
	Iface in, out;
	uint16_t proto = 0;
	uint8_t flags = 0;    // IPT_F_FRAG (IPT_F_GOTO is lifted into the target)
	uint8_t invflags = 0; // IPT_INV_* (VIA_IN, VIA_OUT, SRCIP, DSTIP, PROTO, FRAG)
	bool operator==(const IpHeaderMatch &) const = default;
};

// Inclusive range of ports, host byte order.
struct PortRange {
	uint16_t lo = 0, hi = 0xffff;
	bool operator==(const PortRange &) const = default;
};

// -m tcp (struct xt_tcp): invflags are XT_TCP_INV_*; option 0 means no --tcp-option.
struct TcpMatch {
	PortRange sport, dport;
	uint8_t option = 0;
	uint8_t flg_mask = 0, flg_cmp = 0;
	uint8_t invflags = 0;
	bool operator==(const TcpMatch &) const = default;
};

// -m udp (struct xt_udp): invflags are XT_UDP_INV_*.
struct UdpMatch {
	PortRange sport, dport;
	uint8_t invflags = 0;
	bool operator==(const UdpMatch &) const = default;
};

// -m icmp (struct ipt_icmp): type 0xff matches any type.
struct IcmpMatch {
	uint8_t type = 0;
	uint8_t code_min = 0, code_max = 0xff;
	bool invert = false;
	bool operator==(const IcmpMatch &) const = default;
};

// -m multiport revision 1: the packet's ports tested against each range in order; the
// first hit decides (true ^ invert), no hit gives invert. A single port is a range lo == hi.
struct MultiportMatch {
	enum class Dir : uint8_t { Source = 1, Destination = 2, Either = 3 };
	Dir dir = Dir::Destination;
	std::vector<PortRange> ports;
	bool invert = false;
	bool operator==(const MultiportMatch &) const = default;
};

// -m iprange revision 1, IPv4: flags are IPRANGE_SRC, IPRANGE_DST, IPRANGE_SRC_INV,
// IPRANGE_DST_INV; bounds in host byte order.
struct IprangeMatch {
	uint8_t flags = 0;
	uint32_t src_min = 0, src_max = 0;
	uint32_t dst_min = 0, dst_max = 0;
	bool operator==(const IprangeMatch &) const = default;
};

// An address test of -m conntrack: (addr ^ want) & mask == 0, network byte order.
struct CtAddr {
	uint32_t addr = 0, mask = 0;
	bool operator==(const CtAddr &) const = default;
};

// -m conntrack (revisions 1 to 3) and -m state, as conntrack_mt reads them, in the terms of
// struct xt_conntrack_mtinfo3: flags are XT_CONNTRACK_* and state bits
// XT_CONNTRACK_STATE_*. Revisions 1 and 2 compare a port for equality, a range lo == hi
// here; revision 1's 8-bit masks are widened. -m state (xt_state) is
// {XT_CONNTRACK_STATE, its statemask with XT_STATE_UNTRACKED moved to
// XT_CONNTRACK_STATE_UNTRACKED}: state_mt answers as conntrack_mt does then, because a
// conntrack entry never has its SNAT/DNAT bits tested by a state mask that lacks them.
struct ConntrackMatch {
	uint16_t match_flags = 0, invert_flags = 0;
	uint16_t state_mask = 0, status_mask = 0;
	uint16_t l4proto = 0;
	CtAddr origsrc, origdst, replsrc, repldst;
	PortRange origsrc_port, origdst_port, replsrc_port, repldst_port; // host byte order
	uint32_t expires_min = 0, expires_max = 0;			  // seconds
	bool operator==(const ConntrackMatch &) const = default;
};

// -m addrtype (revisions 0 and 1, IPv4), as addrtype_mt_v0/_v1 read them: each address
// with a nonzero mask matches when mask & (1 << inet_dev_addr_type()) is nonzero, xor its
// inversion. dev: the device whose routes alone count (--limit-iface-in/-out, revision 1).
struct AddrtypeMatch {
	enum class Dev : uint8_t { None, In, Out };
	uint16_t source = 0, dest = 0; // XT_ADDRTYPE_* bits (1 << RTN_*)
	bool invert_source = false, invert_dest = false;
	Dev dev = Dev::None;
	bool operator==(const AddrtypeMatch &) const = default;
};

// What inet_dev_addr_type() finds for the addresses one route covers, after every choice
// fib_table_lookup() makes that does not depend on the address (see loader::addrtype):
// its type (RTN_*; a route whose lookup fails, as blackhole, unreachable, prohibit, throw,
// gives RTN_UNICAST), and the device of its first next hop (empty name: none).
struct AddrtypeRoute {
	uint32_t addr = 0; // network byte order
	uint8_t prefixlen = 32;
	uint8_t type = 1; // RTN_UNICAST
	bool has_dev = false;
	std::array<uint8_t, 16> dev{};
	bool operator==(const AddrtypeRoute &) const = default;
};

// -m limit (struct xt_rateinfo, revision 0): avg and burst as libxt_limit sends them, and
// the cap and cost a caller may give (0: limit_mt_check computes them). `slot` numbers the
// table's limit matches in blob order: each is a token bucket of its own (xt_limit_priv),
// made full when the table is set. The arithmetic is in ir/limit.hpp.
struct LimitMatch {
	uint32_t avg = 0, burst = 0;
	uint32_t credit_cap = 0, cost = 0;
	uint32_t slot = 0;
	bool operator==(const LimitMatch &) const = default;
};

// -m mark (struct xt_mark_mtinfo1, revision 1) and -m connmark (xt_connmark_mtinfo1): the
// packet's mark (skb->mark), or its conntrack entry's (ct->mark; no entry: no match, inverted
// or not), matches when ((mark & mask) == value) ^ invert is nonzero: invert is the u8
// the caller sent, so any value above 1 matches every packet (with an entry), as in the kernel.
struct MarkMatch {
	uint32_t mark = 0, mask = 0;
	uint8_t invert = 0;
	bool operator==(const MarkMatch &) const = default;
};
struct ConnmarkMatch {
	uint32_t mark = 0, mask = 0;
	uint8_t invert = 0;
	bool operator==(const ConnmarkMatch &) const = default;
};

// The header matches. Where the kernel xors a bool with an int field (length, pkttype,
// mac), `invert` keeps the field as sent: any value but 0 and 1 makes the match pass.
// -m length (xt_length_info): the datagram's length (skb_ip_totlen()) in [min, max].
struct LengthMatch {
	uint16_t min = 0, max = 0xffff;
	uint8_t invert = 0;
	bool operator==(const LengthMatch &) const = default;
};
// -m ttl (ipt_ttl_info): mode IPT_TTL_EQ, _NE, _LT, _GT (ttl_mt_check refuses others).
struct TtlMatch {
	uint8_t mode = 0, ttl = 0;
	bool operator==(const TtlMatch &) const = default;
};
// -m tos revision 1 and -m dscp: (iph->tos & mask) == value, xor invert; --dscp d is
// {0xfc, d << 2} (dscp_mt_check keeps d below 64).
struct TosMatch {
	uint8_t mask = 0xff, value = 0;
	bool invert = false;
	bool operator==(const TosMatch &) const = default;
};
// -m ecn (xt_ecn_info): operation and invert are XT_ECN_OP_MATCH_* bits.
struct EcnMatch {
	uint8_t operation = 0, invert = 0, ip_ect = 0;
	bool operator==(const EcnMatch &) const = default;
};
// -m pkttype (xt_pkttype_info): skb->pkt_type (PACKET_LOOPBACK read as the address says).
struct PkttypeMatch {
	uint32_t pkttype = 0, invert = 0;
	bool operator==(const PkttypeMatch &) const = default;
};
// -m mac --mac-source (xt_mac_info): only on an ARPHRD_ETHER device with an Ethernet header.
struct MacMatch {
	std::array<uint8_t, 6> src{};
	uint32_t invert = 0;
	bool operator==(const MacMatch &) const = default;
};
// -m ah (ipt_ah) and -m esp (xt_esp): the SPI in [min, max], xor invert. ah: at byte 4 of
// a 12-byte header; esp: at byte 0 of an 8-byte one.
struct SpiMatch {
	uint32_t min = 0, max = 0xffffffffu;
	bool invert = false;
	bool ah = false;
	bool operator==(const SpiMatch &) const = default;
};

// -m hashlimit (revisions 1 to 3), as hashlimit_mt_common() reads it: the rule's own
// configuration (its mode decides rate match, bytes and inversion) and revision, and the
// htable it shares with every rule of that name (Table::hashlimits[table]), whose
// configuration (made by the rule that created it) gives the key, the rates of new entries
// and their expiry. The arithmetic is in ir/hashlimit.hpp.
struct HashlimitMatch {
	uint8_t revision = 3;
	hashlimit::Cfg cfg;
	uint32_t table = 0;
	bool operator==(const HashlimitMatch &) const = default;
};

// One htable of xt_hashlimit (per name in a namespace): the configuration and revision of
// the rule that made it (checkentry truncations applied; size and max as the rule gave them).
struct HashlimitTable {
	std::string name;
	hashlimit::Cfg cfg;
	uint8_t revision = 3;
	bool operator==(const HashlimitTable &) const = default;
};

// -m recent (struct xt_recent_mtinfo_v1, revisions 0 and 1; revision 0's mask is all ones,
// as recent_mt_check_v0 makes it): check_set is XT_RECENT_*, side XT_RECENT_SOURCE or _DEST.
// `list` numbers the table's lists (Table::recent_lists) by first use in blob order. The
// address is masked with the list's mask (the one of the rule that made the list), not
// the rule's. Semantics: ir/recent.hpp.
struct RecentMatch {
	uint32_t seconds = 0, hit_count = 0;
	uint8_t check_set = 0;
	bool invert = false;
	uint8_t side = 0;
	uint32_t mask = 0xffffffff; // network byte order
	std::string name;
	uint32_t list = 0;
	bool operator==(const RecentMatch &) const = default;
};

// -m owner (struct xt_owner_match_info, revision 1), as owner_mt() reads it: `match` and
// `invert` are XT_OWNER_* bits (UID, GID, SOCKET, SUPPL_GROUPS); the ids are the kernel's
// (kuid/kgid, the identity in the initial user namespace). The sending socket's file
// credentials (fsuid, fsgid, supplementary groups) are compared, not sk_uid.
struct OwnerMatch {
	uint32_t uid_min = 0, uid_max = 0, gid_min = 0, gid_max = 0;
	uint8_t match = 0, invert = 0;
	bool operator==(const OwnerMatch &) const = default;
};

// -m u32 (struct xt_u32, revision 0), as u32_match_it() reads it: every test must hold.
// A test reads the big-endian u32 at location[0].number, then applies each later
// element's operator (XT_U32_AND, _LEFTSH, _RIGHTSH, _AT; any other nextop does nothing)
// with its number, and holds when the value is in one of its ranges. `invert` is the u8
// the caller sent: the match is u32_match_it() ^ invert, so any value above 1 passes.
struct U32Match {
	struct Loc {
		uint32_t number = 0;
		uint8_t nextop = 0;
		bool operator==(const Loc &) const = default;
	};
	struct Range {
		uint32_t min = 0, max = 0;
		bool operator==(const Range &) const = default;
	};
	struct Test {
		std::vector<Loc> locs;	   // nnums (at least 1: location[0] is always read)
		std::vector<Range> values; // nvalues, likewise
		bool operator==(const Test &) const = default;
	};
	std::vector<Test> tests;
	uint8_t invert = 0;
	bool operator==(const U32Match &) const = default;
};

// -m connlimit (struct xt_connlimit_info, revision 1), as connlimit_mt() reads it: the key
// is the source address (the destination with XT_CONNLIMIT_DADDR) and `mask`, network
// order; the match is (connections > limit) xor XT_CONNLIMIT_INVERT (--connlimit-upto).
// `slot` numbers the table's connlimit matches in blob order: each counts in lists of its
// own (an nf_conncount_data per rule, made anew when a table is set). Semantics:
// ir/connlimit.hpp.
struct ConnlimitMatch {
	uint32_t mask = 0xffffffff;
	uint32_t limit = 0;
	uint32_t flags = 0; // XT_CONNLIMIT_INVERT, XT_CONNLIMIT_DADDR
	uint32_t slot = 0;
	bool operator==(const ConnlimitMatch &) const = default;
};

// A list the table's recent rules name, as recent_mt_check() would make it: the first
// rule's mask, and the largest stamp ring any of its rules asks for (nstamps_max_mask).
struct RecentList {
	std::string name;
	uint32_t mask = 0xffffffff; // network byte order
	uint32_t nstamps_mask = 31;
	bool operator==(const RecentList &) const = default;
};

// Matches with an effect on packets. -m comment has none and does not appear here; its
// bytes live on in the stored blob that GET_ENTRIES returns.
using Match =
	std::variant<TcpMatch, UdpMatch, IcmpMatch, MultiportMatch, IprangeMatch, ConntrackMatch,
		     AddrtypeMatch, LimitMatch, MarkMatch, ConnmarkMatch, LengthMatch, TtlMatch,
		     TosMatch, EcnMatch, PkttypeMatch, MacMatch, SpiMatch, HashlimitMatch,
		     RecentMatch, OwnerMatch, U32Match, ConnlimitMatch>;

// -j LOG (struct xt_log_info): level 0-7, flags XT_LOG_*, prefix NUL-terminated.
struct LogInfo {
	uint8_t level = 4;
	uint8_t flags = 0;
	std::array<char, 30> prefix{};
	bool operator==(const LogInfo &) const = default;
};

// What a rule does when it matches (after its counters are bumped).
struct Target {
	enum class Kind : uint8_t {
		Accept,	  // NF_ACCEPT verdict
		Drop,	  // NF_DROP verdict
		Return,	  // pop the jump stack; at the bottom, go to the hook's underflow rule
		Jump,	  // push this rule, continue at rule `to`
		Goto,	  // continue at rule `to` without pushing (IPT_F_GOTO)
		Continue, // a standard jump to the very next rule: the kernel pushes nothing
		Error,	  // the ERROR target (chain headers): the kernel drops the packet
		Reject,	  // ipt_REJECT: a reply (reject_with), then NF_DROP
		Log,	  // xt_LOG: a line in the kernel log (log), then the next rule
		Mark,	  // xt_MARK revision 2: skb->mark = (skb->mark & ~mask) ^ mark, next rule
	};
	Target() = default;
	Target(Kind k, uint32_t to_rule = 0) : kind(k), to(to_rule) {}
	Kind kind = Kind::Accept;
	uint32_t to = 0;		  // rule index, for Jump and Goto
	uint32_t reject_with = 0;	  // enum ipt_reject_with, for Reject
	LogInfo log;			  // for Log
	uint32_t mark = 0, mark_mask = 0; // for Mark (struct xt_mark_tginfo2)
	bool operator==(const Target &) const = default;
};

struct Rule {
	IpHeaderMatch ip;
	std::vector<Match> matches;
	Target target;
	uint32_t offset = 0; // byte offset of the ipt_entry in the table blob, for messages
	bool operator==(const Rule &) const = default;
};

struct Table {
	std::string name = "filter"; // ip_tables' name of the table, for the programs' names
	std::vector<Rule> rules;
	uint32_t limit_slots = 0;		// LimitMatch::slot runs below this
	std::vector<HashlimitTable> hashlimits; // HashlimitMatch::table indexes this
	std::vector<RecentList> recent_lists;	// RecentMatch::list indexes this
	uint32_t connlimit_slots = 0;		// ConnlimitMatch::slot runs below this
	uint32_t valid_hooks = 0;		// bit n set: hook n is served by this table
	// For each valid hook: index of the rule where it starts, and of its policy rule.
	std::array<std::optional<uint32_t>, num_hooks> hook_entry{};
	std::array<std::optional<uint32_t>, num_hooks> underflow{};
	bool operator==(const Table &) const = default;
};

// Per-rule counters as netfilter keeps them: packets, and bytes of the IP datagram.
struct Counter {
	uint64_t packets = 0;
	uint64_t bytes = 0;
	bool operator==(const Counter &) const = default;
};

} // namespace bpfilter::ir
