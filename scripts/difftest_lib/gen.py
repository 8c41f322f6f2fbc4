# Seeded random rulesets and packets over what the translator supports, biased toward deep rules and range edges.
#
# A Case is plain data (policy, chains, rules made of match groups, packets) so that the
# shrinker can drop pieces and print it again. Packets are built to satisfy (or to just
# miss) the matches along a path of jumps from INPUT to a chosen rule; real netfilter
# decides what they actually do, so a wrong guess here costs coverage, never a false
# difference.
import ipaddress
import random
import re

from .packets import Packet

LOCAL = {"in0": ["10.0.0.1"] * 8 + ["10.1.0.1"] * 2 + ["10.0.0.255", "255.255.255.255", "10.1.0.255"],
	 "in1": ["10.1.0.1"] * 8 + ["10.0.0.1"] * 2 + ["10.1.0.255", "255.255.255.255", "10.0.0.255"]}
ALL_LOCAL_DST = ["10.0.0.1", "10.1.0.1", "10.0.0.255", "10.1.0.255", "255.255.255.255"]
# Unicast destinations the filtered host does not own: with forwarding off the stack drops
# them before INPUT, so no INPUT rule may count them.
FOREIGN_DST = ["10.0.0.7", "10.1.0.200", "192.0.2.1", "8.8.8.8", "10.0.0.2"]
# Addresses input routing treats specially: martian sources and destinations are refused
# before INPUT; 224.0.0.1 is joined by every interface and so is local.
MARTIAN_SRC = ["127.0.0.1", "224.0.0.5", "255.255.255.255", "10.0.0.1", "10.1.0.1", "10.0.0.255"]
MARTIAN_DST = ["224.0.0.1", "224.0.0.9", "239.1.2.3", "127.0.0.1", "0.0.0.0", "10.0.0.0"]
SRC_BASES = ["192.0.2.0", "198.51.100.0", "203.0.113.0", "10.0.0.0", "10.1.0.0", "172.16.0.0",
	     "100.64.0.0", "8.8.8.8", "1.2.3.4", "11.22.33.44", "10.0.0.2", "10.1.0.2", "93.184.216.34"]
IFACES = ["in0", "in0", "in1", "in1", "in+", "i+", "in", "in00", "eth0", "+", "in1+", "lo",
	  "in0_long_name15", "in0_long_name1+"]
USER_CHAINS = ["web", "ssh", "f2b-sshd", "DOCKER-USER", "DOCKER", "limits", "icmp_in", "trusted",
	       "LOGDROP", "svc-443", "chain_a", "chain_b"]
OTHER_PROTOS = [47, 50, 132, 41, 58, 200, 33, 136]
TCP_FLAG_NAMES = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"]
TCP_FLAG_LETTERS = {"FIN": "F", "SYN": "S", "RST": "R", "PSH": "P", "ACK": "A", "URG": "U"}
PORTS = [0, 1, 22, 53, 80, 443, 1023, 1024, 8080, 32768, 65534, 65535]
BUILTIN = ("INPUT", "FORWARD", "OUTPUT")
# The router and host beds (forwarding on): destinations through the host by the device a
# packet arrives on (most to the other side, some routed back out where they came from),
# and where each output device leads. 172.31.0.0/16 is routed via p1, the rest via p0.
THROUGH = {"in0": ["10.1.0.2"] * 4 + ["172.31.0.1", "172.31.255.254", "10.1.0.77", "10.0.0.2", "192.0.2.1",
				       "8.8.8.8"],
	   "in1": ["10.0.0.2"] * 4 + ["192.0.2.1", "8.8.8.8", "203.0.113.9", "10.0.0.99", "172.31.1.1", "10.1.0.2"]}
ROUTE_DST = {"in0": ["10.0.0.2", "10.0.0.2", "192.0.2.1", "8.8.8.8", "10.0.0.99", "203.0.113.9"],
	     "in1": ["10.1.0.2", "10.1.0.2", "172.31.0.1", "172.31.9.9", "10.1.0.77"],
	     "lo": ["127.0.0.1", "127.0.0.1", "10.0.0.1", "10.1.0.1", "127.0.0.5"]}
HOST_SRC = ["10.0.0.1", "10.1.0.1", "10.0.0.1"]
HOOK_CHAINS = ["fwd-in", "fwd-out", "DOCKER-ISOLATION-STAGE-1", "ufw-before-forward", "egress", "out_lo",
	       "ufw-before-output", "svc-out"]
IFACES_OUT = IFACES + ["lo", "lo", "l+"]
# Matches that look past the IP header: they never match a non-first fragment.
L4_KINDS = ("sport", "dport", "flags", "syn", "option", "icmp", "multiport")


def _ip(n):
	return str(ipaddress.IPv4Address(n & 0xFFFFFFFF))


def _n(a):
	return int(ipaddress.IPv4Address(a))


def route(dst):
	"""The device the filtered host's routing picks for dst (router and host beds)."""
	n = _n(dst)
	if n >> 24 == 127 or dst in ("10.0.0.1", "10.1.0.1"):
		return "lo"
	if n >> 8 == 0x0A0100 or n >> 16 == 0xAC1F:
		return "in1"
	return "in0"


def forwardable(dst):
	"""A unicast destination the host does not own: the router forwards it."""
	n = _n(dst)
	return not (n >> 24 in (0, 127) or n >= 0xE0000000 or dst in ALL_LOCAL_DST or dst in ("10.0.0.0", "10.1.0.0"))


def usable_src(a):
	"""A source the filtered host treats as an ordinary remote unicast address."""
	n = _n(a)
	if n >> 24 in (0, 127) or n >= 0xE0000000:
		return False
	return a not in ("10.0.0.1", "10.1.0.1", "10.0.0.255", "10.1.0.255", "10.0.0.0", "10.1.0.0")



def _make_reachable(r, rules, chains, order, groups, jump_share=None):
	"""Every user chain is reachable: a chain no one calls gets a call from an earlier one
	(`order`), at a random place among the caller's rules, with some of `groups(caller)`
	half the time; a jump in `jump_share` of them and a goto in the rest (always a jump,
	with no draw, when None: each generator's random stream stays as it was)."""
	for ci, chain in enumerate(chains):
		if not any(rl.target[1:] == (chain,) for rl in rules):
			caller = r.choice(order[: ci + 1])
			idx = [i for i, rl in enumerate(rules) if rl.chain == caller]
			pos = r.choice(idx) if idx else len(rules)
			matches = groups(caller) if r.random() < 0.5 else []
			kind = "jump" if jump_share is None or r.random() < jump_share else "goto"
			rules.insert(pos, Rule(caller, matches, (kind, chain)))

class Group:
	"""One match of a rule: kind, inversion, its data and how it prints."""

	def __init__(self, kind, inv, **data):
		self.kind = kind
		self.inv = inv
		self.data = data

	def copy(self, **changes):
		g = Group(self.kind, self.inv, **self.data)
		for k, v in changes.items():
			setattr(g, k, v)
		return g

	def text(self):
		d, neg = self.data, "! " if self.inv else ""
		k = self.kind
		if k == "in":
			return f"{neg}-i {d['name']}"
		if k == "out":
			return f"{neg}-o {d['name']}"
		if k in ("src", "dst"):
			flag = "-s" if k == "src" else "-d"
			mask = d["mask"]
			plen = _plen(mask)
			m = str(plen) if plen is not None else _ip(mask)
			return f"{neg}{flag} {_ip(d['net'])}/{m}"
		if k == "proto":
			return f"{neg}-p {d['proto']}"
		if k == "frag":
			return f"{neg}-f"
		if k in ("sport", "dport"):
			lo, hi = d["lo"], d["hi"]
			spec = str(lo) if lo == hi else (f":{hi}" if lo == 0 and d.get("open") else
							 f"{lo}:" if hi == 65535 and d.get("open") else f"{lo}:{hi}")
			return f"{neg}--{k} {spec}"
		if k == "flags":
			mask = ",".join(d["mask"]) or "NONE"
			comp = ",".join(d["comp"]) or "NONE"
			if set(d["mask"]) == set(TCP_FLAG_NAMES):
				mask = "ALL"
			return f"{neg}--tcp-flags {mask} {comp}"
		if k == "syn":
			return f"{neg}--syn"
		if k == "option":
			return f"{neg}--tcp-option {d['opt']}"
		if k == "icmp":
			t = d["type"]
			spec = "any" if t == 255 else (f"{t}/{d['code']}" if d.get("code") is not None else str(t))
			return f"{neg}--icmp-type {spec}"
		if k == "multiport":
			ports = ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in d["ports"])
			return f"{neg}--{d['dir']} {ports}"
		if k in ("srcrange", "dstrange"):
			flag = "--src-range" if k == "srcrange" else "--dst-range"
			return f"{neg}{flag} {_ip(d['lo'])}-{_ip(d['hi'])}"
		if k == "comment":
			return f"--comment \"{d['text']}\""
		if k == "addrtype":
			# inv is the last address's inversion; src_inv the source's when both are tested.
			parts = []
			if d.get("src"):
				sneg = "! " if (d.get("src_inv") if d.get("dst") else self.inv) else ""
				parts.append(f"{sneg}--src-type {','.join(d['src'])}")
			if d.get("dst"):
				parts.append(f"{neg}--dst-type {','.join(d['dst'])}")
			if d.get("limit"):
				parts.append(f"--limit-iface-{d['limit']}")
			return " ".join(parts)
		if k in ("mark", "connmark"):
			m = f"{neg}--mark {d['value']:#x}"
			return m + (f"/{d['mask']:#x}" if d.get("mask") is not None else "")
		if k == "length":
			return f"{neg}--length {d['lo']}:{d['hi']}"
		if k == "ttl":
			return f"{neg}--ttl-{d['op']} {d['ttl']}"
		if k == "tos":
			return f"{neg}--tos {d['spec']}"
		if k == "dscp":
			return f"{neg}--dscp-class {d['cls']}" if d.get("cls") else f"{neg}--dscp 0x{d['dscp']:02x}"
		if k == "ecn":
			parts = []
			for opt, oinv in d["tests"]:
				parts.append(("! " if oinv else "") + (f"--ecn-ip-ect {d['ect']}" if opt == "ip" else f"--ecn-tcp-{opt}"))
			return " ".join(parts)
		if k == "pkttype":
			return f"{neg}--pkt-type {d['type']}"
		if k == "mac":
			return f"{neg}--mac-source {d['mac']}"
		if k in ("esp", "ah"):
			lo, hi = d["lo"], d["hi"]
			return f"{neg}--{k}spi {lo if lo == hi else f'{lo}:{hi}'}"
		if k == "hashlimit":
			parts = [f"--hashlimit-{'above' if d['above'] else 'upto'} {d['rate']}"]
			if d["flavor"] == "bytes":
				parts.append(f"--hashlimit-burst {d['bburst']}")
			else:
				parts.append(f"--hashlimit-burst {d['burst']}")
			if d["modes"]:
				parts.append(f"--hashlimit-mode {','.join(d['modes'])}")
			parts.append(f"--hashlimit-name {d['name']}")
			if "srcmask" in d:
				parts.append(f"--hashlimit-srcmask {d['srcmask']}")
			if "dstmask" in d:
				parts.append(f"--hashlimit-dstmask {d['dstmask']}")
			if d["flavor"] == "rate":
				parts.append("--hashlimit-rate-match --hashlimit-rate-interval 3600")
			return " ".join(parts)
		if k == "recent":
			parts = [f"{neg}--{d['cmd']}"]
			if d.get("seconds"):
				parts.append(f"--seconds {d['seconds']}")
			if d.get("reap"):
				parts.append("--reap")
			if d.get("hitcount"):
				parts.append(f"--hitcount {d['hitcount']}")
			if d.get("rttl"):
				parts.append("--rttl")
			parts.append(f"--name {d['name']}")
			if "mask" in d:
				parts.append(f"--mask {d['mask']}")
			parts.append(f"--{d['side']}")
			return " ".join(parts)
		if k == "u32":
			return f"{neg}--u32 \"{_u32_text(d['tests'])}\""
		if k == "state":
			return f"{neg}--state {','.join(d['states'])}"
		if k == "ctstate":
			return f"{neg}--ctstate {','.join(d['states'])}"
		if k == "ctstatus":
			return f"{neg}--ctstatus {','.join(d['status'])}"
		if k == "ctproto":
			return f"{neg}--ctproto {d['proto']}"
		if k == "ctdir":
			return f"--ctdir {d['dir']}"
		if k in ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"):
			return f"{neg}--{k} {_ip(d['net'])}/{_plen(d['mask'])}"
		if k in ("ctorigsrcport", "ctorigdstport"):
			return f"{neg}--{k} {d['port']}"
		raise ValueError(k)


