# The packet file format of the differential tests: parse a line, print it back, build the IPv4 datagram.
#
# One packet a line, '#' starts a comment, fields are key=value separated by blanks.
# tests/difftest/README.md documents every field and its default; keep the two in step.
import ipaddress
import struct

DEVS = ("in0", "in1")
# Test beds (tests/difftest/README.md): "input" is the original INPUT-only bed (forwarding
# off, the filtered host silent); "router" forwards (FORWARD and INPUT, the host still
# silent); "host" forwards and talks (replies, its own traffic, loopback: OUTPUT too).
BEDS = ("input", "router", "host")
# Who sends a packet: the peer of dev= (raw IP_HDRINCL socket), or the filtered host itself
# through a raw IP_HDRINCL socket (raw), a raw socket of the packet's protocol whose IP
# header the kernel writes (rawip), a UDP socket (udp) or a TCP socket's connect (tcp).
SENDERS = ("peer", "raw", "rawip", "udp", "tcp", "connect", "data", "close", "listen")
# Flow steps the host's own TCP sockets take (tests/difftest/README.md, "Flows"): connect
# (a socket of the flow, non-blocking connect: the kernel sends the SYN and answers what
# comes back), data (that socket, or the one the host's listener accepted for the flow,
# sends len= bytes), close (shutdown for writing: the FIN).
FLOW_SENDERS = ("connect", "data", "close")
# listen: the host opens a TCP listener (accepting every connection) or binds a UDP socket
# at src:sport, kept until the case ends; no traffic of its own.
# Protocols whose first four bytes are ports for -m multiport: DCCP, SCTP, UDP-Lite.
PORT_PROTOS = (33, 132, 136)
PROTO_NAMES = {"icmp": 1, "tcp": 6, "udp": 17}
# ESP and AH: given sport and dport, their SPI is sport << 16 | dport (-m esp, -m ah).
SPI_PROTOS = (50, 51)
# Flag letters, in the bit order of byte 13 of the TCP header. E and C (ECE, CWR) are
# an extension: iptables cannot name them, but the kernel's --tcp-flags reads the whole byte.
TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
# Largest datagram: the veth MTU.
MTU = 1500
# Lengths of the TCP options we know how to lay out (kind: total length); other kinds get 2.
TCP_OPT_LEN = {0: 1, 1: 1, 2: 4, 3: 3, 4: 2, 5: 10, 8: 10}

DEFAULTS = {
	"sport": 12345,
	"dport": 80,
	"flags": "S",
	"type": 8,
	"code": 0,
	"len": 0,
	"ttl": 64,
	"tos": 0,
	"frag": 0,
	"mf": 0,
	"df": 0,
}


class PacketError(ValueError):
	pass


def _int(key, text, lo, hi):
	try:
		value = int(text, 0)
	except ValueError:
		raise PacketError(f"{key}={text}: not a number") from None
	if not lo <= value <= hi:
		raise PacketError(f"{key}={text}: out of range {lo}..{hi}")
	return value


def _addr(key, text):
	try:
		return str(ipaddress.IPv4Address(text))
	except ValueError:
		raise PacketError(f"{key}={text}: not an IPv4 address") from None


