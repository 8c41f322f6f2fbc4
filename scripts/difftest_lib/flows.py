# Flows: packets that belong together, sent step by step on one side, with TCP numbers computed from what the peers captured.
#
# A flow is every packet line with the same flow= name (tests/difftest/README.md, "Flows").
# Its two ends are fixed by its first line (protocol, addresses, ports). The harness plays
# every end that it sends raw (a peer, or the filtered host with send=raw): such an end has a
# sequence number of its own, starting at a fixed ISN, and acknowledges the last segment of
# the flow that reached it (read from the captures). The host's own TCP sockets
# (send=connect/data/close, and connections its listeners accepted) are the kernel's: they
# answer by themselves, with a random ISN, which the comparison replaces by an offset.
#
# A run of a case on one side is a FlowRun: it keeps every datagram the side's observers and
# captures saw since the case began, in arrival order, so that the per-packet observations,
# the flow transcripts and the byte-for-byte comparison of replies all read the same record.
import errno
import os
import re
import socket
import struct
import time

from . import net

TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_SEND_QUEUE = 2
TCP_REPAIR_OFF_NO_WP = -1
NETLINK_NETFILTER = 12
# ctnetlink: NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE; no attribute = flush all.
CT_FLUSH = (1 << 8) | 2
# Fixed ISNs of the ends the harness plays, one per end in order of first appearance; far
# apart so that a flow's numbers never wrap into another's.
ISN_BASE = 0x10000000
ISN_STEP = 0x01000000
# A number within this much after a kernel-chosen ISN is written as that ISN plus an offset.
ISN_SPAN = 1 << 20
FLOW_SENDERS = ("connect", "data", "close", "listen")
TCP_INFO = 11
TCP_SYN_SENT = 2
# A connect still unanswered after this long is closed in silence: its kernel would send
# the SYN again at 1 s (no setting short of a sockops program moves that), at a point in
# the case that depends on how fast the side ran.
SYN_SENT_MAX = 0.6


def host_addr(a):
	"""An address of the filtered host itself (its kernel picks numbers and IP ids there)."""
	return a in ("10.0.0.1", "10.1.0.1") or a.startswith("127.")


def socket_isn(s):
	"""The ISN the kernel chose for a TCP socket that has sent its SYN: its send queue's
	sequence number (ISN + 1), read in repair mode, which it leaves without a window probe.
	The comparison needs it where the SYN itself never crossed a place the harness sees."""
	try:
		s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
		try:
			s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
			seq = s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ) & 0xFFFFFFFF
		finally:
			s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)
	except OSError:
		return None
	return (seq - 1) & 0xFFFFFFFF


def flush_conntrack(ns):
	"""Empty the connection table of namespace ns (what `conntrack -F` does), so that no
	case inherits the connections of the one before."""
	with net._InNetns(ns):
		s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
	try:
		body = struct.pack("!BBH", socket.AF_INET, 0, 0)
		msg = struct.pack("=IHHII", 16 + len(body), CT_FLUSH, 1 | 4, 1, 0) + body  # REQUEST|ACK
		s.send(msg)
		reply = s.recv(4096)
		if len(reply) >= 20:
			_, mtype, _, _, _ = struct.unpack("=IHHII", reply[:16])
			err, = struct.unpack("=i", reply[16:20])
			if mtype == 2 and err not in (0, -errno.ENOENT):
				raise net.HarnessError(f"conntrack flush in {ns}: {os.strerror(-err)}")
	finally:
		s.close()


class Kmsg:
	"""The kernel log (/dev/kmsg) from a mark on: netfilter's LOG lines (from every
	namespace, nf_log_all_netns=1) and the lines bpfilter's helper writes there."""

	def __init__(self):
		self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)

	def mark(self):
		os.lseek(self.fd, 0, os.SEEK_END)

	def read(self):
		"""(level, message) of every record since the mark."""
		out = []
		while True:
			try:
				rec = os.read(self.fd, 8192)
			except BlockingIOError:
				return out
			except BrokenPipeError:
				continue  # records overwritten before we read them: the next one follows
			head, _, text = rec.decode("utf-8", "replace").partition(";")
			pri = int(head.split(",", 1)[0])
			out.append((pri & 7, text.split("\n", 1)[0]))

	def close(self):
		os.close(self.fd)