# The -m module that carries each kind of group (None: part of the ipt_ip header).
MODULE = {"in": None, "out": None, "src": None, "dst": None, "proto": None, "frag": None,
	  "flags": "tcp", "syn": "tcp", "option": "tcp", "icmp": "icmp", "multiport": "multiport",
	  "srcrange": "iprange", "dstrange": "iprange", "comment": "comment", "addrtype": "addrtype",
	  # Rate limits per key: state the model below does not follow (it takes them as matching).
	  "hashlimit": "hashlimit",
	  # The lists: state the model does not follow either (taken as matching).
	  "recent": "recent",
	  # Connection tracking (--stateful): matched by the kernel's connection table, which the
	  # model below does not know (it takes them as matching: netfilter is the oracle).
	  "state": "state", "ctstate": "conntrack", "ctstatus": "conntrack", "ctproto": "conntrack",
	  "ctdir": "conntrack", "ctorigsrc": "conntrack", "ctorigdst": "conntrack", "ctreplsrc": "conntrack",
	  "ctrepldst": "conntrack", "ctorigsrcport": "conntrack", "ctorigdstport": "conntrack",
	  # The packet's mark (which MARK rules before it set) and its connection's: not modelled
	  # (taken as matching), netfilter is the oracle.
	  "mark": "mark", "connmark": "connmark",
	  # The header matches (--header-rate): one module each.
	  "length": "length", "ttl": "ttl", "tos": "tos", "dscp": "dscp", "ecn": "ecn", "pkttype": "pkttype",
	  "mac": "mac", "esp": "esp", "ah": "ah",
	  # Reads of the datagram's bytes (u32_match_it()), modelled on the packet's bytes.
	  "u32": "u32"}
# The peers' MAC addresses (net.py), for -m mac --mac-source.
PEER_MAC = {"in0": "02:df:00:00:00:02", "in1": "02:df:00:00:01:02"}
DSCP_CLASSES = {"CS0": 0, "CS1": 8, "AF11": 10, "AF41": 34, "EF": 46, "CS7": 56}
IP_ORDER = ["in", "out", "src", "dst", "proto", "frag"]


# -m u32: the reads the generator draws, named for the packet field each one sees (the
# datagram as the packets here build it: a 20-byte IP header, then the transport header).
U32_READS = {"proto": "6&0xFF", "len": "0&0xFFFF", "ttl": "8>>24", "tos": "0>>16&0xFF",
	     "src": "12", "dst": "16", "sport": "0>>22&0x3C@0>>16", "dport": "0>>22&0x3C@0&0xFFFF",
	     "ports": "0>>22&0x3C@0", "type": "0>>22&0x3C@0>>24", "udppay": "0>>22&0x3C@8>>24",
	     "tcppay": "0>>22&0x3C@12>>26&0x3C@0>>24", "frag": "4&0x3FFF", "chain": "0>>22&0x3C@0@0",
	     "end": "65532", "shl": "0>>22&0x3C@4<<8>>8"}


def _u32_text(tests):
	out = []
	for read, values in tests:
		vals = ",".join(f"{lo:#x}" if lo == hi else f"{lo:#x}:{hi:#x}" for lo, hi in values)
		out.append(f"{U32_READS[read]}={vals}")
	return "&&".join(out)


def _u32_eval(tests, data):
	"""u32_match_it() on the datagram's bytes."""
	size = len(data)

	def word(at):
		return int.from_bytes(data[at:at + 4], "big")

	for read, values in tests:
		nums = re.findall(r"(&|<<|>>|@)?(0x[0-9A-Fa-f]+|\d+)", U32_READS[read])
		at, pos = 0, int(nums[0][1], 0)
		if size < 4 or pos > size - 4:
			return False
		val = word(pos)
		for op, text in nums[1:]:
			number = int(text, 0)
			if op == "&":
				val &= number
			elif op == "<<":
				val = (val << number) & 0xFFFFFFFF
			elif op == ">>":
				val >>= number
			else:
				if at + val > 0xFFFFFFFF:
					return False
				at += val
				pos = number
				if at + 4 > 0xFFFFFFFF or size < at + 4 or pos > size - at - 4:
					return False
				val = word(at + pos)
		if not any(lo <= val <= hi for lo, hi in values):
			return False
	return True


def _u32_match(g, f):
	try:
		data = Packet(**{x: v for x, v in f.items() if x in Packet.FIELDS}).build(1)
	except Exception:
		return False
	return _u32_eval(g.data["tests"], data)


def _plen(mask):
	for p in range(33):
		if mask == (0xFFFFFFFF << (32 - p)) & 0xFFFFFFFF:
			return p
	return None


class Rule:
	def __init__(self, chain, groups, target, counters=None):
		self.chain = chain
		self.groups = groups
		self.target = target  # ("ACCEPT",), ("DROP",), ("RETURN",), ("jump", C), ("goto", C), ()
		self.counters = counters  # (packets, bytes) to restore with, or None

	def copy(self):
		return Rule(self.chain, list(self.groups), self.target, self.counters)

	def proto(self):
		for g in self.groups:
			if g.kind == "proto" and not g.inv:
				return g.data["proto"]
		return None

	def _module(self, g):
		if g.kind in ("sport", "dport"):
			return self.proto() or "tcp"
		return MODULE[g.kind]

	def text(self):
		parts = [f"-A {self.chain}"]
		for kind in IP_ORDER:
			parts += [g.text() for g in self.groups if g.kind == kind]
		modules = []
		for g in self.groups:
			mod = self._module(g)
			if mod is not None and mod not in modules:
				modules.append(mod)
		for mod in modules:
			items = [g.text() for g in self.groups if self._module(g) == mod]
			parts.append(f"-m {mod} " + " ".join(items))
		t = self.target
		if t and t[0] in ("ACCEPT", "DROP", "RETURN"):
			parts.append(f"-j {t[0]}")
		elif t and t[0] == "jump":
			parts.append(f"-j {t[1]}")
		elif t and t[0] == "goto":
			parts.append(f"-g {t[1]}")
		elif t and t[0] == "REJECT":
			parts.append("-j REJECT" + (f" --reject-with {t[1]}" if t[1] else ""))
		elif t and t[0] == "MARK":
			_, op, value, mask = t
			parts.append(f"-j MARK --{op} {value:#x}" + (f"/{mask:#x}" if mask is not None else ""))
		elif t and t[0] == "LOG":
			_, prefix, level, opts = t
			parts.append(f"-j LOG --log-prefix \"{prefix}\"" + (f" --log-level {level}" if level is not None else "")
				     + "".join(f" --{o}" for o in opts))
		return " ".join(parts)


