// Planning a table's program for one flavor, and check(): what the programs can run with its
// meaning kept.
#include "codegen/plan.hpp"

#include <linux/netfilter/xt_LOG.h>

#include <algorithm>
#include <set>
#include <string>

#include "codegen/codegen.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "codegen/reject.hpp"
#include "ir/hashlimit.hpp"

namespace bpfilter::codegen
{

namespace
{

using Kind = ir::Target::Kind;

const char *hook_name(unsigned h)
{
	static const char *const names[ir::num_hooks] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT",
							 "POSTROUTING"};
	return h < ir::num_hooks ? names[h] : "?";
}

std::string at(const ir::Table &t, uint32_t i)
{
	return "rule " + std::to_string(i) + " (offset " + std::to_string(t.rules[i].offset) + ")";
}

// What ip_tables calls unconditional(): an all-zero ipt_ip and no matches.
bool unconditional(const ir::Rule &r)
{
	return r.ip == ir::IpHeaderMatch{} && r.matches.empty();
}

bool is_policy(const ir::Rule &r, bool accept_only)
{
	if (!unconditional(r))
		return false;
	return r.target.kind == Kind::Accept || (!accept_only && r.target.kind == Kind::Drop);
}

// xt_check_match(): a protocol match needs its protocol, not inverted.
Status check_match_proto(const ir::Table &t, uint32_t i)
{
	const ir::IpHeaderMatch &ip = t.rules[i].ip;
	const bool inv = ip.invflags & 0x40; // IPT_INV_PROTO
	for (const ir::Match &m : t.rules[i].matches) {
		const char *name = nullptr;
		bool ok = true;
		if (std::holds_alternative<ir::TcpMatch>(m)) {
			name = "tcp";
			ok = ip.proto == 6 && !inv;
		} else if (std::holds_alternative<ir::UdpMatch>(m)) {
			name = "udp";
			ok = ip.proto == 17 && !inv;
		} else if (std::holds_alternative<ir::IcmpMatch>(m)) {
			name = "icmp";
			ok = ip.proto == 1 && !inv;
		} else if (auto *spi = std::get_if<ir::SpiMatch>(&m)) {
			name = spi->ah ? "ah" : "esp";
			ok = ip.proto == (spi->ah ? 51 : 50) && !inv;
		} else if (std::holds_alternative<ir::MultiportMatch>(m)) {
			name = "multiport";
			ok = (ip.proto == 6 || ip.proto == 17 || ip.proto == 136 ||
			      ip.proto == 132 || ip.proto == 33) &&
			     !inv;
		}
		if (!ok)
			return make_error(EINVAL, std::string("codegen: ") + at(t, i) + ": -m " +
							  name +
							  " needs its protocol (-p, not inverted)");
	}
	return {};
}

// Targets of the runs reachable from `entry`, walking each run until its end.
std::set<uint32_t> reachable_targets(const ir::Table &t, uint32_t entry, HookSet hooks)
{
	std::set<uint32_t> targets, walked;
	std::vector<uint32_t> todo{entry};
	while (!todo.empty()) {
		const uint32_t start = todo.back();
		todo.pop_back();
		if (!walked.insert(start).second)
			continue;
		for (uint32_t i = start; i < t.rules.size(); i++) {
			if (fold_ip(t.rules[i].ip, hooks) != Fold::Never && is_call(t, i) &&
			    targets.insert(t.rules[i].target.to).second)
				todo.push_back(t.rules[i].target.to);
			if (ends_run(t, i, hooks))
				break;
		}
	}
	return targets;
}

// About how many jumps to the next rule a rule has in Cond::Mode::Branch.
uint64_t tests_of(const ir::Rule &r)
{
	uint64_t n = 1; // the ipt_ip part, give or take
	for (const ir::Match &m : r.matches) {
		if (auto *mp = std::get_if<ir::MultiportMatch>(&m))
			n += 2 * mp->ports.size();
		else
			n += 3;
	}
	return n;
}

} // namespace

