# The test bed: two filtered namespaces (netfilter, bpfilter) with their peers, loading, sending, observing, counting.
#
# Each side is three network namespaces: the filtered host F with in0 (10.0.0.1/24) and
# in1 (10.1.0.1/24), and one peer namespace per interface (10.0.0.2, 10.1.0.2) at the
# other end of a veth pair. Peers send with raw IP_HDRINCL sockets; F observes with one
# raw IP socket per protocol, which gets a copy of every datagram that ip_local_deliver
# passed through the INPUT hook. Sockets are opened in their namespace with setns() and
# keep working from this process afterwards, so a case costs no process start-ups
# besides iptables itself.
#
# That is the input bed. The router bed turns forwarding on (F still silent) and the host
# bed lets F speak too (replies, its own raw/UDP/TCP traffic, loopback); in both, the
# peers capture what reaches them with AF_PACKET sockets and never answer. Each bed has
# its own namespaces, made on first use (tests/difftest/README.md, "The test beds").
import ctypes
import errno
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

from . import flows

CLONE_NEWNET = 0x40000000
SO_RCVBUFFORCE = 33
SO_MARK = 36
SO_ATTACH_FILTER = 26
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IP_FREEBIND = 15
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


_SYS_SETGROUPS, _SYS_SETFSUID, _SYS_SETFSGID = 116, 122, 123  # x86_64