class Case:
	def __init__(self, policy, chains, rules, packets, seed=None, policy_counters=(0, 0), bed="input",
		     fwd_policy="ACCEPT", out_policy="ACCEPT"):
		self.policy = policy
		self.policy_counters = policy_counters
		self.chains = chains
		self.rules = rules
		self.packets = packets
		self.seed = seed
		self.bed = bed
		self.fwd_policy = fwd_policy
		self.out_policy = out_policy

	def copy(self):
		return Case(self.policy, list(self.chains), [r.copy() for r in self.rules], list(self.packets), self.seed,
			    self.policy_counters, self.bed, self.fwd_policy, self.out_policy)

	def ruleset(self):
		pc = self.policy_counters
		lines = ["*filter", f":INPUT {self.policy} [{pc[0]}:{pc[1]}]", f":FORWARD {self.fwd_policy} [0:0]",
			 f":OUTPUT {self.out_policy} [0:0]"]
		lines += [f":{c} - [0:0]" for c in self.chains]
		for chain in list(BUILTIN) + self.chains:
			lines += [(f"[{r.counters[0]}:{r.counters[1]}] " if r.counters else "") + r.text()
				  for r in self.rules if r.chain == chain]
		lines.append("COMMIT")
		return "\n".join(lines) + "\n"


