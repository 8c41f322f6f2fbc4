# The test bed: two filtered namespaces (netfilter, bpfilter) with their peers, loading, sending, observing, counting.
#
# Each side is three network namespaces: the filtered host F with in0 (10.0.0.1/24) and
# in1 (10.1.0.1/24), and one peer namespace per interface (10.0.0.2, 10.1.0.2) at the
# other end of a veth pair. Peers send with raw IP_HDRINCL sockets; F observes with one
# raw IP socket per protocol, which gets a copy of every datagram that ip_local_deliver
# passed through the INPUT hook. Sockets are opened in their namespace with setns() and
# keep working from this process afterwards, so a case costs no process start-ups
# besides iptables itself.
import ctypes
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

CLONE_NEWNET = 0x40000000
SO_RCVBUFFORCE = 33
# Sides. The first is always real netfilter; the second bpfilter, or netfilter again
# for the harness's own check.
NETFILTER = "netfilter"
BPFILTER = "bpfilter"

_libc = ctypes.CDLL(None, use_errno=True)


class HarnessError(RuntimeError):
	pass


def _setns(fd):
	if _libc.setns(fd, CLONE_NEWNET) != 0:
		err = ctypes.get_errno()
		raise OSError(err, f"setns: {os.strerror(err)}")


def _run(args, ns=None, check=True, input=None, env=None):
	"""Run a command, in namespace `ns` when given; returns the CompletedProcess."""
	if ns is None:
		res = subprocess.run(args, input=input, capture_output=True, text=True, env=env)
	else:
		with _InNetns(ns):
			res = subprocess.run(args, input=input, capture_output=True, text=True, env=env)
	if check and res.returncode != 0:
		raise HarnessError(f"{' '.join(args)} (netns {ns}): exit {res.returncode}: {res.stderr.strip()}")
	return res


class _InNetns:
	"""Context manager: this thread runs in namespace `ns` until the block ends."""

	def __init__(self, ns):
		self.ns = ns

	def __enter__(self):
		fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
		try:
			self.orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
			try:
				_setns(fd)
			except BaseException:
				os.close(self.orig)
				raise
		finally:
			os.close(fd)

	def __exit__(self, *exc):
		try:
			_setns(self.orig)
		finally:
			os.close(self.orig)


def has_counters(ruleset):
	"""Whether an iptables-save file carries counters (then it is restored with -c)."""
	for line in ruleset.splitlines():
		m = re.match(r"(?:\[(\d+):(\d+)\] -A |:\S+ \S+ \[(\d+):(\d+)\])", line)
		if m and any(int(x) for x in m.groups() if x is not None):
			return True
	return False


def parse_save(text):
	"""iptables-save -c output of the filter table -> (chains, rules).

	chains: list of (name, policy or '-', packets, bytes) in file order;
	rules: list of (chain, index in chain from 1, rule text without counters, packets, bytes).
	"""
	chains, rules, per_chain = [], [], {}
	in_filter = False
	for line in text.splitlines():
		if line.startswith("*"):
			in_filter = line == "*filter"
			continue
		if not in_filter or not line or line.startswith("#") or line == "COMMIT":
			continue
		if line.startswith(":"):
			name, policy, counts = line[1:].split(" ", 2)
			p, b = counts.strip("[]").split(":")
			chains.append((name, policy, int(p), int(b)))
		elif line.startswith("["):
			counts, rest = line.split(" ", 1)
			p, b = counts.strip("[]").split(":")
			chain = rest.split()[1]
			per_chain[chain] = per_chain.get(chain, 0) + 1
			rules.append((chain, per_chain[chain], rest, int(p), int(b)))
		else:
			raise HarnessError(f"unexpected iptables-save line: {line}")
	return chains, rules