bool always_matches(const ir::Rule &rule, HookSet hooks)
{
	return rule.matches.empty() && fold_ip(rule.ip, hooks) == Fold::Always;
}

HookSet hooks_of(Flavor flavor)
{
	const auto in_fwd =
		static_cast<HookSet>(hook_bit(ir::Hook::LocalIn) | hook_bit(ir::Hook::Forward));
	switch (flavor) {
	case Flavor::Xdp:
		return in_fwd;
	case Flavor::TcIngress:
		// OUTPUT too: a looped-back copy exists only if OUTPUT let the original go.
		return static_cast<HookSet>(in_fwd | hook_bit(ir::Hook::LocalOut));
	case Flavor::TcEgress:
		return hook_bit(ir::Hook::LocalOut);
	}
	return 0;
}

namespace
{

// What the code generator cannot emit yet: refused with the reason, so that the table in
// force stays.
Status check_emittable(const ir::Table &t, uint32_t i)
{
	const ir::Rule &r = t.rules[i];
	for (const ir::Match &m : r.matches) {
		if (auto *ct = std::get_if<ir::ConntrackMatch>(&m);
		    ct && (ct->match_flags & (1 << 7))) // XT_CONNTRACK_EXPIRES
			return make_error(EOPNOTSUPP, "codegen: " + at(t, i) +
							      ": -m conntrack --ctexpire is not "
							      "supported by bpfilter");
		if (auto *cl = std::get_if<ir::ConnlimitMatch>(&m);
		    cl && !maps::connlimit_countable(cl->limit))
			return make_error(
				EOPNOTSUPP,
				"codegen: " + at(t, i) + ": -m connlimit with a limit of " +
					std::to_string(cl->limit) +
					" is not supported by bpfilter: a key's list holds at "
					"most " +
					std::to_string(maps::connlimit_conns) +
					" connections, so only limits below that (or of 2^31 - 1 "
					"and more, which no count passes) are counted exactly");
	}
	if (t.connlimit_slots > maps::connlimit_max_slots)
		return make_error(EOPNOTSUPP,
				  "codegen: the table has " + std::to_string(t.connlimit_slots) +
					  " -m connlimit matches, bpfilter counts at most " +
					  std::to_string(maps::connlimit_max_slots));
	return {};
}

// FORWARD's ICMP errors come from the address the route back to the sender chooses
// (icmp_send() with saddr 0: fib_result_prefsrc()), which bpf_fib_lookup() gives; with
// net.ipv4.icmp_errors_use_inbound_ifaddr they come from inet_select_addr() on the input
// device, which the data plane does not pick.
Status check_forward_rejects(const ir::Table &t, uint32_t entry, HookSet hooks,
			     const ReplySysctls &sysctls)
{
	if (!sysctls.icmp_errors_use_inbound_ifaddr)
		return {};
	std::set<uint32_t> starts = reachable_targets(t, entry, hooks);
	starts.insert(entry);
	for (uint32_t start : starts)
		for (uint32_t i = start; i < t.rules.size(); i++) {
			const ir::Target &tg = t.rules[i].target;
			if (fold_ip(t.rules[i].ip, hooks) != Fold::Never &&
			    tg.kind == Kind::Reject && rejects_icmp(tg.reject_with))
				return make_error(
					EOPNOTSUPP,
					"codegen: " + at(t, i) +
						": -j REJECT with an ICMP error in FORWARD is not "
						"supported by bpfilter with "
						"net.ipv4.icmp_errors_use_inbound_ifaddr on (the "
						"error's source is then an address of the input "
						"device, which the data plane does not choose); "
						"--reject-with tcp-reset is");
			if (ends_run(t, i, hooks))
				break;
		}
	return {};
}

} // namespace

bool is_call(const ir::Table &t, uint32_t i)
{
	const ir::Target &tg = t.rules[i].target;
	return (tg.kind == Kind::Jump || tg.kind == Kind::Goto) && tg.to != i + 1;
}

