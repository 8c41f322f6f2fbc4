// Connection tracking in the prologue: the view -m conntrack and -m state read, taken from the
// kernel's connection table before netfilter's own conntrack has seen the packet.
//
// netfilter's conntrack runs at PRE_ROUTING and LOCAL_OUT, before the filter table; our
// hooks run before the first (XDP, tc ingress) or after both (tc egress). So the view is
// what nf_conntrack_in() would attach, computed from the entry as it stands:
// - TCP and UDP: bpf_xdp_ct_lookup()/bpf_skb_ct_lookup() find the kernel's entry and its
//   direction (resolve_normal_ct()'s ctinfo). Without an entry, the packet would make one
//   (NEW) unless the protocol refuses it: tcp_error() and tcp_new() for TCP (header,
//   flags, the state table's first column, nf_conntrack_tcp_loose), udp_error() for UDP.
//   With one, tcp_conntracks[][][] says whether the segment is invalid in the entry's
//   state, and when a SYN reopens a closed connection (a NEW entry again).
// - ICMP: errors are RELATED to the entry their quoted header names, or INVALID
//   (nf_conntrack_icmpv4_error()); queries and their replies, and every other protocol,
//   are looked up in bpfilter's own table (maps::CtOwnKey), which the kernel's lookup
//   cannot serve.
// What is left out (window tracking, checksums, helpers) is in Documentation/supported.md.
#include "codegen/conntrack.hpp"

#include <linux/in.h>

#include <cstddef>
#include <utility>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "ir/connlimit.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;
constexpr Reg pkt = layout::pkt;

namespace
{

// XT_CONNTRACK_STATE_* bits, and the IPS_* status bits read here.
constexpr int32_t st_invalid = 1, st_established = 2, st_related = 4, st_new = 8, st_snat = 64,
		  st_dnat = 128;
constexpr int32_t ips_expected = 1, ips_seen_reply = 2, ips_confirmed = 8, ips_src_nat = 16,
		  ips_dst_nat = 32;
// Inside struct nf_conntrack_tuple (stable since 2.6; the loader checks its size is 40).
constexpr int16_t tu_src = 0, tu_sport = 16, tu_dst = 20, tu_dport = 36, tu_proto = 38;
constexpr uint32_t ns_per_s = 1'000'000'000u;
constexpr int32_t ipproto_icmpv6 = 58; // <linux/in6.h>
constexpr int32_t ipproto_udplite = IPPROTO_UDPLITE;

void emit_own_key(Emitter &em, int16_t src, int16_t dst, int16_t proto_field = off::proto);
void emit_own_lookup(Emitter &em);
void emit_egress_first(Emitter &em);

void set(Emitter &em, int16_t field, int32_t v)
{
	em.emit(st(BPF_W, pkt, field, v));
}

void copy(Emitter &em, int16_t to, int16_t from)
{
	em.emit(ldx(BPF_W, R1, pkt, from));
	em.emit(stx(BPF_W, pkt, R1, to));
}

// R0 = ct (or 0) for the tuple and protocol already on the stack (main_ct_tuple, byte 8 of
// main_ct_opts), looked up in the current namespace; the direction it was found in at
// main_ct_opts + 9.
void emit_lookup_call(Emitter &em, Reg ctx, Flavor flavor)
{
	constexpr int16_t t = layout::main_ct_tuple, o = layout::main_ct_opts;
	em.emit(st(BPF_W, R10, o, -1)); // netns_id: BPF_F_CURRENT_NETNS
	em.emit(st(BPF_W, R10, o + 4, 0));
	em.emit(st(BPF_B, R10, o + 9, 0));
	em.emit(st(BPF_H, R10, o + 10, 0));
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, t));
	em.emit(mov64(R3, 12)); // sizeof(bpf_tuple->ipv4)
	em.emit(mov64(R4, R10));
	em.emit(alu64_imm(BPF_ADD, R4, o));
	em.emit(mov64(R5, 12)); // the bpf_ct_opts of Linux 6.1
	em.call_kfunc(flavor == Flavor::Xdp ? Kfunc::XdpCtLookup : Kfunc::SkbCtLookup);
}

// R0 = ct (or 0) for the IPv4 tuple {saddr, daddr, sport, dport} at the parsed packet's
// fields, protocol `proto`; the direction it was found in at layout::main_ct_opts + 9.
void emit_lookup(Emitter &em, Reg ctx, Flavor flavor, int16_t saddr, int16_t daddr, int16_t sport,
		 int16_t dport, Reg proto)
{
	constexpr int16_t t = layout::main_ct_tuple, o = layout::main_ct_opts;
	em.emit(stx(BPF_B, R10, proto, o + 8));
	em.emit(ldx(BPF_W, R1, pkt, saddr));
	em.emit(stx(BPF_W, R10, R1, t));
	em.emit(ldx(BPF_W, R1, pkt, daddr));
	em.emit(stx(BPF_W, R10, R1, t + 4));
	em.emit(ldx(BPF_W, R1, pkt, sport));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, t + 8));
	em.emit(ldx(BPF_W, R1, pkt, dport));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, t + 10));
	emit_lookup_call(em, ctx, flavor);
}

void emit_release(Emitter &em, Reg ct)
{
	em.emit(mov64(R1, ct));
	em.call_kfunc(Kfunc::CtRelease);
}

// The view of kernel entry `ct` (found in the direction at main_ct_opts + 9): its tuples,
// status and protocol; ct_statebit from resolve_normal_ct()'s ctinfo, or `statebit` when
// given (RELATED). A reply has IPS_SEEN_REPLY by the time the filter table sees it
// (nf_conntrack_in() sets it first), unless it is an error about the entry.
void emit_view_of_entry(Emitter &em, const CtLayout &ly, Reg ct, int32_t statebit = 0)
{
	em.emit(ldx(BPF_B, R1, R10, layout::main_ct_opts + 9));
	em.emit(alu64_imm(BPF_AND, R1, 1));
	em.emit(stx(BPF_W, pkt, R1, off::ct_dir));
	em.emit(ldx(BPF_DW, R2, ct, ly.status));
	if (!statebit) {
		Label orig(em);
		em.jump(jmp_imm(BPF_JEQ, R1, 0), orig);
		em.emit(alu64_imm(BPF_OR, R2, ips_seen_reply));
		orig.bind();
	}
	em.emit(stx(BPF_W, pkt, R2, off::ct_status));
	{
		Label have(em);
		if (statebit) {
			em.emit(mov64(R3, statebit));
		} else {
			em.emit(mov64(R3, st_established));
			em.jump(jmp_imm(BPF_JNE, R1, 0), have);
			em.jump(jmp_imm(BPF_JSET, R2, ips_seen_reply), have);
			em.emit(mov64(R3, st_related));
			em.jump(jmp_imm(BPF_JSET, R2, ips_expected), have);
			em.emit(mov64(R3, st_new));
		}
		have.bind();
		Label no_snat(em), no_dnat(em);
		em.emit(mov64(R4, R2));
		em.emit(alu64_imm(BPF_AND, R4, ips_src_nat));
		em.jump(jmp_imm(BPF_JEQ, R4, 0), no_snat);
		em.emit(alu64_imm(BPF_OR, R3, st_snat));
		no_snat.bind();
		em.emit(mov64(R4, R2));
		em.emit(alu64_imm(BPF_AND, R4, ips_dst_nat));
		em.jump(jmp_imm(BPF_JEQ, R4, 0), no_dnat);
		em.emit(alu64_imm(BPF_OR, R3, st_dnat));
		no_dnat.bind();
		em.emit(stx(BPF_W, pkt, R3, off::ct_statebit));
	}
	const int16_t addr[2][2] = {{off::ct_orig_src, off::ct_orig_dst},
				    {off::ct_repl_src, off::ct_repl_dst}};
	const int16_t port[2][2] = {{off::ct_orig_sport, off::ct_orig_dport},
				    {off::ct_repl_sport, off::ct_repl_dport}};
	for (int d = 0; d < 2; d++) {
		const int16_t base = ly.tuple[d];
		em.emit(ldx(BPF_W, R1, ct, base + tu_src));
		em.emit(stx(BPF_W, pkt, R1, addr[d][0]));
		em.emit(ldx(BPF_W, R1, ct, base + tu_dst));
		em.emit(stx(BPF_W, pkt, R1, addr[d][1]));
		em.emit(ldx(BPF_H, R1, ct, base + tu_sport));
		em.emit(be(R1, 16));
		em.emit(stx(BPF_W, pkt, R1, port[d][0]));
		em.emit(ldx(BPF_H, R1, ct, base + tu_dport));
		em.emit(be(R1, 16));
		em.emit(stx(BPF_W, pkt, R1, port[d][1]));
	}
	em.emit(ldx(BPF_B, R1, ct, ly.tuple[0] + tu_proto));
	em.emit(stx(BPF_W, pkt, R1, off::ct_proto));
	if (ly.mark) {
		em.emit(ldx(BPF_W, R1, ct, ly.mark));
		em.emit(stx(BPF_W, pkt, R1, off::ct_mark));
	}
}

// A packet that would make a new entry: NEW, status 0, the tuples its own header gives
// (ports: TCP and UDP's).
void emit_view_new(Emitter &em, bool ports)
{
	set(em, off::ct_statebit, st_new);
	set(em, off::ct_dir, 0);
	set(em, off::ct_status, 0);
	copy(em, off::ct_proto, off::proto);
	copy(em, off::ct_orig_src, off::saddr);
	copy(em, off::ct_orig_dst, off::daddr);
	copy(em, off::ct_repl_src, off::daddr);
	copy(em, off::ct_repl_dst, off::saddr);
	if (ports) {
		copy(em, off::ct_orig_sport, off::sport);
		copy(em, off::ct_orig_dport, off::dport);
		copy(em, off::ct_repl_sport, off::dport);
		copy(em, off::ct_repl_dport, off::sport);
	}
}

// R1 = tcp_conntracks[dir][index][old], dir in R1 (0 or 1), index in R2 (0-5), old in R3
// (0-9). Clobbers R0-R5. To `fail` if the table cannot be read (it always can).
void emit_tcp_table(Emitter &em, Label &fail)
{
	em.emit(alu64_imm(BPF_AND, R1, 1));
	em.emit(alu64_imm(BPF_MUL, R1, maps::ct_tcp_indexes));
	em.emit(alu64_reg(BPF_ADD, R1, R2));
	em.emit(alu64_imm(BPF_MUL, R1, maps::ct_tcp_states));
	em.emit(alu64_reg(BPF_ADD, R1, R3));
	em.emit(stx(BPF_DW, R10, R1, layout::main_ct_tuple));
	em.emit(st(BPF_W, R10, layout::main_ct_opts, 0));
	em.ld_map(R1, MapSlot::CtTcp);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_ct_opts));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), fail);
	em.emit(ldx(BPF_DW, R1, R10, layout::main_ct_tuple));
	em.jump(jmp_imm(BPF_JGE, R1, static_cast<int32_t>(maps::ct_tcp_table.size())), fail);
	em.emit(alu64_reg(BPF_ADD, R0, R1));
	em.emit(ldx(BPF_B, R1, R0, 0));
}

