#!/usr/bin/env python3
# Echo requests at a fixed rate, one line per request: "seq sent_ms answered", to time when a rule takes effect.
# Usage: icmp_probe.py DEST SECONDS INTERVAL_MS [READY_FILE]; READY_FILE is created at the first answer.
import os
import select
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    dest, duration, interval_ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    ready = sys.argv[4] if len(sys.argv) > 4 else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    sent = {}
    answered = set()
    seq = 0
    end = time.time() + duration
    next_send = time.time()
    # Answers may trail the last request by a little; wait for them.
    while time.time() < end + 0.5:
        now = time.time()
        if now >= next_send and now < end:
            seq += 1
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
            payload = struct.pack("!d", now) + b"bpfilter" * 4
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, seq & 0xFFFF) + payload
            sock.sendto(pkt, (dest, 0))
            sent[seq & 0xFFFF] = int(now * 1000)
            next_send += interval_ms / 1000.0
        r, _, _ = select.select([sock], [], [], max(0.0, min(next_send, end + 0.5) - time.time()))
        if r:
            data = sock.recv(2048)
            ihl = (data[0] & 0xF) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident:
                answered.add(rseq)
                if ready:
                    open(ready, "w").close()
                    ready = None
    for s in sorted(sent):
        print(s, sent[s], 1 if s in answered else 0)


main()