bool ends_run(const ir::Table &t, uint32_t i, HookSet hooks)
{
	if (!always_matches(t.rules[i], hooks))
		return false;
	switch (t.rules[i].target.kind) {
	case Kind::Accept:
	case Kind::Drop:
	case Kind::Error:
	case Kind::Return:
	case Kind::Reject:
		return true;
	case Kind::Goto:
		return is_call(t, i);
	case Kind::Jump:
	case Kind::Continue:
	case Kind::Log:
	case Kind::Mark:
		return false;
	}
	return false;
}

namespace
{

// Cut a hook's main run into chunks of at most `budget` estimated tests (HookRun::chunks),
// never inside an AddrSet.
void cut_into_chunks(const ir::Table &t, const Plan &plan, HookRun &run, uint64_t budget)
{
	uint64_t in_chunk = 0;
	uint32_t set_end = 0;
	run.chunks = {run.entry};
	for (uint32_t i = run.entry; i < t.rules.size(); i++) {
		if (i != run.entry && plan.subprog_of.count(i))
			break;
		uint64_t tests = fold_ip(t.rules[i].ip, plan.hookset) == Fold::Never
					 ? 0
					 : tests_of(t.rules[i]);
		if (auto it = plan.addr_set_at.find(i); it != plan.addr_set_at.end()) {
			set_end = plan.addr_sets[it->second].end;
			tests = addr_set_tests(plan.addr_sets[it->second]);
		} else if (i < set_end) {
			continue;
		}
		if (in_chunk + tests > budget && in_chunk > 0) {
			run.chunks.push_back(i);
			in_chunk = 0;
		}
		in_chunk += tests;
		if (ends_run(t, i, plan.hookset))
			break;
	}
}

// Cut every hook's main run whose tests exceed `budget` (or all of them, `always`); false,
// and no chunks, when there would be more functions than a program may have.
bool cut_runs(const ir::Table &t, Plan &plan, const std::map<uint32_t, uint64_t> &run_tests,
	      uint64_t budget, bool always)
{
	plan.num_chunks = 0;
	for (HookRun &run : plan.hooks) {
		run.chunks.clear();
		if (!always && run_tests.at(run.entry) <= budget)
			continue;
		cut_into_chunks(t, plan, run, budget);
		run.first_chunk = plan.num_chunks;
		plan.num_chunks += run.chunks.size();
	}
	if (plan.subprogs.size() + plan.num_chunks + 1 > max_subprogs) {
		for (HookRun &run : plan.hooks)
			run.chunks.clear();
		plan.num_chunks = 0;
		return false;
	}
	return plan.num_chunks > 0;
}

void clear_chunks(Plan &plan)
{
	for (HookRun &run : plan.hooks)
		run.chunks.clear();
	plan.num_chunks = 0;
}

// The built-in chain of hook h, checked as ip_tables left it.
Result<HookRun> hook_run(const ir::Table &t, ir::Hook hook)
{
	const auto h = static_cast<unsigned>(hook);
	const size_t n = t.rules.size();
	if (!(t.valid_hooks & (1u << h)) || !t.hook_entry[h] || !t.underflow[h] ||
	    *t.hook_entry[h] >= n || *t.underflow[h] >= n || *t.hook_entry[h] > *t.underflow[h])
		return make_error(EINVAL, std::string("codegen: the table has no ") + hook_name(h) +
						  " chain");
	HookRun run;
	run.hook = hook;
	run.entry = *t.hook_entry[h];
	run.underflow = *t.underflow[h];
	if (!is_policy(t.rules[run.underflow], false))
		return make_error(EINVAL, std::string("codegen: ") + hook_name(h) + "'s policy " +
						  at(t, run.underflow) +
						  " is not an unconditional ACCEPT or DROP");
	return run;
}

} // namespace

