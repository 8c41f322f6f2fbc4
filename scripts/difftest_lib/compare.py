# One differential case: load a ruleset on both sides, send the packets, compare verdicts, replies, flows, LOG lines, listings and counters.
from . import flows
from .net import HarnessError


# A corpus ruleset's documented difference of bpfilter from netfilter: the whole line the harness
# prints for it, after "DIFF name: " (tests/difftest/README.md, "Known differences").
KNOWN = "# difftest-known: "


def _words(text):
	return " ".join(text.split())


def known_differences(ruleset):
	"""Compared word for word: runs of white space count as one space."""
	return [_words(line[len(KNOWN):]) for line in ruleset.splitlines() if line.startswith(KNOWN)]


class Result:
	"""The cases of one ruleset + packets run: counts and a line per difference."""

	def __init__(self, expected=()):
		self.passed = 0
		self.failed = 0
		self.diffs = []
		self.fatal = False  # the run could not be completed (a side failed to load)
		self.expected = list(expected)  # documented differences still to be seen
		self.known = []  # documented differences seen, word for word

	def ok(self):
		self.passed += 1

	def fail(self, text):
		if _words(text) in self.expected:
			self.expected.remove(_words(text))
			self.known.append(text)
			return
		self.failed += 1
		self.diffs.append(text)

	def unseen_known(self):
		"""A documented difference that did not show is a failure: fixed, or no longer tested."""
		for text in self.expected:
			self.failed += 1
			self.diffs.append(f"known: documented as a difference, not seen: {text}")
		self.expected = []

	def signature(self):
		"""What kind of differences these are, for the shrinker: kinds, not values."""
		return {d.split(":", 1)[0] for d in self.diffs}


def _counts(p, b):
	return f"{p} packets {b} bytes"


def _compare_flows(bed, res, names):
	"""Each flow's transcript (what crossed, where, in order) and the LOG lines."""
	ra, rb = bed.runs
	for name in ra.tuples:
		ta, tb = ra.transcript(name), rb.transcript(name)
		if ta == tb:
			res.ok()
			continue
		for where, (la, lb) in zip(("host", "p0", "p1"), zip(ta, tb)):
			if la != lb:
				at = next((i for i in range(min(len(la), len(lb))) if la[i] != lb[i]), min(len(la), len(lb)))
				res.fail(f"flow: {name} at {where}, datagram {at + 1}: {names[0]} "
					 f"{la[at] if at < len(la) else '(nothing more)'} ({len(la)} in all), {names[1]} "
					 f"{lb[at] if at < len(lb) else '(nothing more)'} ({len(lb)} in all)")
				break
	if bed.logs is not None:
		la, lb = bed.logs
		if la == lb:
			res.ok()
		else:
			at = next((i for i in range(min(len(la), len(lb))) if la[i] != lb[i]), min(len(la), len(lb)))
			show = lambda x: f"<{x[0]}>{x[1]}" if x else "(no more lines)"  # noqa: E731
			res.fail(f"log: line {at + 1} of {len(la)} / {len(lb)}: {names[0]} "
				 f"{show(la[at] if at < len(la) else None)}, {names[1]} {show(lb[at] if at < len(lb) else None)}")