class _AsUser:
	"""Context manager: sockets this thread makes in the block get these file credentials
	(f_cred: fsuid, fsgid, supplementary groups), which -m owner reads. setfsuid(2),
	setfsgid(2) and setgroups(2) as raw system calls change this thread alone (glibc's
	setgroups() would change every thread); the capabilities a raw socket needs stay."""

	def __init__(self, pkt):
		self.uid, self.gid = pkt.uid, pkt.gid
		self.groups = None
		if pkt.groups is not None:
			self.groups = [] if pkt.groups == "none" else [int(g) for g in pkt.groups.split(",")]
		self.active = self.uid is not None or self.gid is not None or self.groups is not None

	@staticmethod
	def _groups(gids):
		arr = (ctypes.c_uint32 * max(len(gids), 1))(*gids)
		if _libc.syscall(_SYS_SETGROUPS, len(gids), arr) != 0:
			raise OSError(ctypes.get_errno(), "setgroups")

	def __enter__(self):
		if not self.active:
			return self
		self.saved = os.getgroups()
		if self.groups is not None:
			self._groups(self.groups)
		if self.gid is not None:
			_libc.syscall(_SYS_SETFSGID, self.gid)
		if self.uid is not None:
			_libc.syscall(_SYS_SETFSUID, self.uid)
		return self

	def __exit__(self, *exc):
		if not self.active:
			return
		_libc.syscall(_SYS_SETFSUID, 0)
		_libc.syscall(_SYS_SETFSGID, 0)
		self._groups(self.saved)


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

	def __init__(self, kind, tag, workdir, root, xdp_mode, tests=None, bed="input"):
		self.kind = kind
		self.bed = bed
		self.tag = tag
		self.workdir = workdir
		self.root = root
		self.xdp_mode = xdp_mode
		self.tests = tests
		self.ns = f"dt{os.getpid()}{tag}"
		self.peers = [f"{self.ns}p0", f"{self.ns}p1"]
		self.senders = []
		self.observers = {}
		self.captures = []  # router and host beds: every IPv4 frame each peer receives
		self.raw_out = None  # host bed: the host's own IP_HDRINCL socket
		self.rawip_out = {}  # host bed: the host's raw sockets by protocol (kernel-made IP header)
		self.umh = None
		self.own_isns = []  # ISNs of the host's send=tcp sockets, for flows.FlowRun
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
		forward = self.bed != "input"
		self._sysctl(self.ns, "net.ipv4.ip_forward", int(forward))
		for i in (0, 1):
			batch += [f"addr add 10.{i}.0.1/24 dev in{i}", f"link set in{i} up"]
		batch += ["route add default via 10.0.0.2 dev in0"]
		if forward:
			for key in ("all", "default", "in0", "in1"):
				self._sysctl(self.ns, f"net.ipv4.conf.{key}.forwarding", 1)
				# A datagram routed back out of its own device would make the host
				# send an ICMP redirect, rate limited on a clock of its own.
				self._sysctl(self.ns, f"net.ipv4.conf.{key}.send_redirects", 0)
			# Forwarding never waits for ARP: the peers are permanent neighbours, and
			# any other on-link address goes to the broadcast MAC (no ARP on in0, in1),
			# so no datagram sits in a neighbour queue and no "host unreachable" comes
			# seconds later. 172.31.0.0/16 lies beyond p1, everything else beyond p0.
			for i in (0, 1):
				batch += [f"link set in{i} arp off",
					  f"neigh replace 10.{i}.0.2 lladdr 02:df:00:00:0{i}:02 dev in{i} nud permanent"]
			batch += ["route add 172.31.0.0/16 via 10.1.0.2 dev in1"]
		if self.bed != "host":
			# The filtered host sends nothing: every reply it would make (TCP resets, ICMP
			# errors, echo replies) fails its route lookup, so OUTPUT stays untouched and the
			# peers never see traffic they did not send. Input routing is unchanged: local
			# table, connected routes, a default route, forwarding off (input bed) or on
			# (router bed). Last: a gateway route's check is itself a lookup from lo.
			batch += ["rule add pref 10 iif lo prohibit"]
		if self.bed == "host":
			# Flows (tests/difftest/README.md): no TCP timestamps (random offsets in
			# every segment and quote), and below, routes that ACK at once (no delayed
			# ACK) and never retransmit within a case (rto_min 5 s).
			self._sysctl(self.ns, "net.ipv4.tcp_timestamps", 0)
			# A SYN-ACK nobody acknowledges is never sent again (the listener's
			# request expires at its first timeout, 1 s). A SYN is (after 1 s, which
			# nothing short of a sockops program changes): a case must end within 1 s
			# of its host's connect, and its sockets are then closed in silence.
			self._sysctl(self.ns, "net.ipv4.tcp_synack_retries", 0)
			# Every reply counts, however many a case asks for in a burst.
			self._sysctl(self.ns, "net.ipv4.icmp_ratelimit", 0)
			self._sysctl(self.ns, "net.ipv4.icmp_ratemask", 0)
			self._sysctl(self.ns, "net.ipv4.icmp_msgs_per_sec", 1000000)
			self._sysctl(self.ns, "net.ipv4.icmp_msgs_burst", 1000000)
		self._batch(self.ns, batch)
		if self.bed == "host":
			self._batch(self.ns, [
				f"route replace 10.{i}.0.0/24 dev in{i} proto kernel scope link src 10.{i}.0.1 quickack 1 rto_min 5s"
				for i in (0, 1)] + ["route replace default via 10.0.0.2 dev in0 quickack 1 rto_min 5s",
						    "route replace 172.31.0.0/16 via 10.1.0.2 dev in1 quickack 1 rto_min 5s"])
		for i in (0, 1):
			# The peer has a /32 and a default route through the filtered host, and knows
			# its MAC address, so every datagram goes out on the wire whatever its
			# destination (no ARP, no on-link guessing).
			cmds = [
				f"addr add 10.{i}.0.2/32 dev p{i}",
				f"link set p{i} up",
				f"route add 10.{i}.0.1/32 dev p{i}",
				f"route add default via 10.{i}.0.1 dev p{i}",
				f"neigh replace 10.{i}.0.1 lladdr 02:df:00:00:0{i}:01 dev p{i} nud permanent",
			]
			if forward:
				# What the host forwards reaches the peers, and they must not answer
				# (a reset or an ICMP error would come back through the host): only
				# the harness's sender, marked 1, gets a route.
				cmds += ["rule add pref 9 fwmark 1 lookup main", "rule add pref 10 iif lo prohibit"]
			self._batch(self.peers[i], cmds)
		for i in (0, 1):
			with _InNetns(self.peers[i]):
				s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
			s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, f"p{i}".encode())
			s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
			if forward:
				s.setsockopt(socket.SOL_SOCKET, SO_MARK, 1)
			self.senders.append(s)
			if forward:
				with _InNetns(self.peers[i]):
					c = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
				c.bind((f"p{i}", ETH_P_IP))
				c.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
				c.setblocking(False)
				self.captures.append(c)
		if self.bed == "host":
			with _InNetns(self.ns):
				s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
			s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
			self.raw_out = s
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
		for data in self.drain_data():
			ident, = struct.unpack("!H", data[4:6])
			seen.add((data[9], socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20]), ident))
		return seen

	def drain_data(self):
		"""Every datagram the observers hold, as bytes (delivered locally, past INPUT)."""
		out = []
		for proto, s in self.observers.items():
			out += _drain(s)
		return out

	def drain_captures(self):
		"""Per peer, every IPv4 datagram it received since the last call."""
		return [_drain(c, skip_outgoing=True) for c in self.captures]

	def send(self, dev_index, datagram, dst):
		self.senders[dev_index].sendto(datagram, (dst, 0))

	def send_own(self, pkt, ident, numbers=None, quoted=None):
		"""The filtered host sends pkt itself (send=raw, rawip, udp, tcp). A send that
		OUTPUT refuses (EPERM) or routing cannot place is part of the case: the observers
		tell what left."""
		how = pkt.sender
		if self.raw_out is None:
			raise HarnessError(f"send={how} needs bed=host: {pkt}")
		try:
			if how == "raw":
				# Every piece is sent even when OUTPUT refuses one: netfilter tells the
				# sender (EPERM) and bpfilter, dropping at the device, does not
				# (Documentation/supported.md), and what is compared is what each
				# filter does with each piece. The first refusal is the send's answer.
				refused = 0
				for datagram in pkt.pieces(ident, mark=True, numbers=numbers, quoted=quoted):
					try:
						self.raw_out.sendto(datagram, (pkt.dst, 0))
					except OSError as e:
						if e.errno != errno.EPERM:
							raise
						refused = refused or e.errno
				if refused:
					return refused
			elif how == "rawip":
				creds = _AsUser(pkt)
				s = None if creds.active else self.rawip_out.get(pkt.proto_num)
				if s is None:
					with _InNetns(self.ns), creds:
						s = socket.socket(socket.AF_INET, socket.SOCK_RAW, pkt.proto_num)
					# A sending socket only: it must not queue what arrives.
					s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _DROP_ALL.prog)
					s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
					s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
					if not creds.active:  # a socket of its own is closed after the send
						self.rawip_out[pkt.proto_num] = s
				s.setsockopt(socket.SOL_IP, socket.IP_TTL, pkt.get("ttl"))
				s.setsockopt(socket.SOL_IP, socket.IP_TOS, pkt.get("tos"))
				s.setsockopt(socket.SOL_SOCKET, SO_MARK, struct.pack("I", pkt.somark or 0))
				# IP_HDRINCL off: bind() picks the source the header gets.
				s.bind((pkt.src, 0))
				l4 = pkt.l4(ident)
				if pkt.trunc is not None:
					l4 = l4[: pkt.trunc]
				try:
					s.sendto(l4, (pkt.dst, 0))
				finally:
					if creds.active:
						s.close()
			else:
				kind = socket.SOCK_DGRAM if how == "udp" else socket.SOCK_STREAM
				with _InNetns(self.ns), _AsUser(pkt):
					s = socket.socket(socket.AF_INET, kind, 0)
				try:
					s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
					s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
					s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
					s.setsockopt(socket.SOL_IP, socket.IP_TTL, pkt.get("ttl"))
					s.setsockopt(socket.SOL_IP, socket.IP_TOS, pkt.get("tos"))
					if pkt.somark:
						# A u32: above 2^31 as bytes.
						s.setsockopt(socket.SOL_SOCKET, SO_MARK, struct.pack("I", pkt.somark))
					s.bind((pkt.src, pkt.get("sport")))
					if how == "udp":
						s.sendto(pkt._payload(), (pkt.dst, pkt.get("dport")))
					else:
						# One SYN: closed in SYN_SENT, the socket sends nothing more
						# (no retransmission, no reset).
						s.setblocking(False)
						s.connect_ex((pkt.dst, pkt.get("dport")))
						# Replies carry its random ISN: the comparison needs it.
						self.own_isns.append(((pkt.src, pkt.get("sport"), pkt.dst, pkt.get("dport")),
								      flows.socket_isn(s)))
				finally:
					s.close()
		except OSError as e:
			return e.errno
		return 0

	def alive(self):
		return self.umh is None or self.umh.poll() is None

	def teardown(self):
		for s in self.senders + list(self.observers.values()) + self.captures + list(self.rawip_out.values()):
			s.close()
		if self.raw_out is not None:
			self.raw_out.close()
		self.senders, self.observers, self.captures, self.rawip_out, self.raw_out = [], {}, [], {}, None
		if self.umh is not None and self.umh.poll() is None:
			self.umh.send_signal(signal.SIGTERM)
			try:
				self.umh.wait(5)
			except subprocess.TimeoutExpired:
				self.umh.kill()
				self.umh.wait()
		for ns in self.all_ns():
			_run(["ip", "netns", "del", ns], check=False)