class Generator:
	def __init__(self, seed, frags=True, foreign=True, martians=True, large=0.03, beds=("input", "router", "host"),
		     hooks=0.35, stateful=0.0):
		self.large = large
		self.stateful = stateful
		self.beds = beds
		self.hooks = hooks
		# The router and host beds draw from a stream of their own: a seed's INPUT
		# ruleset and packets stay what they were before these beds existed.
		self.rh = random.Random(f"{seed}-hooks")
		self.hook = "INPUT"
		self.aim = ["INPUT"]
		self.seed = seed
		self.r = random.Random(seed)
		self.rx = random.Random(f"{seed}-extras")
		self.ro = random.Random(f"{seed}-options")
		# Whether a large case's services chain is one service list (a tuple set): a stream
		# of its own, so that the other draws stay as they were.
		self.rs = random.Random(f"{seed}-services")
		# -m addrtype draws from a stream of its own: every other draw stays as it was.
		self.ra = random.Random(f"{seed}-addrtype")
		# So do -m mark, -m connmark and -j MARK, in a fifth of the cases: a table that
		# reads or sets marks in INPUT or FORWARD runs at tc ingress rather than XDP, and
		# the other cases keep XDP's share.
		self.rm = random.Random(f"{seed}-mark")
		self.marks = self.rm.random() < 0.2
		# So do the header matches (-m length, ttl, tos, dscp, ecn, pkttype, mac, esp, ah).
		self.rhd = random.Random(f"{seed}-header")
		self.rhl = random.Random(f"{seed}-hashlimit")  # -m hashlimit's draws, apart
		self.hl_names = 0
		self.rrc = random.Random(f"{seed}-recent")  # -m recent's draws, apart
		self.ru = random.Random(f"{seed}-u32")  # -m u32's draws, apart
		self.frags = frags
		self.foreign = foreign
		self.martians = martians

	# ---- rules -------------------------------------------------------------------------

	def _mask(self):
		r = self.r
		if r.random() < 0.08:
			return r.getrandbits(32) | 0x80000000  # non-contiguous
		plen = r.choice([32, 32, 31, 30, 24, 24, 16, 8, 0, r.randint(0, 32), r.randint(20, 32)])
		return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF

	def _src_addr(self):
		r = self.r
		base = _n(r.choice(SRC_BASES))
		return base + r.choice([0, 0, 1, 2, r.randint(0, 255), r.randint(0, 65535)])

	def _ports(self):
		r = self.r
		lo = r.choice(PORTS + [r.randint(0, 65535)])
		if r.random() < 0.5:
			return lo, lo
		hi = min(65535, lo + r.choice([1, 2, 10, 100, 1000, r.randint(0, 65535)]))
		return lo, hi

	def _ports_x(self):
		"""_ports() from the side stream (keeps the main stream of older seeds as it was)."""
		ro = self.ro
		lo = ro.choice(PORTS + [ro.randint(0, 65535)])
		return (lo, lo) if ro.random() < 0.5 else (lo, min(65535, lo + ro.choice([1, 10, 1000])))

	def _groups(self, chain):
		r = self.r
		groups = []
		if r.random() < 0.3:
			groups.append(Group("in", r.random() < 0.25, name=r.choice(IFACES)))
		if chain != "INPUT" and r.random() < 0.05:
			groups.append(Group("out", r.random() < 0.5, name=r.choice(IFACES)))
		if r.random() < 0.45:
			mask = self._mask()
			groups.append(Group("src", r.random() < 0.2, net=self._src_addr() & mask, mask=mask))
		if r.random() < 0.25:
			mask = self._mask()
			groups.append(Group("dst", r.random() < 0.2, net=_n(r.choice(ALL_LOCAL_DST)) & mask, mask=mask))
		if r.random() < 0.05:
			groups.append(Group("frag", r.random() < 0.5))
		p = r.random()
		proto = None
		if p < 0.4:
			proto = "tcp"
		elif p < 0.65:
			proto = "udp"
		elif p < 0.8:
			proto = "icmp"
		elif p < 0.85:
			proto = r.choice(OTHER_PROTOS + ["all"])
		if proto is not None:
			inv = proto not in ("tcp", "udp", "icmp") and r.random() < 0.3 and proto != "all"
			if proto in ("tcp", "udp", "icmp") and r.random() < 0.08:
				groups.append(Group("proto", True, proto=proto))
				proto = None
			else:
				groups.append(Group("proto", inv, proto=proto))
		if proto in (33, 132, 136) and not groups[-1].inv and self.ro.random() < 0.4:
			ports = [self._ports_x() for _ in range(self.ro.randint(1, 4))]
			groups.append(Group("multiport", self.ro.random() < 0.2, ports=ports,
					    dir=self.ro.choice(["dports", "sports", "ports"])))
		if proto in ("tcp", "udp"):
			if r.random() < 0.5:
				lo, hi = self._ports()
				groups.append(Group("dport", r.random() < 0.2, lo=lo, hi=hi, open=r.random() < 0.3))
			if r.random() < 0.25:
				lo, hi = self._ports()
				groups.append(Group("sport", r.random() < 0.2, lo=lo, hi=hi, open=r.random() < 0.3))
			if r.random() < 0.25:
				ports = []
				while len(ports) < r.randint(1, 7):
					lo, hi = self._ports()
					ports.append((lo, hi))
				groups.append(Group("multiport", r.random() < 0.2, ports=ports,
						    dir=r.choice(["dports", "sports", "ports"])))
		if proto == "tcp":
			if r.random() < 0.25:
				mask = [f for f in TCP_FLAG_NAMES if r.random() < 0.5] or ["SYN"]
				comp = [f for f in mask if r.random() < 0.4]
				groups.append(Group("flags", r.random() < 0.2, mask=mask, comp=comp))
			elif r.random() < 0.1:
				groups.append(Group("syn", r.random() < 0.3))
			if r.random() < 0.08:
				groups.append(Group("option", r.random() < 0.3, opt=r.choice([2, 3, 4, 8, 1, 30])))
		if proto == "icmp" and r.random() < 0.7:
			t = r.choice([0, 3, 8, 8, 11, 255, r.randint(0, 40)])
			code = r.choice([None, None, 0, 1, r.randint(0, 15)]) if t != 255 else None
			groups.append(Group("icmp", r.random() < 0.2, type=t, code=code))
		if r.random() < 0.08:
			lo = self._src_addr()
			groups.append(Group("srcrange", r.random() < 0.25, lo=lo, hi=min(0xFFFFFFFF, lo + r.choice([0, 1, 5, 255, 1000]))))
		if r.random() < 0.04:
			lo = _n(r.choice(ALL_LOCAL_DST)) - r.choice([0, 1, 2])
			groups.append(Group("dstrange", r.random() < 0.25, lo=lo, hi=min(0xFFFFFFFF, lo + r.choice([0, 1, 2, 300]))))
		if r.random() < 0.05:
			groups.append(Group("comment", False, text=r.choice(["allow web", "f2b", "docker rule", "x"])))
		if self.ra.random() < 0.07:
			groups.append(self._addrtype(chain))
		if self.marks and self.rm.random() < 0.1:
			groups.append(self._mark_group())
		if self.rhd.random() < 0.15:
			groups += self._header(chain, groups)
		if self.rhl.random() < 0.06:
			groups.append(self._hashlimit())
		if self.rrc.random() < 0.03:
			groups.append(self._recent())
		if self.ru.random() < 0.05:
			groups.append(self._u32(groups))
		return groups

	# Marks a MARK rule gives and a mark rule looks for: small values that meet, all bits,
	# and REJECT's own reply mark (layout::reply_mark_magic), which must mean nothing here.
	MARK_VALUES = [0, 1, 2, 3, 0x10, 0xff, 0x100, 0xbf4e0000, 0xbf4e0001, 0xffffffff]
	MARK_MASKS = [None, None, 0xff, 0xf, 0xf0, 0xffff0000, 0xffffffff, 0]

	def _mark_group(self):
		"""-m mark (mostly) or -m connmark (the entry's mark, 0 on these beds; no entry:
		no match), with or without a mask."""
		rm = self.rm
		mask = rm.choice(self.MARK_MASKS)
		value = rm.choice(self.MARK_VALUES)
		if mask is not None:
			value &= mask
		return Group("connmark" if rm.random() < 0.15 else "mark", rm.random() < 0.25,
			     value=value, mask=mask)

	def _mark_targets(self, rules):
		"""Give some rules without a verdict a -j MARK, each form libxt_MARK sends."""
		rm = self.rm
		for rl in rules:
			if not self.marks or rl.target or rm.random() >= 0.3:
				continue
			op = rm.choice(["set-mark", "set-xmark", "and-mark", "or-mark", "xor-mark"])
			value = rm.choice(self.MARK_VALUES)
			mask = rm.choice(self.MARK_MASKS) if op in ("set-mark", "set-xmark") else None
			rl.target = ("MARK", op, value, mask)

	def _header(self, chain, groups):
		"""A header match: length, ttl, tos, dscp, ecn, pkttype, mac (INPUT only: netfilter
		refuses it where OUTPUT reaches), esp or ah (with their protocol)."""
		h = self.rhd
		proto = next((g.data["proto"] for g in groups if g.kind == "proto" and not g.inv), None)
		has_proto = any(g.kind == "proto" for g in groups)
		kinds = ["length", "length", "ttl", "tos", "dscp", "ecn", "pkttype"]
		if chain == "INPUT":
			kinds.append("mac")
		if proto == 50 or not has_proto:
			kinds.append("esp")
		if not has_proto:
			kinds.append("ah")
		k = h.choice(kinds)
		inv = h.random() < 0.25
		if k == "length":
			lo = h.choice([0, 20, 28, 40, 41, 60, 100, 576, 1000, h.randint(0, 1500)])
			hi = h.choice([lo, lo + h.randint(0, 100), 65535, lo + 500])
			return [Group("length", inv, lo=lo, hi=min(hi, 65535))]
		if k == "ttl":
			op = h.choice(["eq", "lt", "gt"])
			ttl = h.choice([0, 1, 2, 63, 64, 65, 254, 255])
			return [Group("ttl", inv and op == "eq", op=op, ttl=ttl)]
		if k == "tos":
			spec = h.choice(["Minimize-Delay", "Maximize-Throughput", "Normal-Service", "0x10/0x3f",
					 "0xb8", "0x03/0x03", "0x00/0xfc", f"0x{h.randint(0, 255):02x}/0x{h.randint(0, 255):02x}"])
			return [Group("tos", inv, spec=spec)]
		if k == "dscp":
			if h.random() < 0.3:
				cls = h.choice(sorted(DSCP_CLASSES))
				return [Group("dscp", inv, cls=cls, dscp=DSCP_CLASSES[cls])]
			return [Group("dscp", inv, dscp=h.choice([0, 4, 46, 63, h.randint(0, 63)]))]
		if k == "ecn":
			tests = []
			if proto != "tcp" or h.random() < 0.6:
				tests.append(("ip", h.random() < 0.3))
			if proto == "tcp":
				for opt in ("ece", "cwr"):
					if h.random() < 0.5:
						tests.append((opt, h.random() < 0.3))
			if not tests:
				tests.append(("ip", False))
			return [Group("ecn", False, tests=tests, ect=h.randint(0, 3))]
		if k == "pkttype":
			return [Group("pkttype", inv, type=h.choice(["unicast", "unicast", "broadcast", "multicast"]))]
		if k == "mac":
			return [Group("mac", inv, mac=h.choice(list(PEER_MAC.values()) + ["02:df:00:00:00:01"]))]
		lo = h.choice([0, 1, 32, 256, 0x10000, 0xFFFFFFFF, h.randint(0, 0xFFFFFFFF)])
		hi = h.choice([lo, lo, min(0xFFFFFFFF, lo + h.randint(0, 1000)), 0xFFFFFFFF])
		out = []
		if not has_proto:
			out.append(Group("proto", False, proto=50 if k == "esp" else 51))
		out.append(Group(k, inv, lo=lo, hi=hi))
		return out

	def _hashlimit(self):
		"""-m hashlimit with rates whose next token comes long after a case ends (1/hour,
		2/day, 3/min), a small burst, any mode and masks, names shared between rules now and
		then (the first rule's htable serves them all); rate matching and bytes on names of
		their own (an htable's rate-match setting must agree across its rules)."""
		rh = self.rhl
		modes = [m for m in ("srcip", "srcport", "dstip", "dstport") if rh.random() < 0.4]
		kind = rh.choice(["packets"] * 6 + ["bytes", "rate"])
		if kind == "packets" and rh.random() < 0.4:
			name = f"hl{rh.choice([0, 1])}"
		else:
			self.hl_names += 1
			# Rate-matching htables by names of their own: a name must keep its setting
			# from one table to the next in a namespace (hashlimit_mt_check_common()).
			name = f"hl{'r' if kind == 'rate' else 'u'}{self.hl_names}"
		d = {"name": name, "above": rh.random() < 0.3, "modes": modes,
		     "burst": rh.choice([1, 2, 3, 4]), "flavor": kind,
		     "rate": rh.choice(["1/hour", "2/day", "3/min"])}
		if d["rate"] == "2/day":
			# avg * burst in credits overflows u64 from a burst of 4 at HZ 1000: netfilter
			# refuses the table ("overflow, try lower").
			d["burst"] = min(d["burst"], 2)
		if "srcip" in modes and rh.random() < 0.3:
			d["srcmask"] = rh.choice([0, 8, 24, 31])
		if "dstip" in modes and rh.random() < 0.3:
			d["dstmask"] = rh.choice([0, 16, 30])
		if kind == "bytes":
			d["rate"], d["bburst"] = rh.choice(["1kb/s", "2kb/s"]), rh.choice(["2kb", "4kb"])
		if kind == "rate":
			d["rate"] = rh.choice(["1/min", "10/min"])
		return Group("hashlimit", False, **d)

	def _recent(self):
		"""-m recent: --set, --rcheck, --update (with --hitcount, --rttl, --reap) or --remove,
		inverted now and then, on a few shared lists by source or destination, masked or not.
		--seconds is an hour or a day: no stamp ages within a run, so what is compared does
		not depend on where the ticks fall on each side."""
		rc = self.rrc
		cmd = rc.choice(["set", "set", "rcheck", "rcheck", "update", "remove"])
		d = {"cmd": cmd, "name": f"rc{rc.choice([0, 0, 1, 2])}",
		     "side": rc.choice(["rsource", "rsource", "rsource", "rdest"])}
		if cmd in ("rcheck", "update"):
			if rc.random() < 0.5:
				d["seconds"] = rc.choice([3600, 86400])
				d["reap"] = rc.random() < 0.3
			if rc.random() < 0.4:
				d["hitcount"] = rc.choice([1, 2, 3, 5])
			d["rttl"] = rc.random() < 0.2
		if rc.random() < 0.2:
			d["mask"] = rc.choice(["255.255.255.0", "255.255.0.0", "0.0.0.0"])
		return Group("recent", cmd in ("rcheck", "update") and rc.random() < 0.2, **d)

	def _u32(self, groups):
		"""-m u32: one to three tests (&&) of reads that meet the packets here (protocol,
		length, TTL, addresses, ports and payload through @, the fragment bits) and a few that
		run off the datagram's end, each with one to three values or ranges, inverted now and
		then."""
		ru = self.ru
		proto = next((g.data["proto"] for g in groups if g.kind == "proto" and not g.inv), None)
		reads = ["proto", "len", "ttl", "tos", "src", "dst", "frag", "end", "chain"]
		if proto in ("tcp", "udp", None):
			reads += ["sport", "dport", "dport", "ports", "shl"]
		if proto in ("icmp", None):
			reads += ["type", "type"]
		if proto in ("udp", None):
			reads.append("udppay")
		if proto in ("tcp", None):
			reads.append("tcppay")

		def values(read):
			def one():
				if read == "proto":
					v = ru.choice([1, 6, 17, 47, 50, 132])
					return v, v
				if read == "len":
					lo = ru.choice([20, 28, 40, 41, 100, ru.randint(0, 1500)])
					return lo, ru.choice([lo, lo + ru.randint(0, 200), 0xFFFF])
				if read == "ttl":
					return ru.choice([(64, 64), (0, 1), (0, 63), (65, 255), (255, 255)])
				if read == "tos":
					v = ru.choice([0, 0x10, 0xB8, 0x03])
					return v, ru.choice([v, 0xFF])
				if read in ("src", "dst"):
					base = _n(ru.choice(SRC_BASES if read == "src" else ALL_LOCAL_DST))
					return base, base + ru.choice([0, 0, 1, 255, 65535])
				if read in ("sport", "dport"):
					lo = ru.choice(PORTS + [ru.randint(0, 65535)])
					return lo, min(0xFFFF, lo + ru.choice([0, 0, 1, 100, 65535]))
				if read == "type":
					v = ru.choice([0, 3, 8, 11, ru.randint(0, 255)])
					return v, ru.choice([v, v, 255])
				if read in ("udppay", "tcppay"):
					v = ru.choice([0x01, 0x01, 0x08, 0, 0xFF])
					return v, ru.choice([v, v, 0xFF])
				if read == "frag":
					return ru.choice([(0, 0), (0, 0), (0x2000, 0x3FFF), (1, 0x1FFF)])
				if read == "shl":
					return ru.choice([(0x1000, 0xFFFFFF), (0, 0xFFF)])
				return ru.choice([(0, 0xFFFFFFFF), (0, 0xFFFF), (0x10000, 0xFFFFFFFF)])
			return [(lo, min(hi, 0xFFFFFFFF)) for lo, hi in (one() for _ in range(ru.choice([1, 1, 1, 2, 3])))]

		tests = [(read, values(read)) for read in ru.sample(reads, ru.choice([1, 1, 1, 2, 3]))]
		return Group("u32", ru.random() < 0.2, tests=tests)

	def _addrtype(self, chain):
		"""-m addrtype: types of the source, destination or both, --limit-iface-in/-out where
		addrtype_mt_checkentry_v1 takes them (a built-in chain that has the device)."""
		ra = self.ra
		def types():
			common = ["UNICAST", "LOCAL", "BROADCAST", "MULTICAST"]
			rare = ["UNSPEC", "ANYCAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"]
			out = ra.sample(common, ra.choice([1, 1, 1, 2, 3]))
			if ra.random() < 0.15:
				out.append(ra.choice(rare))
			return out
		x = ra.random()
		src = types() if x < 0.45 else None
		dst = types() if x >= 0.3 else None
		limits = {"INPUT": ["in"], "FORWARD": ["in", "out"], "OUTPUT": ["out"]}.get(chain, [])
		limit = ra.choice(limits) if limits and ra.random() < 0.3 else None
		return Group("addrtype", ra.random() < 0.25, src=src, dst=dst, src_inv=ra.random() < 0.25,
			     limit=limit)

	def _narrow(self, groups):
		"""Make a verdict rule selective, so that it does not hide every rule after it."""
		r = self.r
		kinds = {g.kind for g in groups}
		narrow = {"sport", "dport", "multiport", "icmp", "srcrange", "option"} & kinds
		narrow |= {g.kind for g in groups if g.kind == "src" and not g.inv and _plen(g.data["mask"]) and
			   _plen(g.data["mask"]) >= 16}
		if narrow:
			return
		proto = next((g.data["proto"] for g in groups if g.kind == "proto" and not g.inv), None)
		if proto in ("tcp", "udp") and r.random() < 0.7:
			lo, hi = self._ports()
			groups.append(Group("dport", False, lo=lo, hi=hi))
		else:
			mask = (0xFFFFFFFF << (32 - r.choice([16, 24, 28, 32]))) & 0xFFFFFFFF
			groups[:] = [g for g in groups if g.kind != "src"]
			groups.append(Group("src", r.random() < 0.1, net=self._src_addr() & mask, mask=mask))

	def ruleset(self):
		r = self.r
		nchains = r.choice([0, 1, 2, 2, 3, 4, 5])
		chains = r.sample(USER_CHAINS, nchains)
		rules = []
		order = ["INPUT"] + chains
		for ci, chain in enumerate(order):
			n = r.randint(3, 12) if chain == "INPUT" else r.choice([0] + [r.randint(1, 8)] * 9)
			deeper = chains[ci:]  # user chains after this one (keeps the graph acyclic)
			for _ in range(n):
				groups = self._groups(chain)
				x = r.random()
				if deeper and x < 0.25:
					target = ("jump" if r.random() < 0.8 else "goto", r.choice(deeper))
				elif x < 0.5:
					target = ("ACCEPT",)
				elif x < 0.7:
					target = ("DROP",)
				elif x < 0.85 and chain != "INPUT":
					target = ("RETURN",)
				elif x < 0.9:
					target = ("RETURN",) if r.random() < 0.2 else ()
				else:
					target = ()
				if target[:1] in (("ACCEPT",), ("DROP",), ("RETURN",), ("goto",)) and r.random() < 0.85:
					self._narrow(groups)
				rules.append(Rule(chain, groups, target))
		_make_reachable(r, rules, chains, order, self._groups, jump_share=0.8)
		self._mark_targets(rules)
		return r.choice(["ACCEPT", "DROP"]), chains, rules

	# ---- packets -----------------------------------------------------------------------

	def _path(self, rules, target_idx):
		"""Rules to satisfy to reach rules[target_idx] from INPUT: callers first, target last."""
		path = [rules[target_idx]]
		chain = rules[target_idx].chain
		for _ in range(10):
			if chain in BUILTIN:
				break
			callers = [rl for rl in rules if rl.target[1:] == (chain,)]
			if not callers:
				break
			caller = self.r.choice(callers)
			path.insert(0, caller)
			chain = caller.chain
		return path

	def _random_packet(self):
		r = self.r
		dev = r.choice(["in0", "in0", "in1"])
		x = r.random()
		proto = "tcp" if x < 0.45 else "udp" if x < 0.75 else "icmp" if x < 0.9 else r.choice(OTHER_PROTOS)
		src = _ip(self._src_addr())
		for _ in range(50):
			if usable_src(src):
				break
			src = _ip(self._src_addr())
		else:
			src = "192.0.2.99"
		f = {"dev": dev, "proto": proto, "src": src, "dst": r.choice(LOCAL[dev])}
		if proto in ("tcp", "udp"):
			f["sport"] = r.choice(PORTS + [r.randint(1024, 65535)] * 3)
			f["dport"] = r.choice(PORTS + [r.randint(0, 65535)])
		if proto == "tcp":
			f["flags"] = r.choice(["S", "S", "SA", "A", "PA", "FA", "R", "RA", "", "SF", "FPU", "SAFRPU",
					       "SE", "SAC"])
		if proto == "icmp":
			f["type"] = r.choice([0, 3, 8, 8, 11, r.randint(0, 255)])
			f["code"] = r.choice([0, 0, 1, 3, r.randint(0, 255)])
		if r.random() < 0.2:
			f["len"] = r.choice([1, 10, 100, 1000, r.randint(0, 1400)])
		if r.random() < 0.05:
			f["ttl"] = r.choice([0, 1, 255])
		if r.random() < 0.05:
			f["tos"] = r.choice([0x10, 0xB8, 0x03])
		return f

	def _satisfy(self, f, g, want):
		"""Change packet fields `f` so that group g matches (want) or just misses (not want)."""
		r = self.r
		d = g.data
		want = want != g.inv
		k = g.kind
		if k == "addrtype" and self.hook != "INPUT":
			return
		if k in ("in", "out", "dst", "dstrange") and self.hook != "INPUT":
			self._satisfy_routed(f, g, want)
		elif k == "in":
			ok = [dev for dev in ("in0", "in1") if _iface_match(d["name"], dev) == want]
			if ok:
				f["dev"] = r.choice(ok)
				if f["dst"] in ALL_LOCAL_DST and f["dst"] not in LOCAL[f["dev"]]:
					f["dst"] = LOCAL[f["dev"]][0]
		elif k == "src":
			cands = _edges(d["net"], d["mask"], want, r)
			cands = [a for a in cands if usable_src(a)]
			if cands:
				f["src"] = r.choice(cands)
		elif k == "dst":
			ok = [a for a in LOCAL[f["dev"]] if ((_n(a) & d["mask"]) == d["net"]) == want]
			if ok:
				f["dst"] = r.choice(ok)
		elif k == "proto":
			p = d["proto"]
			if want and p != "all":
				f["proto"] = p
			elif not want:
				f["proto"] = r.choice([x for x in ["tcp", "udp", "icmp", 47] if x != p])
		elif k == "frag":
			if want:
				f["frag"] = r.choice([1, 2, 100])
			else:
				f.pop("frag", None)
		elif k in ("sport", "dport"):
			f[k] = _port_edge(d["lo"], d["hi"], want, r, f.get(k))
		elif k == "multiport":
			lo, hi = r.choice(d["ports"])
			key = {"dports": "dport", "sports": "sport"}.get(d["dir"]) or r.choice(["sport", "dport"])
			if want:
				f[key] = r.choice([lo, hi])
			else:
				f[key] = r.choice([lo - 1, hi + 1]) % 65536
				if d["dir"] == "ports":
					f["sport" if key == "dport" else "dport"] = f[key]
		elif k in ("flags", "syn"):
			mask = d["mask"] if k == "flags" else ["SYN", "RST", "ACK", "FIN"]
			comp = d["comp"] if k == "flags" else ["SYN"]
			cur = set(f.get("flags", "S"))
			for name in mask:
				cur.discard(TCP_FLAG_LETTERS[name])
			for name in comp:
				cur.add(TCP_FLAG_LETTERS[name])
			if not want:
				flip = TCP_FLAG_LETTERS[r.choice(mask)]
				cur ^= {flip}
			f["flags"] = "".join(sorted(cur))
		elif k == "option":
			opts = [o for o in f.get("tcpopt", ()) if o != d["opt"]]
			if want:
				opts.append(d["opt"])
			ro = self.ro
			if ro.random() < 0.15:
				# Options the walker must step over carefully: odd lengths, 0 and 1.
				opts.insert(ro.randint(0, len(opts)), (ro.choice([3, 5, 30, 254]), ro.choice([0, 1, 2, 3, 7])))
			if ro.random() < 0.1:
				opts.insert(ro.randint(0, len(opts)), ro.choice([0, 1]))
			f["tcpopt"] = tuple(opts)
		elif k == "icmp":
			if d["type"] == 255:
				return
			f["type"] = d["type"] if want else (d["type"] + r.choice([1, -1])) % 256
			if d.get("code") is not None:
				f["code"] = d["code"] if want or r.random() < 0.5 else (d["code"] + 1) % 256
		elif k == "srcrange":
			cands = [d["lo"], d["hi"]] if want else [d["lo"] - 1, d["hi"] + 1]
			cands = [_ip(a) for a in cands if usable_src(_ip(a))]
			if cands:
				f["src"] = r.choice(cands)
		elif k == "dstrange":
			ok = [a for a in LOCAL[f["dev"]] if (d["lo"] <= _n(a) <= d["hi"]) == want]
			if ok:
				f["dst"] = r.choice(ok)
		elif k == "addrtype" and d.get("dst"):
			ok = [a for a in LOCAL[f["dev"]] if (_addr_type(a, d, f) in d["dst"]) == want]
			if ok:
				f["dst"] = r.choice(ok)
		elif k in HEADER_KINDS:
			self._satisfy_header(f, g, want)
		elif k == "u32":
			self._satisfy_u32(f, g, want)

	def _satisfy_u32(self, f, g, want):
		"""_satisfy for -m u32: the fields its reads see set in (or just out of) a value of
		each test when want, in one test when not; reads without such a field stay."""
		ru = self.ru
		tests = g.data["tests"]
		miss = ru.randrange(len(tests))
		for i, (read, values) in enumerate(tests):
			hit = want or i != miss
			lo, hi = ru.choice(values)
			if hit:
				v = ru.choice([lo, hi])
			else:
				outside = [x for x in (lo - 1, hi + 1) if not any(a <= x <= b for a, b in values)]
				if not outside:
					continue
				v = ru.choice(outside)
			if read == "ttl" and 0 <= v <= 255:
				f["ttl"] = v
			elif read == "tos" and 0 <= v <= 255:
				f["tos"] = v
			elif read == "src" and 0 <= v <= 0xFFFFFFFF and usable_src(_ip(v)):
				f["src"] = _ip(v)
			elif read in ("sport", "dport") and f.get("proto") in ("tcp", "udp") and 0 <= v <= 0xFFFF:
				f[read] = v
			elif read == "type" and f.get("proto") == "icmp" and 0 <= v <= 255:
				f["type"] = v
			elif read == "len":
				try:
					base = Packet(**{x: y for x, y in f.items() if x in Packet.FIELDS}).copy(len=0).ip_len()
				except Exception:
					continue
				if base <= v <= 1400:
					f["len"] = v - base

	def _satisfy_header(self, f, g, want):
		"""_satisfy for the header matches (want: the test itself, before its inversion)."""
		h, d, k = self.rhd, g.data, g.kind
		if k == "ttl":
			t = d["ttl"]
			if d["op"] == "eq":
				cands = [t] if want else [(t + 1) % 256, (t - 1) % 256]
			elif d["op"] == "lt":
				cands = [x for x in (0, t - 1) if 0 <= x < t] if want else [t, min(255, t + 1)]
			else:
				cands = [x for x in (255, t + 1) if t < x <= 255] if want else [t, max(0, t - 1)]
			if cands:
				f["ttl"] = h.choice(cands)
		elif k in ("tos", "dscp"):
			v, mask = _tos_spec(d["spec"]) if k == "tos" else (d["dscp"] << 2, 0xFC)
			cand = (v & mask) | (h.randint(0, 255) & ~mask & 0xFF)
			f["tos"] = cand if want else cand ^ (mask & -mask if mask else 0)
		elif k == "ecn":
			for opt, oinv in d["tests"]:
				w = want != oinv
				if opt == "ip":
					ect = d["ect"] if w else (d["ect"] + 1) % 4
					f["tos"] = (f.get("tos", 0) & 0xFC) | ect
				elif f.get("proto") == "tcp":
					letter = {"ece": "E", "cwr": "C"}[opt]
					cur = set(f.get("flags", "S")) - {letter}
					f["flags"] = "".join(sorted(cur | ({letter} if w else set())))
		elif k == "length":
			base = len(f.get("tcpopt", ())) + {"tcp": 40, "udp": 28, "icmp": 28}.get(f.get("proto"), 20)
			target = h.choice([d["lo"], d["hi"]]) if want else h.choice([d["lo"] - 1, d["hi"] + 1])
			if base <= target <= 1400:
				f["len"] = target - base
		elif k in ("esp", "ah"):
			spi = h.choice([d["lo"], d["hi"]]) if want else h.choice([d["lo"] - 1, d["hi"] + 1])
			if 0 <= spi <= 0xFFFFFFFF:
				f["proto"] = 50 if k == "esp" else 51
				f["sport"], f["dport"] = spi >> 16, spi & 0xFFFF
		elif k == "pkttype" and d["type"] == "multicast" and want:
			f["dst"] = "224.0.0.1"

	def _satisfy_routed(self, f, g, want):
		"""_satisfy for FORWARD and OUTPUT: interfaces and destinations go with routing."""
		r = self.r
		d, k = g.data, g.kind
		if k == "in":
			if self.hook == "FORWARD":
				ok = [dev for dev in ("in0", "in1") if _iface_match(d["name"], dev) == want]
				if ok:
					f["dev"] = r.choice(ok)
			return
		if k == "out":
			devs = ("in0", "in1") if self.hook == "FORWARD" else ("in0", "in1", "lo")
			ok = [dev for dev in devs if _iface_match(d["name"], dev) == want]
			if ok:
				f["dst"] = r.choice(ROUTE_DST[r.choice(ok)])
			return
		if k == "dst":
			cands = [a for a in _edges(d["net"], d["mask"], want, r)]
		else:
			cands = [_ip(a) for a in ([d["lo"], d["hi"]] if want else [d["lo"] - 1, d["hi"] + 1]) if 0 <= a <= 0xFFFFFFFF]
		if self.hook == "FORWARD":
			cands = [a for a in cands if forwardable(a)]
		else:
			cands = [a for a in cands if forwardable(a) or route(a) == "lo"]
		if cands:
			f["dst"] = r.choice(cands)

	def _aimed(self, rules, idx):
		"""A packet that satisfies the matches on a path to rules[idx] (mostly)."""
		r = self.r
		if r is not self.rh:
			# The main stream, its draws in their old order: INPUT only.
			f = self._random_packet()
			path = self._path(rules, idx)
		else:
			# A chain shared by several hooks: a path from a hook this bed can feed.
			for _ in range(10):
				path = self._path(rules, idx)
				if path[0].chain in self.aim:
					break
			self.hook = path[0].chain if path[0].chain in self.aim else "INPUT"
			f = self._random_packet() if self.hook == "INPUT" else self._hook_packet(self.hook)
		for rl in path:
			last = rl is rules[idx]
			for g in rl.groups:
				self._satisfy(f, g, r.random() < (0.8 if last else 0.95))
		self.hook = "INPUT"
		return f

	def packets(self, rules, count, forwarding=False):
		r = self.r
		# Fragments and martian addresses come in a share of the cases, a few packets each.
		# They draw from their own stream, so that --no-frags and --no-martians leave every
		# other choice of a seed as it was: a failing seed can be rerun without them.
		x = self.rx
		frag_case = x.random() < 0.15 and self.frags
		martian_case = x.random() < 0.15 and self.martians
		pkts = []
		weights = []
		pos = {}
		for i, rl in enumerate(rules):
			pos[rl.chain] = pos.get(rl.chain, 0) + 1
			weights.append(1 + pos[rl.chain] + (4 if rl.chain != "INPUT" else 0))
		for _ in range(count):
			if rules and r.random() < 0.85:
				idx = r.choices(range(len(rules)), weights)[0]
				# A few tries, kept when our model of ip_tables says the packet gets there:
				# earlier rules often catch what was aimed further down.
				f = self._aimed(rules, idx)
				for _ in range(8):
					hit, stop = simulate(rules, f, with_stop=True, forwarding=forwarding)
					if idx in hit:
						break
					if stop is None or r.random() < 0.15:
						f = self._aimed(rules, idx)
						continue
					# An earlier rule decided the packet: miss one of its matches, one
					# the path to the aimed rule does not also test.
					path = self._path(rules, idx)
					kinds = {g.kind for rl in path for g in rl.groups}
					free = [g for g in rules[stop].groups if g.kind not in kinds] or rules[stop].groups
					if not free:
						f = self._aimed(rules, idx)
						continue
					self.hook = hook_of(f, forwarding) or "INPUT"
					self._satisfy(f, r.choice(free), False)
					self.hook = "INPUT"
			else:
				f = self._random_packet()
			if self.foreign and r.random() < 0.04:
				f["dst"] = r.choice(FOREIGN_DST)
			if x.random() < 0.08 and martian_case:
				if x.random() < 0.5:
					f["src"] = x.choice(MARTIAN_SRC)
				else:
					f["dst"] = x.choice(MARTIAN_DST)
			if x.random() < 0.1 and frag_case:
				if x.random() < 0.5:
					# A lone fragment: INPUT never sees it.
					f["frag"] = x.choice([0, 1, 185])
					f["mf"] = x.choice([0, 1])
				else:
					# A datagram sent in pieces: INPUT sees it whole.
					# Pieces of 64 bytes or more: the first holds the transport
					# header, options and all. A first fragment shorter than the
					# header a rule reads is dropped by bpfilter (supported.md).
					f["split"] = x.choice([64, 72, 480])
					f["len"] = max(f.get("len", 0), 64 + x.randrange(100))
					if x.random() < 0.5:
						f["reverse"] = 1
			if r.random() < 0.02:
				# Short headers: netfilter's tcp, udp and icmp matches drop these outright.
				f["trunc"] = r.choice([0, 1, 3, 4, 7, 8, 13, 19])
			elif f["proto"] == "tcp" and r.random() < 0.015:
				f["doff"] = r.choice([0, 4, 6, 15])
			if f["proto"] not in ("tcp", "udp", 33, 132, 136):
				f.pop("sport", None)
				f.pop("dport", None)
			if f["proto"] != "tcp":
				f.pop("flags", None)
				f.pop("tcpopt", None)
			if f["proto"] != "icmp":
				f.pop("type", None)
				f.pop("code", None)
			if f.get("frag") == 0:
				f.pop("frag")
			if not f.get("mf"):
				f.pop("mf", None)
			if not f.get("tcpopt"):
				f.pop("tcpopt", None)
			pkts.append(Packet(**f))
		return pkts

	# ---- the router and host beds: FORWARD and OUTPUT ------------------------------------
	# Everything here draws from self.rh (swapped in as self.r), never from the main stream.

	def _hook_packet(self, hook):
		"""Random packet fields for FORWARD (a peer sends through the host) or OUTPUT (the
		host sends, from a raw socket or an ordinary one)."""
		r = self.r
		f = self._random_packet()
		f.pop("ttl", None)
		if hook == "FORWARD":
			f["dst"] = r.choice(THROUGH[f["dev"]])
			return f
		del f["dev"]
		dev = r.choice(["in0", "in0", "in1", "lo"])
		f["dst"] = r.choice(ROUTE_DST[dev])
		if r.random() < 0.7:
			f["src"] = r.choice(HOST_SRC if dev != "lo" else HOST_SRC + ["127.0.0.1"] * 2)
		x = r.random()
		f["send"] = "raw" if x < 0.45 else "rawip" if x < 0.6 else f["proto"] if f["proto"] in ("udp", "tcp") else "raw"
		return f

	def _hook_groups(self, chain, hook):
		r = self.r
		groups = self._groups(chain)
		if chain == "OUTPUT":
			groups = [g for g in groups if g.kind != "in"]  # iptables: "Can't use -i with OUTPUT"
		kinds = {g.kind for g in groups}
		if hook == "FORWARD" and "in" not in kinds and r.random() < 0.35:
			groups.insert(0, Group("in", r.random() < 0.2, name=r.choice(IFACES)))
		if "out" not in kinds and r.random() < (0.35 if hook == "FORWARD" else 0.45):
			groups.insert(0, Group("out", r.random() < 0.2, name=r.choice(IFACES_OUT)))
		if "frag" not in kinds and r.random() < 0.06:
			groups.append(Group("frag", r.random() < 0.3))
		for i, g in enumerate(groups):
			if g.kind == "dst" and r.random() < 0.7:
				dev = r.choice(["in0", "in1"] + (["lo"] if hook == "OUTPUT" else []))
				mask = (0xFFFFFFFF << (32 - r.choice([32, 32, 24, 16, 31]))) & 0xFFFFFFFF
				groups[i] = Group("dst", g.inv, net=_n(r.choice(ROUTE_DST[dev])) & mask, mask=mask)
		return groups

	def hook_rules(self, hook, chains, input_chains):
		"""Rules of FORWARD or OUTPUT and of their own user chains (`chains`); now and then a
		jump into one of INPUT's user chains, which the hooks then share."""
		r = self.r
		rules = []
		order = [hook] + chains
		for ci, chain in enumerate(order):
			n = r.randint(2, 10) if chain == hook else r.choice([0] + [r.randint(1, 6)] * 6)
			deeper = chains[ci:]
			for _ in range(n):
				groups = self._hook_groups(chain, hook)
				x = r.random()
				if deeper and x < 0.25:
					target = ("jump" if r.random() < 0.8 else "goto", r.choice(deeper))
				elif input_chains and x < 0.3:
					target = ("jump", r.choice(input_chains))
				elif x < 0.55:
					target = ("ACCEPT",)
				elif x < 0.75:
					target = ("DROP",)
				elif x < 0.85 and chain != hook:
					target = ("RETURN",)
				else:
					target = ()
				if target[:1] in (("ACCEPT",), ("DROP",), ("RETURN",), ("goto",)) and r.random() < 0.8:
					self._narrow(groups)
				rules.append(Rule(chain, groups, target))
		_make_reachable(r, rules, chains, order, lambda c: self._hook_groups(c, hook))
		self._mark_targets(rules)
		return rules

	def add_hooks(self, case):
		"""Turn an INPUT case into a router or host case: FORWARD and OUTPUT rules, their
		policies and packets aimed at them, mixed among the INPUT packets."""
		main, self.r = self.r, self.rh
		try:
			r = self.r
			beds = [b for b in ("router", "host") if b in self.beds]
			case.bed = r.choice(beds)
			hooks = ["FORWARD"] + (["OUTPUT"] if case.bed == "host" or r.random() < 0.3 else [])
			if case.bed == "host" and r.random() < 0.4:
				hooks.remove("FORWARD")
			names = [c for c in HOOK_CHAINS if c not in case.chains]
			new_rules = []
			for hook in hooks:
				chains = r.sample(names, r.choice([0, 1, 1, 2, 3]))
				names = [c for c in names if c not in chains]
				input_chains = case.chains if r.random() < 0.3 else []
				new_rules += self.hook_rules(hook, chains, input_chains)
				case.chains = case.chains + chains
				pol = "DROP" if r.random() < (0.4 if hook == "FORWARD" else 0.25) else "ACCEPT"
				if hook == "FORWARD":
					case.fwd_policy = pol
				else:
					case.out_policy = pol
			case.rules = case.rules + new_rules
			rules = case.rules
			# The router bed's host sends nothing: its OUTPUT rules get no packets (and
			# must count none).
			aim = self.aim = [h for h in hooks if h == "FORWARD" or case.bed == "host"]
			targets = [i for i, rl in enumerate(rules) if self._path(rules, i)[0].chain in aim]
			pkts = []
			for _ in range(min(50, 8 + 2 * len(targets))):
				if targets and r.random() < 0.85:
					idx = r.choice(targets)
					f = self._aimed(rules, idx)
					for _ in range(6):
						if idx in simulate(rules, f, forwarding=True):
							break
						f = self._aimed(rules, idx)
				else:
					hook = r.choice(aim)
					self.hook = hook
					f = self._hook_packet(hook)
					self.hook = "INPUT"
				if f.get("send") is None and r.random() < 0.08:
					# A packet whose TTL runs out here: FORWARD never sees it (the
					# host bed answers "time exceeded" through OUTPUT).
					f["ttl"] = r.choice([0, 1, 2])
				if f.get("send") in (None, "raw") and r.random() < 0.12 and self.frags:
					# Fragments through the router: FORWARD judges each on its own.
					# The host's own to itself only alone and not first: should
					# OUTPUT drop a later piece, its reassembly would time out and
					# answer 30 s later, into another case.
					if r.random() < 0.5 or (f.get("send") and route(f["dst"]) == "lo"):
						f["frag"] = r.choice([1, 8, 185])
						f["mf"] = r.choice([0, 1])
					else:
						f["split"] = r.choice([64, 72, 480])
						f["len"] = max(f.get("len", 0), 64 + r.randrange(100))
						if r.random() < 0.3:
							f["reverse"] = 1
				pkts.append(self._clean(f))
			merged = list(case.packets)
			for p in pkts:
				merged.insert(r.randint(0, len(merged)), p)
			if case.bed == "host":
				# No lone first fragment: the host would answer it 30 s later.
				merged = [p.copy(mf=None) if p.get("frag") == 0 and p.get("mf") and not p.split else p
					  for p in merged]
			case.packets = merged
		finally:
			self.r = main
			self.hook = "INPUT"

	def _clean(self, f):
		send = f.get("send")
		if send in ("udp", "tcp") and f["proto"] != send:
			f["send"] = send = "raw"
		if send in ("udp", "tcp"):
			for key in ("flags", "tcpopt", "doff", "frag", "mf", "df", "trunc", "split", "reverse"):
				f.pop(key, None)
			if not f.get("sport"):
				f["sport"] = 1
		if send == "rawip":
			for key in ("frag", "mf", "df", "split", "reverse"):
				f.pop(key, None)
		if f.get("split"):
			f.pop("frag", None)
			f.pop("mf", None)
		if f["proto"] not in ("tcp", "udp", 33, 132, 136):
			f.pop("sport", None)
			f.pop("dport", None)
		if f["proto"] != "tcp":
			for key in ("flags", "tcpopt", "doff"):
				f.pop(key, None)
		if f["proto"] != "icmp":
			f.pop("type", None)
			f.pop("code", None)
		if f.get("frag") == 0:
			f.pop("frag")
		if not f.get("mf"):
			f.pop("mf", None)
		if not f.get("tcpopt"):
			f.pop("tcpopt", None)
		f.pop("odev", None)
		return Packet(**f)

	def large_ruleset(self):
		"""Hundreds of similar rules, as block lists and port lists grow: where a translator
		that classifies (hash and LPM maps, decision trees) rather than walks must agree
		with the walk, including which rule counts when several overlap."""
		r = self.r
		chains = ["blocklist", "services"]
		rules = [Rule("INPUT", [], ("jump", "blocklist")),
			 Rule("INPUT", [Group("proto", False, proto="tcp")], ("jump", "services")),
			 Rule("INPUT", [Group("proto", False, proto="udp")], ("jump", "services"))]
		rules += [Rule("INPUT", self._groups("INPUT"), r.choice([("ACCEPT",), ("DROP",), ()]))
			  for _ in range(r.randint(0, 4))]
		# Now and then past 4000 rules: where a code generator changes strategy for size.
		for _ in range(r.randint(100, 1200) if r.random() < 0.8 else r.randint(4000, 6000)):
			plen = r.choice([32] * 6 + [24, 16, 28, 31, 8])
			mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
			groups = [Group("src", r.random() < 0.02, net=self._src_addr() & mask, mask=mask)]
			if r.random() < 0.1:
				groups += [g for g in self._groups("blocklist") if g.kind != "src"]
			target = r.choice([("DROP",)] * 8 + [("ACCEPT",), ("RETURN",), ()])
			rules.append(Rule("blocklist", groups, target))
		rules.append(Rule("blocklist", [], ("RETURN",)))
		# Half the time one service list: every rule -p with --dport (mostly one port, few
		# ranges) and the same -s prefix length or none, which a classifier makes one hash
		# lookup (tuple set); the inverted --dport and other ranges still end its runs.
		rs = self.rs
		uniform = rs.random() < 0.5
		ulen = rs.choice([None, 32, 32, 24, 16])
		for _ in range(r.randint(20, 400)):
			proto = r.choice(["tcp", "udp"])
			lo, hi = self._ports()
			if uniform and rs.random() < 0.8:
				hi = lo if rs.random() < 0.8 else min(65535, lo + rs.randint(1, 7))
			groups = [Group("proto", False, proto=proto), Group("dport", r.random() < 0.03, lo=lo, hi=hi)]
			if r.random() < 0.2:
				mask = self._mask()
				net = self._src_addr() & mask
				if not uniform:
					groups.append(Group("src", False, net=net, mask=mask))
			if uniform and ulen is not None:
				mask = (0xFFFFFFFF << (32 - ulen)) & 0xFFFFFFFF
				base = _n(rs.choice(SRC_BASES))
				net = (base + rs.choice([0, 1, 2, rs.randint(0, 255)])) & mask
				groups.append(Group("src", False, net=net, mask=mask))
			if r.random() < 0.1:
				name = r.choice(IFACES)
				if not uniform:
					groups.append(Group("in", False, name=name))
			rules.append(Rule("services", groups, r.choice([("ACCEPT",)] * 6 + [("DROP",), ("RETURN",), ()])))
		return r.choice(["ACCEPT", "DROP"]), chains, rules

	def case(self):
		large = self.r.random() < self.large
		if large:
			policy, chains, rules = self.large_ruleset()
			count = 150
		else:
			policy, chains, rules = self.ruleset()
			count = min(80, 10 + 2 * len(rules))
		case = Case(policy, chains, rules, self.packets(rules, count), self.seed)
		hooked = self.rh.random() < self.hooks or "input" not in self.beds
		if not large and hooked and ("router" in self.beds or "host" in self.beds):
			self.add_hooks(case)
			rules = case.rules
		co = random.Random(f"{self.seed}-counters")
		if co.random() < 0.1:
			# Counters in the file: restored with -c, so both sides start from them
			# (SET_ADD_COUNTERS) and add the packets' counts on top.
			big = lambda: co.choice([0, 1, 7, 1 << 32, (1 << 63) - 5, co.randint(0, 1 << 40)])  # noqa: E731
			case.policy_counters = (big(), big())
			for rl in rules:
				if co.random() < 0.7:
					rl.counters = (big(), big())
		if not large and self.stateful and "host" in self.beds and \
				random.Random(f"{self.seed}-stateful-pick").random() < self.stateful:
			from .stateful import make_stateful  # it builds on this module
			make_stateful(self, case)
		if any(g.kind == "u32" for rl in case.rules for g in rl.groups):
			# Datagrams sent in pieces are sent whole: a hook that judges one reassembled
			# reads its bytes in netfilter, not in bpfilter (supported.md, u32).
			case.packets = [p.copy(split=None, reverse=None) if isinstance(p, Packet) and p.split else p
					for p in case.packets]
		return case


