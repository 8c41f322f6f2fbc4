// Emitting runs of rules: matches, counters, targets, and the calls that stand for ip_tables' jump
// stack.
#include "codegen/chain.hpp"

#include <arpa/inet.h>
#include <linux/netfilter/xt_LOG.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <tuple>
#include <vector>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "codegen/reject.hpp"

namespace bpfilter::codegen
{

using namespace insn;
using Kind = ir::Target::Kind;

namespace
{

struct Frame {
	const ir::Table &table;
	const Plan &plan;
	const HookRun *hook;	// the main program's run of a built-in chain (empty jump
				// stack), or null in a subprogram
	int16_t key_off;	// this frame's stack slot for a map key
	uint32_t block = ~0u;	// the Counters block in layout::counters
	uint32_t stop = ~0u;	// a chunk's end: the next chunk's first rule
	bool fragments = false; // the run sees a datagram's later pieces (Plan::fragment_runs)
	bool main() const { return hook != nullptr; }
};

void emit_verdict(Emitter &em, int32_t code)
{
	em.emit(mov64(R0, code));
	em.emit(exit());
}

// dst = this CPU's Counters block `block`. The lookup cannot fail (an array with
// every block the table needs); the verifier wants the test all the same.
void emit_block_lookup(Emitter &em, const Frame &f, uint32_t block, Reg dst)
{
	// Offloaded: one entry, the block `block` bytes into it (maps::offload_counters_type).
	em.emit(st(BPF_W, R10, f.key_off, f.plan.offload ? 0 : static_cast<int32_t>(block)));
	em.ld_map(R1, MapSlot::Counters);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, f.key_off));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	Label found(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), found);
	emit_verdict(em, layout::ret_drop);
	found.bind();
	if (f.plan.offload && block)
		em.emit(alu64_imm(BPF_ADD, R0,
				  static_cast<int32_t>(block) * maps::offload_block_bytes));
	if (dst != R0)
		em.emit(mov64(dst, R0));
}

// Make layout::counters point at the block of `rule`.
void emit_use_block(Emitter &em, Frame &f, uint32_t rule)
{
	const uint32_t block = maps::counter_block(rule);
	if (block == f.block)
		return;
	emit_block_lookup(em, f, block, layout::counters);
	f.block = block;
}

// packets += count_inc, bytes += tot_len in the rule's per-CPU slot; `base` holds its
// block. Both are 0 for a packet judged but not counted (see xdp.cpp).
void emit_add(Emitter &em, Reg base, uint32_t rule, bool offload)
{
	const auto at = static_cast<int16_t>(sizeof(maps::CounterValue) * maps::counter_slot(rule));
	if (offload) {
		// One value for every thread of the NIC: atomic adds.
		em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::count_inc));
		em.emit(atomic_add(BPF_DW, base, R1, at));
		em.emit(atomic_add(BPF_DW, base, layout::len, static_cast<int16_t>(at + 8)));
		return;
	}
	em.emit(ldx(BPF_DW, R1, base, at));
	em.emit(ldx(BPF_W, R2, layout::pkt, layout::pkt_off::count_inc));
	em.emit(alu64_reg(BPF_ADD, R1, R2));
	em.emit(stx(BPF_DW, base, R1, at));
	em.emit(ldx(BPF_DW, R1, base, static_cast<int16_t>(at + 8)));
	em.emit(alu64_reg(BPF_ADD, R1, layout::len));
	em.emit(stx(BPF_DW, base, R1, static_cast<int16_t>(at + 8)));
}

void emit_count(Emitter &em, const Frame &f, uint32_t rule)
{
	if (maps::counter_block(rule) == f.block) {
		emit_add(em, layout::counters, rule, f.plan.offload);
		return;
	}
	// A rule outside this run's block (the policy, counted on RETURN): a lookup of its own.
	emit_block_lookup(em, f, maps::counter_block(rule), R0);
	emit_add(em, R0, rule, f.plan.offload);
}

// RETURN with an empty jump stack: the hook's policy rule, counted, decides.
void emit_underflow(Emitter &em, const Frame &f)
{
	emit_count(em, f, f.hook->underflow);
	const Kind k = f.table.rules[f.hook->underflow].target.kind;
	emit_verdict(em, k == Kind::Accept ? layout::ret_accept : layout::ret_drop);
}

void emit_call(Emitter &em, const Frame &f, uint32_t to)
{
	em.emit(mov64(R1, layout::pkt));
	em.call(f.plan.subprog_of.at(to));
}

