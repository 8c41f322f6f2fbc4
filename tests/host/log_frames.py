#!/usr/bin/env python3
# Frames for every branch of the kernel's IPv4 log line (nf_log_syslog), sent raw on a device.
# Usage: log_frames.py send DEVICE DST_MAC SRC_MAC SRC_IP LOCAL_IP FORWARD_IP [NAME...]
#   frames to LOCAL_IP reach INPUT (and the host's answers OUTPUT); to FORWARD_IP, FORWARD.
#   log_frames.py hex DST_MAC SRC_MAC SRC_IP LOCAL_IP FORWARD_IP: "name hex" a line.
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


def addr(a):
    return socket.inet_aton(a)


def ip(src, dst, proto, payload, ident=0x1234, frag=0x4000, tos=0, ttl=64, opts=b"", tot=None):
    ihl = 5 + len(opts) // 4
    total = tot if tot is not None else ihl * 4 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, total, ident, frag, ttl, proto, 0,
                      addr(src), addr(dst)) + opts
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def tcp(sport, dport, seq, ack, flags, window=64240, opts=b"", urg=0, res=0, doff=None):
    d = doff if doff is not None else 5 + len(opts) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, d << 4 | res, flags, window, 0,
                       urg) + opts


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp(typ, code, rest, data=b""):
    body = struct.pack("!BBH", typ, code, 0) + rest + data
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def frames(dst_mac, src_mac, src, local, fwd):
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + \
        b"\x08\x00"
    syn_opts = bytes.fromhex("020405b4" "0402" "080a0001e2400000" "0000" "01030307")
    quoted_udp = ip(local, src, 17, udp(5353, 40001, b"q" * 12), ident=0x4321, frag=0)
    quoted_tcp = ip(local, "10.0.0.77", 6, tcp(8080, 40002, 7, 0, 0x02), ident=0x99, frag=0)
    quoted_echo = ip(local, src, 1, icmp(8, 0, struct.pack("!HH", 0x55, 3)), ident=0x77, frag=0)
    whole_udp = udp(40003, 9999, b"f" * 24)
    out = [
        ("tcp_syn", ip(src, local, 6, tcp(40000, 8080, 1000, 0, 0xc2, opts=syn_opts), tos=0x10)),
        ("tcp_flags_ipopt", ip(src, local, 6, tcp(40000, 8081, 5, 9, 0x39, urg=5, res=3,
                                                  window=512), opts=b"\x01\x01\x01\x00",
                               frag=0x8000, tos=0xb8, ttl=3)),
        ("udp", ip(src, local, 17, udp(5000, 5353, b"hello"), ident=0x0bad)),
        ("udplite", ip(src, local, 136, udp(5001, 5354, b"lite"), ident=2)),
        ("icmp_echo", ip(src, local, 1, icmp(8, 0, struct.pack("!HH", 0x4242, 7), b"ping" * 4),
                         ident=3)),
        ("icmp_unreach", ip(src, local, 1, icmp(3, 3, b"\0" * 4, quoted_udp[:28]), ident=4)),
        ("icmp_frag_needed", ip(src, local, 1, icmp(3, 4, struct.pack("!HH", 0, 1400),
                                                    quoted_tcp[:28]), ident=5)),
        ("icmp_redirect", ip(src, local, 1, icmp(5, 1, addr("10.0.0.9"), quoted_echo[:28]),
                             ident=6)),
        ("icmp_param", ip(src, local, 1, icmp(12, 0, b"\x14\0\0\0", quoted_udp[:28]),
                          ident=7)),
        ("icmp_timestamp", ip(src, local, 1, icmp(13, 0, struct.pack("!HH", 1, 2), b"\0" * 12),
                              ident=8)),
        ("icmp_short", ip(src, local, 1, icmp(13, 0, struct.pack("!HH", 1, 2)), ident=9)),
        ("ah", ip(src, local, 51, bytes.fromhex("3b0400000000deadbeef00000001"), ident=10)),
        ("esp", ip(src, local, 50, bytes.fromhex("00001001000000020102030405060708"),
                   ident=11)),
        ("unknown", ip(src, local, 253, b"\0" * 8, ident=12)),
        ("tcp_incomplete", ip(src, local, 6, tcp(40000, 8082, 1, 2, 0x10)[:10], ident=13)),
        ("tcp_opt_truncated", ip(src, local, 6, tcp(40000, 8083, 1, 2, 0x10, doff=15) +
                                 b"\x01" * 4, ident=14)),
        # A datagram in three pieces: INPUT sees it reassembled.
        ("frag_1", ip(src, local, 17, whole_udp[:16], ident=0x7001, frag=0x2000)),
        ("frag_2", ip(src, local, 17, whole_udp[16:24], ident=0x7001, frag=0x2002)),
        ("frag_3", ip(src, local, 17, whole_udp[24:], ident=0x7001, frag=0x0003)),
        # FORWARD sees each piece.
        ("fwd_tcp", ip(src, fwd, 6, tcp(40004, 22, 77, 0, 0x02, opts=syn_opts), ident=0x100)),
        ("fwd_frag_1", ip(src, fwd, 17, whole_udp[:16], ident=0x7002, frag=0x2000)),
        ("fwd_frag_2", ip(src, fwd, 17, whole_udp[16:], ident=0x7002, frag=0x0002)),
    ]
    return [(name, eth + pkt) for name, pkt in out]


def main():
    if sys.argv[1] == "hex":
        for name, f in frames(*sys.argv[2:7]):
            print(name, f.hex())
        return
    dev = sys.argv[2]
    only = set(sys.argv[8:])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    for name, f in frames(*sys.argv[3:8]):
        if not only or name in only:
            s.send(f)
            time.sleep(0.02)


main()
