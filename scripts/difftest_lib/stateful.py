# Generated stateful cases (--stateful): conntrack state, REJECT and LOG rules mixed into a generated ruleset, with flows to judge them.
#
# A case drawn for it moves to the host bed (flows need the peers' captures and the host's
# own sockets) and gets, from a random stream of its own (the seed's other rules and
# packets stay what they were): 2-8 rules with -m state / -m conntrack matches (--ctstate,
# --ctproto, --ctorigsrc/--ctorigdst, --ctorigdstport, --ctdir, --ctstatus), REJECT with
# every --reject-with (tcp-reset only with -p tcp) and LOG with prefixes, levels and options,
# put among the rules of INPUT, FORWARD, OUTPUT and the user chains; and 2-6 flows placed
# among the packets, each a contiguous block: a connection to a listener of the host, one
# the host starts, one through the router, UDP and ICMP requests with their replies, ICMP
# errors quoting a flow (RELATED) and segments out of state (INVALID or NEW).
import random

from .gen import Group, Rule, _n, route
from .packets import Packet

STATES = ["NEW", "ESTABLISHED", "RELATED", "INVALID"]
CTSTATES = STATES + ["UNTRACKED", "SNAT", "DNAT"]
CTSTATUS = ["EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"]
REJECT_WITH = [None, "icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable",
	       "icmp-proto-unreachable", "icmp-net-prohibited", "icmp-host-prohibited", "icmp-admin-prohibited",
	       "tcp-reset"]
LOG_OPTS = ["log-tcp-sequence", "log-tcp-options", "log-ip-options", "log-uid"]
PEER_SRC = ["198.51.100.7", "203.0.113.9", "192.0.2.7", "195.135.144.150", "8.8.8.8", "100.64.1.2", "1.2.3.4"]
SERVICE_PORTS = [22, 25, 53, 80, 443, 113, 8080, 2049]
# Through the router: from p0 to p1's side and back.
BEHIND = {"in0": ["198.51.100.9", "203.0.113.20", "10.0.0.2"], "in1": ["10.1.0.2", "172.31.0.9", "172.31.255.1"]}
HOST = {"in0": "10.0.0.1", "in1": "10.1.0.1"}