def _drain(s, skip_outgoing=False):
	out = []
	while True:
		try:
			data, addr = s.recvfrom(65535)
		except BlockingIOError:
			return out
		if skip_outgoing and addr[2] == PACKET_OUTGOING:
			continue
		if len(data) >= 20:
			out.append(data)


class _Filter:
	"""A classic BPF socket filter program as setsockopt wants it (struct sock_fprog)."""

	def __init__(self, insns):
		self.buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
		self.prog = struct.pack("HL", len(insns), ctypes.addressof(self.buf))


_DROP_ALL = _Filter([(0x06, 0, 0, 0)])  # ret #0


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
	"""Both sides, set up once per bed kind (input, router, host) and reused for every case
	of that kind in a run; the router and host sets are made when a case first needs them."""

	def __init__(self, root, second=BPFILTER, xdp_mode=None, settle=0.05, gap=0.0, keep=False, perturb=False,
		     tests=None):
		self.perturb = perturb
		self.verified = False
		self.workdir = tempfile.mkdtemp(prefix="difftest.")
		self.root, self.second, self.xdp_mode, self.tests = root, second, xdp_mode, tests
		self.sets = {}
		self.sides = []
		self.kind = None
		self.settle = settle
		self.gap = gap
		self.keep = keep
		self.ident = 0
		self.log_prefixes = set()  # set by use_log() for a ruleset with LOG rules
		self.log_settle = 0.15
		self.log_wait = 2.0  # the longest a side's LOG lines may keep the others waiting
		self.kmsg = None
		self.sysctls_changed = []  # (path, value before) for close()
		self.logs = None
		self.runs = []

	def names(self):
		return [NETFILTER, self.second if self.second != NETFILTER else "netfilter-2"]

	def __enter__(self):
		try:
			self.use("input")
		except BaseException:
			self.close()
			raise
		return self

	def __exit__(self, *exc):
		self.close()

	def use(self, kind):
		"""Make the sides of bed `kind` the current ones (set up on first use)."""
		if kind not in self.sets:
			prefix = {"input": "", "router": "r", "host": "h"}[kind]
			sides = [Side(NETFILTER, prefix + "a", self.workdir, self.root, None, bed=kind),
				 Side(self.second, prefix + "b", self.workdir, self.root, self.xdp_mode, self.tests, bed=kind)]
			self.sets[kind] = sides
			for side in sides:
				side.setup()
		self.sides = self.sets[kind]
		self.kind = kind

	def use_log(self, prefixes):
		"""Watch the kernel log for LOG lines with these prefixes during the next sends (an
		empty set: no LOG rules, the sides run together)."""
		self.log_prefixes = prefixes
		if prefixes and self.kmsg is None:
			# netfilter logs from a namespace other than the first only when told to; the
			# front door writes its lines to /dev/kmsg, which keeps 10 lines in 5 s unless
			# told otherwise (Documentation/supported.md, LOG). Both put back at close().
			for path, value in (("/proc/sys/net/netfilter/nf_log_all_netns", "1"),
					    ("/proc/sys/kernel/printk_devkmsg", "on")):
				with open(path) as f:
					old = f.read().strip()
				if old != value:
					# printk_devkmsg wants the newline (its parser counts it).
					with open(path, "w") as g:
						g.write(value + "\n")
					self.sysctls_changed.append((path, old))
			self.kmsg = flows.Kmsg()

	def close(self):
		if self.kmsg is not None:
			self.kmsg.close()
			self.kmsg = None
		for path, old in reversed(self.sysctls_changed):
			with open(path, "w") as g:
				g.write(old + "\n")
		self.sysctls_changed = []
		for sides in self.sets.values():
			for side in sides:
				side.teardown()
		self.sets = {}
		if not self.keep:
			for name in os.listdir(self.workdir):
				os.unlink(os.path.join(self.workdir, name))
			os.rmdir(self.workdir)

	def load(self, ruleset):
		"""Restore `ruleset` on both sides at once: [(ok, message)] per side."""
		second = perturb(ruleset, self.perturb) if self.perturb else ruleset
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
		"""Send every packet on both sides; returns per packet [what side a saw, what side b saw]:
		in the input bed, whether the host got it; in the others, an Observation."""
		if self.kind != "input":
			return self._send_observed(pkts)
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

	def _send_observed(self, pkts):
		# The host's observers take every protocol a packet or a reply may carry.
		protos = sorted({p.proto_num for p in pkts} | {1, 6, 17})
		for side in self.sides:
			side.observe(protos)
			side.drain_data()
			side.drain_captures()
			# No case inherits the connections of the one before.
			flows.flush_conntrack(side.ns)
		idents = []
		for pkt in pkts:
			self.ident = self.ident % 65535 + 1
			idents.append(self.ident)
		runs = [flows.FlowRun(side, pkts) for side in self.sides]
		self.logs = None
		if self.log_prefixes:
			# LOG lines carry no namespace: each side runs alone, its lines read from the
			# kernel log between marks.
			self.logs = []
			for run in runs:
				self.kmsg.mark()
				self._steps(pkts, idents, [run])
				want = len(self.logs[0]) if self.logs else None
				self.logs.append(self._log_lines(run, want))
		else:
			self._steps(pkts, idents, runs)
		self.runs = runs
		out = []
		for n, (pkt, ident) in enumerate(zip(pkts, idents)):
			out.append([Observation(pkt, ident, run.local, run.peers, run.errs[n], run.numbers.get(n), run.isns)
				    for run in runs])
		return out

	def _log_lines(self, run, want):
		"""The LOG lines of `run` since the mark. bpfilter's helper writes its lines a moment
		after the packets, one write(2) to /dev/kmsg each, and a write of a level below the
		console's loglevel returns only once the console printed it (a serial console: tens
		of ms a line; a run's lines can so come seconds after its last packet). So: read
		until no line came for log_settle s and, for the second side, until it has as many
		lines as the first (`want`), or none came for log_wait s."""
		records, lines = [], []
		last = time.monotonic()
		while True:
			time.sleep(0.03)
			new = self.kmsg.read()
			now = time.monotonic()
			if new:
				records += new
				fresh = flows.log_lines(records, self.log_prefixes, run.isns)
				if len(fresh) != len(lines):
					last = now
				lines = fresh
			quiet = now - last
			if quiet >= self.log_wait or (quiet >= self.log_settle and (want is None or len(lines) >= want)):
				return lines

	def _steps(self, pkts, idents, runs):
		"""Send every packet on the sides of `runs`, in order; after each step of a flow, wait
		for the kernel's answers so that the next step can acknowledge them."""
		for run in runs:
			run.errs = []
		for n, (pkt, ident) in enumerate(zip(pkts, idents)):
			for run in runs:
				run.errs.append(self._send_one(run, n, pkt, ident))
			if pkt.flow or pkt.quote or pkt.sender in flows.FLOW_SENDERS:
				flows.wait_quiet(runs)
			elif self.gap:
				time.sleep(self.gap)
		time.sleep(self.settle)
		for run in runs:
			run.pull()
			run.finish()

	def _send_one(self, run, n, pkt, ident):
		side = run.side
		numbers = quoted = None
		if pkt.sender in flows.FLOW_SENDERS:
			return run.host_step(pkt)
		if pkt.flow and pkt.proto_num == 6:
			numbers = run.numbers_for(n, pkt)
		if pkt.quote:
			quoted = run.quoted(pkt)
			if quoted is None:
				return "nothing of the flow to quote"
		if pkt.sender == "peer":
			dev = 0 if pkt.dev == "in0" else 1
			for datagram in pkt.pieces(ident, mark=True, numbers=numbers, quoted=quoted):
				side.send(dev, datagram, pkt.dst)
			return 0
		return side.send_own(pkt, ident, numbers, quoted)