// The TCP segment's index in tcp_conntracks (get_conntrack_index()) into `dst`, from the
// flags in R5.
void emit_tcp_index(Emitter &em, Reg dst)
{
	Label done(em), syn(em);
	em.emit(mov64(dst, 4));
	em.jump(jmp_imm(BPF_JSET, R5, 0x04), done); // RST
	em.emit(mov64(dst, 0));
	em.jump(jmp_imm(BPF_JSET, R5, 0x02), syn);
	em.emit(mov64(dst, 2));
	em.jump(jmp_imm(BPF_JSET, R5, 0x01), done); // FIN
	em.emit(mov64(dst, 3));
	em.jump(jmp_imm(BPF_JSET, R5, 0x10), done); // ACK
	em.emit(mov64(dst, 5));
	em.jump(ja(), done);
	syn.bind();
	em.emit(mov64(dst, 1));
	em.jump(jmp_imm(BPF_JSET, R5, 0x10), done); // SYN/ACK
	em.emit(mov64(dst, 0));
	em.jump(ja(), done);
	done.bind();
}

void emit_tcp(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly, Label &done)
{
	constexpr Reg ct = R7, index = R8;
	Label flags_ok(em), hit(em), plain(em), reopen(em), gone(em);
	em.emit(ldx(BPF_W, R1, pkt, off::l4len));
	em.jump(jmp_imm(BPF_JLT, R1, 20), done); // tcp_error(): not the whole header
	em.emit(ldx(BPF_W, R2, pkt, off::tcp_doff));
	em.jump(jmp_imm(BPF_JLT, R2, 20), done);
	em.jump(jmp_reg(BPF_JGT, R2, R1), done);
	// tcp_valid_flags[], after ECE, CWR and PSH are masked off.
	em.emit(ldx(BPF_W, R5, pkt, off::tcp_flags));
	em.emit(mov64(R3, R5));
	em.emit(alu64_imm(BPF_AND, R3, 0x37));
	for (int32_t f : {0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30})
		em.jump(jmp_imm(BPF_JEQ, R3, f), flags_ok);
	em.jump(ja(), done);
	flags_ok.bind();
	emit_tcp_index(em, index);
	em.emit(mov64(R1, IPPROTO_TCP));
	emit_lookup(em, ctx, flavor, off::saddr, off::daddr, off::sport, off::dport, R1);
	em.jump(jmp_imm(BPF_JNE, R0, 0), hit);
	if (flavor == Flavor::TcEgress) {
		// The host's reset before any reply made the kernel drop its entry
		// (nf_conntrack_tcp_packet()) after it gave the packet ESTABLISHED: the entry
		// our ingress kept for the connection says so.
		Label not_rst(em);
		em.jump(jmp_imm(BPF_JNE, index, 4), not_rst); // TCP_RST_SET
		em.emit(ldx(BPF_W, R3, pkt, off::dport));
		em.emit(alu64_imm(BPF_LSH, R3, 16));
		em.emit(ldx(BPF_W, R1, pkt, off::sport));
		em.emit(alu64_reg(BPF_OR, R3, R1));
		emit_own_key(em, off::daddr, off::saddr);
		emit_own_lookup(em);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), not_rst);
		emit_view_new(em, true);
		set(em, off::ct_statebit, st_established);
		set(em, off::ct_dir, 1);
		set(em, off::ct_status, ips_confirmed | ips_seen_reply);
		copy(em, off::ct_orig_src, off::daddr);
		copy(em, off::ct_orig_dst, off::saddr);
		copy(em, off::ct_repl_src, off::saddr);
		copy(em, off::ct_repl_dst, off::daddr);
		copy(em, off::ct_orig_sport, off::dport);
		copy(em, off::ct_orig_dport, off::sport);
		copy(em, off::ct_repl_sport, off::sport);
		copy(em, off::ct_repl_dport, off::dport);
		em.jump(ja(), done);
		not_rst.bind();
	}
	// tcp_new(): the first column; only a SYN starts a connection, or with
	// nf_conntrack_tcp_loose an ACK picks one up.
	em.emit(mov64(R1, 0));
	em.emit(mov64(R2, index));
	em.emit(mov64(R3, 0));
	emit_tcp_table(em, done);
	em.jump(jmp_imm(BPF_JEQ, R1, maps::ct_tcp_invalid), done);
	if (!ly.tcp_loose)
		em.jump(jmp_imm(BPF_JNE, R1, maps::ct_tcp_syn_sent), done);
	emit_view_new(em, true);
	if (flavor != Flavor::TcEgress) {
		em.emit(ldx(BPF_W, R3, pkt, off::sport));
		em.emit(alu64_imm(BPF_LSH, R3, 16));
		em.emit(ldx(BPF_W, R1, pkt, off::dport));
		em.emit(alu64_reg(BPF_OR, R3, R1));
		emit_own_key(em, off::saddr, off::daddr);
		set(em, off::ct_own_op, layout::ct_own_new);
	}
	em.jump(ja(), done);

	hit.bind();
	// The state tcp_conntracks gives the segment, for IPS_ASSURED below (none yet).
	constexpr int16_t new_state = layout::main_fib + 56;
	em.emit(st(BPF_DW, R10, new_state, -1));
	em.emit(mov64(ct, R0));
	em.emit(ldx(BPF_B, R3, ct, ly.tcp_state));
	em.jump(jmp_imm(BPF_JGT, R3, maps::ct_tcp_states - 1), plain);
	em.emit(ldx(BPF_B, R1, R10, layout::main_ct_opts + 9));
	em.emit(mov64(R2, index));
	emit_tcp_table(em, plain);
	em.emit(stx(BPF_DW, R10, R1, new_state));
	em.jump(jmp_imm(BPF_JEQ, R1, maps::ct_tcp_invalid), gone); // "packet ... invalid"
	em.jump(jmp_imm(BPF_JNE, R1, maps::ct_tcp_syn_sent), plain);
	em.emit(ldx(BPF_B, R3, ct, ly.tcp_state));
	em.jump(jmp_imm(BPF_JLT, R3, maps::ct_tcp_time_wait), plain);
	// A SYN after the connection closed: the kernel kills the entry and starts anew
	// when either side began the close, or this side's last segment was a reset.
	em.emit(ldx(BPF_B, R1, ct, ly.tcp_seen_flags[0]));
	em.emit(ldx(BPF_B, R2, ct, ly.tcp_seen_flags[1]));
	em.emit(alu64_reg(BPF_OR, R1, R2));
	em.jump(jmp_imm(BPF_JSET, R1, 0x04), reopen); // IP_CT_TCP_FLAG_CLOSE_INIT
	em.emit(ldx(BPF_B, R1, ct, ly.tcp_last_dir));
	em.emit(ldx(BPF_B, R2, R10, layout::main_ct_opts + 9));
	em.jump(jmp_reg(BPF_JNE, R1, R2), plain);
	em.emit(ldx(BPF_B, R1, ct, ly.tcp_last_index));
	em.jump(jmp_imm(BPF_JNE, R1, 4), plain); // TCP_RST_SET
	reopen.bind();
	emit_release(em, ct);
	emit_view_new(em, true);
	em.jump(ja(), done);
	gone.bind();
	emit_release(em, ct);
	em.jump(ja(), done);
	plain.bind();
	emit_view_of_entry(em, ly, ct);
	if (flavor != Flavor::TcEgress) {
		// nf_conntrack_tcp_packet() sets IPS_ASSURED before the filter table sees the
		// segment that takes an answered connection from SYN_RECV or ESTABLISHED to
		// ESTABLISHED; ingress reads the entry before: the bit this segment sets.
		constexpr int32_t established = 3, syn_recv = 2, ips_assured = 4;
		Label assured(em), old_ok(em);
		em.emit(ldx(BPF_DW, R1, R10, new_state));
		em.jump(jmp_imm(BPF_JNE, R1, established), assured);
		em.emit(ldx(BPF_B, R1, ct, ly.tcp_state));
		em.jump(jmp_imm(BPF_JEQ, R1, syn_recv), old_ok);
		em.jump(jmp_imm(BPF_JNE, R1, established), assured);
		old_ok.bind();
		em.emit(ldx(BPF_DW, R1, ct, ly.status));
		em.jump(jmp_imm(BPF_JSET, R1, ips_assured), assured);
		em.emit(alu64_imm(BPF_AND, R1, ips_seen_reply));
		em.jump(jmp_imm(BPF_JEQ, R1, 0), assured);
		em.emit(ldx(BPF_W, R1, pkt, off::ct_status));
		em.emit(alu64_imm(BPF_OR, R1, ips_assured));
		em.emit(stx(BPF_W, pkt, R1, off::ct_status));
		assured.bind();
	}
	emit_release(em, ct);
	if (flavor == Flavor::TcEgress)
		emit_egress_first(em);
	em.jump(ja(), done);
}

// tc egress runs after the kernel confirmed the entry a host's first packet made, but
// OUTPUT saw it unconfirmed: for a flow of the original direction not yet answered, the
// first packet this program lets through (our map has no entry for it yet) has no
// IPS_CONFIRMED; the verdict's confirmation makes the entry.
void emit_egress_first(Emitter &em)
{
	Label done(em);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_dir));
	em.jump(jmp_imm(BPF_JNE, R1, 0), done);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_status));
	em.jump(jmp_imm(BPF_JSET, R1, ips_seen_reply), done);
	em.emit(ldx(BPF_W, R3, pkt, off::sport));
	em.emit(alu64_imm(BPF_LSH, R3, 16));
	em.emit(ldx(BPF_W, R1, pkt, off::dport));
	em.emit(alu64_reg(BPF_OR, R3, R1));
	emit_own_key(em, off::saddr, off::daddr);
	emit_own_lookup(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), done);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_status));
	em.emit(alu64_imm(BPF_AND, R1, ~ips_confirmed));
	em.emit(stx(BPF_W, pkt, R1, off::ct_status));
	set(em, off::ct_own_op, layout::ct_own_new);
	done.bind();
}

