// Planning a table's program, and check_xdp(): what an XDP program can run with its meaning kept.
#include "codegen/plan.hpp"

#include <set>
#include <string>

#include "codegen/codegen.hpp"
#include "codegen/matchers.hpp"

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
std::set<uint32_t> reachable_targets(const ir::Table &t, uint32_t entry)
{
	std::set<uint32_t> targets, walked;
	std::vector<uint32_t> todo{entry};
	while (!todo.empty()) {
		const uint32_t start = todo.back();
		todo.pop_back();
		if (!walked.insert(start).second)
			continue;
		for (uint32_t i = start; i < t.rules.size(); i++) {
			if (fold_ip(t.rules[i].ip) != Fold::Never && is_call(t, i) &&
			    targets.insert(t.rules[i].target.to).second)
				todo.push_back(t.rules[i].target.to);
			if (ends_run(t, i))
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

bool always_matches(const ir::Rule &rule)
{
	return rule.matches.empty() && fold_ip(rule.ip) == Fold::Always;
}

bool is_call(const ir::Table &t, uint32_t i)
{
	const ir::Target &tg = t.rules[i].target;
	return (tg.kind == Kind::Jump || tg.kind == Kind::Goto) && tg.to != i + 1;
}

bool ends_run(const ir::Table &t, uint32_t i)
{
	if (!always_matches(t.rules[i]))
		return false;
	switch (t.rules[i].target.kind) {
	case Kind::Accept:
	case Kind::Drop:
	case Kind::Error:
	case Kind::Return:
		return true;
	case Kind::Goto:
		return is_call(t, i);
	case Kind::Jump:
	case Kind::Continue:
		return false;
	}
	return false;
}

// Cut the main run into chunks of at most `budget` estimated tests (Plan::chunks).
// False, and no chunks, when there would be more functions than a program may have.
bool cut_into_chunks(const ir::Table &t, Plan &plan, uint64_t budget)
{
	uint64_t in_chunk = 0;
	plan.chunks = {plan.entry};
	for (uint32_t i = plan.entry; i < t.rules.size(); i++) {
		if (i != plan.entry && plan.subprog_of.count(i))
			break;
		const uint64_t tests =
			fold_ip(t.rules[i].ip) == Fold::Never ? 0 : tests_of(t.rules[i]);
		if (in_chunk + tests > budget && in_chunk > 0) {
			plan.chunks.push_back(i);
			in_chunk = 0;
		}
		in_chunk += tests;
		if (ends_run(t, i))
			break;
	}
	if (plan.subprogs.size() + plan.chunks.size() + 1 > max_subprogs) {
		plan.chunks.clear();
		return false;
	}
	return true;
}

Result<Plan> make_plan(const ir::Table &t, const Options &options)
{
	const unsigned in = static_cast<unsigned>(ir::Hook::LocalIn);
	const size_t n = t.rules.size();

	if (!(t.valid_hooks & (1u << in)) || !t.hook_entry[in] || !t.underflow[in] ||
	    *t.hook_entry[in] >= n || *t.underflow[in] >= n || *t.hook_entry[in] > *t.underflow[in])
		return make_error(EINVAL, "codegen: the table has no INPUT chain");

	for (unsigned h = 0; h < ir::num_hooks; h++) {
		if (h == in || !(t.valid_hooks & (1u << h)))
			continue;
		if (!t.hook_entry[h] || !t.underflow[h] || *t.underflow[h] >= n)
			return make_error(EINVAL, std::string("codegen: ") + hook_name(h) +
							  " has no entry or policy");
		if (*t.hook_entry[h] != *t.underflow[h] ||
		    !is_policy(t.rules[*t.underflow[h]], true))
			return make_error(
				EOPNOTSUPP,
				std::string("codegen: the ") + hook_name(h) +
					" chain must be empty with an ACCEPT policy: only "
					"INPUT is translated (to XDP) so far");
	}

	Plan plan;
	plan.entry = *t.hook_entry[in];
	plan.underflow = *t.underflow[in];
	if (!is_policy(t.rules[plan.underflow], false))
		return make_error(EINVAL, "codegen: INPUT's policy " + at(t, plan.underflow) +
						  " is not an unconditional ACCEPT or DROP");

	for (uint32_t i = 0; i < n; i++) {
		BF_TRY(check_match_proto(t, i));
		const ir::Target &tg = t.rules[i].target;
		if ((tg.kind == Kind::Jump || tg.kind == Kind::Goto) && tg.to >= n)
			return make_error(EINVAL, "codegen: " + at(t, i) + " jumps past the table");
	}

	const std::set<uint32_t> targets = reachable_targets(t, plan.entry);
	if (targets.size() + 1 > max_subprogs)
		return make_error(EOPNOTSUPP, "codegen: " + std::to_string(targets.size()) +
						      " chains are reached from INPUT, at most " +
						      std::to_string(max_subprogs - 1) +
						      " fit in one XDP program");
	for (uint32_t s : targets) {
		plan.subprog_of[s] = static_cast<SubprogId>(plan.subprogs.size());
		plan.subprogs.push_back(s);
	}

	// Calls of each run as it will be emitted (stopping where another run starts), and
	// the deepest chain of them. A cycle is a loop that ip_tables would have refused.
	std::map<uint32_t, std::vector<uint32_t>> calls;
	std::set<uint8_t> kinds;
	const auto run_calls = [&](uint32_t start) {
		std::vector<uint32_t> out;
		for (uint32_t i = start; i < n; i++) {
			if (i != start && plan.subprog_of.count(i)) {
				out.push_back(i);
				break;
			}
			const ir::Rule &r = t.rules[i];
			if (fold_ip(r.ip) != Fold::Never) {
				for (const ir::Match &m : r.matches)
					if (auto *tcp = std::get_if<ir::TcpMatch>(&m);
					    tcp && tcp->option)
						kinds.insert(tcp->option);
				plan.uses_ifname |= fold_ip(r.ip) == Fold::Test &&
						    r.ip.in.mask != std::array<uint8_t, 16>{};
				if (is_call(t, i))
					out.push_back(r.target.to);
				plan.branch_tests += tests_of(r);
				plan.tested_rules++;
			}
			if (ends_run(t, i))
				break;
		}
		return out;
	};
	calls[plan.entry] = run_calls(plan.entry);
	const uint64_t main_tests = plan.branch_tests;
	for (uint32_t s : plan.subprogs)
		calls[s] = run_calls(s);
	plan.tcp_option_kinds.assign(kinds.begin(), kinds.end());
	switch (options.tests) {
	case Options::Tests::Auto:
		plan.accumulate = plan.branch_tests > max_branch_tests;
		plan.first_branch = plan.accumulate && plan.tested_rules <= max_first_branch_rules;
		// A long INPUT chain with little else: cut it into chunks the verifier takes
		// with a jump per test. Every chunk may call every user chain, so each gets
		// what the user chains leave of the budget.
		if (plan.accumulate && plan.branch_tests - main_tests <= max_branch_tests / 4 &&
		    cut_into_chunks(t, plan, max_branch_tests - (plan.branch_tests - main_tests)))
			plan.accumulate = plan.first_branch = false;
		break;
	case Options::Tests::Branch:
		plan.accumulate = false;
		break;
	case Options::Tests::Chunked:
		// Small chunks, so that tests cross many a chunk boundary.
		plan.accumulate = false;
		(void)cut_into_chunks(t, plan, std::max<uint64_t>(12, main_tests / 100 + 1));
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
	// The main program's run is not a call target (a jump back to INPUT's first rule
	// would be a loop), so it is its own root.
	plan.frames = frames(frames, plan.entry);
	if (!loop.empty())
		return make_error(ELOOP, "codegen: the chains loop at " + loop);
	if (!plan.chunks.empty() && plan.frames + 1 > max_call_frames) {
		// A chunk is a frame more: the old way, then.
		plan.chunks.clear();
		if (options.tests == Options::Tests::Auto) {
			plan.accumulate = true;
			plan.first_branch = plan.tested_rules <= max_first_branch_rules;
		}
	}
	if (plan.frames > max_call_frames)
		return make_error(
			EOPNOTSUPP,
			"codegen: chains nest " + std::to_string(plan.frames - 1) +
				" calls deep from INPUT; XDP allows at most " +
				std::to_string(max_call_frames - 1) +
				" (each jump, goto or fall into another chain is a BPF call)");
	return plan;
}

Status check_xdp(const ir::Table &table)
{
	auto plan = make_plan(table);
	if (!plan)
		return plan.error();
	return {};
}

} // namespace bpfilter::codegen