// Continue at rule `to` with the same jump stack: what a goto, or falling into
// another run, does.
void emit_goto(Emitter &em, const Frame &f, uint32_t to)
{
	emit_call(em, f, to);
	if (!f.main()) {
		em.emit(exit()); // its verdict or RETURN is ours
		return;
	}
	Label returned(em);
	em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_return), returned);
	em.emit(exit());
	returned.bind();
	emit_underflow(em, f);
}

// -j LOG: a maps::LogRecord for the helper, which prints the line (log_tg() does at once).
// Only for packets netfilter's hook would see: those judged but not counted (count_inc 0:
// martians, a first fragment before its datagram is whole, OUTPUT's dry run of a
// looped-back copy) never reach it. A full ring loses the line and counts it in LogLost.
// Where a LOG rule keeps its record's address across the name lookups: below the map key,
// in any frame (the main program's FIB lookup, which lies there, is long done).
constexpr int16_t log_rec_slot = -16;
static_assert(layout::main_key == -8 && layout::sub_key == -8);

void emit_log(Emitter &em, const Frame &f, const ir::LogInfo &info)
{
	using rec = maps::LogRecord;
	const auto field = [](size_t at) { return static_cast<int16_t>(at); };
	Label done(em), lost(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::count_inc));
	em.jump(jmp_imm(BPF_JEQ, R1, 0), done);
	em.ld_map(R1, MapSlot::LogRing);
	em.emit(mov64(R2, static_cast<int32_t>(sizeof(rec))));
	em.emit(mov64(R3, 0));
	em.emit(call_helper(BPF_FUNC_ringbuf_reserve));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), lost);
	em.emit(st(BPF_H, R0, field(offsetof(rec, level)),
		   static_cast<int32_t>(info.level | info.flags << 8)));
	// --log-uid: nf_log_dump_sk_uid_gid() prints the file credentials of skb->sk when it
	// is a full socket of the hook's namespace with a file: what emit_owner() found, but
	// a request socket's listener.
	em.emit(st(BPF_H, R0, field(offsetof(rec, has_uid)), 0));
	if ((info.flags & XT_LOG_UID) && f.plan.uses_owner) {
		Label no_uid(em);
		em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::own_kind));
		em.jump(jmp32_imm(BPF_JNE, R1, layout::owner_file), no_uid);
		em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::own_req));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), no_uid);
		em.emit(st(BPF_B, R0, field(offsetof(rec, has_uid)), 1));
		em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::own_uid));
		em.emit(stx(BPF_W, R0, R1, field(offsetof(rec, uid))));
		em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::own_gid));
		em.emit(stx(BPF_W, R0, R1, field(offsetof(rec, gid))));
		no_uid.bind();
	}
	em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::tot_len));
	em.emit(stx(BPF_W, R0, R1, field(offsetof(rec, len))));
	std::array<char, sizeof(rec::prefix)> prefix{};
	std::copy(info.prefix.begin(), info.prefix.end(), prefix.begin());
	for (size_t k = 0; k < prefix.size(); k += 4) {
		uint32_t word = 0;
		std::memcpy(&word, &prefix[k], 4);
		em.emit(st(BPF_W, R0, field(offsetof(rec, prefix) + k),
			   static_cast<int32_t>(word)));
	}
	for (size_t k = 0; k < sizeof(rec::snap); k += 8) {
		em.emit(ldx(BPF_DW, R1, layout::pkt,
			    static_cast<int16_t>(layout::pkt_off::log_base + k)));
		em.emit(stx(BPF_DW, R0, R1, field(offsetof(rec, snap) + k)));
	}
	// The devices' names, looked up now rather than for every packet; zero where the
	// hook has no such device (or the loader has not named it yet).
	em.emit(stx(BPF_DW, R10, R0, log_rec_slot));
	for (const auto &[ifindex, name] :
	     {std::pair{offsetof(maps::LogSnap, in_ifindex), offsetof(rec, in)},
	      std::pair{offsetof(maps::LogSnap, out_ifindex), offsetof(rec, out)}}) {
		Label unnamed(em);
		em.emit(st(BPF_DW, R0, field(name), 0));
		em.emit(st(BPF_DW, R0, field(name + 8), 0));
		em.emit(ldx(BPF_W, R1, layout::pkt,
			    static_cast<int16_t>(layout::pkt_off::log_base + ifindex)));
		em.jump(jmp_imm(BPF_JEQ, R1, 0), unnamed);
		em.emit(stx(BPF_W, R10, R1, f.key_off));
		em.ld_map(R1, MapSlot::Devices);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, f.key_off));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		em.emit(mov64(R2, R0));
		em.emit(ldx(BPF_DW, R0, R10, log_rec_slot));
		em.jump(jmp_imm(BPF_JEQ, R2, 0), unnamed);
		for (int16_t k = 0; k < 16; k += 8) {
			em.emit(ldx(BPF_DW, R1, R2,
				    static_cast<int16_t>(maps::device_off::name + k)));
			em.emit(stx(BPF_DW, R0, R1, field(name + static_cast<size_t>(k))));
		}
		unnamed.bind();
	}
	em.emit(mov64(R1, R0));
	em.emit(mov64(R2, 0));
	em.emit(call_helper(BPF_FUNC_ringbuf_submit));
	em.jump(ja(), done);

	lost.bind();
	em.emit(st(BPF_W, R10, f.key_off, 0));
	em.ld_map(R1, MapSlot::LogLost);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, f.key_off));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	em.emit(mov64(R1, 1));
	em.emit(atomic_add(BPF_DW, R0, R1, 0));
	done.bind();
}