class Dgram:
	"""The fields of a received IPv4 datagram that observations match on."""

	def __init__(self, data):
		ihl = (data[0] & 0xF) * 4
		self.proto = data[9]
		self.ident = struct.unpack("!H", data[4:6])[0]
		self.frag = struct.unpack("!H", data[6:8])[0] & 0x3FFF
		self.src = socket.inet_ntoa(data[12:16])
		self.dst = socket.inet_ntoa(data[16:20])
		self.l4 = data[ihl:] if not self.frag & 0x1FFF else b""
		self.data = data


def parse_dgram(data):
	return Dgram(data)


def _ports(l4):
	return struct.unpack("!HH", l4[:4]) if len(l4) >= 4 else None


class Observation:
	"""What one side saw of one packet in the router and host beds: how many copies the
	host delivered locally (past INPUT) and each peer received, and how many replies
	(ICMP errors quoting it, echo and timestamp replies, TCP resets) the host delivered to
	itself and each peer received, and those replies' bytes (IP ids, checksums and the
	kernel's ISNs aside: flows.normalize), so that a REJECT made in BPF must equal the
	kernel's to the byte. Copies are told apart by the IP id the harness chose,
	or where the kernel chose it (send=rawip, udp, tcp) by addresses, protocol and ports.
	A TCP packet of a flow has the numbers the harness computed (`numbers`: seq, ack,
	segment length): a reset answers it when it acknowledges the segment or takes its ack.
	The host's flow steps (send=connect, data, close, listen) have no copies of their own:
	the flow's transcript holds what crossed."""

	def __init__(self, pkt, ident, local, peers, err, numbers=None, isns=None):
		self.err = err
		self.step = pkt.sender in flows.FLOW_SENDERS
		chosen = pkt.sender in ("peer", "raw")  # the harness chose the IP id
		marked = chosen or pkt.sender == "rawip"  # ... or at least the TCP and echo numbers
		proto = pkt.proto_num
		if self.step:
			self.copies = self.replies = self.reply_bytes = ()
			return
		mine = _l4_prefix(pkt, ident)

		def is_copy(d):
			if d.proto != proto or d.src != pkt.src or d.dst != pkt.dst:
				return False
			if chosen:
				return d.ident == ident
			if pkt.sender in ("udp", "tcp"):
				return d.l4[:4] == mine[:4] and not d.frag & 0x1FFF
			return d.l4[:8] == mine[:8]

		def is_reply(d):
			if d.src != pkt.dst and d.proto != 1:
				return False
			if d.proto == 1 and len(d.l4) >= 8 + 20:
				t = d.l4[0]
				if t in (3, 4, 5, 11, 12):
					q = Dgram(d.l4[8:8 + 20] + d.l4[28:36])
					if q.proto != proto or q.src != pkt.src or q.dst != pkt.dst:
						return False
					if chosen:
						return q.ident == ident
					return d.l4[28:28 + (4 if pkt.sender in ("udp", "tcp") else 8)] == \
						mine[: 4 if pkt.sender in ("udp", "tcp") else 8]
			if d.dst != pkt.src or d.src != pkt.dst:
				return False
			if d.proto == 1 and proto == 1 and len(d.l4) >= 8 and marked:
				t, = d.l4[:1]
				icmp_id, seq = struct.unpack("!HH", d.l4[4:8])
				return t in (0, 14, 16, 18) and icmp_id == 0x1234 and seq == ident
			if d.proto == 6 and proto == 6 and len(d.l4) >= 14 and d.l4[13] & 0x04:
				sp, dp = _ports(d.l4)
				if (dp, sp) != (pkt.get("sport"), pkt.get("dport")):
					return False
				seq, ack = struct.unpack("!II", d.l4[4:12])
				if numbers is not None:
					# RFC 793 reset: seq = the segment's ack, or ack = its end.
					if "A" in pkt.get("flags"):
						return seq == numbers[1]
					return bool(d.l4[13] & 0x10) and ack == (numbers[0] + numbers[2]) & 0xFFFFFFFF
				if not marked:
					return True
				return seq >> 16 == ident or ack >> 16 == ident
			return False

		self.copies = (sum(map(is_copy, local)),) + tuple(sum(map(is_copy, cap)) for cap in peers)
		replies = [[d for d in where if is_reply(d)] for where in [local] + list(peers)]
		self.replies = tuple(map(len, replies))
		self.reply_bytes = tuple(tuple(sorted(flows.normalize(d.data, isns or {}, not chosen) for d in r))
					 for r in replies)

	def key(self):
		# The send's errno is shown, not compared: netfilter's OUTPUT refuses with EPERM,
		# bpfilter drops at the device where the sender cannot hear (supported.md).
		return (self.copies, self.replies, self.reply_bytes)

	def __eq__(self, other):
		return self.key() == other.key()

	def differs_only_in_bytes(self, other):
		return (self.copies, self.replies) == (other.copies, other.replies)

	def bytes_diff(self, other):
		"""Where the replies' bytes first differ, for the difference line."""
		for w, (a, b) in enumerate(zip(self.reply_bytes, other.reply_bytes)):
			for x, y in zip(a, b):
				if x != y:
					at = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
					return (f"reply at {('host', 'p0', 'p1')[w]} differs from byte {at} "
						f"(of {len(x)} / {len(y)}): {x[at:at + 16].hex()} / {y[at:at + 16].hex()}")
		return "replies differ"

	def __str__(self):
		if self.step:
			return "step done" if not self.err else f"step failed: {self.err if isinstance(self.err, str) else os.strerror(self.err)}"
		where = ("host", "p0", "p1")
		parts = [f"{w} {n}" for w, n in zip(where, self.copies) if n]
		text = ("got " + ", ".join(parts)) if parts else "got nowhere"
		reps = [f"{w} {n}" for w, n in zip(where, self.replies) if n]
		if reps:
			text += "; replies at " + ", ".join(reps)
		if self.err:
			text += f"; send: {self.err if isinstance(self.err, str) else os.strerror(self.err)}"
		return text