def run_case(bed, ruleset, pkts, show=None, kind="input"):
	"""Run one ruleset and its packets on bed `kind` (input, router, host); returns a Result.
	show: a print function that gets every packet's verdicts and the first side's counters."""
	bed.use(kind)
	names = bed.names()
	# Documented differences hold against bpfilter only: netfilter against itself shows none.
	res = Result(known_differences(ruleset) if bed.sides[1].umh is not None else ())
	loads = bed.load(ruleset)
	if not loads[0][0]:
		raise HarnessError(f"the ruleset does not load into netfilter: {loads[0][1]}")
	if not loads[1][0]:
		why = loads[1][1]
		if bed.sides[1].umh is not None:
			why += " | helper log: " + " / ".join(bed.sides[1].umh_log(600).splitlines()[-3:])
		res.fail(f"load: {names[0]} loads the ruleset, {names[1]} refuses it: {why}")
		res.fatal = True
		return res
	res.ok()
	bed.use_log(flows.log_prefixes(ruleset) if kind != "input" else set())
	verdicts = bed.send(pkts)
	for side in bed.sides:
		if not side.alive():
			res.fail(f"helper: bpfilter_umh died (exit {side.umh.returncode}): {side.umh_log()}")
			res.fatal = True
			return res
	word = lambda x: ("delivered" if x else "not delivered") if isinstance(x, bool) else str(x)  # noqa: E731
	for n, (pkt, (a, b)) in enumerate(zip(pkts, verdicts), 1):
		if a == b:
			res.ok()
		elif not isinstance(a, bool) and a.differs_only_in_bytes(b):
			res.fail(f"reply: #{n} {pkt}: {a}: {a.bytes_diff(b)}")
		else:
			res.fail(f"packet: #{n} {pkt}: {names[0]} {word(a)}, {names[1]} {word(b)}")
	if kind != "input":
		_compare_flows(bed, res, names)
	(chains_a, rules_a), (chains_b, rules_b) = bed.save()
	if show:
		for n, (pkt, v) in enumerate(zip(pkts, verdicts), 1):
			if isinstance(v[0], bool):
				show(f"  #{n} {'/'.join('delivered' if x else 'dropped' for x in v)}: {pkt}")
			else:
				show(f"  #{n} {v[0]}{'' if v[0] == v[1] else ' / ' + str(v[1])}: {pkt}")
		for name in (bed.runs[0].tuples if kind != "input" else ()):
			for where, lines in zip(("host", "p0", "p1"), bed.runs[0].transcript(name)):
				for line in lines:
					show(f"  flow {name} at {where}: {line}")
		for line in (bed.logs or [[]])[0]:
			show(f"  log <{line[0]}>{line[1]}")
		for name, policy, p, b in chains_a:
			show(f"  [{p}:{b}] :{name} {policy}")
		for chain, idx, text, p, b in rules_a:
			show(f"  [{p}:{b}] {text}")
	# The listing: the same chains, policies and rules, counters aside.
	list_a = [(c[0], c[1]) for c in chains_a] + [r[2] for r in rules_a]
	list_b = [(c[0], c[1]) for c in chains_b] + [r[2] for r in rules_b]
	if list_a == list_b:
		res.ok()
	else:
		only_a = [str(x) for x in list_a if x not in list_b]
		only_b = [str(x) for x in list_b if x not in list_a]
		res.fail(f"listing: iptables-legacy-save differs: only in {names[0]}: {only_a[:5]}; "
			 f"only in {names[1]}: {only_b[:5]}")
	pol_b = {c[0]: c for c in chains_b}
	for name, policy, p, b in chains_a:
		if policy == "-":
			continue
		other = pol_b.get(name)
		if other is None:
			res.fail(f"counter: chain {name} policy {policy}: {names[0]} {_counts(p, b)}, {names[1]} has no such chain")
		elif (p, b) == (other[2], other[3]):
			res.ok()
		else:
			res.fail(f"counter: {name} policy {policy}: {names[0]} {_counts(p, b)}, "
				 f"{names[1]} {_counts(other[2], other[3])}")
	rule_b = {(r[0], r[1]): r for r in rules_b}
	for chain, idx, text, p, b in rules_a:
		other = rule_b.get((chain, idx))
		if other is None:
			res.fail(f"counter: {chain} rule {idx} ({text}): {names[0]} {_counts(p, b)}, {names[1]} has no such rule")
		elif (p, b) == (other[3], other[4]):
			res.ok()
		else:
			res.fail(f"counter: {chain} rule {idx} ({text}): {names[0]} {_counts(p, b)}, "
				 f"{names[1]} {_counts(other[3], other[4])}")
	res.unseen_known()
	return res