def log_prefixes(ruleset):
	"""The --log-prefix of every LOG rule (the empty string for a rule without one)."""
	out = set()
	for line in ruleset.splitlines():
		if re.search(r"(^| )-j LOG( |$)", line):
			m = re.search(r'--log-prefix (?:"((?:[^"\\]|\\.)*)"|(\S+))', line)
			out.add((m.group(1) if m.group(1) is not None else m.group(2)) if m else "")
	return out


def log_lines(records, prefixes, isns):
	"""The LOG lines among kernel log records, normalized: the IP id goes where the kernel
	chose it (the host's own sources), sequence numbers the kernel chose become offsets."""
	out = []
	for level, msg in records:
		at = msg.find("IN=")
		if at < 0 or " OUT=" not in msg or msg[:at] not in prefixes:
			continue
		# The IP id (the first ID= of the line, and of a quoted header in [...]) where the
		# host's kernel chose it: its own sources. An ICMP echo's ID= is not touched.
		parts = msg.split(" [", 1)
		for i, part in enumerate(parts):
			src = re.search(r"SRC=(\S+)", part)
			if src and host_addr(src.group(1)):
				parts[i] = re.sub(r" ID=\d+", " ID=(kernel)", part, count=1)
		msg = " [".join(parts)
		m = re.search(r" SRC=(\S+) DST=(\S+) .*? SPT=(\d+) DPT=(\d+)", msg.split(" [", 1)[0])
		if m:
			a, b, sp, dp = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
			fwd, back = isns.get((a, sp, b, dp), ()), isns.get((b, dp, a, sp), ())
			flags = re.search(r" RES=0x[0-9a-f]{2} ((?:[A-Z]+ )*)URGP=", msg.split(" [", 1)[0])
			if flags and "ACK" not in flags.group(1).split():
				back = ()  # no ACK flag: the field is not a number of the other end's
			msg = re.sub(r" SEQ=(\d+)", lambda x: f" SEQ={_num_text(int(x.group(1)), fwd)}", msg, count=1)
			msg = re.sub(r" ACK=(\d+)", lambda x: f" ACK={_num_text(int(x.group(1)), back)}", msg, count=1)
		out.append((level, msg))
	return out


def _num(v, isns):
	"""A TCP sequence or acknowledgment number, as an offset from a kernel ISN when it is one.
	isns: the ISNs the host's kernel chose for the end that numbers this field (its SYNs of
	this address and port pair): nothing else is ever rewritten, so a number the harness
	chose cannot be taken for one by chance."""
	for n, isn in enumerate(isns):
		d = (v - isn) & 0xFFFFFFFF
		if d < ISN_SPAN:
			return ("isn", d)
	return v


def _num_text(v, isns):
	x = _num(v, isns)
	return f"ISN+{x[1]}" if isinstance(x, tuple) else str(x)


def _norm_num(b, isns):
	x = _num(struct.unpack("!I", b)[0], isns)
	return struct.pack("!I", 0xFEED0000 + x[1]) if isinstance(x, tuple) else b


def _tcp_norm(d, at, src, dst, isns):
	"""Rewrite seq and ack of the TCP header at `at` (as far as present) with the ISNs of
	the host end that numbers each: seq by the sender's, ack by the receiver's."""
	if len(d) < at + 4:
		return
	sp, dp = struct.unpack("!HH", bytes(d[at:at + 4]))
	if len(d) >= at + 8:
		d[at + 4:at + 8] = _norm_num(bytes(d[at + 4:at + 8]), isns.get((src, sp, dst, dp), ()))
	# Without the ACK flag the field is whatever the sender left there (0 from the harness),
	# not a number of the receiver's: rewriting it would depend on how near the kernel's
	# random ISN happens to lie to it.
	if len(d) >= at + 14 and d[at + 13] & 0x10:
		d[at + 8:at + 12] = _norm_num(bytes(d[at + 8:at + 12]), isns.get((dst, dp, src, sp), ()))


def _addr(b):
	return socket.inet_ntoa(bytes(b))