class Side:
	"""One filtered namespace, its two peers, its observer sockets and, for bpfilter, its helper."""

	def __init__(self, kind, tag, workdir, root, xdp_mode, tests=None):
		self.kind = kind
		self.tag = tag
		self.workdir = workdir
		self.root = root
		self.xdp_mode = xdp_mode
		self.tests = tests
		self.ns = f"dt{os.getpid()}{tag}"
		self.peers = [f"{self.ns}p0", f"{self.ns}p1"]
		self.senders = []
		self.observers = {}
		self.umh = None
		self.env = dict(os.environ, XTABLES_LOCKFILE=os.path.join(workdir, f"{tag}.xtables.lock"))
		self.socket_path = os.path.join(workdir, f"{tag}.sock")

	def all_ns(self):
		return [self.ns] + self.peers

	def setup(self):
		for ns in self.all_ns():
			_run(["ip", "netns", "add", ns])
		for ns in self.all_ns():
			# No IPv6 anywhere: its neighbour discovery would be stray traffic on the wires.
			self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 1)
			self._sysctl(ns, "net.ipv6.conf.default.disable_ipv6", 1)
			_run(["ip", "-n", ns, "link", "set", "lo", "up"])
		for i in (0, 1):
			_run(["ip", "link", "add", f"in{i}", "netns", self.ns, "address", f"02:df:00:00:0{i}:01",
			      "type", "veth", "peer", "name", f"p{i}", "netns", self.peers[i],
			      "address", f"02:df:00:00:0{i}:02"])
		batch = []
		for key in ("all", "default", "in0", "in1"):
			self._sysctl(self.ns, f"net.ipv4.conf.{key}.rp_filter", 0)
		self._sysctl(self.ns, "net.ipv4.ip_forward", 0)
		for i in (0, 1):
			batch += [f"addr add 10.{i}.0.1/24 dev in{i}", f"link set in{i} up"]
		# The filtered host sends nothing: every reply it would make (TCP resets, ICMP
		# errors, echo replies) fails its route lookup, so OUTPUT stays untouched and the
		# peers never see traffic they did not send. Input routing is unchanged: local
		# table, connected routes, a default route, forwarding off.
		batch += ["route add default via 10.0.0.2 dev in0", "rule add pref 10 iif lo prohibit"]
		self._batch(self.ns, batch)
		for i in (0, 1):
			# The peer has a /32 and a default route through the filtered host, and knows
			# its MAC address, so every datagram goes out on the wire whatever its
			# destination (no ARP, no on-link guessing).
			self._batch(self.peers[i], [
				f"addr add 10.{i}.0.2/32 dev p{i}",
				f"link set p{i} up",
				f"route add 10.{i}.0.1/32 dev p{i}",
				f"route add default via 10.{i}.0.1 dev p{i}",
				f"neigh replace 10.{i}.0.1 lladdr 02:df:00:00:0{i}:01 dev p{i} nud permanent",
			])
		for i in (0, 1):
			with _InNetns(self.peers[i]):
				s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
			s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, f"p{i}".encode())
			s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
			self.senders.append(s)
		if self.kind == BPFILTER:
			self._start_umh()

	def _start_umh(self):
		umh = os.path.join(self.root, os.environ.get("BUILD", "build"), "bpfilter_umh")
		preload = os.path.join(self.root, os.environ.get("BUILD", "build"), "libbpfilter_preload.so")
		for path in (umh, preload):
			if not os.access(path, os.R_OK):
				raise HarnessError(f"{path} not found: run make first")
		args = [umh, "--listen", self.socket_path]
		if self.xdp_mode:
			args += ["--xdp-mode", self.xdp_mode]
		if self.tests:
			args += ["--tests", self.tests]
		self.umh_log_path = os.path.join(self.workdir, f"{self.tag}.umh.log")
		log = open(self.umh_log_path, "w")
		try:
			# A child starts in the namespace of the thread that forks it: no preexec_fn,
			# which would cost a full fork() instead of a vfork().
			with _InNetns(self.ns):
				self.umh = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
		finally:
			log.close()
		deadline = time.monotonic() + 10
		while time.monotonic() < deadline:
			if self.umh.poll() is not None:
				raise HarnessError(f"bpfilter_umh exited with {self.umh.returncode}: {self.umh_log()}")
			if os.path.exists(self.socket_path):
				return
			time.sleep(0.02)
		raise HarnessError(f"bpfilter_umh did not create {self.socket_path} in 10 s")

	def umh_log(self, tail=2000):
		try:
			with open(self.umh_log_path) as f:
				return f.read()[-tail:]
		except OSError:
			return ""

	def _sysctl(self, ns, key, value):
		# Written through /proc from inside the namespace, as sysctl(8) would.
		with _InNetns(ns):
			with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
				f.write(str(value))

	def _batch(self, ns, cmds):
		_run(["ip", "-n", ns, "-batch", "-"], input="\n".join(cmds) + "\n")

	def ipt_env(self):
		if self.kind != BPFILTER:
			return self.env
		preload = os.path.join(self.root, os.environ.get("BUILD", "build"), "libbpfilter_preload.so")
		return dict(self.env, LD_PRELOAD=preload, BPFILTER_SOCKET=self.socket_path)

	def restore_cmd(self, ruleset):
		"""A started iptables-legacy-restore of `ruleset` (text); finish it with wait_cmd."""
		with _InNetns(self.ns):
			proc = subprocess.Popen(["iptables-legacy-restore", "-w", "20"] + (["-c"] if has_counters(ruleset) else []),
						stdin=subprocess.PIPE,
						stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
						env=self.ipt_env())
		proc.ruleset = ruleset
		return proc

	def save_cmd(self):
		with _InNetns(self.ns):
			proc = subprocess.Popen(["iptables-legacy-save", "-c", "-t", "filter"], stdin=subprocess.DEVNULL,
						stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
						env=self.ipt_env())
		proc.ruleset = None
		return proc

	def observe(self, protos):
		"""Open (once) an observer socket for each protocol number in `protos`."""
		for proto in protos:
			if proto in self.observers:
				continue
			with _InNetns(self.ns):
				s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
			s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
			s.setblocking(False)
			self.observers[proto] = s

	def drain(self):
		"""Every datagram the observers hold: a set of (proto, src, dst, ip id)."""
		seen = set()
		for proto, s in self.observers.items():
			while True:
				try:
					data = s.recv(65535)
				except BlockingIOError:
					break
				if len(data) < 20:
					continue
				ident, = struct.unpack("!H", data[4:6])
				seen.add((data[9], socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20]), ident))
		return seen

	def send(self, dev_index, datagram, dst):
		self.senders[dev_index].sendto(datagram, (dst, 0))

	def alive(self):
		return self.umh is None or self.umh.poll() is None

	def teardown(self):
		for s in self.senders + list(self.observers.values()):
			s.close()
		self.senders, self.observers = [], {}
		if self.umh is not None and self.umh.poll() is None:
			self.umh.send_signal(signal.SIGTERM)
			try:
				self.umh.wait(5)
			except subprocess.TimeoutExpired:
				self.umh.kill()
				self.umh.wait()
		for ns in self.all_ns():
			_run(["ip", "netns", "del", ns], check=False)