def _iface_match(name, dev):
	if name.endswith("+"):
		return dev.startswith(name[:-1])
	return dev == name


def _edges(net, mask, want, r):
	"""Addresses at the edges of net/mask: inside when want, just outside otherwise."""
	host = ~mask & 0xFFFFFFFF
	first, last = net, net | host
	if want:
		out = [first, last, net | (r.getrandbits(32) & host)]
	else:
		out = [first - 1, last + 1, r.getrandbits(32)]
		out = [a for a in out if (a & mask) != net]
	return [_ip(a) for a in out if 0 <= a <= 0xFFFFFFFF]


def _port_edge(lo, hi, want, r, cur):
	if want:
		return r.choice([lo, hi, r.randint(lo, hi)])
	outs = [p for p in (lo - 1, hi + 1) if 0 <= p <= 65535]
	return r.choice(outs) if outs else cur


# What inet_dev_addr_type() answers on the test beds (the filtered host's addresses).
BED_TYPES = {"10.0.0.1": ("LOCAL", "in0"), "10.1.0.1": ("LOCAL", "in1"),
	     "10.0.0.255": ("BROADCAST", "in0"), "10.1.0.255": ("BROADCAST", "in1")}


def _addr_type(a, d, f):
	n = _n(a)
	if n >> 24 == 0 or n == 0xFFFFFFFF:
		return "BROADCAST"
	if n >> 28 == 0xE:
		return "MULTICAST"
	dev = {"in": f.get("dev"), "out": f.get("odev")}.get(d.get("limit")) if d.get("limit") else None
	if a in BED_TYPES:
		t, owner = BED_TYPES[a]
	elif n >> 24 == 127:
		t, owner = "LOCAL", "lo"
	else:
		return "UNICAST"
	return t if dev is None or dev == owner else "UNICAST"


