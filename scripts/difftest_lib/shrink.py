# Reduce a failing generated case to a small one that still shows a difference of the same kind.
#
# Greedy passes (packets, rules, chains, matches, inversions, packet fields), each change
# kept only when a run still fails with a difference of a kind the original had. Bounded
# by a number of runs.
from .compare import run_case
from .net import HarnessError

PACKET_FIELDS = ("len", "ttl", "tos", "tcpopt", "doff", "trunc", "frag", "mf", "split", "reverse", "flags", "sport", "type", "code")
POLICIES = ("policy", "fwd_policy", "out_policy")


class Shrinker:
	def __init__(self, bed, budget=300, log=None):
		self.bed = bed
		self.budget = budget
		self.runs = 0
		self.log = log or (lambda s: None)

	def _fails(self, case, kinds):
		if self.runs >= self.budget:
			return False
		self.runs += 1
		try:
			res = run_case(self.bed, case.ruleset(), case.packets, kind=case.bed)
		except HarnessError:
			return False  # the change made a ruleset netfilter refuses: not a reproducer
		return res.failed > 0 and bool(res.signature() & kinds)

	def shrink(self, case, res):
		kinds = res.signature()
		best = case.copy()
		# Packets: first keep only those that differ, if the difference lives there.
		bad = [int(d.split("#", 1)[1].split(" ", 1)[0]) - 1 for d in res.diffs if d.startswith("packet:")]
		if bad:
			trial = best.copy()
			trial.packets = [best.packets[i] for i in sorted(set(bad))][:8]
			if self._fails(trial, kinds):
				best = trial
		changed = True
		while changed and self.runs < self.budget:
			changed = False
			for step in (self._drop_counters, self._drop_packets, self._drop_chains, self._drop_rules, self._drop_groups,
				     self._drop_inversions, self._simplify_targets, self._policy, self._simplify_packets):
				new = step(best, kinds)
				if new is not None:
					best = new
					changed = True
		return best

	def _try_each(self, best, kinds, variants):
		"""The first variant that still fails, else None; variants are made lazily."""
		for make in variants:
			trial = make(best)
			if trial is not None and self._fails(trial, kinds):
				return trial
		return None

	def _drop_packets(self, best, kinds):
		changed = None
		i = len(best.packets) - 1
		while i >= 0 and len(best.packets) > 1 and self.runs < self.budget:
			trial = best.copy()
			del trial.packets[i]
			if self._fails(trial, kinds):
				best = changed = trial
			i -= 1
		return changed

	def _drop_rules(self, best, kinds):
		changed = None
		i = len(best.rules) - 1
		while i >= 0 and self.runs < self.budget:
			trial = best.copy()
			del trial.rules[i]
			if self._fails(trial, kinds):
				best = changed = trial
			i -= 1
		return changed

	def _drop_chains(self, best, kinds):
		changed = None
		for chain in list(best.chains):
			trial = best.copy()
			trial.chains.remove(chain)
			trial.rules = [r for r in trial.rules if r.chain != chain and r.target[1:] != (chain,)]
			if self._fails(trial, kinds):
				best = changed = trial
		return changed

	def _drop_groups(self, best, kinds):
		changed = None
		for ri in range(len(best.rules)):
			gi = len(best.rules[ri].groups) - 1
			while gi >= 0 and self.runs < self.budget:
				trial = best.copy()
				groups = list(trial.rules[ri].groups)
				if groups[gi].kind == "proto":
					# The ports, flags and types of a protocol go with it.
					groups = [g for g in groups if g.kind in ("in", "out", "src", "dst", "frag",
										  "srcrange", "dstrange", "comment")]
				else:
					del groups[gi]
				trial.rules[ri].groups = groups
				if self._fails(trial, kinds):
					best = changed = trial
				gi = min(gi - 1, len(best.rules[ri].groups) - 1)
		return changed

	def _drop_inversions(self, best, kinds):
		changed = None
		for ri in range(len(best.rules)):
			for gi, g in enumerate(best.rules[ri].groups):
				if not g.inv or self.runs >= self.budget:
					continue
				trial = best.copy()
				trial.rules[ri].groups = list(trial.rules[ri].groups)
				trial.rules[ri].groups[gi] = g.copy(inv=False)
				if self._fails(trial, kinds):
					best = changed = trial
		return changed

	def _simplify_targets(self, best, kinds):
		changed = None
		for ri, rule in enumerate(best.rules):
			if rule.target[:1] != ("goto",) or self.runs >= self.budget:
				continue
			trial = best.copy()
			trial.rules[ri].target = ("jump", rule.target[1])
			if self._fails(trial, kinds):
				best = changed = trial
		return changed

	def _drop_counters(self, best, kinds):
		if best.policy_counters == (0, 0) and not any(r.counters for r in best.rules):
			return None
		trial = best.copy()
		trial.policy_counters = (0, 0)
		for r in trial.rules:
			r.counters = None
		return trial if self._fails(trial, kinds) else None

	def _policy(self, best, kinds):
		changed = None
		for name in POLICIES:
			if getattr(best, name) == "ACCEPT":
				continue
			trial = best.copy()
			setattr(trial, name, "ACCEPT")
			if self._fails(trial, kinds):
				best = changed = trial
		return changed

	def _simplify_packets(self, best, kinds):
		changed = None
		for pi in range(len(best.packets)):
			for name in PACKET_FIELDS:
				if getattr(best.packets[pi], name) is None or self.runs >= self.budget:
					continue
				trial = best.copy()
				trial.packets[pi] = trial.packets[pi].copy(**{name: None})
				if self._fails(trial, kinds):
					best = changed = trial
		return changed