// The rule's target. Where the packet goes on to the next rule, it falls through, or
// jumps to `next` when the code is out of line.
void emit_target(Emitter &em, const Frame &f, uint32_t i, Label *next)
{
	const ir::Target &tg = f.table.rules[i].target;
	const auto go_on = [&] {
		if (next)
			em.jump(ja(), *next);
	};
	if (!is_call(f.table, i) && (tg.kind == Kind::Jump || tg.kind == Kind::Goto)) {
		go_on(); // to the next rule: the kernel pushes nothing and goes on
		return;
	}
	switch (tg.kind) {
	case Kind::Accept:
		emit_verdict(em, layout::ret_accept);
		break;
	case Kind::Drop:
	case Kind::Error: // ipt_error() returns NF_DROP
		emit_verdict(em, layout::ret_drop);
		break;
	case Kind::Continue:
		go_on();
		break;
	case Kind::Reject:
		// reject_tg() answers the types it knows and returns NF_DROP for every `with`.
		emit_verdict(em, rejects(tg.reject_with) ? layout::ret_reject + tg.reject_with
							 : layout::ret_drop);
		break;
		emit_verdict(em, layout::ret_drop);
		break;
	case Kind::Log: // log_tg() returns XT_CONTINUE
		emit_log(em, f, tg.log);
		go_on();
		break;
	case Kind::Mark: // mark_tg() returns XT_CONTINUE; the skb gets it with the verdict
		em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::mark));
		if (tg.mark_mask)
			em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(~tg.mark_mask)));
		if (tg.mark)
			em.emit(alu32_imm(BPF_XOR, R1, static_cast<int32_t>(tg.mark)));
		em.emit(stx(BPF_W, layout::pkt, R1, layout::pkt_off::mark));
		if (f.plan.logs) // what a later LOG rule prints as MARK=
			em.emit(stx(BPF_W, layout::pkt, R1,
				    static_cast<int16_t>(layout::pkt_off::log_base +
							 offsetof(maps::LogSnap, mark))));
		go_on();
		break;
	case Kind::Return:
		if (f.main())
			emit_underflow(em, f);
		else
			emit_verdict(em, layout::ret_return);
		break;
	case Kind::Jump: {
		emit_call(em, f, tg.to);
		Label back(em); // the callee RETURNed: go on after the jump
		em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_return), next ? *next : back);
		em.emit(exit());
		break;
	}
	case Kind::Goto:
		emit_goto(em, f, tg.to);
		break;
	}
}

// An AddrSet (classify.hpp): the packet's address looked up in the set's map, then for each
// word of the value, the rule it names counted and its target run; a target that goes on
// leads to the next word, and a miss or the words' end to the rules after the set.
// R6 holds the value across the targets' calls (callee-saved; Cond's accumulator is only
// live within a rule's tests). The key lies below the map key's slot, as LOG's record does.
constexpr int16_t addr_set_key = -16;
static_assert(addr_set_key == log_rec_slot);
constexpr Reg addr_set_value = R6;