def _l4_prefix(pkt, ident):
	"""The first bytes of the transport header as sent (ports, or ICMP type/code/id/seq)."""
	if pkt.sender in ("udp", "tcp"):
		return struct.pack("!HH", pkt.get("sport"), pkt.get("dport"))
	l4 = pkt.l4(ident)
	if pkt.trunc is not None:
		l4 = l4[: pkt.trunc]
	return l4[:8]


# --perturb reject: each type turned into another whose reply differs only in its bytes
# (same count, same place), so that only the byte-for-byte comparison can tell.
REJECT_NEXT = {"icmp-net-unreachable": "icmp-host-unreachable", "icmp-host-unreachable": "icmp-port-unreachable",
	       "icmp-port-unreachable": "icmp-proto-unreachable", "icmp-proto-unreachable": "icmp-net-prohibited",
	       "icmp-net-prohibited": "icmp-host-prohibited", "icmp-host-prohibited": "icmp-admin-prohibited",
	       "icmp-admin-prohibited": "icmp-net-unreachable", "tcp-reset": "tcp-reset"}


def perturb(ruleset, kinds=("policy",)):
	"""The ruleset changed so that a run with it must find differences (the harness's own
	negative test). policy: the built-in chains' policies flipped and the first rule's
	ACCEPT/DROP swapped; reject: every REJECT's type changed (a plain REJECT gets
	icmp-host-unreachable; tcp-reset, whose reply has no other form, is left); log: every
	LOG's level moved by one."""
	out, swapped = [], False
	for line in ruleset.splitlines():
		if "policy" in kinds and line.startswith((":INPUT ", ":FORWARD ", ":OUTPUT ")):
			line = line.replace("ACCEPT", "DROP") if "ACCEPT" in line else line.replace("DROP", "ACCEPT")
		elif "policy" in kinds and line.startswith("-A ") and not swapped and (line.endswith("-j ACCEPT") or line.endswith("-j DROP")):
			line = line[: -len("ACCEPT")] + "DROP" if line.endswith("ACCEPT") else line[: -len("DROP")] + "ACCEPT"
			swapped = True
		if "reject" in kinds and re.search(r"(-j|--jump) REJECT", line):
			m = re.search(r"--reject-with (\S+)", line)
			if m:
				line = line.replace(m.group(0), "--reject-with " + REJECT_NEXT.get(m.group(1), "icmp-port-unreachable"))
			else:
				line += " --reject-with icmp-host-unreachable"
		if "log" in kinds and re.search(r"(-j|--jump) LOG", line):
			m = re.search(r"--log-level (\d)", line)
			level = int(m.group(1)) if m else 4
			new = f"--log-level {(level + 1) % 8}"
			line = line.replace(m.group(0), new) if m else line + " " + new
		out.append(line)
	return "\n".join(out) + "\n"