// To `piece` when the packet is the first piece of a datagram not yet whole, judged but not
// counted (the whole datagram keeps its first piece's MF bit, and is counted). Clobbers R2.
void emit_if_piece(Emitter &em, Label &piece)
{
	Label whole(em);
	em.emit(ldx(BPF_W, R2, pkt, off::frag));
	em.emit(alu32_imm(BPF_AND, R2, 0x3fff));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0), whole);
	em.emit(ldx(BPF_W, R2, pkt, off::count_inc));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0), piece);
	whole.bind();
}

void emit_udp(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly, Label &done)
{
	constexpr Reg ct = R7;
	Label hit(em);
	// udp_error(): the header, and a length field within the datagram. The first piece of
	// a datagram not yet whole (judged, not counted) cannot know the datagram's length:
	// it passes the upper bound, which the judgment of the whole datagram checks.
	Label length_ok(em);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_l4avail));
	em.jump(jmp_imm(BPF_JLT, R1, 8), done);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_l4w1));
	em.jump(jmp_imm(BPF_JLT, R1, 8), done);
	emit_if_piece(em, length_ok);
	em.emit(ldx(BPF_W, R2, pkt, off::l4len));
	em.jump(jmp_reg(BPF_JGT, R1, R2), done);
	length_ok.bind();
	em.emit(mov64(R1, IPPROTO_UDP));
	emit_lookup(em, ctx, flavor, off::saddr, off::daddr, off::sport, off::dport, R1);
	em.jump(jmp_imm(BPF_JNE, R0, 0), hit);
	emit_view_new(em, true);
	em.jump(ja(), done);
	hit.bind();
	em.emit(mov64(ct, R0));
	emit_view_of_entry(em, ly, ct);
	emit_release(em, ct);
	if (flavor == Flavor::TcEgress)
		emit_egress_first(em);
	em.jump(ja(), done);
}

// pkt.ct_own_key = {src, dst, info, proto}: src and dst u32s at the parsed packet's
// fields, info in R3, proto given in R4 or, when R4 is not a register to read, the parsed
// packet's protocol (clobbers R1).
void emit_own_key(Emitter &em, int16_t src, int16_t dst, int16_t proto_field)
{
	em.emit(ldx(BPF_W, R1, pkt, src));
	em.emit(stx(BPF_W, pkt, R1, off::ct_own_key));
	em.emit(ldx(BPF_W, R1, pkt, dst));
	em.emit(stx(BPF_W, pkt, R1, off::ct_own_key + 4));
	em.emit(stx(BPF_W, pkt, R3, off::ct_own_key + 8));
	em.emit(ldx(BPF_W, R1, pkt, proto_field));
	em.emit(stx(BPF_W, pkt, R1, off::ct_own_key + 12));
}

// R0 = the live CtOwn entry of pkt.ct_own_key, or 0 (none, or lapsed). Clobbers R1-R5, R7.
void emit_own_lookup(Emitter &em)
{
	Label out(em);
	em.ld_map(R1, MapSlot::CtOwn);
	em.emit(mov64(R2, pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::ct_own_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), out);
	em.emit(mov64(R7, R0));
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	em.emit(ldx(BPF_DW, R1, R7, offsetof(maps::CtOwnValue, expires)));
	em.emit(mov64(R2, R0));
	em.emit(mov64(R0, 0));
	em.jump(jmp_reg(BPF_JGE, R2, R1), out); // lapsed
	em.emit(mov64(R0, R7));
	out.bind();
}

// The query type a reply type answers, in place: echo reply 0 -> 8, timestamp reply 14 -> 13,
// information reply 16 -> 15, address mask reply 18 -> 17.
void emit_request_type(Emitter &em, Reg type)
{
	Label was_echo(em), have(em);
	em.jump(jmp_imm(BPF_JEQ, type, 0), was_echo);
	em.emit(alu64_imm(BPF_SUB, type, 1));
	em.jump(ja(), have);
	was_echo.bind();
	em.emit(mov64(type, 8));
	have.bind();
}

// R3 = type << 24 | code << 16 | id from the registers given (clobbers them).
void emit_icmp_info(Emitter &em, Reg type, Reg code, Reg id)
{
	em.emit(alu64_imm(BPF_LSH, type, 24));
	em.emit(alu64_imm(BPF_LSH, code, 16));
	em.emit(alu64_reg(BPF_OR, type, code));
	em.emit(alu64_reg(BPF_OR, type, id));
	if (type != R3)
		em.emit(mov64(R3, type));
}

// The view of an ICMP query flow whose original direction is pkt.ct_own_key: its tuples
// (ports: the id, and type << 8 | code of each direction).
void emit_icmp_tuples(Emitter &em)
{
	em.emit(ldx(BPF_W, R1, pkt, off::ct_own_key));
	em.emit(stx(BPF_W, pkt, R1, off::ct_orig_src));
	em.emit(stx(BPF_W, pkt, R1, off::ct_repl_dst));
	em.emit(ldx(BPF_W, R1, pkt, off::ct_own_key + 4));
	em.emit(stx(BPF_W, pkt, R1, off::ct_orig_dst));
	em.emit(stx(BPF_W, pkt, R1, off::ct_repl_src));
	em.emit(ldx(BPF_W, R1, pkt, off::ct_own_key + 8));
	em.emit(mov64(R2, R1));
	em.emit(alu64_imm(BPF_AND, R2, 0xffff));
	em.emit(stx(BPF_W, pkt, R2, off::ct_orig_sport));
	em.emit(stx(BPF_W, pkt, R2, off::ct_repl_sport));
	em.emit(alu64_imm(BPF_RSH, R1, 16));
	em.emit(stx(BPF_W, pkt, R1, off::ct_orig_dport));
	// The reply's type: echo 8 -> 0, timestamp 13 -> 14, info 15 -> 16, mask 17 -> 18.
	Label echo(em), have(em);
	em.emit(mov64(R2, R1));
	em.emit(alu64_imm(BPF_RSH, R2, 8));
	em.jump(jmp_imm(BPF_JEQ, R2, 8), echo);
	em.emit(alu64_imm(BPF_ADD, R1, 0x100));
	em.jump(ja(), have);
	echo.bind();
	em.emit(alu64_imm(BPF_AND, R1, 0xff));
	have.bind();
	em.emit(stx(BPF_W, pkt, R1, off::ct_repl_dport));
	set(em, off::ct_proto, IPPROTO_ICMP);
}

// An entry of our own in R0 (or 0) for the packet: its state and status in the view.
// Original direction: NEW until a reply was seen; reply: ESTABLISHED, the reply seen.
void emit_own_state(Emitter &em, bool reply)
{
	Label none(em), done(em);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), none);
	em.emit(ldx(BPF_W, R2, R0, offsetof(maps::CtOwnValue, status)));
	if (reply) {
		em.emit(alu64_imm(BPF_OR, R2, ips_seen_reply));
		em.emit(mov64(R3, st_established));
	} else {
		Label have(em);
		em.emit(mov64(R3, st_established));
		em.jump(jmp_imm(BPF_JSET, R2, ips_seen_reply), have);
		em.emit(mov64(R3, st_new));
		have.bind();
	}
	em.emit(stx(BPF_W, pkt, R2, off::ct_status));
	em.emit(stx(BPF_W, pkt, R3, off::ct_statebit));
	em.jump(ja(), done);
	none.bind();
	set(em, off::ct_status, 0);
	set(em, off::ct_statebit, st_new);
	done.bind();
	set(em, off::ct_dir, reply ? 1 : 0);
	set(em, off::ct_own_op, reply ? layout::ct_own_reply : layout::ct_own_new);
}

// pkt.ct_own_key for the note a forwarded TCP or UDP packet whose TTL ran out leaves
// (emit_ct_expired_note()): its addresses and ports at the given fields, its protocol
// marked apart from every flow of our own. Clobbers R1, R3.
void emit_note_key(Emitter &em, int16_t src, int16_t dst, int16_t sport, int16_t dport,
		   int16_t proto)
{
	em.emit(ldx(BPF_W, R3, pkt, sport));
	em.emit(alu64_imm(BPF_LSH, R3, 16));
	em.emit(ldx(BPF_W, R1, pkt, dport));
	em.emit(alu64_reg(BPF_OR, R3, R1));
	emit_own_key(em, src, dst, proto);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_own_key + 12));
	em.emit(alu64_imm(BPF_OR, R1, static_cast<int32_t>(maps::ct_own_expired)));
	em.emit(stx(BPF_W, pkt, R1, off::ct_own_key + 12));
}

// tc egress, an ICMP time exceeded of the kernel's whose quoted TCP or UDP packet has no
// entry: icmp_send() attached the entry that packet made at PRE_ROUTING (nf_ct_attach())
// before ip_forward() dropped it unconfirmed, and OUTPUT sees RELATED, in the reply
// direction, status 0. The ingress program left a note for such a packet; without one,
// INVALID (to `done`).
void emit_expired_related(Emitter &em, Label &done)
{
	em.emit(ldx(BPF_W, R1, pkt, off::icmp_type));
	em.jump(jmp_imm(BPF_JNE, R1, 11), done); // ICMP_TIME_EXCEEDED
	emit_note_key(em, off::ct_in_saddr, off::ct_in_daddr, off::ct_in_sport, off::ct_in_dport,
		      off::ct_in_proto);
	emit_own_lookup(em);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	set(em, off::ct_statebit, st_related);
	set(em, off::ct_dir, 1);
	set(em, off::ct_status, 0);
	copy(em, off::ct_proto, off::ct_in_proto);
	copy(em, off::ct_orig_src, off::ct_in_saddr);
	copy(em, off::ct_orig_dst, off::ct_in_daddr);
	copy(em, off::ct_repl_src, off::ct_in_daddr);
	copy(em, off::ct_repl_dst, off::ct_in_saddr);
	copy(em, off::ct_orig_sport, off::ct_in_sport);
	copy(em, off::ct_orig_dport, off::ct_in_dport);
	copy(em, off::ct_repl_sport, off::ct_in_dport);
	copy(em, off::ct_repl_dport, off::ct_in_sport);
	em.jump(ja(), done);
}