class Stateful:
	def __init__(self, seed):
		self.r = random.Random(f"{seed}-stateful")
		self.seed = seed
		self.logs = 0
		self.port = 40000 + self.r.randrange(0, 20000, 50)

	# ---- rules -------------------------------------------------------------------------

	def _states(self, pool):
		return self.r.sample(pool, self.r.choice([1, 1, 2, 2, 3]))

	def _ct_groups(self):
		r = self.r
		groups = []
		x = r.random()
		if x < 0.45:
			groups.append(Group("state", r.random() < 0.15, states=self._states(STATES)))
		elif x < 0.85:
			groups.append(Group("ctstate", r.random() < 0.15, states=self._states(CTSTATES)))
		if r.random() < 0.3:
			groups.append(Group("ctproto", r.random() < 0.2, proto=r.choice(["tcp", "udp", "icmp"])))
		if r.random() < 0.2:
			kind = r.choice(["ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"])
			plen = r.choice([32, 24, 16, 8])
			addr = r.choice(PEER_SRC + list(HOST.values()) + ["10.1.0.2", "172.31.0.9"])
			mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
			groups.append(Group(kind, r.random() < 0.2, net=_n(addr) & mask, mask=mask))
		if r.random() < 0.15:
			groups.append(Group(r.choice(["ctorigsrcport", "ctorigdstport"]), r.random() < 0.2,
					    port=r.choice(SERVICE_PORTS)))
		if r.random() < 0.15:
			groups.append(Group("ctdir", False, dir=r.choice(["ORIGINAL", "REPLY"])))
		if r.random() < 0.15:
			groups.append(Group("ctstatus", r.random() < 0.2, status=r.sample(CTSTATUS, r.choice([1, 2]))))
		return groups

	def _plain(self, gen, chain):
		"""A few of the ordinary matches, drawn by the generator's own code."""
		saved, gen.r = gen.r, self.r
		try:
			groups = [g for g in gen._groups(chain) if g.kind not in ("frag",)]
		finally:
			gen.r = saved
		if chain == "OUTPUT":
			groups = [g for g in groups if g.kind != "in"]
		return groups[: self.r.randint(0, 2)] if self.r.random() < 0.6 else []

	def rule(self, gen, chain):
		r = self.r
		groups = self._ct_groups() + self._plain(gen, chain)
		x = r.random()
		if x < 0.35:
			kind = r.choice(REJECT_WITH)
			if kind == "tcp-reset":
				groups = [g for g in groups if g.kind not in ("proto", "sport", "dport", "flags", "syn", "option",
									     "icmp", "multiport")]
				groups.append(Group("proto", False, proto="tcp"))
			target = ("REJECT", kind)
		elif x < 0.6:
			self.logs += 1
			level = r.choice([None, 0, 1, 2, 3, 4, 5, 6, 7])
			opts = [o for o in LOG_OPTS if r.random() < 0.25]
			target = ("LOG", f"dt{self.seed}-{self.logs} ", level, opts)
		else:
			target = r.choice([("ACCEPT",), ("ACCEPT",), ("DROP",), ()])
		return Rule(chain, groups, target)

	def add_rules(self, gen, case):
		r = self.r
		chains = ["INPUT", "FORWARD", "OUTPUT"] + list(case.chains)
		for _ in range(r.randint(2, 8)):
			chain = r.choice(chains)
			rl = self.rule(gen, chain)
			# Rules of a chain stay together (the model walks them so): after one of the
			# chain's rules, or first in it, or at the end when it has none.
			idx = [i for i, x in enumerate(case.rules) if x.chain == chain]
			pos = r.choice([idx[0]] + [i + 1 for i in idx]) if idx else len(case.rules)
			case.rules.insert(pos, rl)

	# ---- flows -------------------------------------------------------------------------

	def _port(self):
		self.port += self.r.randint(1, 9)
		return self.port

	def _dport(self, case):
		"""A port the rules name, half the time, else a common service."""
		named = []
		for rl in case.rules:
			for g in rl.groups:
				if g.kind == "dport" and not g.inv:
					named += [g.data["lo"], g.data["hi"]]
				elif g.kind == "multiport" and not g.inv:
					named += [lo for lo, hi in g.data["ports"]]
				elif g.kind == "ctorigdstport":
					named.append(g.data["port"])
		named = [p for p in named if 0 < p < 65535]
		return self.r.choice(named) if named and self.r.random() < 0.5 else self.r.choice(SERVICE_PORTS)

	def _peer(self):
		"""A device and a source behind it (now and then one routed back the other way:
		the replies leave by the other device)."""
		r = self.r
		dev = r.choice(["in0", "in1"])
		if dev == "in1" and r.random() < 0.7:
			return dev, r.choice(["10.1.0.2", "172.31.0.9", "172.31.7.7"])
		return dev, r.choice(PEER_SRC + ["10.0.0.2"])

	def _tcp(self, name, dev, src, dst, sport, dport, flags, **kw):
		return Packet(flow=name, dev=dev, proto="tcp", src=src, dst=dst, sport=sport, dport=dport, flags=flags, **kw)

	def _steps(self, steps):
		"""A flow cut short now and then: its first k steps."""
		if self.r.random() < 0.3 and len(steps) > 1:
			return steps[: self.r.randint(1, len(steps) - 1)]
		return steps

	def flow_to_host(self, case, name, listening):
		r = self.r
		dev, src = self._peer()
		if src == "10.0.0.2":
			src = f"10.{0 if dev == 'in0' else 1}.0.2"
		dst = HOST[dev] if r.random() < 0.85 else HOST["in1" if dev == "in0" else "in0"]
		sp, dp = self._port(), self._dport(case)
		out = []
		if dp not in listening and r.random() < 0.85:
			listening.add(dp)
			out.append(Packet(send="listen", proto="tcp", src="0.0.0.0", dst="0.0.0.0", sport=dp))
		t = lambda flags, **kw: self._tcp(name, dev, src, dst, sp, dp, flags, **kw)  # noqa: E731
		h = lambda how, **kw: Packet(flow=name, send=how, proto="tcp", src=dst, dst=src, sport=dp, dport=sp, **kw)  # noqa: E731
		steps = [t("S"), t("A"), t("PA", len=r.choice([1, 20, 300])), h("data", len=r.choice([1, 50, 700])), t("A")]
		if r.random() < 0.5:
			steps += [t("FA"), h("close"), t("A")]
		else:
			steps += [h("close"), t("A"), t("FA")] if r.random() < 0.5 else [t(r.choice(["R", "RA"]))]
		steps = self._steps(steps)
		if r.random() < 0.2:
			# A segment out of its window, or acknowledging what was never sent.
			k = r.randint(1, len(steps))
			bad = t(r.choice(["PA", "A", "R"]), len=10, **r.choice([{"seqoff": 1000000}, {"ackoff": 500000},
										 {"seqoff": -300000}]))
			steps.insert(k, bad)
		return out + steps

	def flow_from_host(self, case, name):
		r = self.r
		dev = r.choice(["in0", "in1"])
		peer = r.choice(BEHIND[dev])
		src = HOST[dev]
		sp, dp = self._port(), self._dport(case)
		t = lambda flags, **kw: self._tcp(name, dev, peer, src, dp, sp, flags, **kw)  # noqa: E731
		h = lambda how, **kw: Packet(flow=name, send=how, proto="tcp", src=src, dst=peer, sport=sp, dport=dp, **kw)  # noqa: E731
		steps = [h("connect"), t(r.choice(["SA", "SA", "SA", "RA"])), h("data", len=r.choice([1, 40, 500])),
			 t("PA", len=r.choice([1, 100, 900])), t("FA"), h("close"), t("A")]
		return self._steps(steps)

	def flow_through(self, case, name):
		r = self.r
		a = r.choice(["in0", "in1"])
		b = "in1" if a == "in0" else "in0"
		src, dst = r.choice(BEHIND[a]), r.choice(BEHIND[b])
		sp, dp = self._port(), self._dport(case)
		f = lambda flags, **kw: self._tcp(name, a, src, dst, sp, dp, flags, **kw)  # noqa: E731
		g = lambda flags, **kw: self._tcp(name, b, dst, src, dp, sp, flags, **kw)  # noqa: E731
		steps = [f("S"), g("SA"), f("A"), f("PA", len=r.choice([5, 200])), g("A"), g("PA", len=r.choice([5, 600])),
			 f("FA"), g("FA"), f("A")]
		if r.random() < 0.15:
			steps.insert(r.randint(1, len(steps)), g("PA", len=10, seqoff=r.choice([2000000, -2000000])))
		return self._steps(steps)

	def flow_udp(self, case, name, listening_udp):
		r = self.r
		sp, dp = self._port(), r.choice([53, 123, 500, 5353, self._dport(case)])
		kind = r.choice(["to-host", "from-host", "through"])
		if kind == "to-host":
			dev, src = self._peer()
			if src == "10.0.0.2":
				src = f"10.{0 if dev == 'in0' else 1}.0.2"
			dst = HOST[dev]
			out = []
			if r.random() < 0.7 and dp not in listening_udp:
				listening_udp.add(dp)
				out.append(Packet(send="listen", proto="udp", src="0.0.0.0", dst="0.0.0.0", sport=dp))
			out += [Packet(flow=name, dev=dev, proto="udp", src=src, dst=dst, sport=sp, dport=dp, len=r.randint(0, 200)),
				Packet(flow=name, send="udp", proto="udp", src=dst, dst=src, sport=dp, dport=sp, len=r.randint(0, 400))]
			return out
		if kind == "from-host":
			dev = r.choice(["in0", "in1"])
			peer = r.choice(BEHIND[dev])
			src = HOST[dev]
			return [Packet(flow=name, send="udp", proto="udp", src=src, dst=peer, sport=sp, dport=dp, len=r.randint(0, 100)),
				Packet(flow=name, dev=dev, proto="udp", src=peer, dst=src, sport=dp, dport=sp, len=r.randint(0, 300))]
		a = r.choice(["in0", "in1"])
		b = "in1" if a == "in0" else "in0"
		src, dst = r.choice(BEHIND[a]), r.choice(BEHIND[b])
		return [Packet(flow=name, dev=a, proto="udp", src=src, dst=dst, sport=sp, dport=dp, len=r.randint(0, 100)),
			Packet(flow=name, dev=b, proto="udp", src=dst, dst=src, sport=dp, dport=sp, len=r.randint(0, 100))]

	def flow_icmp(self, case, name):
		r = self.r
		kind = r.choice(["to-host", "from-host", "through"])
		n = r.choice([0, 8, 56])
		if kind == "to-host":
			dev, src = self._peer()
			if src == "10.0.0.2":
				src = f"10.{0 if dev == 'in0' else 1}.0.2"
			return [Packet(flow=name, dev=dev, proto="icmp", src=src, dst=HOST[dev], type=8, len=n)]
		if kind == "from-host":
			dev = r.choice(["in0", "in1"])
			peer = r.choice(BEHIND[dev])
			return [Packet(flow=name, send="rawip", proto="icmp", src=HOST[dev], dst=peer, type=8, len=n),
				Packet(flow=name, dev=dev, proto="icmp", src=peer, dst=HOST[dev], type=0, len=n)]
		a = r.choice(["in0", "in1"])
		b = "in1" if a == "in0" else "in0"
		src, dst = r.choice(BEHIND[a]), r.choice(BEHIND[b])
		return [Packet(flow=name, dev=a, proto="icmp", src=src, dst=dst, type=8, len=n),
			Packet(flow=name, dev=b, proto="icmp", src=dst, dst=src, type=0, len=n)]

	def error_for(self, block):
		"""An ICMP error quoting the flow of `block`, from the peer on the side of the flow's
		far end (where its first packet went), to its first packet's source."""
		r = self.r
		first = next((p for p in block if p.flow and p.sender != "listen"), None)
		if first is None or route(first.dst) == "lo":
			return []  # no flow, or the host is the far end: its kernel makes its errors
		dev = route(first.dst)
		src = f"10.{0 if dev == 'in0' else 1}.0.2"
		t, c = r.choice([(3, 0), (3, 1), (3, 3), (3, 4), (3, 13), (11, 0), (12, 0), (4, 0)])
		return [Packet(dev=dev, proto="icmp", src=src, dst=first.src, type=t, code=c, quote=first.flow)]

	def out_of_state(self):
		r = self.r
		dev, src = self._peer()
		if src == "10.0.0.2":
			src = f"10.{0 if dev == 'in0' else 1}.0.2"
		dst = HOST[dev] if r.random() < 0.6 else r.choice(BEHIND["in1" if dev == "in0" else "in0"])
		flags = r.choice(["A", "SA", "FA", "F", "R", "RA", "PA", "SF", "", "SR"])  # "": no flag
		return [Packet(dev=dev, proto="tcp", src=src, dst=dst, sport=self._port(), dport=r.choice(SERVICE_PORTS),
			       flags=flags, len=r.choice([0, 0, 10]))]

	def add_flows(self, case):
		r = self.r
		listening, listening_udp = set(), set()
		blocks = []
		for k in range(r.randint(2, 6)):
			name = f"f{k}"
			x = r.random()
			if x < 0.3:
				block = self.flow_to_host(case, name, listening)
			elif x < 0.45:
				block = self.flow_from_host(case, name)
			elif x < 0.6:
				block = self.flow_through(case, name)
			elif x < 0.75:
				block = self.flow_udp(case, name, listening_udp)
			elif x < 0.87:
				block = self.flow_icmp(case, name)
			else:
				block = self.out_of_state() + self.out_of_state()
			if r.random() < 0.25:
				block = block + self.error_for(block)
			blocks.append(block)
		# Listeners first (a block may use another's), then each block whole at a random
		# place among the case's packets.
		merged = list(case.packets)
		for block in blocks:
			at = r.randint(0, len(merged))
			merged[at:at] = [p for p in block if p.sender != "listen"]
		case.packets = [p for b in blocks for p in b if p.sender == "listen"] + merged


def make_stateful(gen, case):
	"""Turn a generated case into a stateful one (module comment)."""
	st = Stateful(case.seed)
	case.bed = "host"
	# No lone first fragment in the host bed: it would answer 30 s later.
	case.packets = [p.copy(mf=None) if p.get("frag") == 0 and p.get("mf") and not p.split else p for p in case.packets]
	st.add_rules(gen, case)
	st.add_flows(case)
	return case