// The rule named by the word at `at` of the value counted, as emit_count() does, in the
// Counters block the rule's index gives.
void emit_addr_set_count(Emitter &em, const Frame &f, const AddrSet &set, int16_t at)
{
	const auto rule_of_word = [&] {
		em.emit(ldx(BPF_W, R1, addr_set_value, at));
		em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(maps::addr_set_rule_mask)));
		if (set.first)
			em.emit(alu32_imm(BPF_ADD, R1, static_cast<int32_t>(set.first)));
	};
	const uint32_t block = maps::counter_block(set.first);
	if (block == maps::counter_block(set.end - 1)) {
		em.emit(st(BPF_W, R10, f.key_off, static_cast<int32_t>(block)));
	} else {
		rule_of_word();
		em.emit(alu32_imm(BPF_RSH, R1, 11));
		static_assert(maps::counters_per_block == 1u << 11);
		em.emit(stx(BPF_W, R10, R1, f.key_off));
	}
	em.ld_map(R1, MapSlot::Counters);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, f.key_off));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	Label found(em), within(em);
	em.jump(jmp_imm(BPF_JNE, R0, 0), found);
	emit_verdict(em, layout::ret_drop);
	found.bind();
	rule_of_word();
	em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(maps::counters_per_block - 1)));
	em.emit(alu32_imm(BPF_LSH, R1, 4));
	static_assert(sizeof(maps::CounterValue) == 1u << 4);
	// The verifier's bound of the offset: a block as large as the table's.
	const uint32_t bytes =
		maps::counter_block_bytes(static_cast<uint32_t>(f.table.rules.size()));
	if (bytes < maps::counters_per_block * sizeof(maps::CounterValue)) {
		em.jump(jmp_imm(BPF_JLE, R1,
				static_cast<int32_t>(bytes - sizeof(maps::CounterValue))),
			within);
		emit_verdict(em, layout::ret_drop);
		within.bind();
	}
	em.emit(alu64_reg(BPF_ADD, R0, R1));
	emit_add(em, R0, 0, false);
}

// The target of class [lo, hi) that R1 holds, by halves.
void emit_addr_set_targets(Emitter &em, const Frame &f, const AddrSet &set, uint32_t lo,
			   uint32_t hi, Label &next)
{
	if (hi - lo == 1) {
		emit_target(em, f, set.classes[lo], &next);
		return;
	}
	const uint32_t mid = lo + (hi - lo) / 2;
	Label upper(em);
	em.jump(jmp32_imm(BPF_JGE, R1, static_cast<int32_t>(mid)), upper);
	emit_addr_set_targets(em, f, set, lo, mid, next);
	upper.bind();
	emit_addr_set_targets(em, f, set, mid, hi, next);
}

void emit_addr_set_walk(Emitter &em, const Frame &f, const AddrSet &set, Label &after);

// A tuple set's key (classify.hpp's TupleKey), on the stack below the address sets' key:
// the words the rules' fields make, from the parsed packet (probe: the protocol's word with
// tuple_probe, and no ports). The main frame's FIB lookup, which lies there, is long done.
constexpr int16_t tuple_key =
	static_cast<int16_t>(addr_set_key - 4 * static_cast<int>(tuple_max_words));
static_assert(tuple_key >= layout::main_fib);

void emit_tuple_key(Emitter &em, const TupleKey &k, bool probe)
{
	namespace off = layout::pkt_off;
	int16_t at = tuple_key;
	const auto store = [&] {
		em.emit(stx(BPF_W, R10, R1, at));
		at = static_cast<int16_t>(at + 4);
	};
	if (k.proto) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
		if (probe)
			em.emit(alu32_imm(BPF_OR, R1, static_cast<int32_t>(tuple_probe)));
	} else {
		em.emit(mov64(R1, probe ? static_cast<int32_t>(tuple_probe) : 0));
	}
	store();
	for (auto [len, field] :
	     {std::pair{k.src_len, off::saddr}, std::pair{k.dst_len, off::daddr}}) {
		if (len < 0)
			continue;
		em.emit(ldx(BPF_W, R1, layout::pkt, field));
		if (len < 32)
			em.emit(alu32_imm(
				BPF_AND, R1,
				static_cast<int32_t>(len ? htonl(~0u << (32 - len)) : 0)));
		store();
	}
	if (k.ports()) {
		if (probe) {
			em.emit(st(BPF_W, R10, at, 0));
			at = static_cast<int16_t>(at + 4);
		} else {
			if (k.sport) {
				em.emit(ldx(BPF_W, R1, layout::pkt, off::sport));
				em.emit(alu32_imm(BPF_LSH, R1, 16));
				if (k.dport) {
					em.emit(ldx(BPF_W, R2, layout::pkt, off::dport));
					em.emit(alu32_reg(BPF_OR, R1, R2));
				}
			} else {
				em.emit(ldx(BPF_W, R1, layout::pkt, off::dport));
			}
			store();
		}
	}
	for (auto [tested, field] :
	     {std::pair{k.in, off::ifname}, std::pair{k.out, off::out_ifname}}) {
		if (!tested)
			continue;
		for (int16_t b = 0; b < 16; b += 4) {
			em.emit(ldx(BPF_W, R1, layout::pkt, static_cast<int16_t>(field + b)));
			store();
		}
	}
}