// ICMP errors (nf_conntrack_icmpv4_error()): RELATED to the entry the quoted header
// names, when the error goes where that entry's packets go; else INVALID.
void emit_related(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly, Label &done)
{
	constexpr Reg ct = R7;
	Label icmp(em), generic(em), hit(em);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_in_ok));
	em.jump(jmp_imm(BPF_JEQ, R1, 0), done);
	// conntrack[dir].dst must be the outer destination: the quoted source.
	em.emit(ldx(BPF_W, R2, pkt, off::ct_in_saddr));
	em.emit(ldx(BPF_W, R3, pkt, off::daddr));
	em.jump(jmp_reg(BPF_JNE, R2, R3), done);
	em.emit(ldx(BPF_W, R2, pkt, off::ct_in_proto));
	em.jump(jmp_imm(BPF_JEQ, R2, IPPROTO_ICMP), icmp);
	em.jump(jmp_imm(BPF_JEQ, R2, IPPROTO_TCP), hit);
	em.jump(jmp_imm(BPF_JNE, R2, IPPROTO_UDP), generic);
	hit.bind();
	{
		Label have_ports(em);
		em.jump(jmp_imm(BPF_JSET, R1, layout::ct_in_4), have_ports);
		em.jump(ja(), done);
		have_ports.bind();
	}
	// The inverted quoted tuple, looked up as the kernel does.
	emit_lookup(em, ctx, flavor, off::ct_in_daddr, off::ct_in_saddr, off::ct_in_dport,
		    off::ct_in_sport, R2);
	if (flavor == Flavor::TcEgress) {
		Label found(em);
		em.jump(jmp_imm(BPF_JNE, R0, 0), found);
		emit_expired_related(em, done);
		found.bind();
	} else {
		em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	}
	em.emit(mov64(ct, R0));
	emit_view_of_entry(em, ly, ct, st_related);
	emit_release(em, ct);
	em.jump(ja(), done);

	// A quoted ICMP query: its flow in our own table. The inverted tuple of a request is
	// the reply tuple of the flow it began; of a reply, the original one.
	icmp.bind();
	{
		Label request(em), found(em);
		em.jump(jmp_imm(BPF_JSET, R1, layout::ct_in_8), found);
		em.jump(ja(), done);
		found.bind();
		em.emit(ldx(BPF_W, R4, pkt, off::ct_in_sport));
		em.emit(mov64(R5, R4));
		em.emit(alu64_imm(BPF_RSH, R4, 8));    // type
		em.emit(alu64_imm(BPF_AND, R5, 0xff)); // code
		for (int32_t t : {8, 13, 15, 17})
			em.jump(jmp_imm(BPF_JEQ, R4, t), request);
		Label reply(em);
		em.jump(jmp_imm(BPF_JEQ, R4, 0), reply);
		em.jump(jmp_imm(BPF_JEQ, R4, 14), reply);
		em.jump(jmp_imm(BPF_JEQ, R4, 16), reply);
		em.jump(jmp_imm(BPF_JEQ, R4, 18), reply);
		em.jump(ja(), done);
		Label look(em);
		reply.bind();
		emit_request_type(em, R4);
		em.emit(ldx(BPF_W, R0, pkt, off::ct_in_id));
		emit_icmp_info(em, R4, R5, R0);
		emit_own_key(em, off::ct_in_daddr, off::ct_in_saddr, off::ct_in_proto);
		set(em, off::ct_dir, 0);
		em.jump(ja(), look);
		request.bind();
		em.emit(ldx(BPF_W, R0, pkt, off::ct_in_id));
		emit_icmp_info(em, R4, R5, R0);
		emit_own_key(em, off::ct_in_saddr, off::ct_in_daddr, off::ct_in_proto);
		set(em, off::ct_dir, 1);
		look.bind();
		emit_own_lookup(em);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
		em.emit(ldx(BPF_W, R2, R0, offsetof(maps::CtOwnValue, status)));
		em.emit(stx(BPF_W, pkt, R2, off::ct_status));
		emit_icmp_tuples(em);
		set(em, off::ct_statebit, st_related);
		em.jump(ja(), done);
	}

	// Another protocol quoted: its flow in our own table, either way round.
	generic.bind();
	{
		Label found(em), reply(em);
		em.emit(mov64(R3, R2));
		em.emit(alu64_imm(BPF_OR, R3, static_cast<int32_t>(maps::ct_own_generic)));
		em.emit(stx(BPF_W, R10, R3, layout::main_ct_opts));
		emit_own_key(em, off::ct_in_daddr, off::ct_in_saddr, off::ct_in_proto);
		emit_own_lookup(em);
		set(em, off::ct_dir, 0);
		em.jump(jmp_imm(BPF_JNE, R0, 0), found);
		em.emit(ldx(BPF_W, R3, R10, layout::main_ct_opts));
		emit_own_key(em, off::ct_in_saddr, off::ct_in_daddr, off::ct_in_proto);
		emit_own_lookup(em);
		set(em, off::ct_dir, 1);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
		found.bind();
		em.emit(ldx(BPF_W, R2, R0, offsetof(maps::CtOwnValue, status)));
		em.emit(stx(BPF_W, pkt, R2, off::ct_status));
		copy(em, off::ct_orig_src, off::ct_own_key);
		copy(em, off::ct_orig_dst, off::ct_own_key + 4);
		copy(em, off::ct_repl_src, off::ct_own_key + 4);
		copy(em, off::ct_repl_dst, off::ct_own_key);
		copy(em, off::ct_proto, off::ct_in_proto);
		set(em, off::ct_statebit, st_related);
		em.jump(ja(), done);
	}
}

void emit_icmp(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly, Label &done)
{
	Label error(em), request(em), reply(em);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_l4avail));
	em.jump(jmp_imm(BPF_JLT, R1, 8), done); // "short packet"
	em.emit(ldx(BPF_W, R4, pkt, off::icmp_type));
	em.jump(jmp_imm(BPF_JGT, R4, 18), done); // "invalid icmp type" (NR_ICMP_TYPES)
	for (int32_t t : {3, 4, 5, 11, 12})
		em.jump(jmp_imm(BPF_JEQ, R4, t), error);
	for (int32_t t : {8, 13, 15, 17})
		em.jump(jmp_imm(BPF_JEQ, R4, t), request);
	for (int32_t t : {0, 14, 16, 18})
		em.jump(jmp_imm(BPF_JEQ, R4, t), reply);
	em.jump(ja(), done); // icmp_new(): "Can't create a new ICMP `conn' with this"

	request.bind();
	em.emit(ldx(BPF_W, R5, pkt, off::icmp_code));
	em.emit(ldx(BPF_W, R0, pkt, off::ct_l4w1));
	emit_icmp_info(em, R4, R5, R0);
	emit_own_key(em, off::saddr, off::daddr);
	emit_own_lookup(em);
	emit_own_state(em, false);
	emit_icmp_tuples(em);
	em.jump(ja(), done);

	reply.bind();
	{
		Label found(em);
		emit_request_type(em, R4);
		em.emit(ldx(BPF_W, R5, pkt, off::icmp_code));
		em.emit(ldx(BPF_W, R0, pkt, off::ct_l4w1));
		emit_icmp_info(em, R4, R5, R0);
		emit_own_key(em, off::daddr, off::saddr);
		emit_own_lookup(em);
		em.jump(jmp_imm(BPF_JNE, R0, 0), found);
		em.jump(ja(), done); // a reply to nothing: INVALID
		found.bind();
		emit_own_state(em, true);
		emit_icmp_tuples(em);
		em.jump(ja(), done);
	}

	error.bind();
	emit_related(em, ctx, flavor, ly, done);
}

// Every other protocol, as nf_conntrack_proto_generic.c: one flow per address pair.
void emit_generic(Emitter &em, Label &done)
{
	Label reply(em), found(em);
	em.emit(ldx(BPF_W, R3, pkt, off::proto));
	em.emit(alu64_imm(BPF_OR, R3, static_cast<int32_t>(maps::ct_own_generic)));
	em.emit(stx(BPF_W, R10, R3, layout::main_ct_opts));
	emit_own_key(em, off::saddr, off::daddr);
	emit_own_lookup(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), found);
	em.emit(ldx(BPF_W, R3, R10, layout::main_ct_opts));
	emit_own_key(em, off::daddr, off::saddr);
	emit_own_lookup(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), reply);
	// No flow either way: this packet begins one.
	em.emit(ldx(BPF_W, R3, R10, layout::main_ct_opts));
	emit_own_key(em, off::saddr, off::daddr);
	em.emit(mov64(R0, 0));
	found.bind();
	emit_own_state(em, false);
	copy(em, off::ct_orig_src, off::saddr);
	copy(em, off::ct_orig_dst, off::daddr);
	copy(em, off::ct_repl_src, off::daddr);
	copy(em, off::ct_repl_dst, off::saddr);
	copy(em, off::ct_proto, off::proto);
	em.jump(ja(), done);
	reply.bind();
	emit_own_state(em, true);
	copy(em, off::ct_orig_src, off::daddr);
	copy(em, off::ct_orig_dst, off::saddr);
	copy(em, off::ct_repl_src, off::saddr);
	copy(em, off::ct_repl_dst, off::daddr);
	copy(em, off::ct_proto, off::proto);
	em.jump(ja(), done);
}

// UDP-Lite (protocol 136): udplite_error() before the tracker makes an entry, which here is
// bpfilter's own by addresses (Documentation/supported.md): a header cut short, a checksum
// coverage below 8 or past the datagram, and a checksum of 0 are INVALID. The checksum
// itself (checked at PRE_ROUTING) is not verified.
void emit_udplite(Emitter &em, Label &done)
{
	Label coverage_ok(em);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_l4avail));
	em.jump(jmp_imm(BPF_JLT, R1, 8), done); // "short packet"
	em.emit(ldx(BPF_W, R1, pkt, off::ct_l4w1));
	em.jump(jmp_imm(BPF_JEQ, R1, 0), coverage_ok); // the whole datagram
	em.jump(jmp_imm(BPF_JLT, R1, 8), done);	       // "invalid checksum coverage"
	emit_if_piece(em, coverage_ok);
	em.emit(ldx(BPF_W, R2, pkt, off::l4len));
	em.jump(jmp_reg(BPF_JGT, R1, R2), done);
	coverage_ok.bind();
	em.emit(ldx(BPF_W, R1, pkt, off::l4w4));
	em.emit(alu32_imm(BPF_AND, R1, 0xffff));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), done); // "checksum missing"
	emit_generic(em, done);
}

