#!/usr/bin/env python3
# Sends a crafted probe and prints the replies that come back (REJECT's ICMP errors and resets).
# Usage:
#   reject_probe.py in IFACE KIND SRC DST [COUNT]
#       KIND: udp, udpbig, icmp, syn, ack (a raw IP datagram, fixed id and contents, sent COUNT
#       times); prints each reply frame from IFACE as hex, the reply's IP id and header
#       checksum zeroed (ip_select_ident() is not predictable), then "replies N".
#   reject_probe.py out KIND DST PORT
#       KIND: udp, tcp (an ordinary socket of this host); prints what the socket was told
#       ("refused", "timeout", "ok") and the replies lo delivered: their headers (up to
#       the ICMP code) and length.
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ip_header(src, dst, proto, payload_len, ident, tos=0):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + payload_len, ident, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:]


def pseudo(src, dst, proto, length):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def probe(kind, src, dst):
    if kind in ("udp", "udpbig"):
        data = bytes((k * 7) & 0xFF for k in range(1000 if kind == "udpbig" else 11))
        udp = struct.pack("!HHHH", 40000, 5000, 8 + len(data), 0) + data
        udp = udp[:6] + struct.pack("!H", checksum(pseudo(src, dst, 17, len(udp)) + udp)) + udp[8:]
        return ip_header(src, dst, 17, len(udp), 0x1234, tos=0x10) + udp
    if kind == "icmp":
        body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"bpfilter reject"
        body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
        return ip_header(src, dst, 1, len(body), 0x1235) + body
    flags, payload = (0x02, b"") if kind == "syn" else (0x18, b"x" * 100)
    tcp = struct.pack("!HHIIBBHHH", 40001, 8080, 0x11223344, 0x55667788, 0x50, flags, 512, 0, 0)
    tcp += payload
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo(src, dst, 6, len(tcp)) + tcp)) + tcp[18:]
    return ip_header(src, dst, 6, len(tcp), 0x1236) + tcp


def is_reply(frame):
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return False
    proto = frame[23]
    ihl = (frame[14] & 0xF) * 4
    if proto == 1:
        return frame[14 + ihl] == 3
    return proto == 6 and len(frame) >= 14 + ihl + 14 and frame[14 + ihl + 13] & 0x04


def show(frame, head):
    f = bytearray(frame)
    f[18:20] = b"\0\0"  # IP id
    f[24:26] = b"\0\0"  # IP header checksum
    if f[23] == 6:
        # netfilter's reset leaves with CHECKSUM_PARTIAL: over veth it carries only the
        # pseudo-header's sum
        f[50:52] = b"\0\0"
    if head:
        # A socket's datagram has its own id, ports, sequence: the headers to the ICMP
        # code (the TCP source port) and the length.
        return "%s... %d bytes" % (f[:36].hex(), len(f))
    return f.hex()


def collect(cap, seconds, head=False):
    out = []
    end = time.time() + seconds
    while time.time() < end:
        cap.settimeout(max(0.01, end - time.time()))
        try:
            frame, addr = cap.recvfrom(4096)
        except socket.timeout:
            break
        if addr[2] != PACKET_OUTGOING and is_reply(frame):
            out.append(show(frame, head))
    return out


def main():
    mode = sys.argv[1]
    if mode == "in":
        iface, kind, src, dst = sys.argv[2:6]
        count = int(sys.argv[6]) if len(sys.argv) > 6 else 1
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        cap.bind((iface, 0))
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for _ in range(count):
            raw.sendto(probe(kind, src, dst), (dst, 0))
            time.sleep(0.005)
        replies = collect(cap, 0.5)
    else:
        kind, dst, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        cap.bind(("lo", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((dst, port))
            if kind == "udp":
                try:
                    s.send(b"bpfilter")
                except PermissionError:
                    pass  # netfilter's DROP at LOCAL_OUT; the error follows all the same
                s.recv(16)
            print("ok")
        except ConnectionRefusedError:
            print("refused")
        except socket.timeout:
            print("timeout")
        replies = collect(cap, 0.3, head=True)
    for r in replies:
        print(r)
    print("replies", len(replies))


main()