// Where tcp_mt() and udp_mt() cannot read the ports, the packet is not looked up by them:
// a later fragment (where the run sees them) matches none of the rules, except that TCP
// at offset 1 hotdrops, as a transport header cut short does (20 bytes for TCP, 8 for
// UDP): then the probe says whether some rule of the set has the packet's protocol and
// addresses, the first such rule would hotdrop (every rule before it failed already).
void emit_tuple_guards(Emitter &em, const Frame &f, const AddrSet &set, Label &probe, Label &after)
{
	namespace off = layout::pkt_off;
	if (f.fragments) {
		Label whole(em);
		em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
		em.emit(alu32_imm(BPF_AND, R1, 0x1fff));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), whole);
		if (set.tcp) {
			em.jump(jmp32_imm(BPF_JNE, R1, 1), after);
			em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
			em.jump(jmp32_imm(BPF_JEQ, R1, IPPROTO_TCP), probe);
		}
		em.jump(ja(), after);
		whole.bind();
	}
	em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::l4len));
	for (auto [on, proto, need] :
	     {std::tuple{set.tcp, IPPROTO_TCP, 20}, std::tuple{set.udp, IPPROTO_UDP, 8}}) {
		if (!on)
			continue;
		Label other(em);
		em.jump(jmp32_imm(BPF_JNE, R1, proto), other);
		em.jump(jmp32_imm(BPF_JLT, R2, need), probe);
		other.bind();
	}
}

void emit_addr_set(Emitter &em, const Frame &f, const AddrSet &set, uint32_t index)
{
	Label after(em), probe(em);
	if (set.tuple) {
		if (set.key.ports())
			emit_tuple_guards(em, f, set, probe, after);
		emit_tuple_key(em, set.key, false);
		em.ld_map(R1, MapSlot::AddrSet, index);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, tuple_key));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		emit_addr_set_walk(em, f, set, after);
		if (set.key.ports()) {
			em.jump(ja(), after);
			probe.bind();
			emit_tuple_key(em, set.key, true);
			em.ld_map(R1, MapSlot::AddrSet, index);
			em.emit(mov64(R2, R10));
			em.emit(alu64_imm(BPF_ADD, R2, tuple_key));
			em.emit(call_helper(BPF_FUNC_map_lookup_elem));
			em.jump(jmp_imm(BPF_JEQ, R0, 0), after);
			emit_verdict(em, layout::ret_drop); // hotdrop: nothing counted
		}
		after.bind();
		return;
	}
	em.emit(ldx(BPF_W, R1, layout::pkt,
		    set.dst ? layout::pkt_off::daddr : layout::pkt_off::saddr));
	if (set.data.lpm) {
		em.emit(st(BPF_W, R10, addr_set_key, 32)); // maps::LocalAddrKey
		em.emit(stx(BPF_W, R10, R1, addr_set_key + 4));
	} else {
		if (set.hash_len < 32)
			em.emit(alu32_imm(
				BPF_AND, R1,
				static_cast<int32_t>(
					set.hash_len ? htonl(~0u << (32 - set.hash_len)) : 0)));
		em.emit(stx(BPF_W, R10, R1, addr_set_key));
	}
	em.ld_map(R1, MapSlot::AddrSet, index);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, addr_set_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	emit_addr_set_walk(em, f, set, after);
	after.bind();
}

// R0: the value the lookup found, or null (to `after`): each of its words' rules counted and
// its target run, as far as the walk goes.
void emit_addr_set_walk(Emitter &em, const Frame &f, const AddrSet &set, Label &after)
{
	em.jump(jmp_imm(BPF_JEQ, R0, 0), after);
	em.emit(mov64(addr_set_value, R0));
	for (uint32_t k = 0; k < set.data.slots; k++) {
		const auto at = static_cast<int16_t>(4 * k);
		if (k > 0) {
			em.emit(ldx(BPF_W, R1, addr_set_value, at));
			em.jump(jmp32_imm(BPF_JEQ, R1, static_cast<int32_t>(maps::addr_set_none)),
				after);
		}
		emit_addr_set_count(em, f, set, at);
		em.emit(ldx(BPF_W, R1, addr_set_value, at));
		em.emit(alu32_imm(BPF_RSH, R1, maps::addr_set_rule_bits));
		Label next(em);
		emit_addr_set_targets(em, f, set, 0, static_cast<uint32_t>(set.classes.size()),
				      next);
		next.bind();
	}
}