// ICMPv6 in IPv4 (protocol 58): nf_ct_l4proto_find() gives it the ICMPv6 tracker whatever
// the family. Its tuple needs 8 bytes (icmpv6_pkt_to_tuple()), and
// nf_conntrack_icmpv6_packet() makes an entry only for an echo or node information query:
// every other message has none (INVALID, the view emit_ct_state() starts from). Queries and
// their replies are tracked as other protocols are (Documentation/supported.md).
void emit_icmpv6(Emitter &em, Label &done)
{
	Label query(em);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_l4avail));
	em.jump(jmp_imm(BPF_JLT, R1, 8), done);
	em.emit(ldx(BPF_W, R1, pkt, off::icmp_type));
	for (int32_t t : {128, 129, 139, 140}) // ICMPV6_ECHO_REQUEST, _REPLY, _NI_QUERY, _REPLY
		em.jump(jmp_imm(BPF_JEQ, R1, t), query);
	em.jump(ja(), done);
	query.bind();
	emit_generic(em, done);
}

} // namespace

void emit_ct_parse_reset(Emitter &em)
{
	for (int16_t f : {off::ct_l4avail, off::ct_l4w1, off::ct_in_ok})
		set(em, f, 0);
}

void emit_ct_parse(Emitter &em, Reg l4, Reg data_end, Reg l4len)
{
	Label done(em);
	em.jump(jmp_imm(BPF_JLT, l4len, 8), done);
	em.emit(mov64(R1, l4));
	em.emit(alu64_imm(BPF_ADD, R1, 8));
	em.jump(jmp_reg(BPF_JGT, R1, data_end), done);
	set(em, off::ct_l4avail, 8);
	em.emit(ldx(BPF_H, R1, l4, 4));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_W, pkt, R1, off::ct_l4w1));
	// An ICMP error's quoted datagram (nf_ct_get_tuplepr() on it).
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_ICMP), done);
	em.emit(ldx(BPF_B, R1, l4, 0));
	{
		Label error(em);
		for (int32_t t : {3, 4, 5, 11, 12})
			em.jump(jmp_imm(BPF_JEQ, R1, t), error);
		em.jump(ja(), done);
		error.bind();
	}
	// R2 = the quoted IP header, with its 20 bytes in the packet.
	em.emit(mov64(R2, l4));
	em.emit(alu64_imm(BPF_ADD, R2, 8));
	em.emit(mov64(R1, R2));
	em.emit(alu64_imm(BPF_ADD, R1, 20));
	em.jump(jmp_reg(BPF_JGT, R1, data_end), done);
	em.emit(ldx(BPF_H, R1, R2, 6)); // a later fragment quoted: no tuple
	em.emit(be(R1, 16));
	em.jump(jmp_imm(BPF_JSET, R1, 0x1fff), done);
	em.emit(ldx(BPF_W, R1, R2, 12));
	em.emit(stx(BPF_W, pkt, R1, off::ct_in_saddr));
	em.emit(ldx(BPF_W, R1, R2, 16));
	em.emit(stx(BPF_W, pkt, R1, off::ct_in_daddr));
	em.emit(ldx(BPF_B, R1, R2, 9));
	em.emit(stx(BPF_W, pkt, R1, off::ct_in_proto));
	set(em, off::ct_in_ok, layout::ct_in_header);
	// Its transport header at ihl * 4 (whatever ihl says, as get_l4proto() reads it).
	em.emit(ldx(BPF_B, R1, R2, 0));
	em.emit(alu64_imm(BPF_AND, R1, 0x0f));
	em.emit(alu64_imm(BPF_LSH, R1, 2));
	em.emit(alu64_reg(BPF_ADD, R2, R1));
	em.emit(mov64(R1, R2));
	em.emit(alu64_imm(BPF_ADD, R1, 4));
	em.jump(jmp_reg(BPF_JGT, R1, data_end), done);
	em.emit(ldx(BPF_H, R1, R2, 0));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_W, pkt, R1, off::ct_in_sport));
	em.emit(ldx(BPF_H, R1, R2, 2));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_W, pkt, R1, off::ct_in_dport));
	set(em, off::ct_in_ok, layout::ct_in_header | layout::ct_in_4);
	em.emit(mov64(R1, R2));
	em.emit(alu64_imm(BPF_ADD, R1, 8));
	em.jump(jmp_reg(BPF_JGT, R1, data_end), done);
	em.emit(ldx(BPF_H, R1, R2, 4));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_W, pkt, R1, off::ct_in_id));
	set(em, off::ct_in_ok, layout::ct_in_header | layout::ct_in_4 | layout::ct_in_8);
	done.bind();
}

void emit_ct_state(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ct)
{
	Label done(em), tcp(em), udp(em), icmp(em), icmpv6(em), udplite(em);
	for (int16_t f = off::ct_statebit; f <= off::ct_own_op; f += 4)
		set(em, f, 0);
	set(em, off::ct_mark, 0);
	set(em, off::ct_statebit, st_invalid);
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_TCP), tcp);
	em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_UDP), udp);
	em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_ICMP), icmp);
	em.jump(jmp_imm(BPF_JEQ, R1, ipproto_icmpv6), icmpv6);
	em.jump(jmp_imm(BPF_JEQ, R1, ipproto_udplite), udplite);
	emit_generic(em, done);
	udplite.bind();
	emit_udplite(em, done);
	icmpv6.bind();
	emit_icmpv6(em, done);
	tcp.bind();
	emit_tcp(em, ctx, flavor, ct, done);
	udp.bind();
	emit_udp(em, ctx, flavor, ct, done);
	icmp.bind();
	emit_icmp(em, ctx, flavor, ct, done);
	done.bind();
}

void emit_ct_reply(Emitter &em)
{
	Label done(em), found(em), quoted(em), have(em), original(em);
	em.emit(ldx(BPF_W, R1, pkt, off::rj_reply));
	em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(layout::reply_ct)));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), done);
	set(em, off::ct_own_op, layout::ct_own_none);
	// A confirmed entry: the lookup found it, in the reply's direction.
	em.emit(ldx(BPF_W, R1, pkt, off::ct_statebit));
	em.jump(jmp32_imm(BPF_JNE, R1, st_invalid), found);
	em.emit(ldx(BPF_W, R1, pkt, off::rj_reply));
	em.emit(alu32_imm(BPF_RSH, R1, 4));
	em.emit(alu32_imm(BPF_AND, R1, 0xf));
	em.emit(stx(BPF_W, pkt, R1, off::ct_status));
	// The rejected packet's tuple (a to b) in the stack slots: the quoted datagram of an ICMP
	// error, the reset's own addresses and ports the other way round.
	constexpr int16_t t = layout::main_ct_tuple; // a, b, port a, port b, then proto at o
	constexpr int16_t o = layout::main_ct_opts;
	auto keep = [&](int16_t slot, int16_t from) {
		em.emit(ldx(BPF_W, R1, pkt, from));
		em.emit(stx(BPF_W, R10, R1, slot));
	};
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	em.jump(jmp32_imm(BPF_JEQ, R1, IPPROTO_ICMP), quoted);
	keep(t, off::daddr);
	keep(t + 4, off::saddr);
	keep(t + 8, off::dport);
	keep(t + 12, off::sport);
	keep(o, off::proto);
	keep(o + 4, off::sport);
	keep(o + 8, off::dport);
	em.jump(ja(), have);
	quoted.bind();
	keep(t, off::ct_in_saddr);
	keep(t + 4, off::ct_in_daddr);
	keep(t + 8, off::ct_in_sport);
	keep(t + 12, off::ct_in_dport);
	keep(o, off::ct_in_proto);
	keep(o + 4, off::ct_in_dport);
	keep(o + 8, off::ct_in_sport);
	{
		// An ICMP query's tuple: the id, and type << 8 | code; its reply's type the
		// other way (echo 8 -> 0, timestamp 13 -> 14, info 15 -> 16, mask 17 -> 18).
		Label not_icmp(em), echo(em), typed(em);
		em.emit(ldx(BPF_W, R1, pkt, off::ct_in_proto));
		em.jump(jmp32_imm(BPF_JNE, R1, IPPROTO_ICMP), not_icmp);
		keep(t + 8, off::ct_in_id);
		keep(t + 12, off::ct_in_sport);
		keep(o + 4, off::ct_in_id);
		em.emit(ldx(BPF_W, R1, pkt, off::ct_in_sport));
		em.emit(mov64(R2, R1));
		em.emit(alu32_imm(BPF_RSH, R2, 8));
		em.jump(jmp32_imm(BPF_JEQ, R2, 8), echo);
		em.emit(alu32_imm(BPF_ADD, R1, 0x100));
		em.jump(ja(), typed);
		echo.bind();
		em.emit(alu32_imm(BPF_AND, R1, 0xff));
		typed.bind();
		em.emit(stx(BPF_W, R10, R1, o + 8));
		not_icmp.bind();
	}
	have.bind();
	em.emit(ldx(BPF_W, R1, R10, o));
	em.emit(stx(BPF_W, pkt, R1, off::ct_proto));
	// The packet went a to b: the entry's original direction, unless reply_ct_reply.
	constexpr int16_t orig[] = {off::ct_orig_src, off::ct_orig_dst, off::ct_orig_sport,
				    off::ct_orig_dport};
	constexpr int16_t repl[] = {off::ct_repl_src, off::ct_repl_dst, off::ct_repl_sport,
				    off::ct_repl_dport};
	auto view = [&](const int16_t(&ab)[4], const int16_t(&ba)[4]) {
		for (int k = 0; k < 4; k++) {
			em.emit(ldx(BPF_W, R1, R10, static_cast<int16_t>(t + 4 * k)));
			em.emit(stx(BPF_W, pkt, R1, ab[k]));
		}
		// b to a: the addresses swapped, the ports as the inverted tuple has them.
		em.emit(ldx(BPF_W, R1, R10, t + 4));
		em.emit(stx(BPF_W, pkt, R1, ba[0]));
		em.emit(ldx(BPF_W, R1, R10, t));
		em.emit(stx(BPF_W, pkt, R1, ba[1]));
		em.emit(ldx(BPF_W, R1, R10, o + 4));
		em.emit(stx(BPF_W, pkt, R1, ba[2]));
		em.emit(ldx(BPF_W, R1, R10, o + 8));
		em.emit(stx(BPF_W, pkt, R1, ba[3]));
	};
	em.emit(ldx(BPF_W, R1, pkt, off::rj_reply));
	em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(layout::reply_ct_reply)));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), original);
	view(repl, orig);
	set(em, off::ct_dir, 0);
	em.jump(ja(), found);
	original.bind();
	view(orig, repl);
	set(em, off::ct_dir, 1);
	found.bind();
	set(em, off::ct_statebit, st_related);
	done.bind();
}