def _group_match(g, f):
	"""Our model of one match on packet fields f (for aiming only; netfilter is the oracle)."""
	d, k = g.data, g.kind
	proto = f["proto"]
	num = {"icmp": 1, "tcp": 6, "udp": 17}.get(proto, proto)
	if k in L4_KINDS and f.get("frag"):
		return False  # a non-first fragment: the match fails, inverted or not
	if k == "in":
		m = _iface_match(d["name"], f["dev"]) if "dev" in f else d["name"] == "+"
	elif k == "out":
		m = _iface_match(d["name"], f["odev"]) if "odev" in f else d["name"] == "+"
	elif k in ("src", "dst"):
		m = (_n(f[k]) & d["mask"]) == d["net"]
	elif k == "proto":
		p = d["proto"]
		m = p == "all" or {"icmp": 1, "tcp": 6, "udp": 17}.get(p, p) == num
	elif k == "frag":
		m = bool(f.get("frag"))
	elif k in ("sport", "dport"):
		m = d["lo"] <= f.get(k, {"sport": 12345, "dport": 80}[k]) <= d["hi"]
	elif k in ("flags", "syn"):
		mask = d["mask"] if k == "flags" else ["SYN", "RST", "ACK", "FIN"]
		comp = d["comp"] if k == "flags" else ["SYN"]
		cur = set(f.get("flags", "S"))
		m = all((TCP_FLAG_LETTERS[n] in cur) == (n in comp) for n in mask)
	elif k == "option":
		m = d["opt"] in [o[0] if isinstance(o, tuple) else o for o in f.get("tcpopt", ())]
	elif k == "icmp":
		t, c = f.get("type", 8), f.get("code", 0)
		m = d["type"] == 255 or (t == d["type"] and (d.get("code") is None or c == d["code"]))
	elif k == "multiport":
		sp, dp = f.get("sport", 12345), f.get("dport", 80)
		ports = {"sports": [sp], "dports": [dp], "ports": [sp, dp]}[d["dir"]]
		m = any(lo <= p <= hi for lo, hi in d["ports"] for p in ports)
	elif k in HEADER_KINDS:
		return _header_match(g, f)
	elif k == "u32":
		m = _u32_match(g, f)
	elif k == "srcrange":
		m = d["lo"] <= _n(f["src"]) <= d["hi"]
	elif k == "dstrange":
		m = d["lo"] <= _n(f["dst"]) <= d["hi"]
	elif k == "addrtype":
		# g.inv belongs to the last address tested (addrtype_mt_v1 tests each on its own).
		src_ok = (_addr_type(f["src"], d, f) in d["src"]) if d.get("src") else None
		dst_ok = (_addr_type(f["dst"], d, f) in d["dst"]) if d.get("dst") else None
		if dst_ok is None:
			return src_ok != g.inv
		return (src_ok is None or src_ok != bool(d.get("src_inv"))) and dst_ok != g.inv
	else:
		m = True
	return m != g.inv