def normalize(data, isns, kernel_quoted_id):
	"""A reply as compared byte for byte: IP ids and checksums zeroed, kernel-chosen TCP
	numbers replaced by their offset from the ISN, timestamp replies' clocks zeroed."""
	d = bytearray(data)
	ihl = (d[0] & 0xF) * 4
	d[4:6] = d[10:12] = b"\0\0"
	l4 = ihl
	if d[9] == 1 and len(d) >= l4 + 8:
		d[l4 + 2:l4 + 4] = b"\0\0"
		t = d[l4]
		if t == 14 and len(d) >= l4 + 20:
			d[l4 + 12:l4 + 20] = bytes(8)  # receive and transmit timestamps: the host's clock
		if t in (3, 4, 5, 11, 12) and len(d) >= l4 + 28:
			q = l4 + 8
			qihl = (d[q] & 0xF) * 4
			if kernel_quoted_id:
				d[q + 4:q + 6] = b"\0\0"
			d[q + 10:q + 12] = b"\0\0"
			qp = q + qihl
			if d[q + 9] == 6:
				_tcp_norm(d, qp, _addr(d[q + 12:q + 16]), _addr(d[q + 16:q + 20]), isns)
				if len(d) >= qp + 18:
					d[qp + 16:qp + 18] = b"\0\0"
			elif d[q + 9] == 17 and len(d) >= qp + 8:
				d[qp + 6:qp + 8] = b"\0\0"
	elif d[9] == 6 and len(d) >= l4 + 18:
		_tcp_norm(d, l4, _addr(d[12:16]), _addr(d[16:20]), isns)
		d[l4 + 16:l4 + 18] = b"\0\0"
	return bytes(d)


def flow_tuples(pkts):
	"""name -> (proto number, (addr, port), (addr, port)) from each flow's first line."""
	out = {}
	for p in pkts:
		if p.flow and p.flow not in out and p.sender != "listen":
			proto = p.proto_num
			ports = proto in (6, 17)
			out[p.flow] = (proto, (p.src, p.get("sport") if ports else 0), (p.dst, p.get("dport") if ports else 0))
	return out


class End:
	"""One end of a flow the harness plays: its next sequence number and what it acknowledges."""

	def __init__(self, isn):
		self.nxt = isn
		self.rcv = None