namespace
{

// netfilter's OUTPUT drops the first packet of a flow the host starts before
// __nf_conntrack_confirm(): the entry it made dies with it, and a later packet of either
// direction finds none. tc egress runs after the kernel confirmed that entry, so when the
// verdict is not ACCEPT for a packet emit_egress_first() viewed unconfirmed, the entry
// (TCP, UDP: the kernel's; bpfilter's own are made only on ACCEPT) expires now
// (bpf_ct_change_timeout(ct, 0)). R0 and R6 kept; clobbers R1-R5, R7, R8.
void emit_egress_unconfirm(Emitter &em, Reg ctx)
{
	constexpr Reg verdict = R8, ct = R7;
	Label kept(em), tracked(em), release(em);
	em.emit(mov64(verdict, R0));
	em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_accept), kept);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_own_op));
	em.jump(jmp_imm(BPF_JNE, R1, layout::ct_own_new), kept);
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_TCP), tracked);
	em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_UDP), kept);
	tracked.bind();
	emit_lookup(em, ctx, Flavor::TcEgress, off::saddr, off::daddr, off::sport, off::dport, R1);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), kept);
	em.emit(mov64(ct, R0));
	em.emit(ldx(BPF_B, R1, R10, layout::main_ct_opts + 9));
	em.emit(alu64_imm(BPF_AND, R1, 1));
	em.jump(jmp_imm(BPF_JNE, R1, 0), release);
	em.emit(mov64(R1, ct));
	em.emit(mov64(R2, 0));
	em.call_kfunc(Kfunc::CtChangeTimeout);
	release.bind();
	emit_release(em, ct);
	kept.bind();
	em.emit(mov64(R0, verdict));
}

// Stores an entry of our own flows (maps::CtOwnValue: expires, status) under
// pkt.ct_own_key, through the stack at main_ct_tuple. Clobbers R1-R5.
void emit_own_store(Emitter &em, Reg expires, int32_t status)
{
	em.emit(stx(BPF_DW, R10, expires, layout::main_ct_tuple));
	em.emit(st(BPF_W, R10, layout::main_ct_tuple + 8, status));
	em.emit(st(BPF_W, R10, layout::main_ct_tuple + 12, 0));
	em.ld_map(R1, MapSlot::CtOwn);
	em.emit(mov64(R2, pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::ct_own_key));
	em.emit(mov64(R3, R10));
	em.emit(alu64_imm(BPF_ADD, R3, layout::main_ct_tuple));
	em.emit(mov64(R4, BPF_ANY));
	em.emit(call_helper(BPF_FUNC_map_update_elem));
}

} // namespace

void emit_ct_confirm(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ct)
{
	// The verdict waits on the stack: R6 is the context, which REJECT's reply needs next.
	constexpr int16_t verdict = layout::main_ct_opts;
	constexpr Reg entry = R7;
	Label out(em), insert(em), fresh(em), stamped(em);
	if (flavor == Flavor::TcEgress)
		emit_egress_unconfirm(em, ctx);
	em.emit(stx(BPF_DW, R10, R0, verdict));
	em.jump(jmp_imm(BPF_JNE, R0, layout::ret_accept), out);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_own_op));
	em.jump(jmp_imm(BPF_JEQ, R1, layout::ct_own_none), out);
	em.ld_map(R1, MapSlot::CtOwn);
	em.emit(mov64(R2, pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::ct_own_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.emit(mov64(entry, R0));
	// R8 = now + the flow's timeout.
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	{
		Label generic(em), tcp(em), have(em);
		em.emit(ldx(BPF_W, R1, pkt, off::ct_own_key + 12));
		em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_TCP), tcp);
		em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_ICMP), generic);
		em.ld_imm64(R2, uint64_t{ct.icmp_timeout} * ns_per_s);
		em.jump(ja(), have);
		tcp.bind();
		em.ld_imm64(R2, uint64_t{maps::ct_own_tcp_timeout} * ns_per_s);
		em.jump(ja(), have);
		generic.bind();
		em.ld_imm64(R2, uint64_t{ct.generic_timeout} * ns_per_s);
		have.bind();
		em.emit(alu64_reg(BPF_ADD, R2, R0));
		em.emit(mov64(R8, R2));
	}
	em.emit(ldx(BPF_W, R3, pkt, off::ct_own_op));
	em.jump(jmp_imm(BPF_JEQ, entry, 0), insert);
	// A lapsed entry is a new flow (the lookup before the chains said so).
	em.emit(ldx(BPF_DW, R1, entry, offsetof(maps::CtOwnValue, expires)));
	em.jump(jmp_reg(BPF_JGE, R0, R1), fresh);
	em.jump(jmp_imm(BPF_JNE, R3, layout::ct_own_reply), stamped);
	em.emit(ldx(BPF_W, R1, entry, offsetof(maps::CtOwnValue, status)));
	em.emit(alu64_imm(BPF_OR, R1, ips_seen_reply));
	em.emit(stx(BPF_W, entry, R1, offsetof(maps::CtOwnValue, status)));
	em.jump(ja(), stamped);
	fresh.bind();
	em.jump(jmp_imm(BPF_JNE, R3, layout::ct_own_new), out);
	em.emit(st(BPF_W, entry, offsetof(maps::CtOwnValue, status), ips_confirmed));
	stamped.bind();
	em.emit(stx(BPF_DW, entry, R8, offsetof(maps::CtOwnValue, expires)));
	em.jump(ja(), out);

	insert.bind();
	em.jump(jmp_imm(BPF_JNE, R3, layout::ct_own_new), out);
	emit_own_store(em, R8, ips_confirmed);
	out.bind();
	em.emit(ldx(BPF_DW, R0, R10, verdict));
}

void emit_ct_expired_note(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ct)
{
	Label done(em), tracked(em);
	em.emit(ldx(BPF_W, R1, pkt, off::frag));
	em.jump(jmp_imm(BPF_JSET, R1, 0x3fff), done); // reassembled first: not followed here
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_TCP), tracked);
	em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_UDP), done);
	tracked.bind();
	emit_ct_state(em, ctx, flavor, ct);
	// NEW without an entry of the kernel's (status 0): the packet made one, unconfirmed.
	em.emit(ldx(BPF_W, R1, pkt, off::ct_statebit));
	em.jump(jmp_imm(BPF_JNE, R1, st_new), done);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_status));
	em.jump(jmp_imm(BPF_JNE, R1, 0), done);
	emit_note_key(em, off::saddr, off::daddr, off::sport, off::dport, off::proto);
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	em.ld_imm64(R1, uint64_t{maps::ct_own_expired_ns});
	em.emit(alu64_reg(BPF_ADD, R0, R1));
	emit_own_store(em, R0, 0);
	done.bind();
}

} // namespace bpfilter::codegen

namespace bpfilter::codegen
{

namespace
{

namespace clm = maps;
constexpr int16_t h_tuple = offsetof(clm::ConnlimitHead, tuple);
constexpr int16_t h_flags = offsetof(clm::ConnlimitHead, flags);
constexpr int16_t h_mode = offsetof(clm::ConnlimitHead, mode);
constexpr int16_t h_w = offsetof(clm::ConnlimitHead, w);
constexpr int16_t h_keep = offsetof(clm::ConnlimitHead, keep);
constexpr int16_t h_twin = offsetof(clm::ConnlimitHead, twin);
constexpr int16_t h_now = offsetof(clm::ConnlimitHead, now);
constexpr int16_t h_closed = offsetof(clm::ConnlimitHead, pad);
constexpr int16_t c_src = offsetof(clm::ConnlimitConn, src);
constexpr int16_t c_dst = offsetof(clm::ConnlimitConn, dst);
constexpr int16_t c_sport = offsetof(clm::ConnlimitConn, sport);
constexpr int16_t c_dport = offsetof(clm::ConnlimitConn, dport);
constexpr int16_t c_proto = offsetof(clm::ConnlimitConn, proto);
constexpr int16_t c_pad = offsetof(clm::ConnlimitConn, pad);
constexpr int16_t c_cpu = offsetof(clm::ConnlimitConn, cpu);
constexpr int16_t c_jiffies = offsetof(clm::ConnlimitConn, jiffies32);
constexpr int16_t l_count = offsetof(clm::ConnlimitList, count);
constexpr int16_t l_last_gc = offsetof(clm::ConnlimitList, last_gc);
constexpr int16_t l_last_gc_count = offsetof(clm::ConnlimitList, last_gc_count);
constexpr int16_t l_pad = offsetof(clm::ConnlimitList, pad);
constexpr int16_t l_conns = offsetof(clm::ConnlimitList, conns);
constexpr int16_t s_key = offsetof(clm::ConnlimitSlot, key);
constexpr int16_t s_count = offsetof(clm::ConnlimitSlot, count);
constexpr int16_t s_write = offsetof(clm::ConnlimitSlot, write);
constexpr int16_t s_list = offsetof(clm::ConnlimitSlot, list);
constexpr int16_t conn_size = sizeof(clm::ConnlimitConn);
constexpr int32_t st_untracked = 256; // XT_CONNTRACK_STATE_UNTRACKED
constexpr int32_t ips_assured = 4;
constexpr uint8_t tcp_time_wait = 7, tcp_close = 8; // enum tcp_conntrack

int16_t off16(size_t v)
{
	return static_cast<int16_t>(v);
}

// Copies a ConnlimitConn (20 bytes) from src + so to dst + d. Clobbers R3.
void copy_conn(Emitter &em, Reg dst, int16_t d, Reg src, int16_t so)
{
	em.emit(ldx(BPF_DW, R3, src, so));
	em.emit(stx(BPF_DW, dst, R3, d));
	em.emit(ldx(BPF_DW, R3, src, off16(so + 8)));
	em.emit(stx(BPF_DW, dst, R3, off16(d + 8)));
	em.emit(ldx(BPF_W, R3, src, off16(so + 16)));
	em.emit(stx(BPF_W, dst, R3, off16(d + 16)));
}

// Jumps to `differ` unless the tuple at R8 + c equals the packet's (R7 + h_tuple).
void emit_conn_differs(Emitter &em, int16_t c, Label &differ)
{
	for (auto [o, size] : {std::pair{c_src, BPF_W}, std::pair{c_dst, BPF_W},
			       std::pair{c_sport, BPF_W}, std::pair{c_proto, BPF_B}}) {
		em.emit(ldx(static_cast<uint8_t>(size), R1, R8, off16(c + o)));
		em.emit(ldx(static_cast<uint8_t>(size), R2, R7, off16(h_tuple + o)));
		em.jump(jmp_reg(BPF_JNE, R1, R2), differ);
	}
}

// R0 = the kernel's entry (or 0) for the TCP or UDP tuple at base + c (ports host order),
// protocol in R1: the stack's tuple and options, as emit_lookup() fills them.
void emit_lookup_conn(Emitter &em, Reg ctx, Flavor flavor, Reg base, int16_t c)
{
	constexpr int16_t t = layout::main_ct_tuple, o = layout::main_ct_opts;
	em.emit(stx(BPF_B, R10, R1, o + 8));
	em.emit(ldx(BPF_W, R1, base, off16(c + c_src)));
	em.emit(stx(BPF_W, R10, R1, t));
	em.emit(ldx(BPF_W, R1, base, off16(c + c_dst)));
	em.emit(stx(BPF_W, R10, R1, t + 4));
	em.emit(ldx(BPF_H, R1, base, off16(c + c_sport)));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, t + 8));
	em.emit(ldx(BPF_H, R1, base, off16(c + c_dport)));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, t + 10));
	emit_lookup_call(em, ctx, flavor);
}