HEADER_KINDS = ("length", "ttl", "tos", "dscp", "ecn", "pkttype", "mac", "esp", "ah")


def _tos_spec(spec):
	names = {"Minimize-Delay": (0x10, 0x3F), "Maximize-Throughput": (0x08, 0x3F),
		 "Maximize-Reliability": (0x04, 0x3F), "Minimize-Cost": (0x02, 0x3F), "Normal-Service": (0, 0x3F)}
	if spec in names:
		return names[spec]
	v, _, m = spec.partition("/")
	return int(v, 0), int(m, 0) if m else 0xFF


def _header_match(g, f):
	"""Our model of the header matches on packet fields f (aiming only)."""
	d, k = g.data, g.kind
	tos, ttl = f.get("tos", 0), f.get("ttl", 64)
	if k == "length":
		try:
			n = Packet(**{x: v for x, v in f.items() if x in Packet.FIELDS}).ip_len()
		except Exception:
			return False
		m = d["lo"] <= n <= d["hi"]
	elif k == "ttl":
		m = {"eq": ttl == d["ttl"], "lt": ttl < d["ttl"], "gt": ttl > d["ttl"]}[d["op"]]
	elif k == "tos":
		v, mask = _tos_spec(d["spec"])
		m = (tos & mask) == v
	elif k == "dscp":
		m = tos >> 2 == d["dscp"]
	elif k == "ecn":
		flags = set(f.get("flags", "S"))
		for opt, oinv in d["tests"]:
			ok = (tos & 3) == d["ect"] if opt == "ip" else ({"ece": "E", "cwr": "C"}[opt] in flags)
			if ok == oinv:
				return False
		return True
	elif k == "pkttype":
		n = _n(f["dst"])
		t = "multicast" if n >> 28 == 0xE else "unicast"
		m = t == d["type"]
	elif k == "mac":
		m = PEER_MAC.get(f.get("dev")) == d["mac"] and not f.get("send")
	else:  # esp, ah: the SPI from sport and dport (packets.py)
		if f.get("frag"):
			return False
		spi = f.get("sport", 12345) << 16 | f.get("dport", 80)
		m = d["lo"] <= spi <= d["hi"]
	return m != g.inv


