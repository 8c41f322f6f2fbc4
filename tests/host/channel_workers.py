#!/usr/bin/env python3
# Two namespaces' requests in flight at once on the helper's channel, as bpfilter.ko sends them.
#
# Usage: channel_workers.py UMH NETNS_A COOKIE_A NETNS_B COOKIE_B RULES LOG
# Runs bpfilter_umh --channel in the proxy's (root) namespace. Loads a table of RULES rules
# in A alone (timed), then sends the same replace for A again and, while the helper works on
# it, GET_INFO for B. Prints one line "A_ALONE B_ALONE FIRST B_AFTER A_AFTER A_ENTRIES":
# the seconds A's replace took alone, B's GET_INFO alone, which reply came first (A or B),
# the seconds from the second request's sending to B's reply and to A's, and the entries
# of A's table in force at the end. Exit status 0 when every reply said 0.
import os
import socket
import struct
import subprocess
import sys
import time

REQ_MAGIC, REP_MAGIC = 0x71726662, 0x70726662
HDR = "=IHHIIIIQiI"
PROTO_VERSION = 2  # BPFILTER_PROTO_VERSION
OP_HEALTH, OP_SET, OP_GET = 0, 1, 2
IPT_SO_SET_REPLACE, IPT_SO_GET_INFO = 64, 64
ENTRY, STD_TARGET, ERR_TARGET = 112, 40, 64  # sizeof ipt_entry, standard and error targets

umh, ns_a, ns_b, rules, log_path = sys.argv[1], sys.argv[2], sys.argv[4], int(sys.argv[6]), sys.argv[7]
# The module names each request's namespace by its cookie too: the helper's workers go by it.
cookies = {ns_a: int(sys.argv[3]), ns_b: int(sys.argv[5])}
fds = {ns: [os.open("/run/netns/" + ns, os.O_RDONLY) for _ in range(8)] for ns in (ns_a, ns_b)}
for pool in fds.values():
    for fd in pool:
        os.set_inheritable(fd, True)
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
log = open(log_path, "a")
proc = subprocess.Popen([umh, "--channel", str(theirs.fileno())],
                        pass_fds=[theirs.fileno()] + fds[ns_a] + fds[ns_b], stderr=log, stdout=log)
theirs.close()
seq = 0


def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = ours.recv(n - len(data))
        if not chunk:
            raise EOFError("helper closed the channel")
        data += chunk
    return data


def send(op, ns=None, optname=0, data=b"", optlen=None):
    global seq
    seq += 1
    fd = fds[ns].pop() if ns else -1
    ours.sendall(struct.pack(HDR, REQ_MAGIC, PROTO_VERSION, op, optname,
                             len(data) if optlen is None else optlen, len(data), 0,
                             cookies[ns] if ns else 0, fd, seq) + data)
    return seq


def reply():
    magic, rseq, status, n = struct.unpack("=IIiI", recv_exact(16))
    assert magic == REP_MAGIC, "bad reply magic"
    return rseq, status, recv_exact(n)


def call(*args, **kwargs):
    s = send(*args, **kwargs)
    rseq, status, data = reply()
    assert rseq == s, "reply %d to request %d" % (rseq, s)
    return status, data


def get_info(ns):
    return send(OP_GET, ns, IPT_SO_GET_INFO, b"filter".ljust(84, b"\0"))


def entry(src, verdict):
    ip = struct.pack("=4s4s4s4s", socket.inet_aton(src), bytes(4),
                     b"\xff" * 4 if src != "0.0.0.0" else bytes(4), bytes(4)) + bytes(64) + bytes(4)
    e = ip + struct.pack("=IHHI", 0, ENTRY, ENTRY + STD_TARGET, 0) + bytes(16)
    return e + struct.pack("=H29sB", STD_TARGET, b"", 0) + struct.pack("=i4x", verdict)


def table(n, num_counters):
    drop, accept = -1 - 0, -1 - 1  # -NF_DROP - 1, -NF_ACCEPT - 1
    body = b"".join(entry("10.%d.%d.%d" % (100 + i // 65536, i // 256 % 256, i % 256), drop) for i in range(n))
    policies = [entry("0.0.0.0", accept) for _ in range(3)]
    err = (bytes(84) + struct.pack("=IHHI", 0, ENTRY, ENTRY + ERR_TARGET, 0) + bytes(16) +
           struct.pack("=H29sB", ERR_TARGET, b"ERROR", 0) + b"ERROR".ljust(32, b"\0"))
    entries = body + b"".join(policies) + err
    rule = ENTRY + STD_TARGET
    hooks = [0, 0, n * rule + rule, n * rule + 2 * rule, 0]
    under = [0, n * rule, n * rule + rule, n * rule + 2 * rule, 0]
    return (struct.pack("=32sIII5I5IIQ", b"filter", 0xE, n + 4, len(entries), *hooks, *under,
                        num_counters, 0) + entries)


def num_entries(ns):
    s = get_info(ns)
    rseq, status, data = reply()
    assert rseq == s and status == 0, "GET_INFO: %d" % status
    return struct.unpack_from("=I", data, 76)[0]


ok = call(OP_HEALTH)[0] == 0
n_a = num_entries(ns_a)
t0 = time.monotonic()
num_entries(ns_b)  # B's state made: its first request is not the one timed
t0 = time.monotonic()
num_entries(ns_b)
b_alone = time.monotonic() - t0
first = table(rules, n_a)
t0 = time.monotonic()
status, _ = call(OP_SET, ns_a, IPT_SO_SET_REPLACE, first)
a_alone = time.monotonic() - t0
ok = ok and status == 0
blob = table(rules, rules + 4)
sa = send(OP_SET, ns_a, IPT_SO_SET_REPLACE, blob)
time.sleep(min(0.2, a_alone / 4))  # the helper reads A's request and starts on it
t0 = time.monotonic()
sb = get_info(ns_b)
got = {}
order = []
while len(got) < 2:
    rseq, status, _ = reply()
    got[rseq] = (status, time.monotonic() - t0)
    order.append("A" if rseq == sa else "B" if rseq == sb else "?")
ok = ok and got[sa][0] == 0 and got[sb][0] == 0
print("%.3f %.3f %s %.3f %.3f %d" % (a_alone, b_alone, order[0], got[sb][1], got[sa][1],
                                     num_entries(ns_a)), flush=True)
ours.close()
proc.wait()
sys.exit(0 if ok else 1)