// The packet's tuple into the head, as get_ct_or_tuple_from_skb() finds it: the view's
// entry (its original tuple, confirmed, assured), or, for a packet conntrack attaches no
// entry to (INVALID, UNTRACKED), nf_ct_get_tuplepr()'s and the kernel's entry for it.
void emit_connlimit_tuple(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly)
{
	Label from_packet(em), done(em), no_tuple(em), ports(em), icmp(em), have(em);
	em.emit(st(BPF_W, R7, h_flags, 0));
	em.emit(ldx(BPF_W, R1, pkt, off::ct_statebit));
	em.jump(jmp_imm(BPF_JSET, R1, st_invalid | st_untracked), from_packet);
	auto put = [&](int16_t to, uint8_t size, int16_t from) {
		em.emit(ldx(BPF_W, R1, pkt, from));
		em.emit(stx(size, R7, R1, off16(h_tuple + to)));
	};
	put(c_src, BPF_W, off::ct_orig_src);
	put(c_dst, BPF_W, off::ct_orig_dst);
	put(c_sport, BPF_H, off::ct_orig_sport);
	put(c_dport, BPF_H, off::ct_orig_dport);
	put(c_proto, BPF_B, off::ct_proto);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_status));
	em.emit(mov64(R2, R1));
	em.emit(alu64_imm(BPF_AND, R2, ips_confirmed));
	em.emit(alu64_imm(BPF_RSH, R2, 2)); // connlimit_confirmed
	em.emit(alu64_imm(BPF_AND, R1, ips_assured));
	em.emit(alu64_reg(BPF_OR, R1, R2)); // connlimit_assured
	em.emit(alu64_imm(BPF_OR, R1, clm::connlimit_tuple));
	em.emit(stx(BPF_W, R7, R1, h_flags));
	em.jump(ja(), done);

	from_packet.bind();
	put(c_src, BPF_W, off::saddr);
	put(c_dst, BPF_W, off::daddr);
	put(c_proto, BPF_B, off::proto);
	em.emit(st(BPF_W, R7, off16(h_tuple + c_sport), 0));
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	for (int32_t p : {int32_t{IPPROTO_TCP}, int32_t{IPPROTO_UDP}, int32_t{IPPROTO_DCCP},
			  int32_t{IPPROTO_SCTP}, ipproto_udplite})
		em.jump(jmp_imm(BPF_JEQ, R1, p), ports);
	em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_ICMP), icmp);
	em.jump(jmp_imm(BPF_JEQ, R1, ipproto_icmpv6), icmp);
	em.jump(ja(), have);
	ports.bind(); // "only need first 4 bytes to get ports"
	em.emit(ldx(BPF_W, R1, pkt, off::l4len));
	em.jump(jmp_imm(BPF_JLT, R1, 4), no_tuple);
	put(c_sport, BPF_H, off::sport);
	put(c_dport, BPF_H, off::dport);
	em.jump(ja(), have);
	icmp.bind(); // icmp_pkt_to_tuple(): the whole 8-byte header
	em.emit(ldx(BPF_W, R1, pkt, off::l4len));
	em.jump(jmp_imm(BPF_JLT, R1, 8), no_tuple);
	put(c_sport, BPF_H, off::ct_l4w1);
	em.emit(ldx(BPF_W, R1, pkt, off::icmp_type));
	em.emit(alu32_imm(BPF_LSH, R1, 8));
	em.emit(ldx(BPF_W, R2, pkt, off::icmp_code));
	em.emit(alu32_reg(BPF_OR, R1, R2));
	em.emit(stx(BPF_H, R7, R1, off16(h_tuple + c_dport)));
	have.bind();
	em.emit(st(BPF_W, R7, h_flags, clm::connlimit_tuple));
	{
		// nf_conntrack_find_get() of that tuple (TCP and UDP: the kfuncs' protocols).
		Label tracked(em);
		em.emit(ldx(BPF_W, R1, pkt, off::proto));
		em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_TCP), tracked);
		em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_UDP), done);
		tracked.bind();
		emit_lookup_conn(em, ctx, flavor, R7, h_tuple);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
		em.emit(ldx(BPF_DW, R1, R0, ly.status));
		em.emit(alu64_imm(BPF_AND, R1, ips_assured));
		em.emit(alu64_imm(BPF_OR, R1, clm::connlimit_tuple | clm::connlimit_confirmed));
		em.emit(stx(BPF_W, R7, R1, h_flags));
		emit_release(em, R0);
		em.jump(ja(), done);
	}
	no_tuple.bind();
	em.emit(st(BPF_W, R7, h_flags, 0));
	done.bind();
}

// One tuple of the list at R8 (index i): find_or_evict() and what __nf_conncount_add() or
// __nf_conncount_gc_list() does with it, by the head's mode; a tuple kept goes to the
// slot's new list at R7 + s.
void emit_connlimit_conn(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly, int16_t s,
			 uint32_t i, Label &end)
{
	const auto c = off16(l_conns + conn_size * i);
	Label keep(em), drop(em), found(em), notfound(em), twin(em), own(em), next(em);
	em.emit(ldx(BPF_W, R1, R8, l_count));
	em.jump(jmp32_imm(BPF_JLE, R1, static_cast<int32_t>(i)), end);
	em.emit(ldx(BPF_W, R1, R7, h_keep));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), keep);
	em.emit(st(BPF_W, R7, h_closed, 0));
	em.emit(ldx(BPF_B, R1, R8, off16(c + c_proto)));
	{
		Label tracked(em);
		em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_TCP), tracked);
		em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_UDP), own);
		tracked.bind();
	}
	emit_lookup_conn(em, ctx, flavor, R8, c);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), notfound);
	{
		// already_closed(): TIME_WAIT or CLOSE.
		Label open(em), closed(em);
		em.emit(ldx(BPF_B, R1, R8, off16(c + c_proto)));
		em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_TCP), open);
		em.emit(ldx(BPF_B, R1, R0, ly.tcp_state));
		em.jump(jmp_imm(BPF_JEQ, R1, tcp_time_wait), closed);
		em.jump(jmp_imm(BPF_JNE, R1, tcp_close), open);
		closed.bind();
		em.emit(st(BPF_W, R7, h_closed, 1));
		open.bind();
	}
	emit_release(em, R0);
	em.jump(ja(), found);

	// Every other protocol: bpfilter's own table (maps::CtOwnKey), as the view reads it.
	own.bind();
	{
		constexpr int16_t k = layout::main_ct_tuple;
		Label icmp(em), keyed(em);
		em.emit(ldx(BPF_W, R1, R8, off16(c + c_src)));
		em.emit(stx(BPF_W, R10, R1, k));
		em.emit(ldx(BPF_W, R1, R8, off16(c + c_dst)));
		em.emit(stx(BPF_W, R10, R1, k + 4));
		em.emit(ldx(BPF_B, R1, R8, off16(c + c_proto)));
		em.emit(stx(BPF_W, R10, R1, k + 12));
		em.jump(jmp_imm(BPF_JEQ, R1, IPPROTO_ICMP), icmp);
		em.emit(alu32_imm(BPF_OR, R1, static_cast<int32_t>(maps::ct_own_generic)));
		em.jump(ja(), keyed);
		icmp.bind(); // type << 24 | code << 16 | id
		em.emit(ldx(BPF_H, R1, R8, off16(c + c_dport)));
		em.emit(alu32_imm(BPF_LSH, R1, 16));
		em.emit(ldx(BPF_H, R2, R8, off16(c + c_sport)));
		em.emit(alu32_reg(BPF_OR, R1, R2));
		keyed.bind();
		em.emit(stx(BPF_W, R10, R1, k + 8));
		em.ld_map(R1, MapSlot::CtOwn);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, k));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		em.jump(jmp_imm(BPF_JEQ, R0, 0), notfound);
		em.emit(ldx(BPF_DW, R1, R0, offsetof(maps::CtOwnValue, expires)));
		em.emit(ldx(BPF_DW, R2, R7, h_now));
		em.jump(jmp_reg(BPF_JGE, R2, R1), notfound); // lapsed
		em.jump(ja(), found);
	}

	found.bind();
	{
		Label differs(em);
		em.emit(ldx(BPF_W, R1, R7, h_mode));
		em.jump(jmp_imm(BPF_JNE, R1, clm::connlimit_walk), differs);
		emit_conn_differs(em, c, differs);
		em.jump(ja(), twin); // seen twice: no re-add
		differs.bind();
	}
	em.emit(ldx(BPF_W, R1, R7, h_closed));
	em.jump(jmp_imm(BPF_JNE, R1, 0), drop);
	em.jump(ja(), keep);

	notfound.bind();
	// Gone: evicted when this CPU added it or it is two jiffies old, else it may be about
	// to be confirmed.
	em.emit(ldx(BPF_H, R1, R8, off16(c + c_cpu)));
	em.emit(ldx(BPF_H, R2, R7, off16(h_tuple + c_cpu)));
	em.jump(jmp_reg(BPF_JEQ, R1, R2), drop);
	em.emit(ldx(BPF_W, R1, R7, off16(h_tuple + c_jiffies)));
	em.emit(ldx(BPF_W, R2, R8, off16(c + c_jiffies)));
	em.emit(alu32_reg(BPF_SUB, R1, R2));
	em.jump(jmp32_imm(BPF_JGE, R1, 2), drop);
	{
		Label differs(em);
		em.emit(ldx(BPF_W, R1, R7, h_mode));
		em.jump(jmp_imm(BPF_JNE, R1, clm::connlimit_walk), differs);
		emit_conn_differs(em, c, differs);
		em.jump(ja(), twin); // already there
		differs.bind();
	}
	em.jump(ja(), keep);

	twin.bind();
	em.emit(st(BPF_W, R7, h_twin, 1));
	em.emit(st(BPF_W, R7, h_keep, 1));
	keep.bind();
	em.emit(ldx(BPF_W, R1, R7, h_w));
	em.emit(mov64(R2, R1));
	em.emit(alu64_imm(BPF_AND, R2, clm::connlimit_conns - 1));
	em.emit(alu64_imm(BPF_MUL, R2, conn_size));
	em.emit(alu64_reg(BPF_ADD, R2, R7));
	copy_conn(em, R2, off16(s + s_list + l_conns), R8, c);
	em.emit(alu32_imm(BPF_ADD, R1, 1));
	em.emit(stx(BPF_W, R7, R1, h_w));
	drop.bind();
}

