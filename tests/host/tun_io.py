#!/usr/bin/python3
"""Plays the far end of a tun device for the host tests.

tun_io.py DEV SRC DST COUNT: attaches to the (persistent) tun device DEV, writes COUNT ICMP
echo requests (84 bytes each) from SRC to DST into it, as if they had arrived on DEV, and reads
what the host sends out of DEV for a second. Prints the number of echo replies from DST to SRC.
"""
import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo_request(src, dst, seq):
    payload = bytes(range(56))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + icmp


def main():
    dev, src, dst, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    # Attaching turns the carrier on; the device transmits once linkwatch has caught up
    # (operstate leaves "down"), which can take up to a second. Replies sent before that
    # are dropped after OUTPUT has counted them.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        with open("/sys/class/net/%s/operstate" % dev) as f:
            if f.read().strip() != "down":
                break
        time.sleep(0.01)
    for seq in range(1, count + 1):
        os.write(fd, echo_request(src, dst, seq))
    replies = 0
    deadline = time.monotonic() + 1.0
    while replies < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        pkt = os.read(fd, 65536)
        if len(pkt) >= 28 and pkt[0] >> 4 == 4 and pkt[9] == 1 and pkt[20] == 0 \
                and pkt[12:16] == socket.inet_aton(dst) and pkt[16:20] == socket.inet_aton(src):
            replies += 1
    print(replies)


main()