class Packet:
	"""One test packet. Fields left as None take their default when the packet is built."""

	FIELDS = ("flow", "dev", "proto", "src", "dst", "sport", "dport", "flags", "type", "code", "len",
		  "ttl", "tos", "tcpopt", "doff", "frag", "mf", "df", "trunc", "split", "reverse", "send",
		  "seqoff", "ackoff", "quote", "somark", "uid", "gid", "groups")

	def __init__(self, **fields):
		for name in self.FIELDS:
			setattr(self, name, fields.get(name))

	@property
	def proto_num(self):
		return PROTO_NAMES.get(self.proto, None) if isinstance(self.proto, str) else self.proto

	def get(self, name):
		value = getattr(self, name)
		return DEFAULTS.get(name) if value is None else value

	def copy(self, **changes):
		fields = {name: getattr(self, name) for name in self.FIELDS}
		fields.update(changes)
		return Packet(**fields)

	def __str__(self):
		out = []
		for name in self.FIELDS:
			value = getattr(self, name)
			if value is None:
				continue
			if name == "tcpopt":
				value = ",".join(f"{k[0]}:{k[1]}" if isinstance(k, tuple) else str(k) for k in value)
			out.append(f"{name}={value}")
		return " ".join(out)

	def ip_len(self):
		return len(self.build(1))

	@property
	def sender(self):
		return self.send or "peer"

	def build(self, ident, mark=False, numbers=None, quoted=None):
		"""The whole IPv4 datagram with IP id `ident` (the marker the observer matches on).
		mark: the ident goes into the TCP sequence and acknowledgment numbers and into an
		ICMP echo's sequence number too, so that the host's replies can be told apart."""
		proto = self.proto_num
		l4 = self._l4(proto, ident if mark else None, numbers, quoted)
		if self.trunc is not None:
			l4 = l4[: self.trunc]
		frag = self.get("frag") | (0x2000 if self.get("mf") else 0) | (0x4000 if self.get("df") else 0)
		total = 20 + len(l4)
		if total > MTU:
			raise PacketError(f"datagram of {total} bytes is larger than the MTU {MTU}")
		src = ipaddress.IPv4Address(self.src).packed
		dst = ipaddress.IPv4Address(self.dst).packed
		hdr = struct.pack("!BBHHHBBH4s4s", 0x45, self.get("tos"), total, ident, frag,
				  self.get("ttl"), proto, 0, src, dst)
		hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
		return hdr + l4

	def pieces(self, ident, mark=False, numbers=None, quoted=None):
		"""What goes on the wire: the datagram, or with split=N its fragments of N payload
		bytes each (the last one shorter), in order or with reverse=1 last first."""
		whole = self.build(ident, mark, numbers, quoted)
		size = self.split
		if not size:
			return [whole]
		hdr, payload = whole[:20], whole[20:]
		out = []
		for at in range(0, len(payload), size):
			chunk = payload[at:at + size]
			more = at + size < len(payload)
			flags = (0x2000 if more else 0) | (0x4000 if self.get("df") else 0) | (at // 8)
			h = hdr[:2] + struct.pack("!H", 20 + len(chunk)) + hdr[4:6] + struct.pack("!H", flags) + hdr[8:10] + b"\0\0" + hdr[12:]
			h = h[:10] + struct.pack("!H", _csum(h)) + h[12:]
			out.append(h + chunk)
		return out[::-1] if self.reverse else out

	def _payload(self):
		n = self.get("len")
		return bytes((i * 7 + 1) & 0xFF for i in range(n))

	def _pseudo(self, proto, length):
		return (ipaddress.IPv4Address(self.src).packed + ipaddress.IPv4Address(self.dst).packed
			+ struct.pack("!BBH", 0, proto, length))

	def l4(self, ident=None):
		"""The transport header and payload as built (before trunc=)."""
		return self._l4(self.proto_num, ident)

	def _l4(self, proto, mark=None, numbers=None, quoted=None):
		# numbers: a flow's (seq, ack) the harness computed; quoted: the datagram an
		# ICMP error of a flow quotes (quote=), which is then its whole payload.
		payload = self._payload() if quoted is None else quoted
		if proto == 6:
			opts = b""
			for kind in self.tcpopt or ():
				if isinstance(kind, tuple):
					# KIND:LEN, a length byte as given (0 and 1 are malformed on purpose).
					kind, size = kind
					opts += bytes([kind, size]) + bytes(max(0, size - 2))
					continue
				size = TCP_OPT_LEN.get(kind, 2)
				opts += bytes([kind]) if size == 1 else bytes([kind, size]) + bytes(size - 2)
			while len(opts) % 4:
				opts += b"\x01" if len(opts) % 4 != 3 else b"\x00"
			doff = self.doff if self.doff is not None else 5 + len(opts) // 4
			flags = 0
			for letter in self.get("flags"):
				flags |= TCP_FLAGS[letter]
			seq, ack = (1000, 0) if mark is None else ((mark << 16) + 1000, mark << 16)
			if numbers is not None:
				seq, ack = numbers
			hdr = struct.pack("!HHIIBBHHH", self.get("sport"), self.get("dport"), seq, ack,
					  (doff & 0xF) << 4, flags, 65535, 0, 0) + opts
			seg = hdr + payload
			csum = _csum(self._pseudo(6, len(seg)) + seg)
			return seg[:16] + struct.pack("!H", csum) + seg[18:]
		if proto == 17:
			seg = struct.pack("!HHHH", self.get("sport"), self.get("dport"), 8 + len(payload), 0) + payload
			csum = _csum(self._pseudo(17, len(seg)) + seg) or 0xFFFF
			return seg[:6] + struct.pack("!H", csum) + seg[8:]
		if proto == 1:
			seq = mark if mark is not None and self.get("type") in (8, 13, 15, 17) else 1
			seg = struct.pack("!BBHHH", self.get("type"), self.get("code"), 0, 0x1234, seq) + payload
			return seg[:2] + struct.pack("!H", _csum(seg)) + seg[4:]
		if proto in (50, 51) and (self.sport is not None or self.dport is not None):
			# ESP, AH: the SPI is sport << 16 | dport (what -m esp and -m ah read), then
			# a sequence number; AH's next header, length (12 bytes) and reserved first.
			spi = struct.pack("!HHI", self.get("sport"), self.get("dport"), 1)
			return (spi if proto == 50 else struct.pack("!BBH", 59, 1, 0) + spi) + payload
		if proto in PORT_PROTOS and (self.sport is not None or self.dport is not None):
			# Their ports lead the header as in TCP and UDP, which is all multiport reads.
			return struct.pack("!HH", self.get("sport"), self.get("dport")) + payload
		return payload


def _csum(data):
	if len(data) % 2:
		data += b"\0"
	total = sum(struct.unpack(f"!{len(data) // 2}H", data))
	while total >> 16:
		total = (total & 0xFFFF) + (total >> 16)
	return ~total & 0xFFFF


def parse_line(line, where=""):
	"""A Packet from one line, or None for a blank or comment line."""
	text = line.split("#", 1)[0].strip()
	if not text:
		return None
	fields = {}
	for word in text.split():
		if "=" not in word:
			raise PacketError(f"{where}{word}: expected key=value")
		key, value = word.split("=", 1)
		if key in fields:
			raise PacketError(f"{where}{key} given twice")
		if key == "dev":
			if value not in DEVS:
				raise PacketError(f"{where}dev={value}: must be in0 or in1")
			fields[key] = value
		elif key == "proto":
			if value in PROTO_NAMES:
				fields[key] = value
			else:
				num = _int(key, value, 1, 255)
				names = {v: k for k, v in PROTO_NAMES.items()}
				fields[key] = names.get(num, num)
		elif key in ("src", "dst"):
			fields[key] = _addr(key, value)
		elif key in ("sport", "dport"):
			fields[key] = _int(key, value, 0, 65535)
		elif key == "flags":
			value = "" if value in ("none", "-") else value.upper()
			for letter in value:
				if letter not in TCP_FLAGS:
					raise PacketError(f"{where}flags={value}: letters are S A F R P U (and E C)")
			fields[key] = value
		elif key in ("type", "code", "ttl", "tos"):
			fields[key] = _int(key, value, 0, 255)
		elif key == "len":
			fields[key] = _int(key, value, 0, MTU - 20)
		elif key == "tcpopt":
			opts = []
			for item in value.split(","):
				if ":" in item:
					kind, size = item.split(":", 1)
					opts.append((_int(key, kind, 0, 255), _int(key, size, 0, 40)))
				elif item:
					opts.append(_int(key, item, 0, 255))
			fields[key] = tuple(opts)
		elif key == "doff":
			fields[key] = _int(key, value, 0, 15)
		elif key == "frag":
			fields[key] = _int(key, value, 0, 0x1FFF)
		elif key in ("mf", "df"):
			fields[key] = _int(key, value, 0, 1)
		elif key == "trunc":
			fields[key] = _int(key, value, 0, MTU)
		elif key == "split":
			fields[key] = _int(key, value, 8, MTU - 20)
			if fields[key] % 8:
				raise PacketError(f"{where}split={value}: not a multiple of 8")
		elif key == "reverse":
			fields[key] = _int(key, value, 0, 1)
		elif key in ("flow", "quote"):
			if not value or not all(c.isalnum() or c in "-_." for c in value):
				raise PacketError(f"{where}{key}={value}: a flow name is letters, digits, - _ .")
			fields[key] = value
		elif key in ("seqoff", "ackoff"):
			fields[key] = _int(key, value, -(1 << 31), 1 << 31)
		elif key == "somark":
			fields[key] = _int(key, value, 0, 0xFFFFFFFF)
		elif key in ("uid", "gid"):
			fields[key] = _int(key, value, 0, 0xFFFFFFFE)
		elif key == "groups":
			# Supplementary groups, comma separated; "none" for none.
			if value != "none":
				for g in value.split(","):
					_int(key, g, 0, 0xFFFFFFFE)
			fields[key] = value
		elif key == "send":
			if value not in SENDERS:
				raise PacketError(f"{where}send={value}: one of {', '.join(SENDERS)}")
			fields[key] = value
		else:
			raise PacketError(f"{where}{key}: unknown field")
	sender = fields.get("send", "peer")
	if sender == "listen":
		fields.setdefault("dst", "0.0.0.0")
	for key in ("proto", "src", "dst") + (("dev",) if sender == "peer" else ()):
		if key not in fields:
			raise PacketError(f"{where}{key}= is required")
	for key in ("uid", "gid", "groups"):
		if key in fields and sender not in ("udp", "tcp", "rawip"):
			raise PacketError(f"{where}{key}= is the sending socket's credentials: send=udp, tcp or rawip")
	if "somark" in fields and sender not in ("udp", "tcp", "rawip"):
		raise PacketError(f"{where}somark= is the sending socket's SO_MARK: send=udp, tcp or rawip")
	if sender != "peer" and "dev" in fields:
		raise PacketError(f"{where}send={sender}: the host's routing picks the device, no dev=")
	proto = fields["proto"]
	if sender in ("udp", "tcp"):
		if proto != sender:
			raise PacketError(f"{where}send={sender} needs proto={sender}")
		for key in ("flags", "tcpopt", "doff", "frag", "mf", "df", "trunc", "split", "reverse"):
			if key in fields:
				raise PacketError(f"{where}send={sender}: the kernel writes the headers, no {key}=")
	if sender in FLOW_SENDERS + ("listen",):
		if fields["proto"] != "tcp" and not (sender == "listen" and fields["proto"] == "udp"):
			raise PacketError(f"{where}send={sender} needs proto=tcp" + (" or udp" if sender == "listen" else ""))
		if sender != "listen" and "flow" not in fields:
			raise PacketError(f"{where}send={sender} belongs to a flow: flow= is required")
		for key in (("flags", "tcpopt", "doff", "frag", "mf", "df", "trunc", "split", "reverse", "seqoff",
			     "ackoff", "quote") + (("len",) if sender in ("listen", "close", "connect") else ())
			    + (("flow", "dport") if sender == "listen" else ())):
			if key in fields:
				raise PacketError(f"{where}send={sender}: the kernel writes the headers, no {key}=")
	if ("seqoff" in fields or "ackoff" in fields) and ("flow" not in fields or proto != "tcp"
							    or sender not in ("peer", "raw")):
		raise PacketError(f"{where}seqoff=, ackoff= move the numbers of a TCP flow the harness sends")
	if "quote" in fields and (proto != "icmp" or sender not in ("peer", "raw")):
		raise PacketError(f"{where}quote= makes an ICMP error the harness sends (proto=icmp)")
	if "flow" in fields and "quote" in fields:
		raise PacketError(f"{where}quote= and flow=: an ICMP error quotes a flow, it is not one")
	if sender == "rawip":
		for key in ("frag", "mf", "df", "split", "reverse"):
			if key in fields:
				raise PacketError(f"{where}send=rawip: the kernel writes the IP header, no {key}=")
	spi_protos = PORT_PROTOS + SPI_PROTOS
	for key, protos in (("sport", ("tcp", "udp") + spi_protos), ("dport", ("tcp", "udp") + spi_protos), ("flags", ("tcp",)),
			    ("tcpopt", ("tcp",)), ("doff", ("tcp",)), ("type", ("icmp",)), ("code", ("icmp",))):
		if key in fields and proto not in protos:
			raise PacketError(f"{where}{key}= needs proto={' or '.join(str(p) for p in protos)}")
	if ("frag" in fields or "mf" in fields) and "split" in fields:
		raise PacketError(f"{where}split= makes its own fragments: no frag= or mf=")
	pkt = Packet(**fields)
	pkt.build(1)  # size check
	return pkt


def parse_bed(line):
	"""The bed a `bed=NAME` line names, or None when the line is something else."""
	text = line.split("#", 1)[0].strip()
	if not text.startswith("bed=") or " " in text:
		return None
	return text[4:]


def parse_file(path, with_bed=False):
	"""The packets of a file; with_bed, (packets, bed). A line `bed=NAME` before the first
	packet picks the bed (default input)."""
	pkts = []
	bed = None
	with open(path) as f:
		for num, line in enumerate(f, 1):
			name = parse_bed(line)
			if name is not None:
				if name not in BEDS:
					raise PacketError(f"{path}:{num}: bed={name}: one of {', '.join(BEDS)}")
				if bed is not None or pkts:
					raise PacketError(f"{path}:{num}: bed= comes once, before the packets")
				bed = name
				continue
			pkt = parse_line(line, f"{path}:{num}: ")
			if pkt is not None:
				pkts.append(pkt)
	bed = bed or "input"
	check_bed(pkts, bed, f"{path}: ")
	return (pkts, bed) if with_bed else pkts


def check_bed(pkts, bed, where=""):
	"""Packets the bed cannot send or observe cleanly."""
	for n, pkt in enumerate(pkts, 1):
		if pkt.sender != "peer" and bed != "host":
			raise PacketError(f"{where}packet {n}: send={pkt.send} needs bed=host (the host talks)")
		if (pkt.flow or pkt.quote) and bed == "input":
			raise PacketError(f"{where}packet {n}: flows need bed=router or bed=host (the peers capture)")
		if bed == "host" and pkt.get("frag") == 0 and pkt.get("mf") and not pkt.split:
			# The host would send "fragment reassembly time exceeded" 30 s later, into
			# whatever case runs then.
			raise PacketError(f"{where}packet {n}: a lone first fragment (mf=1, frag=0) cannot go in bed=host")


def write_file(path, pkts, header="", bed="input"):
	with open(path, "w") as f:
		if header:
			for line in header.splitlines():
				f.write(f"# {line}\n")
		if bed != "input":
			f.write(f"bed={bed}\n")
		for pkt in pkts:
			f.write(f"{pkt}\n")