Result<Plan> make_plan(const ir::Table &t, const Options &options)
{
	const size_t n = t.rules.size();
	Plan plan;
	plan.hookset = hooks_of(options.flavor);
	plan.hz = options.hz;
	plan.recent = options.recent;
	plan.owner = options.owner;
	for (size_t k = plan.recent.size(); k < t.recent_lists.size(); k++)
		plan.recent.push_back({static_cast<uint32_t>(k), t.recent_lists[k].nstamps_mask});
	plan.hashlimit = options.hashlimit;
	for (size_t k = plan.hashlimit.size(); k < t.hashlimits.size(); k++)
		plan.hashlimit.push_back(
			{static_cast<uint32_t>(k),
			 ir::hashlimit::table_max(t.hashlimits[k].cfg, uint64_t{2} << 30)});
	plan.offload = options.offload;
	// The offload flavor judges INPUT alone, every packet the device receives (its
	// device forwards nothing: BpfDataplane::offload_refusal()).
	const bool local_only = options.local_only && !options.offload;
	const ir::Hook main_hook =
		options.flavor == Flavor::TcEgress ? ir::Hook::LocalOut : ir::Hook::LocalIn;
	for (unsigned h = 0; h < ir::num_hooks; h++) {
		const auto hook = static_cast<ir::Hook>(h);
		const bool served = plan.hookset & hook_bit(hook);
		// A table without FORWARD (the ABI's filter table always has it) judges
		// nothing routed.
		if (!(t.valid_hooks & (1u << h)) && hook != main_hook)
			continue;
		auto run = hook_run(t, hook);
		if (!run)
			return run.error();
		// Without local_only a program judges everything by its first chain.
		if (served && (local_only || plan.hooks.empty()))
			plan.hooks.push_back(*run);
	}
	if (!local_only || plan.hooks.size() == 1)
		plan.hookset = hook_bit(plan.hooks.front().hook);

	for (uint32_t i = 0; i < n; i++) {
		BF_TRY(check_match_proto(t, i));
		BF_TRY(check_emittable(t, i));
		for (const ir::Match &m : t.rules[i].matches)
			plan.uses_conntrack |= std::holds_alternative<ir::ConntrackMatch>(m) ||
					       std::holds_alternative<ir::ConnmarkMatch>(m) ||
					       std::holds_alternative<ir::ConnlimitMatch>(m);
		for (const ir::Match &m : t.rules[i].matches) {
			plan.uses_l2 |= std::holds_alternative<ir::PkttypeMatch>(m) ||
					std::holds_alternative<ir::MacMatch>(m);
			if (auto *e = std::get_if<ir::EcnMatch>(&m))
				plan.uses_ecn_tcp |= (e->operation & 0x30) != 0; // ECE, CWR
			plan.uses_u32 |= std::holds_alternative<ir::U32Match>(m);
			plan.uses_owner |= std::holds_alternative<ir::OwnerMatch>(m) &&
					   options.flavor == Flavor::TcEgress;
		}
		const ir::Target &tg = t.rules[i].target;
		// LOG --log-uid at OUTPUT prints the sending socket's credentials where the
		// kernel's layout is known (loader/owner.cpp); without it, no UID= (supported.md).
		plan.uses_owner |= tg.kind == Kind::Log && (tg.log.flags & XT_LOG_UID) != 0 &&
				   options.flavor == Flavor::TcEgress && options.owner.known();
		if ((tg.kind == Kind::Jump || tg.kind == Kind::Goto) && tg.to >= n)
			return make_error(EINVAL, "codegen: " + at(t, i) + " jumps past the table");
	}

	// Offloaded, INPUT reads no connection state (check_offload() refuses what does).
	if (options.offload)
		plan.uses_conntrack = false;
	// Any such rule in the table: conntrack is on in the namespace (xt_conntrack's
	// checkentry takes it), so every hook sees what it defragments.
	if (plan.uses_conntrack)
		plan.hookset |= hook_defrag;
	std::set<uint32_t> targets;
	for (const HookRun &run : plan.hooks) {
		const auto reached = reachable_targets(t, run.entry, plan.hookset);
		targets.insert(reached.begin(), reached.end());
		// FORWARD judges fragments, and OUTPUT a raw socket's own.
		if (!plan.uses_conntrack &&
		    (run.hook == ir::Hook::Forward || run.hook == ir::Hook::LocalOut)) {
			plan.fragment_runs.insert(reached.begin(), reached.end());
			plan.fragment_runs.insert(run.entry);
		}
	}
	for (const HookRun &run : plan.hooks)
		if (run.hook == ir::Hook::Forward)
			BF_TRY(check_forward_rejects(t, run.entry, plan.hookset, options.replies));
	if (targets.size() + 1 > max_subprogs)
		return make_error(EOPNOTSUPP,
				  "codegen: " + std::to_string(targets.size()) +
					  " chains are reached from one hook's program, at most " +
					  std::to_string(max_subprogs - 1) + " fit in one program");
	for (uint32_t s : targets) {
		plan.subprog_of[s] = static_cast<SubprogId>(plan.subprogs.size());
		plan.subprogs.push_back(s);
	}

	// Runs of address rules that one lookup judges (not offloaded: a NIC takes no LPM
	// trie, and its hash maps are not what check_offload() allows).
	if (!options.offload) {
		std::vector<uint32_t> starts;
		for (const HookRun &run : plan.hooks)
			starts.push_back(run.entry);
		starts.insert(starts.end(), plan.subprogs.begin(), plan.subprogs.end());
		std::vector<AddrSet> found;
		for (uint32_t start : starts)
			for (AddrSet &set : find_addr_sets(t, plan.subprog_of, plan.hookset, start,
							   options.classify_min))
				found.push_back(std::move(set));
		// A program uses at most 64 maps (the verifier's MAX_USED_MAPS), 21 of them
		// the other slots (every htable is in the one Hashlimit map, whatever the
		// number of names): the largest 42 sets get the rest but one, the others'
		// rules are tested one by one.
		// Every slot but AddrSet: ConnlimitTmp is the last.
		constexpr size_t other_slots = static_cast<size_t>(MapSlot::ConnlimitTmp);
		static_assert(other_slots == 21);
		const size_t fixed = other_slots + 1;
		const size_t max_addr_sets = fixed < 64 ? 64 - fixed : 0;
		if (found.size() > max_addr_sets) {
			std::stable_sort(found.begin(), found.end(),
					 [](const AddrSet &a, const AddrSet &b) {
						 return a.data.rules > b.data.rules;
					 });
			found.resize(max_addr_sets);
			std::sort(found.begin(), found.end(),
				  [](const AddrSet &a, const AddrSet &b) {
					  return a.first < b.first;
				  });
		}
		for (AddrSet &set : found) {
			plan.addr_set_at[set.first] = plan.addr_sets.size();
			plan.classified_rules += set.data.rules;
			plan.addr_sets.push_back(std::move(set));
		}
	}

	// Calls of each run as it will be emitted (stopping where another run starts), and
	// the deepest chain of them. A cycle is a loop that ip_tables would have refused.
	std::map<uint32_t, std::vector<uint32_t>> calls;
	std::map<uint32_t, uint64_t> run_tests;
	std::set<uint8_t> kinds;
	const auto run_calls = [&](uint32_t start) {
		std::vector<uint32_t> out;
		uint64_t tests = 0;
		uint32_t set_end = 0;
		for (uint32_t i = start; i < n; i++) {
			if (i != start && plan.subprog_of.count(i)) {
				out.push_back(i);
				break;
			}
			const ir::Rule &r = t.rules[i];
			// An AddrSet's rules have one lookup and their targets' code between them.
			if (auto it = plan.addr_set_at.find(i); it != plan.addr_set_at.end()) {
				set_end = plan.addr_sets[it->second].end;
				tests += addr_set_tests(plan.addr_sets[it->second]);
				plan.tested_rules++;
			}
			const bool in_set = i < set_end;
			if (fold_ip(r.ip, plan.hookset) != Fold::Never) {
				for (const ir::Match &m : r.matches)
					if (auto *tcp = std::get_if<ir::TcpMatch>(&m);
					    tcp && tcp->option)
						kinds.insert(tcp->option);
				plan.uses_ifname |= tests_in_iface(r.ip, plan.hookset);
				plan.uses_ofname |= tests_out_iface(r.ip, plan.hookset);
				for (const ir::Match &m : r.matches) // -m recent's TTL (FORWARD)
					plan.uses_ofname |=
						std::holds_alternative<ir::RecentMatch>(m);
				for (const ir::Match &m : r.matches)
					if (auto *a = std::get_if<ir::AddrtypeMatch>(&m)) {
						// --limit-iface-in/-out compare the devices' names.
						plan.uses_ifname |=
							a->dev == ir::AddrtypeMatch::Dev::In;
						plan.uses_ofname |=
							a->dev == ir::AddrtypeMatch::Dev::Out;
					}
				plan.logs |= r.target.kind == Kind::Log;
				plan.sets_mark |= r.target.kind == Kind::Mark;
				if (is_call(t, i))
					out.push_back(r.target.to);
				if (!in_set) {
					tests += tests_of(r);
					plan.tested_rules++;
				}
			}
			if (ends_run(t, i, plan.hookset))
				break;
		}
		run_tests[start] = tests;
		plan.branch_tests += tests;
		return out;
	};
	for (const HookRun &run : plan.hooks)
		calls[run.entry] = run_calls(run.entry);
	uint64_t main_tests = plan.branch_tests;
	for (uint32_t s : plan.subprogs)
		if (!calls.count(s))
			calls[s] = run_calls(s);
	plan.tcp_option_kinds.assign(kinds.begin(), kinds.end());
	const uint64_t user_tests = plan.branch_tests - main_tests;
	switch (options.tests) {
	case Options::Tests::Auto:
		plan.accumulate = plan.branch_tests > max_branch_tests;
		plan.first_branch = plan.accumulate && plan.tested_rules <= max_first_branch_rules;
		// Long built-in chains with little else: cut them into chunks the verifier takes
		// with a jump per test. Every chunk may call every user chain, so each gets what
		// the user chains leave of the budget.
		// (Not offloaded: a chunk is a global function, which takes no stack pointer.)
		if (plan.accumulate && !options.offload && user_tests <= max_branch_tests / 4 &&
		    cut_runs(t, plan, run_tests, max_branch_tests - user_tests, false))
			plan.accumulate = plan.first_branch = false;
		break;
	case Options::Tests::Branch:
		plan.accumulate = false;
		break;
	case Options::Tests::Chunked:
		// Small chunks, so that tests cross many a chunk boundary.
		plan.accumulate = false;
		(void)cut_runs(t, plan, run_tests, std::max<uint64_t>(12, main_tests / 100 + 1),
			       true);
		break;
	case Options::Tests::FirstBranch:
		plan.accumulate = plan.first_branch = true;
		break;
	case Options::Tests::Accumulate:
		plan.accumulate = true;
		break;
	}

	// Frames needed from each run down, by depth-first search with cycle detection.
	std::map<uint32_t, unsigned> depth;
	std::set<uint32_t> on_path;
	std::string loop;
	const auto frames = [&](auto &self, uint32_t run) -> unsigned {
		if (auto it = depth.find(run); it != depth.end())
			return it->second;
		if (!on_path.insert(run).second) {
			loop = at(t, run);
			return 0;
		}
		unsigned deepest = 0;
		for (uint32_t callee : calls[run])
			deepest = std::max(deepest, self(self, callee));
		on_path.erase(run);
		return depth[run] = deepest + 1;
	};
	// A hook's main run is not a call target (a jump back to a built-in chain's first
	// rule would be a loop), so it is its own root.
	plan.frames = 0;
	// With connection tracking the main program confirms our own entries after the
	// verdict, and a REJECT's reply is built there: every hook's run returns to it.
	plan.inline_first = options.flavor == Flavor::Xdp &&
			    (options.offload || (!plan.uses_conntrack && !table_rejects(t)));
	for (size_t k = 0; k < plan.hooks.size(); k++)
		plan.frames = std::max(plan.frames, frames(frames, plan.hooks[k].entry) +
							    (plan.hook_is_fn(k) ? 1u : 0u));
	if (!loop.empty())
		return make_error(ELOOP, "codegen: the chains loop at " + loop);
	if (plan.num_chunks && plan.frames + 1 > max_call_frames) {
		// A chunk is a frame more: the old way, then.
		clear_chunks(plan);
		if (options.tests == Options::Tests::Auto) {
			plan.accumulate = true;
			plan.first_branch = plan.tested_rules <= max_first_branch_rules;
		}
	}
	if (plan.frames > max_call_frames)
		return make_error(
			EOPNOTSUPP,
			"codegen: chains nest " + std::to_string(plan.frames - 1) +
				" calls deep from a built-in chain; BPF allows at most " +
				std::to_string(max_call_frames - 1) +
				" (each jump, goto or fall into another chain is a BPF call)");
	// Protocol lanes copy a block's rules up to four times: not where the copies could
	// take the program past what the verifier processes, so by default only where the
	// table verifies in the plain Branch form, uncut (not offloaded: the NIC's program
	// is kept small).
	const bool plain =
		options.tests != Options::Tests::Auto || (!plan.accumulate && plan.num_chunks == 0);
	if (!options.offload && options.lane_max_rules &&
	    plan.tested_rules <= options.lane_max_rules && plain)
		plan.lane_min_block = std::max<uint32_t>(options.lane_min_block, 2);
	return plan;
}