void emit_match(Cond &c, const ir::Match &m, const Plan &plan, const ir::Table &table)
{
	std::visit(
		[&](const auto &x) {
			using T = std::decay_t<decltype(x)>;
			if constexpr (std::is_same_v<T, ir::TcpMatch>)
				emit_tcp(c, x);
			else if constexpr (std::is_same_v<T, ir::UdpMatch>)
				emit_udp(c, x);
			else if constexpr (std::is_same_v<T, ir::IcmpMatch>)
				emit_icmp(c, x);
			else if constexpr (std::is_same_v<T, ir::MultiportMatch>)
				emit_multiport(c, x);
			else if constexpr (std::is_same_v<T, ir::IprangeMatch>)
				emit_iprange(c, x);
			else if constexpr (std::is_same_v<T, ir::AddrtypeMatch>)
				emit_addrtype(c, x);
			else if constexpr (std::is_same_v<T, ir::LimitMatch>)
				emit_limit(c, x, plan.hz);
			else if constexpr (std::is_same_v<T, ir::MarkMatch>)
				emit_mark(c, x);
			else if constexpr (std::is_same_v<T, ir::ConnmarkMatch>)
				emit_connmark(c, x);
			else if constexpr (std::is_same_v<T, ir::LengthMatch>)
				emit_length(c, x);
			else if constexpr (std::is_same_v<T, ir::TtlMatch>)
				emit_ttl(c, x);
			else if constexpr (std::is_same_v<T, ir::TosMatch>)
				emit_tos(c, x);
			else if constexpr (std::is_same_v<T, ir::EcnMatch>)
				emit_ecn(c, x);
			else if constexpr (std::is_same_v<T, ir::PkttypeMatch>)
				emit_pkttype(c, x);
			else if constexpr (std::is_same_v<T, ir::MacMatch>)
				emit_mac(c, x);
			else if constexpr (std::is_same_v<T, ir::SpiMatch>)
				emit_spi(c, x);
			else if constexpr (std::is_same_v<T, ir::HashlimitMatch>)
				emit_hashlimit(c, x, table.hashlimits.at(x.table),
					       plan.hashlimit.at(x.table), plan.hz);
			else if constexpr (std::is_same_v<T, ir::RecentMatch>)
				emit_recent(c, x, plan);
			else if constexpr (std::is_same_v<T, ir::U32Match>)
				emit_u32(c, x);
			else if constexpr (std::is_same_v<T, ir::OwnerMatch>)
				emit_owner_match(c, x, plan);
			else if constexpr (std::is_same_v<T, ir::ConnlimitMatch>)
				emit_connlimit(c, x);
			else
				emit_conntrack(c, x);
		},
		m);
}

// A matched rule's count and target, out of line: a packet that fails a rule's tests
// goes on to the next rule's tests in the next instructions, so a long chain of rules
// that do not match runs through dense code (the instruction cache is what large tables
// wait on). Flushed every so often, so that jumps stay within the 16-bit offsets, and
// where the Counters block changes (the code counts in the block layout::counters
// holds).
class ColdCode
{
public:
	explicit ColdCode(Emitter &em) : em_(em), chunk_start_(em.pos()) {}

	// Rule i matched: out of line from here. Returns `next`, kept until the flush.
	Label &add(uint32_t rule, std::unique_ptr<Label> next)
	{
		auto entry = std::make_unique<Label>(em_);
		em_.jump(insn::ja(), *entry);
		pending_.push_back({rule, std::move(entry), std::move(next)});
		return *pending_.back().next;
	}

	bool due() const
	{
		// Every jump in a chunk spans at most the chunk: well within 32767.
		return em_.pos() - chunk_start_ + 16 * pending_.size() > 16000;
	}

	void flush(const Frame &f)
	{
		if (pending_.empty())
			return;
		Label resume(em_);
		em_.jump(insn::ja(), resume);
		for (Pending &p : pending_) {
			p.entry->bind();
			emit_count(em_, f, p.rule);
			emit_target(em_, f, p.rule, p.next.get());
		}
		pending_.clear();
		resume.bind();
		chunk_start_ = em_.pos();
	}

private:
	struct Pending {
		uint32_t rule;
		std::unique_ptr<Label> entry, next;
	};
	Emitter &em_;
	size_t chunk_start_;
	std::vector<Pending> pending_;
};

