#!/usr/bin/env python3
# Stands in for bpfilter.ko on the host: runs bpfilter_umh --channel, hands it each front-door request with a namespace descriptor, restarts and replays it.
#
# Usage: channel_proxy.py SOCKET NETNS UMH LOG
# The helper runs in the proxy's (root) namespace; requests arriving on SOCKET (from
# libbpfilter_preload.so) are about NETNS. Like the module, the proxy gives the helper a
# descriptor of the caller's namespace with each request (inherited at start: the helper
# closes one per request), keeps the last table each SET_REPLACE installed, and replays
# it to a helper it restarts.
#   SIGUSR1  kill the helper (SIGKILL), start a new one, replay the table
#   SIGUSR2  the same without the replay
#   SIGHUP   send LINK_ADDED (and ADDRS_CHANGED) for NETNS, as the module's notifiers do
#   SIGTERM  send DETACH, close the channel, wait for the helper, exit with its status
import os
import select
import signal
import socket
import struct
import subprocess
import sys

REQ_MAGIC, REP_MAGIC = 0x71726662, 0x70726662
HDR = "=IHHIIIIQiI"
PROTO_VERSION = 2  # BPFILTER_PROTO_VERSION
HDR_LEN = struct.calcsize(HDR)
OP_HEALTH, OP_SET, OP_GET, OP_GONE, OP_LINK, OP_ADDRS, OP_DETACH = 0, 1, 2, 3, 4, 5, 6
IPT_SO_SET_REPLACE, IPT_SO_GET_INFO = 64, 64
POOL = 300

sock_path, netns, umh, log_path = sys.argv[1:5]
flags = {"restart": False, "bare": False, "link": False, "stop": False}
for sig, name in ((signal.SIGUSR1, "restart"), (signal.SIGUSR2, "bare"), (signal.SIGHUP, "link"),
                  (signal.SIGTERM, "stop")):
    signal.signal(sig, lambda s, f, n=name: flags.__setitem__(n, True))

pool = [os.open("/run/netns/" + netns, os.O_RDONLY) for _ in range(POOL)]
for fd in pool:
    os.set_inheritable(fd, True)
log = open(log_path, "a")


class Helper:
    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.chan = ours
        self.next_fd = 0
        self.seq = 0
        self.proc = subprocess.Popen([umh, "--channel", str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()] + pool, stderr=log, stdout=log)
        theirs.close()

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.chan.recv(n - len(data))
            if not chunk:
                raise EOFError("helper closed the channel")
            data += chunk
        return data

    def call(self, op, optname=0, optlen=0, data=b"", arg=0, with_netns=True):
        fd = -1
        if with_netns:
            fd = pool[self.next_fd]
            self.next_fd += 1
        self.seq += 1
        hdr = struct.pack(HDR, REQ_MAGIC, PROTO_VERSION, op, optname, optlen, len(data), arg, 0, fd, self.seq)
        self.chan.sendall(hdr + data)
        magic, seq, status, n = struct.unpack("=IIiI", self.recv_exact(16))
        assert magic == REP_MAGIC and seq == self.seq, "bad reply"
        return status, self.recv_exact(n)


last_table = None


def replay(helper):
    if last_table is None:
        return
    status, info = helper.call(OP_GET, IPT_SO_GET_INFO, 84, b"filter".ljust(84, b"\0"))
    assert status == 0, "GET_INFO after restart: %d" % status
    num_entries = struct.unpack_from("=I", info, 76)[0]  # ipt_getinfo.num_entries
    blob = bytearray(last_table)
    struct.pack_into("=IQ", blob, 84, num_entries, 0)  # num_counters, counters
    status, _ = helper.call(OP_SET, IPT_SO_SET_REPLACE, len(blob), bytes(blob))
    print("proxy: replayed the table: status %d" % status, file=log, flush=True)


helper = Helper()
status, _ = helper.call(OP_HEALTH, with_netns=False)
assert status == 0
if os.path.exists(sock_path):
    os.unlink(sock_path)
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lsock.bind(sock_path)
lsock.listen(16)
print("proxy: listening", file=log, flush=True)

while True:
    if flags["stop"]:
        status, _ = helper.call(OP_DETACH)
        print("proxy: DETACH: status %d" % status, file=log, flush=True)
        helper.chan.close()
        rc = helper.proc.wait()
        print("proxy: helper exited with %d" % rc, file=log, flush=True)
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        sys.exit(rc)
    if flags["restart"]:
        flags["restart"] = False
        helper.proc.kill()
        helper.proc.wait()
        helper = Helper()
        status, _ = helper.call(OP_HEALTH, with_netns=False)
        replay(helper)
        print("proxy: restarted", file=log, flush=True)
    if flags["bare"]:
        flags["bare"] = False
        helper.proc.kill()
        helper.proc.wait()
        helper = Helper()
        print("proxy: restarted without replay", file=log, flush=True)
    if flags["link"]:
        flags["link"] = False
        s1, _ = helper.call(OP_LINK, arg=0)
        s2, _ = helper.call(OP_ADDRS, arg=0)
        print("proxy: LINK_ADDED %d ADDRS_CHANGED %d" % (s1, s2), file=log, flush=True)
    try:
        r, _, _ = select.select([lsock], [], [], 0.05)
    except InterruptedError:
        continue
    if not r:
        continue
    conn, _ = lsock.accept()
    with conn:
        hdr = b""
        while len(hdr) < HDR_LEN:
            chunk = conn.recv(HDR_LEN - len(hdr))
            if not chunk:
                break
            hdr += chunk
        if len(hdr) < HDR_LEN:
            continue
        magic, version, op, optname, optlen, n, arg, cookie, _, seq = struct.unpack(HDR, hdr)
        data = b""
        while len(data) < n:
            data += conn.recv(n - len(data))
        if helper.next_fd >= POOL - 10:  # out of descriptors: a fresh helper has them all
            flags["restart"] = True
        status, reply = helper.call(op, optname, optlen, data, arg)
        if op == OP_SET and optname == IPT_SO_SET_REPLACE and status == 0:
            last_table = data
        conn.sendall(struct.pack("=IIiI", REP_MAGIC, seq, status, len(reply)) + reply)