uint64_t addr_set_tests(const AddrSet &set)
{
	// A tuple set's guards and its probe's lookup.
	return 4 + set.data.slots * set.classes.size() + (set.tuple ? 8 : 0);
}

bool uses_skb_mark(const ir::Rule &r)
{
	return r.target.kind == Kind::Mark ||
	       std::any_of(r.matches.begin(), r.matches.end(), [](const ir::Match &m) {
		       return std::holds_alternative<ir::MarkMatch>(m);
	       });
}

bool needs_skb_mark(const ir::Table &t, bool sets_only)
{
	const HookSet hooks = hooks_of(Flavor::Xdp);
	for (ir::Hook hook : {ir::Hook::LocalIn, ir::Hook::Forward}) {
		const auto h = static_cast<unsigned>(hook);
		if (!(t.valid_hooks & (1u << h)) || !t.hook_entry[h] ||
		    *t.hook_entry[h] >= t.rules.size())
			continue;
		std::set<uint32_t> starts = reachable_targets(t, *t.hook_entry[h], hooks);
		starts.insert(*t.hook_entry[h]);
		for (uint32_t start : starts)
			for (uint32_t i = start; i < t.rules.size(); i++) {
				if (fold_ip(t.rules[i].ip, hooks) != Fold::Never &&
				    (sets_only ? t.rules[i].target.kind == Kind::Mark
					       : uses_skb_mark(t.rules[i])))
					return true;
				if (ends_run(t, i, hooks))
					break;
			}
	}
	return false;
}