// Rule i's tests, count and target; the packet goes on to the code after them when the
// rule does not match or its target goes on.
void emit_rule(Emitter &em, Frame &f, uint32_t i, ColdCode &cold)
{
	const ir::Rule &r = f.table.rules[i];
	const Fold ip = fold_ip(r.ip, f.plan.hookset);
	if (ip == Fold::Never)
		return;
	if (maps::counter_block(i) != f.block || cold.due())
		cold.flush(f);
	// Every path to rule i passes here: runs only go forward.
	emit_use_block(em, f, i);
	auto next = std::make_unique<Label>(em);
	Cond c(em, f.plan.accumulate ? Cond::Mode::Accumulate : Cond::Mode::Branch, *next,
	       f.plan.first_branch, f.fragments);
	if (ip == Fold::Test)
		emit_ip(c, r.ip, f.plan.hookset);
	for (const ir::Match &m : r.matches)
		emit_match(c, m, f.plan, f.table);
	c.finish();
	if (next->aimed_at() && em.live()) {
		// Some packets fail the tests: the matched path goes out of line.
		cold.add(i, std::move(next)).bind();
	} else {
		emit_count(em, f, i);
		emit_target(em, f, i, nullptr);
		next.reset(); // binds here
	}
}

// Protocol lanes. A packet's protocol decides which rules can match it at all: a rule of
// `-p tcp` never matches UDP, one of `! -p udp` never matches UDP either. A block of plain
// rules is emitted once per lane (other protocols, TCP, UDP, ICMP), each copy with only
// the rules of the block that packets of the lane can match, in rule order, and one
// dispatch on the packet's protocol before them; the copies meet again after the block.
// A packet runs what the rules one by one would run, less the rules it cannot match: the
// same first match, the same counters, targets that go on lead to the next rule of the
// lane. The Counters block is the same for the whole block, so every copy counts with
// the block it was entered with.
constexpr uint32_t lane_max_block = 32; // rules: each copy's jumps stay short
constexpr std::array<uint8_t, 4> lane_proto = {0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};

// Can a packet of lane `lane` (lane_proto; 0: none of the others) match rule r?
bool in_lane(const ir::Rule &r, size_t lane)
{
	const uint16_t p = r.ip.proto;
	if (p == 0)
		return true; // any protocol, even inverted
	const bool named =
		std::find(lane_proto.begin() + 1, lane_proto.end(), p) != lane_proto.end();
	if (r.ip.invflags & IPT_INV_PROTO)
		return !named || lane_proto[lane] != p; // `! -p 50` leaves every lane
	return named ? lane_proto[lane] == p : lane == 0;
}

// A rule that may be in a block: within one run, with code that stays small, so that the
// dispatch's jumps over four copies stay within a jump's 32767 instructions. u32 unrolls
// as many tests as the user wrote; recent, hashlimit and owner are long.
bool lane_rule(const Frame &f, uint32_t i)
{
	const ir::Rule &r = f.table.rules[i];
	if (ends_run(f.table, i, f.plan.hookset) || f.plan.addr_set_at.count(i))
		return false;
	return std::none_of(r.matches.begin(), r.matches.end(), [](const ir::Match &m) {
		return std::holds_alternative<ir::U32Match>(m) ||
		       std::holds_alternative<ir::RecentMatch>(m) ||
		       std::holds_alternative<ir::HashlimitMatch>(m) ||
		       std::holds_alternative<ir::OwnerMatch>(m);
	});
}

// The end of the block that starts at rule i, or i when no block starts there: too short,
// or every rule in every lane (copies for nothing).
uint32_t lane_block_end(const Frame &f, uint32_t i)
{
	const auto &rules = f.table.rules;
	uint32_t j = i;
	bool splits = false;
	for (; j < rules.size() && j - i < lane_max_block; j++) {
		if (j != i && (j == f.stop || f.plan.subprog_of.count(j)))
			break;
		if (maps::counter_block(j) != maps::counter_block(i) || !lane_rule(f, j))
			break;
		if (fold_ip(rules[j].ip, f.plan.hookset) == Fold::Never)
			continue;
		for (size_t lane = 0; lane < lane_proto.size(); lane++)
			splits |= !in_lane(rules[j], lane);
	}
	return splits && j - i >= f.plan.lane_min_block ? j : i;
}

void emit_lanes(Emitter &em, Frame &f, uint32_t first, uint32_t end, ColdCode &cold)
{
	cold.flush(f);
	emit_use_block(em, f, first);
	const uint32_t block = f.block;
	std::array<Label, lane_proto.size()> entry{Label(em), Label(em), Label(em), Label(em)};
	Label after(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::proto));
	for (size_t lane = 1; lane < lane_proto.size(); lane++)
		em.jump(jmp32_imm(BPF_JEQ, R1, lane_proto[lane]), entry[lane]);
	for (size_t lane = 0; lane < lane_proto.size(); lane++) {
		entry[lane].bind();
		f.block = block;
		for (uint32_t i = first; i < end; i++)
			if (in_lane(f.table.rules[i], lane))
				emit_rule(em, f, i, cold);
		em.jump(ja(), after);
		cold.flush(f);
	}
	after.bind();
	f.block = block;
}