def hook_of(f, forwarding=False):
	"""The built-in chain that judges packet fields f first (None: none does)."""
	if f.get("send"):
		return "OUTPUT"
	if f["dst"] in ALL_LOCAL_DST:
		return None if f.get("frag") or f.get("mf") else "INPUT"
	if forwarding and forwardable(f["dst"]) and f.get("ttl", 64) > 1:
		return "FORWARD"
	return None


def simulate(rules, f, with_stop=False, forwarding=False):
	"""Indices of the rules whose counters the packet f would bump (our model of ipt_do_table);
	with_stop, also the rule that ended the walk early (a verdict, goto or RETURN), or None."""
	hit, stop = _walk(rules, f, hook_of(f, forwarding))
	return (hit, stop) if with_stop else hit


def _walk(rules, f, hook="INPUT"):
	hit = set()
	stop = None
	if hook is None:
		return hit, stop
	if hook != "INPUT":
		f = dict(f, odev=route(f["dst"]))
		if hook == "OUTPUT":
			f.pop("dev", None)
	starts = {}
	for i, rl in enumerate(rules):
		starts.setdefault(rl.chain, i)
	stack = []
	i = starts.get(hook, len(rules))
	chain = hook
	for _ in range(10000):
		if i >= len(rules) or rules[i].chain != chain:
			if not stack:
				return hit, stop
			i, chain = stack.pop()
			continue
		rl = rules[i]
		if not all(_group_match(g, f) for g in rl.groups):
			i += 1
			continue
		hit.add(i)
		t = rl.target
		if t and t[0] in ("ACCEPT", "DROP", "RETURN", "goto", "REJECT"):
			stop = i
		if t and t[0] in ("ACCEPT", "DROP", "REJECT"):
			return hit, stop
		if t and t[0] == "RETURN":
			if not stack:
				return hit, stop
			i, chain = stack.pop()
		elif t and t[0] in ("jump", "goto"):
			if t[0] == "jump":
				stack.append((i + 1, chain))
			chain = t[1]
			i = starts.get(chain, len(rules))
		else:
			i += 1
	return hit, stop