Status check(const ir::Table &table)
{
	for (Flavor f : {Flavor::Xdp, Flavor::TcEgress}) {
		if (f == Flavor::TcEgress &&
		    !(table.valid_hooks & hook_bit(ir::Hook::LocalOut))) // hand-made tables
			continue;
		Options o;
		o.flavor = f;
		// Classification never refuses a table (a run that cannot be a set is tested one
		// by one); leaving it out keeps this check from building every set's keys, which
		// the compile does again (at 10k blocklist rules, 10 ms of a replace).
		o.classify_min = 0;
		auto plan = make_plan(table, o);
		if (!plan)
			return plan.error();
	}
	return {};
}

// What a NIC cannot run, of what INPUT reaches: the kernel's functions and maps of the host
// (conntrack's kfuncs, jiffies, LPM tries, the ring buffer, helpers that load bytes or
// build replies), all refused here so that check_offload() names the rule.
Status check_offload(const ir::Table &t)
{
	if (t.rules.size() > max_offload_rules)
		return make_error(EOPNOTSUPP, "offload: the table has " +
						      std::to_string(t.rules.size()) +
						      " rules, more than the " +
						      std::to_string(max_offload_rules) +
						      " an offloaded program counts");
	Options o;
	o.offload = true;
	auto plan = make_plan(t, o);
	if (!plan)
		return plan.error();
	const HookSet hooks = plan->hookset;
	std::set<uint32_t> starts = reachable_targets(t, plan->hooks.front().entry, hooks);
	starts.insert(plan->hooks.front().entry);
	for (uint32_t start : starts)
		for (uint32_t i = start; i < t.rules.size(); i++) {
			const ir::Rule &r = t.rules[i];
			if (fold_ip(r.ip, hooks) == Fold::Never) {
				if (ends_run(t, i, hooks))
					break;
				continue;
			}
			const char *why = nullptr;
			for (const ir::Match &m : r.matches) {
				if (std::holds_alternative<ir::ConntrackMatch>(m) ||
				    std::holds_alternative<ir::ConnlimitMatch>(m))
					why = "-m state/conntrack/connlimit read the host's "
					      "connection table (kernel functions a NIC cannot "
					      "call)";
				else if (std::holds_alternative<ir::LimitMatch>(m))
					why = "-m limit reads the host's jiffies";
				else if (std::holds_alternative<ir::AddrtypeMatch>(m))
					why = "-m addrtype looks routes up in an LPM trie of the "
					      "host (a device takes array and hash maps only)";
				else if (auto *tcp = std::get_if<ir::TcpMatch>(&m);
					 tcp && tcp->option)
					why = "--tcp-option copies the options out with "
					      "bpf_xdp_load_bytes(), a helper of the host";
				else if (std::holds_alternative<ir::HashlimitMatch>(m) ||
					 std::holds_alternative<ir::RecentMatch>(m))
					why = "-m hashlimit and -m recent keep their state in the "
					      "host's maps and read its jiffies";
				else if (std::holds_alternative<ir::MarkMatch>(m) ||
					 std::holds_alternative<ir::ConnmarkMatch>(m))
					why = "-m mark and -m connmark read the skb's or the "
					      "connection's mark, which a NIC never sees";
				else if (std::holds_alternative<ir::U32Match>(m))
					why = "-m u32 copies the datagram out with "
					      "bpf_xdp_load_bytes(), a helper of the host";
				else if (std::holds_alternative<ir::OwnerMatch>(m))
					why = "-m owner reads the sending socket, which INPUT "
					      "never has";
				else if (std::holds_alternative<ir::PkttypeMatch>(m) ||
					 std::holds_alternative<ir::MacMatch>(m))
					why = "-m pkttype and -m mac read the device's address "
					      "from the host's Devices map";
				else if (!std::holds_alternative<ir::TcpMatch>(m) &&
					 !std::holds_alternative<ir::UdpMatch>(m) &&
					 !std::holds_alternative<ir::IcmpMatch>(m) &&
					 !std::holds_alternative<ir::MultiportMatch>(m) &&
					 !std::holds_alternative<ir::IprangeMatch>(m))
					why = "the header matches read fields past the offload "
					      "flavor's packet on the stack "
					      "(layout::offload_pkt_size)";
				if (why)
					break;
			}
			if (!why && r.target.kind == Kind::Mark)
				why = "-j MARK sets the skb's mark, which does not exist on the "
				      "NIC";
			if (!why && r.target.kind == Kind::Log)
				why = "-j LOG writes to the host's ring buffer";
			if (!why && r.target.kind == Kind::Reject)
				why = "-j REJECT builds and routes a reply (the FIB, the host's "
				      "stack)";
			if (why)
				return make_error(EOPNOTSUPP,
						  "offload: " + at(t, i) +
							  " cannot run on the NIC: " + why);
			if (ends_run(t, i, hooks))
				break;
		}
	return {};
}

} // namespace bpfilter::codegen