class FlowRun:
	"""One side's run of one case in the router and host beds (flows or not)."""

	def __init__(self, side, pkts):
		self.side = side
		self.local = []  # Dgrams the host delivered past INPUT, in order
		self.peers = [[], []]  # Dgrams p0 and p1 received
		# ISNs the host's kernel chose (its SYNs and SYN-ACKs), by (host address, host
		# port, other address, other port)
		self.isns = {}
		self.tuples = flow_tuples(pkts)
		self.ends = {}
		n = 0
		for name, (proto, a, b) in self.tuples.items():
			if proto == 6:
				for me, peer in ((a, b), (b, a)):
					self.ends[(name,) + me + peer] = End(ISN_BASE + n * ISN_STEP)
					n += 1
		self.listeners = []  # (socket, proto)
		self.socks = []  # the host's TCP sockets of flows: connected and accepted
		self.numbers = {}  # packet index -> (seq, ack, segment length) as sent

	# ---- what crossed ------------------------------------------------------------------

	def pull(self):
		"""Read what arrived since the last call; returns how many datagrams."""
		side = self.side
		for key, isn in side.own_isns:
			self.learn_isn(key, isn)
		side.own_isns = []
		new_local = [net.parse_dgram(d) for d in side.drain_data()]
		new_peers = [[net.parse_dgram(d) for d in cap] for cap in side.drain_captures()]
		self.local += new_local
		for i, cap in enumerate(new_peers):
			self.peers[i] += cap
		n = len(new_local) + sum(map(len, new_peers))
		for d in new_local + [x for cap in new_peers for x in cap]:
			self._learn(d)
		self._accept()
		self._reap()
		return n

	def _reap(self):
		now = time.monotonic()
		keep = []
		for s in self.socks:
			born = getattr(s, "born", None)
			if born is not None and now - born > SYN_SENT_MAX and \
					s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)[0] == TCP_SYN_SENT:
				_silent_close(s)
			else:
				keep.append(s)
		self.socks = keep

	def learn_isn(self, key, isn):
		if isn is not None and isn not in self.isns.setdefault(key, []):
			self.isns[key].append(isn)

	def _learn(self, d):
		if d.proto == 1 and len(d.l4) >= 8 + 20 + 14 and d.l4[0] in (3, 4, 5, 11, 12):
			# A quoted SYN or SYN-ACK of the host's (kernel errors quote whole headers):
			# its ISN, when the segment itself never reached a place the harness sees.
			q = net.Dgram(d.l4[8:])
			if q.proto == 6 and len(q.l4) >= 14 and q.l4[13] & 0x02 and host_addr(q.src):
				sp, dp, seq = struct.unpack("!HHI", q.l4[:8])
				if seq & 0xFFFF != 1000:
					self.learn_isn((q.src, sp, q.dst, dp), seq)
		if d.proto != 6 or len(d.l4) < 14:
			return
		sp, dp = struct.unpack("!HH", d.l4[:4])
		seq, = struct.unpack("!I", d.l4[4:8])
		flags = d.l4[13]
		if flags & 0x02 and host_addr(d.src) and seq & 0xFFFF != 1000:
			self.learn_isn((d.src, sp, d.dst, dp), seq)
		doff = (d.l4[12] >> 4) * 4
		seglen = max(0, len(d.l4) - doff) + (1 if flags & 0x02 else 0) + (1 if flags & 0x01 else 0)
		for name, (proto, a, b) in self.tuples.items():
			end = self.ends.get((name, d.dst, dp, d.src, sp))
			if end is not None:
				end.rcv = (seq + seglen) & 0xFFFFFFFF

	def _accept(self):
		for s, proto in self.listeners:
			if proto != 6:
				try:
					while s.recv(65535):
						pass
				except BlockingIOError:
					pass
				continue
			while True:
				try:
					c, _ = s.accept()
				except BlockingIOError:
					break
				c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
				self.socks.append(c)

	# ---- sending -----------------------------------------------------------------------

	def numbers_for(self, index, pkt):
		"""(seq, ack) of a TCP packet of a flow that the harness sends, and the end moves on."""
		end = self.ends.get((pkt.flow, pkt.src, pkt.get("sport"), pkt.dst, pkt.get("dport")))
		if end is None:
			raise net.HarnessError(f"{pkt}: flow {pkt.flow} is {self.tuples.get(pkt.flow)}: "
					       "every TCP line of a flow has its two ends")
		flags = pkt.get("flags")
		seq = (end.nxt + (pkt.seqoff or 0)) & 0xFFFFFFFF
		ack = ((end.rcv or 0) + (pkt.ackoff or 0)) & 0xFFFFFFFF if "A" in flags else 0
		seglen = pkt.get("len") + ("S" in flags) + ("F" in flags)
		if pkt.seqoff is None:
			end.nxt = (end.nxt + seglen) & 0xFFFFFFFF
		self.numbers[index] = (seq, ack, seglen)
		return seq, ack

	def quoted(self, pkt):
		"""What an ICMP error with quote=NAME quotes: the IP header and first 8 bytes of the
		last datagram of flow NAME that reached the peer sending it (or the host)."""
		t = self.tuples.get(pkt.quote)
		if t is None:
			raise net.HarnessError(f"{pkt}: quote={pkt.quote} names no flow before it")
		where = self.local if pkt.sender == "raw" else self.peers[0 if pkt.dev == "in0" else 1]
		for d in reversed(where):
			if self._of_flow(d, t):
				ihl = (d.data[0] & 0xF) * 4
				return d.data[: ihl + 8]
		return None

	@staticmethod
	def _of_flow(d, t):
		proto, a, b = t
		if d.proto != proto or d.frag & 0x1FFF:
			return False
		ports = struct.unpack("!HH", d.l4[:4]) if proto in (6, 17) and len(d.l4) >= 4 else (0, 0)
		return ((d.src, ports[0]), (d.dst, ports[1])) in ((a, b), (b, a))

	def host_step(self, pkt):
		"""send=connect/data/close/listen: the host's own sockets; returns an errno or 0."""
		side = self.side
		how = pkt.sender
		try:
			if how == "listen":
				kind = socket.SOCK_STREAM if pkt.proto == "tcp" else socket.SOCK_DGRAM
				with net._InNetns(side.ns):
					s = socket.socket(socket.AF_INET, kind, 0)
				s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
				s.setsockopt(socket.SOL_IP, net.IP_FREEBIND, 1)
				s.setblocking(False)
				self.listeners.append((s, pkt.proto_num))
				s.bind((pkt.src, pkt.get("sport")))
				if kind == socket.SOCK_STREAM:
					s.listen(64)
			elif how == "connect":
				with net._InNetns(side.ns):
					s = _Sock(socket.AF_INET, socket.SOCK_STREAM, 0)
				s.born = time.monotonic()
				self.socks.append(s)
				s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
				s.setsockopt(socket.SOL_IP, net.IP_FREEBIND, 1)
				s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
				s.setsockopt(socket.SOL_IP, socket.IP_TTL, pkt.get("ttl"))
				s.setsockopt(socket.SOL_IP, socket.IP_TOS, pkt.get("tos"))
				s.bind((pkt.src, pkt.get("sport")))
				s.setblocking(False)
				err = s.connect_ex((pkt.dst, pkt.get("dport")))
				self.learn_isn((pkt.src, pkt.get("sport"), pkt.dst, pkt.get("dport")), socket_isn(s))
				return 0 if err in (0, errno.EINPROGRESS) else err
			else:
				s = self._sock(pkt)
				if s is None:
					return errno.ENOTCONN
				if how == "data":
					s.send(pkt._payload())
				else:
					s.shutdown(socket.SHUT_WR)
		except OSError as e:
			return e.errno
		return 0

	def _sock(self, pkt):
		want = ((pkt.src, pkt.get("sport")), (pkt.dst, pkt.get("dport")))
		for s in reversed(self.socks):
			try:
				if (s.getsockname(), s.getpeername()) == want:
					return s
			except OSError:
				continue
		return None

	def finish(self):
		"""Close the host's sockets without a word on the wire (TCP_REPAIR: no FIN, no
		reset, no TIME_WAIT), so nothing of this case reaches the next one."""
		self._accept()
		for s in self.socks:
			_silent_close(s)
		for s, _ in self.listeners:
			s.close()
		self.socks, self.listeners = [], []

	# ---- transcripts -------------------------------------------------------------------

	def transcript(self, name):
		"""What crossed of flow `name`, per place (host, p0, p1), in arrival order: TCP flags,
		numbers (kernel ISNs as offsets) and lengths; UDP and ICMP lengths and types; ICMP
		errors quoting the flow."""
		t = self.tuples[name]
		out = []
		for where in [self.local] + self.peers:
			lines = []
			for d in where:
				if self._of_flow(d, t):
					lines.append(self._summary(d))
				elif d.proto == 1 and len(d.l4) >= 36 and d.l4[0] in (3, 4, 5, 11, 12):
					q = net.Dgram(d.l4[8:])
					if self._of_flow(q, t):
						lines.append(f"{d.src}>{d.dst} icmp {d.l4[0]}/{d.l4[1]} quoting [{self._summary(q)}]")
			out.append(tuple(lines))
		return tuple(out)

	def _summary(self, d):
		text = f"{d.src}>{d.dst} "
		if d.proto == 6 and len(d.l4) >= 14:
			sp, dp, seq, ack = struct.unpack("!HHII", d.l4[:12])
			flags = "".join(c for c, bit in zip("FSRPAUEC", range(8)) if d.l4[13] >> bit & 1) or "none"
			doff = (d.l4[12] >> 4) * 4
			size = struct.unpack("!H", d.data[2:4])[0] - (d.data[0] & 0xF) * 4 - doff
			fwd, back = self.isns.get((d.src, sp, d.dst, dp), ()), self.isns.get((d.dst, dp, d.src, sp), ())
			if not d.l4[13] & 0x10:
				back = ()  # no ACK flag: the field is not a number of the other end's
			return text + (f"tcp {sp}>{dp} {flags} seq={_num_text(seq, fwd)} "
				       f"ack={_num_text(ack, back)} data={max(0, size)}")
		if d.proto == 1 and len(d.l4) >= 2:
			return text + f"icmp {d.l4[0]}/{d.l4[1]} len={len(d.data)}"
		return text + f"proto {d.proto} len={len(d.data)}"


class _Sock(socket.socket):
	"""A socket that can carry when it connected (plain sockets take no attributes)."""
	born = None


def _silent_close(s):
	try:
		s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
	except OSError:
		pass
	s.close()


def wait_quiet(runs, first=0.002, quiet=0.008, most=0.25):
	"""After a flow step: wait until no side has seen anything new for `quiet` seconds (the
	kernel's answers, and answers to those, have arrived), at most `most`."""
	start = last = time.monotonic()
	time.sleep(first)
	while True:
		if sum(run.pull() for run in runs):
			last = time.monotonic()
		now = time.monotonic()
		if now - last >= quiet or now - start >= most:
			return
		time.sleep(0.002)