// The rules of one run, until it ends (a goto into another run, or the end of its chain).
void emit_rules(Emitter &em, Frame &f, uint32_t start, ColdCode &cold)
{
	const auto &rules = f.table.rules;
	for (uint32_t i = start;; i++) {
		if (i != start && i == f.stop) {
			emit_verdict(em, layout::ret_next_chunk);
			return;
		}
		if (i != start && f.plan.subprog_of.count(i)) {
			emit_goto(em, f, i);
			return;
		}
		if (i >= rules.size()) {
			// Past the last rule; a valid table ends with an ERROR rule first.
			emit_verdict(em, layout::ret_drop);
			return;
		}
		if (auto it = f.plan.addr_set_at.find(i); it != f.plan.addr_set_at.end()) {
			// Its code is long; pending jumps to the cold code must stay in range.
			cold.flush(f);
			const AddrSet &set = f.plan.addr_sets[it->second];
			emit_addr_set(em, f, set, static_cast<uint32_t>(it->second));
			i = set.end - 1;
			continue;
		}
		if (fold_ip(rules[i].ip, f.plan.hookset) == Fold::Never)
			continue;
		if (f.plan.lane_min_block) {
			if (const uint32_t end = lane_block_end(f, i); end != i) {
				emit_lanes(em, f, i, end, cold);
				i = end - 1;
				continue;
			}
		}
		emit_rule(em, f, i, cold);
		if (ends_run(f.table, i, f.plan.hookset))
			return;
	}
}

void emit_run(Emitter &em, Frame &f, uint32_t start)
{
	f.fragments = f.plan.fragment_runs.count(start) != 0;
	ColdCode cold(em);
	emit_rules(em, f, start, cold);
	cold.flush(f);
}

} // namespace

void emit_main_run(Emitter &em, const ir::Table &table, const Plan &plan, const HookRun &run)
{
	Frame f{table, plan, &run, layout::main_key};
	emit_run(em, f, run.entry);
}

void emit_main_chunks(Emitter &em, const ir::Table &table, const Plan &plan, const HookRun &run)
{
	Frame f{table, plan, &run, layout::main_key};
	Label underflow(em);
	for (size_t k = 0; k < run.chunks.size(); k++) {
		em.emit(mov64(R1, layout::pkt));
		em.call(plan.chunk_id(run.first_chunk + k));
		Label next(em);
		if (k + 1 < run.chunks.size())
			em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_next_chunk), next);
		em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_return), underflow);
		em.emit(exit());
	}
	underflow.bind();
	emit_underflow(em, f);
}

void emit_chunk(Emitter &em, const ir::Table &table, const Plan &plan, const HookRun &run, size_t k)
{
	em.begin_subprog(plan.chunk_id(run.first_chunk + k), true);
	// A global function's pointer argument may be null as far as the verifier knows.
	Label have(em);
	em.jump(jmp_imm(BPF_JNE, R1, 0), have);
	em.emit(mov64(R0, layout::ret_drop));
	em.emit(exit());
	have.bind();
	em.emit(mov64(layout::pkt, R1));
	em.emit(ldx(BPF_W, layout::len, layout::pkt, layout::pkt_off::tot_len));
	Frame f{table, plan, nullptr, layout::sub_key};
	if (k + 1 < run.chunks.size())
		f.stop = run.chunks[k + 1];
	emit_run(em, f, run.chunks[k]);
}

void emit_hook_fn(Emitter &em, const ir::Table &table, const Plan &plan, size_t k)
{
	em.begin_subprog(plan.hook_fn_id(k));
	em.emit(mov64(layout::pkt, R1));
	em.emit(ldx(BPF_W, layout::len, layout::pkt, layout::pkt_off::tot_len));
	const HookRun &run = plan.hooks[k];
	if (run.chunks.empty()) {
		Frame f{table, plan, &run, layout::sub_key};
		emit_run(em, f, run.entry);
	} else {
		emit_main_chunks(em, table, plan, run);
	}
}

void emit_subprog(Emitter &em, const ir::Table &table, const Plan &plan, SubprogId id)
{
	em.begin_subprog(id);
	em.emit(mov64(layout::pkt, R1));
	em.emit(ldx(BPF_W, layout::len, layout::pkt, layout::pkt_off::tot_len));
	Frame f{table, plan, nullptr, layout::sub_key};
	emit_run(em, f, plan.subprogs[id]);
}

} // namespace bpfilter::codegen