// One match's slot: its key, and the count and new list count_tree() would give.
void emit_connlimit_slot(Emitter &em, Reg ctx, Flavor flavor, const CtLayout &ly, const ir::Rule &r,
			 const ir::ConnlimitMatch &m)
{
	const auto s = off16(sizeof(clm::ConnlimitHead) + sizeof(clm::ConnlimitSlot) * m.slot);
	Label next(em), have_list(em), walk(em), end(em), no_gc(em), counted(em);
	em.emit(st(BPF_W, R7, off16(s + s_count), 0));
	em.emit(st(BPF_W, R7, off16(s + s_write), 0));
	// A rule of another protocol never reaches its match.
	if (r.ip.proto && !(r.ip.invflags & 0x40)) { // IPT_INV_PROTO
		em.emit(ldx(BPF_W, R1, pkt, off::proto));
		em.jump(jmp_imm(BPF_JNE, R1, r.ip.proto), next);
	}
	em.emit(st(BPF_W, R7, off16(s + s_key + offsetof(clm::ConnlimitKey, slot)),
		   static_cast<int32_t>(m.slot)));
	em.emit(ldx(BPF_W, R1, pkt, (m.flags & 2) ? off::daddr : off::saddr)); // DADDR
	em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(m.mask)));
	em.emit(stx(BPF_W, R7, R1, off16(s + s_key + offsetof(clm::ConnlimitKey, addr))));
	em.emit(ldx(BPF_W, R1, R7, h_flags));
	em.jump(jmp_imm(BPF_JEQ, R1, 0), next); // no tuple: 0, a hotdrop
	em.ld_map(R1, MapSlot::Connlimit);
	em.emit(mov64(R2, R7));
	em.emit(alu64_imm(BPF_ADD, R2, s + s_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JNE, R0, 0), have_list);
	// insert_tree(): a new list of this one tuple.
	em.emit(st(BPF_W, R7, off16(s + s_list + l_count), 1));
	em.emit(ldx(BPF_W, R1, R7, off16(h_tuple + c_jiffies)));
	em.emit(stx(BPF_W, R7, R1, off16(s + s_list + l_last_gc)));
	em.emit(st(BPF_W, R7, off16(s + s_list + l_last_gc_count), 0));
	em.emit(st(BPF_W, R7, off16(s + s_list + l_pad), 0));
	copy_conn(em, R7, off16(s + s_list + l_conns), R7, h_tuple);
	em.emit(st(BPF_W, R7, off16(s + s_count), 1));
	em.emit(st(BPF_W, R7, off16(s + s_write), 1));
	em.jump(ja(), next);

	have_list.bind();
	em.emit(mov64(R8, R0));
	em.emit(st(BPF_W, R7, h_w, 0));
	em.emit(st(BPF_W, R7, h_keep, 0));
	em.emit(st(BPF_W, R7, h_twin, 0));
	em.emit(st(BPF_W, R7, h_mode, clm::connlimit_walk));
	em.emit(ldx(BPF_W, R2, R7, h_flags));
	em.emit(ldx(BPF_W, R3, R7, off16(h_tuple + c_jiffies)));
	{
		Label not_assured(em), unconfirmed(em);
		em.emit(mov64(R1, R2));
		em.emit(alu64_imm(BPF_AND, R1, clm::connlimit_confirmed | clm::connlimit_assured));
		em.jump(jmp_imm(BPF_JNE, R1, clm::connlimit_confirmed | clm::connlimit_assured),
			not_assured);
		// Assured: nothing added; count_tree() collects the list (not an emptied one,
		// nor one collected in this jiffy) and counts it.
		em.emit(ldx(BPF_W, R1, R8, l_count));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), next);
		em.emit(ldx(BPF_W, R4, R8, l_last_gc));
		em.jump(jmp32_reg(BPF_JNE, R4, R3), no_gc);
		em.emit(stx(BPF_W, R7, R1, off16(s + s_count)));
		em.jump(ja(), next);
		no_gc.bind();
		em.emit(st(BPF_W, R7, h_mode, clm::connlimit_gc));
		em.jump(ja(), walk);
		not_assured.bind();
		em.jump(jmp_imm(BPF_JSET, R2, clm::connlimit_confirmed), walk);
		// The same-jiffy skip: added without a walk.
		em.emit(ldx(BPF_W, R4, R8, l_last_gc));
		em.jump(jmp32_reg(BPF_JNE, R4, R3), walk);
		em.emit(ldx(BPF_W, R1, R8, l_count));
		em.emit(ldx(BPF_W, R4, R8, l_last_gc_count));
		em.emit(alu32_reg(BPF_SUB, R1, R4));
		em.jump(jmp32_imm(BPF_JGE, R1, static_cast<int32_t>(ir::connlimit::gc_max_collect)),
			walk);
		em.emit(st(BPF_W, R7, h_mode, clm::connlimit_append));
		em.emit(st(BPF_W, R7, h_keep, 1));
	}
	walk.bind();
	// At most connlimit_conns tuples: the walk never collects more than 64, so its bound
	// (CONNCOUNT_GC_MAX_COLLECT) is never reached.
	static_assert(clm::connlimit_conns <= ir::connlimit::gc_max_collect);
	for (uint32_t i = 0; i < clm::connlimit_conns; i++)
		emit_connlimit_conn(em, ctx, flavor, ly, s, i, end);
	end.bind();
	{
		// The walk done (not cut short by a twin): last_gc is now; else the list's.
		Label kept(em), header(em);
		em.emit(ldx(BPF_W, R1, R7, h_twin));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), kept);
		em.emit(ldx(BPF_W, R1, R7, h_mode));
		em.jump(jmp32_imm(BPF_JEQ, R1, clm::connlimit_append), kept);
		em.emit(ldx(BPF_W, R1, R7, off16(h_tuple + c_jiffies)));
		em.emit(stx(BPF_W, R7, R1, off16(s + s_list + l_last_gc)));
		em.emit(ldx(BPF_W, R1, R7, h_w));
		em.emit(stx(BPF_W, R7, R1, off16(s + s_list + l_last_gc_count)));
		em.jump(ja(), header);
		kept.bind();
		em.emit(ldx(BPF_W, R1, R8, l_last_gc));
		em.emit(stx(BPF_W, R7, R1, off16(s + s_list + l_last_gc)));
		em.emit(ldx(BPF_W, R1, R8, l_last_gc_count));
		em.emit(stx(BPF_W, R7, R1, off16(s + s_list + l_last_gc_count)));
		header.bind();
		em.emit(st(BPF_W, R7, off16(s + s_list + l_pad), 0));
	}
	{
		// add_new_node, unless a twin was found or the list was only collected. A full
		// list counts the tuple without keeping it (supported.md).
		Label stored(em), full(em);
		em.emit(ldx(BPF_W, R1, R7, h_w));
		em.emit(stx(BPF_W, R7, R1, off16(s + s_count)));
		em.emit(stx(BPF_W, R7, R1, off16(s + s_list + l_count)));
		em.emit(ldx(BPF_W, R2, R7, h_twin));
		em.jump(jmp32_imm(BPF_JNE, R2, 0), stored);
		em.emit(ldx(BPF_W, R2, R7, h_mode));
		em.jump(jmp32_imm(BPF_JEQ, R2, clm::connlimit_gc), stored);
		em.emit(mov64(R2, R1));
		em.emit(alu32_imm(BPF_ADD, R2, 1));
		em.emit(stx(BPF_W, R7, R2, off16(s + s_count)));
		em.jump(jmp32_imm(BPF_JGE, R1, static_cast<int32_t>(clm::connlimit_conns)), full);
		em.emit(stx(BPF_W, R7, R2, off16(s + s_list + l_count)));
		em.emit(mov64(R2, R1));
		em.emit(alu64_imm(BPF_AND, R2, clm::connlimit_conns - 1));
		em.emit(alu64_imm(BPF_MUL, R2, conn_size));
		em.emit(alu64_reg(BPF_ADD, R2, R7));
		em.emit(mov64(R4, R7));
		copy_conn(em, R2, off16(s + s_list + l_conns), R4, h_tuple);
		full.bind();
		stored.bind();
	}
	em.emit(st(BPF_W, R7, off16(s + s_write), 1));
	next.bind();
}

} // namespace

void emit_connlimit_probe_call(Emitter &em, Reg ctx, SubprogId id)
{
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, pkt));
	em.call(id);
}

void emit_connlimit_probe(Emitter &em, SubprogId id, Flavor flavor, const CtLayout &ly,
			  const ir::Table &table, HookSet hooks)
{
	constexpr Reg ctx = R6;
	em.begin_subprog(id);
	em.emit(mov64(ctx, R1));
	em.emit(mov64(pkt, R2));
	Label done(em);
	em.emit(st(BPF_W, R10, layout::main_key, 0));
	em.ld_map(R1, MapSlot::ConnlimitTmp);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JNE, R0, 0), done);
	em.emit(mov64(R0, 0));
	em.emit(exit());
	done.bind();
	em.emit(mov64(R7, R0));
	em.emit(call_helper(BPF_FUNC_jiffies64));
	em.emit(stx(BPF_W, R7, R0, off16(h_tuple + c_jiffies)));
	em.emit(call_helper(BPF_FUNC_get_smp_processor_id));
	em.emit(stx(BPF_H, R7, R0, off16(h_tuple + c_cpu)));
	em.emit(st(BPF_B, R7, off16(h_tuple + c_pad), 0));
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	em.emit(stx(BPF_DW, R7, R0, h_now));
	emit_connlimit_tuple(em, ctx, flavor, ly);
	for (const ir::Rule &r : table.rules) {
		if (fold_ip(r.ip, hooks) == Fold::Never)
			continue;
		for (const ir::Match &m : r.matches)
			if (auto *x = std::get_if<ir::ConnlimitMatch>(&m))
				emit_connlimit_slot(em, ctx, flavor, ly, r, *x);
	}
	em.emit(mov64(R0, 0));
	em.emit(exit());
}

} // namespace bpfilter::codegen