def wait_cmds(procs, timeout=60):
	"""Feed and finish started commands together; returns [(returncode, stdout, stderr)]."""
	out = []
	for proc in procs:
		try:
			stdout, stderr = proc.communicate(proc.ruleset, timeout=timeout)
		except subprocess.TimeoutExpired:
			proc.kill()
			stdout, stderr = proc.communicate()
			stderr += f"\n(timed out after {timeout} s)"
		out.append((proc.returncode, stdout, stderr))
	return out


class Bed:
	"""Both sides, set up once and reused for every case of a run."""

	def __init__(self, root, second=BPFILTER, xdp_mode=None, settle=0.05, gap=0.0, keep=False, perturb=False,
		     tests=None):
		self.perturb = perturb
		self.verified = False
		self.workdir = tempfile.mkdtemp(prefix="difftest.")
		self.sides = [Side(NETFILTER, "a", self.workdir, root, None),
			      Side(second, "b", self.workdir, root, xdp_mode, tests)]
		self.settle = settle
		self.gap = gap
		self.keep = keep
		self.ident = 0

	def names(self):
		return [s.kind if i == 0 or s.kind != NETFILTER else "netfilter-2" for i, s in enumerate(self.sides)]

	def __enter__(self):
		try:
			for side in self.sides:
				side.setup()
		except BaseException:
			self.close()
			raise
		return self

	def __exit__(self, *exc):
		self.close()

	def close(self):
		for side in self.sides:
			side.teardown()
		if not self.keep:
			for name in os.listdir(self.workdir):
				os.unlink(os.path.join(self.workdir, name))
			os.rmdir(self.workdir)

	def load(self, ruleset):
		"""Restore `ruleset` on both sides at once: [(ok, message)] per side."""
		second = perturb(ruleset) if self.perturb else ruleset
		procs = [self.sides[0].restore_cmd(ruleset), self.sides[1].restore_cmd(second)]
		res = wait_cmds(procs)
		out = [(rc == 0, (err or out).strip()) for rc, out, err in res]
		if not self.verified and out[1][0] and "\n-A " in "\n" + ruleset:
			self._verify_served()
		return out

	def _verify_served(self):
		"""Once a run: the bpfilter side's rules must not have landed in that namespace's own
		netfilter (a preload that did not take would make this netfilter against netfilter)."""
		side = self.sides[1]
		self.verified = True
		if side.kind != BPFILTER:
			return
		res = _run(["iptables-legacy-save", "-c", "-t", "filter"], ns=side.ns, env=side.env)
		_, rules = parse_save(res.stdout)
		if rules:
			raise HarnessError("the bpfilter side's rules went into the kernel's own netfilter: "
					   "libbpfilter_preload.so did not take effect")

	def save(self):
		procs = [side.save_cmd() for side in self.sides]
		res = wait_cmds(procs)
		out = []
		for side, (rc, stdout, stderr) in zip(self.sides, res):
			if rc != 0:
				raise HarnessError(f"iptables-legacy-save on the {side.kind} side: exit {rc}: {stderr.strip()}")
			out.append(parse_save(stdout))
		return out

	def send(self, pkts):
		"""Send every packet on both sides; returns per packet [delivered on side a, on side b]."""
		protos = sorted({p.proto_num for p in pkts})
		for side in self.sides:
			side.observe(protos)
			side.drain()
		keys = []
		for n, pkt in enumerate(pkts):
			self.ident = self.ident % 65535 + 1
			pieces = pkt.pieces(self.ident)
			keys.append((pkt.proto_num, pkt.src, pkt.dst, self.ident))
			dev = 0 if pkt.dev == "in0" else 1
			for side in self.sides:
				for datagram in pieces:
					side.send(dev, datagram, pkt.dst)
			if self.gap:
				time.sleep(self.gap)
		time.sleep(self.settle)
		seen = [side.drain() for side in self.sides]
		return [[key in s for s in seen] for key in keys]


def perturb(ruleset):
	"""The ruleset with INPUT's policy flipped and its first rule's ACCEPT/DROP swapped: the
	harness's own negative test (a run with it must find differences)."""
	out, swapped = [], False
	for line in ruleset.splitlines():
		if line.startswith(":INPUT "):
			line = line.replace("ACCEPT", "DROP") if "ACCEPT" in line else line.replace("DROP", "ACCEPT")
		elif line.startswith("-A ") and not swapped and (line.endswith("-j ACCEPT") or line.endswith("-j DROP")):
			line = line[: -len("ACCEPT")] + "DROP" if line.endswith("ACCEPT") else line[: -len("DROP")] + "ACCEPT"
			swapped = True
		out.append(line)
	return "\n".join(out) + "\n"
