#!/bin/bash
# OUTPUT keeps netfilter's meaning: everything the host sends, from sockets (raw ones too) and
# from the kernel itself (echo replies, TCP resets, ICMP errors), loopback included, each
# packet once, -o the routed device. Counts proven against netfilter (BPFILTER_TEST_NETFILTER=1).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hooks.bash"
bf_setup

bf_only check_eq "veth0 carries XDP in and tc out" "$(progs_on veth0)" "$PROGS_ETH"

# Kernel-made echo replies.
ipt_ok -Z
check_eq "3 pings from the peer answered" "$(ping_count 3)" 3
check_eq "OUTPUT's policy counted the 3 replies" "$(policy_counters OUTPUT)" "3 252"
check_eq "INPUT's policy counted the 3 requests" "$(policy_counters INPUT)" "3 252"

check "-A OUTPUT -o veth0 -p icmp -j DROP is accepted" ipt -A OUTPUT -o veth0 -p icmp -j DROP
ipt_ok -Z
check_eq "with replies dropped none of 4 pings is answered" "$(ping_count 4)" 0
check_eq "the OUTPUT rule counted the 4 replies" "$(rule_counters OUTPUT 1)" "4 336"
check_eq "INPUT still counted the 4 requests" "$(policy_counters INPUT)" "4 336"
check_eq "OUTPUT's policy counted nothing" "$(policy_counters OUTPUT)" "0 0"
# A socket's packet that OUTPUT drops fails its sendto (EPERM): busybox ping gives up at once.
check_fails "the host's own ping out of veth0 is dropped too" in_host busybox ping -c 1 -W 1 "$PEER_IP"
check_eq "the rule counted its request" "$(rule_counters OUTPUT 1)" "5 420"
ipt_ok -R OUTPUT 1 -o veth0 -p icmp --icmp-type echo-request
ipt_ok -Z
check_eq "a counting rule for echo requests: the host's 3 pings are answered" \
	"$(ping_from "$HOST" 3 "$PEER_IP")" 3
check_eq "the rule counted the 3 requests, and so did the policy after it" \
	"$(chain_counters OUTPUT)" "policy 3 252 | 1: 3 252"
check_eq "INPUT counted the 3 replies" "$(policy_counters INPUT)" "3 252"
ipt_ok -F OUTPUT

# A rule for another device does not match.
ipt_ok -A OUTPUT -o veth9 -j DROP
ipt_ok -A OUTPUT -o lo -j DROP
check "-o veth9 and -o lo do not match replies out of veth0" ping_ok
check_eq "and count nothing" "$(chain_counters OUTPUT | cut -d'|' -f2-)" " 1: 0 0 | 2: 0 0"
ipt_ok -F OUTPUT

# A TCP SYN to a closed port: the kernel's RST (40 bytes) is OUTPUT's; the SYN is INPUT's.
ipt_ok -A OUTPUT -o veth0 -p tcp --tcp-flags RST RST
ipt_ok -A INPUT -i veth0 -p tcp --syn
ipt_ok -Z
check_fails "a connection to a closed port is refused" tcp_ok 4321
check_eq "OUTPUT counted one RST of 40 bytes" "$(rule_counters OUTPUT 1)" "1 40"
check_eq "INPUT counted one SYN of 60 bytes" "$(rule_counters INPUT 1)" "1 60"
ipt_ok -I OUTPUT -p tcp --tcp-flags RST RST -j DROP
ipt_ok -Z
check_fails "with RSTs dropped the connection is not refused, it times out" tcp_ok 4321
n=$(rule_counters OUTPUT 1 | cut -d' ' -f1)
check "the DROP rule counted the RSTs (at least the first)" test "$n" -ge 1
check_eq "the rule after it counted none" "$(rule_counters OUTPUT 2)" "0 0"
ipt_ok -F OUTPUT
ipt_ok -F INPUT

# An ICMP error: a UDP datagram (20 + 8 + 1 bytes) to a port nobody listens on gets a port
# unreachable of 20 + 8 + 29 = 57 bytes.
ipt_ok -A OUTPUT -o veth0 -p icmp --icmp-type port-unreachable
ipt_ok -Z
in_peer "$PYTHON" -c '
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (sys.argv[1], 4444))
' "$HOST_IP"
sleep 0.2
check_eq "OUTPUT counted the port unreachable" "$(rule_counters OUTPUT 1)" "1 57"
ipt_ok -F OUTPUT

# Loopback: each packet is OUTPUT's (-o lo) and INPUT's (-i lo) once.
ipt_ok -A OUTPUT -o lo -p icmp
ipt_ok -A OUTPUT -o lo -p udp --dport 9999
ipt_ok -A OUTPUT -o veth0
ipt_ok -A INPUT -i lo -p icmp
ipt_ok -A INPUT -i lo -p udp --dport 9999
ipt_ok -Z
check_eq "a ping to 127.0.0.1 is answered" "$(ping_from "$HOST" 1 127.0.0.1)" 1
check_eq "OUTPUT -o lo counted request and reply" "$(rule_counters OUTPUT 1)" "2 168"
check_eq "INPUT -i lo counted request and reply" "$(rule_counters INPUT 1)" "2 168"
in_host "$PYTHON" -c '
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", 9999))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"0123456789", ("127.0.0.1", 9999))
r.settimeout(1)
assert r.recv(64) == b"0123456789"
'
check_eq "a UDP datagram to 127.0.0.1: OUTPUT -o lo counted it once" "$(rule_counters OUTPUT 2)" "1 38"
check_eq "INPUT -i lo counted it once" "$(rule_counters INPUT 2)" "1 38"
check_eq "nothing went out of veth0" "$(rule_counters OUTPUT 3)" "0 0"
check_eq "a ping to the host's own 10.0.0.1 is answered (over lo)" "$(ping_from "$HOST" 2 "$HOST_IP")" 2
check_eq "and counted on -o lo, not -o veth0" \
	"$(rule_counters OUTPUT 1) / $(rule_counters OUTPUT 3)" "6 504 / 0 0"
check_eq "INPUT -i lo too" "$(rule_counters INPUT 1)" "6 504"
ipt_ok -A OUTPUT -o lo -p icmp -j DROP
check_fails "-o lo -j DROP stops loopback ping" in_host busybox ping -c 1 -W 1 127.0.0.1
check_eq "the DROP counted the request" "$(rule_counters OUTPUT 4)" "1 84"
check "the peer is not affected" ping_ok
ipt_ok -F OUTPUT
ipt_ok -F INPUT

# Sockets: a UDP datagram to the peer, and an IP_HDRINCL raw packet, each counted once.
ipt_ok -A OUTPUT -o veth0 -p udp --dport 7777
ipt_ok -A OUTPUT -o veth0 -p udp --dport 7778
ipt_ok -Z
in_host "$PYTHON" -c '
import socket, struct, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"a" * 50, (sys.argv[2], 7777))
# A raw socket building its own header: 20 + 8 + 12 bytes.
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
payload = b"raw datagram"
udp = struct.pack("!HHHH", 40000, 7778, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2]))
r.sendto(ip + udp, (sys.argv[2], 0))
' "$HOST_IP" "$PEER_IP"
sleep 0.2
check_eq "the UDP socket's datagram counted once (78 bytes)" "$(rule_counters OUTPUT 1)" "1 78"
check_eq "the raw socket's packet counted once (40 bytes)" "$(rule_counters OUTPUT 2)" "1 40"
ipt_ok -I OUTPUT -p udp --dport 7777 -j DROP
out=$(in_host "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"a" * 50, (sys.argv[1], 7777))
    print("sent")
except OSError as e:
    print(e.errno)
' "$PEER_IP")
# netfilter drops at LOCAL_OUT and sendto() fails with EPERM; bpfilter drops at tc egress,
# where the socket is not told (Documentation/supported.md).
if [ "$BF_NETFILTER" = 1 ]; then
	check_eq "a UDP send that OUTPUT drops fails with EPERM, as in netfilter" "$out" 1
else
	check_eq "a UDP send that OUTPUT drops at tc egress is not told (a documented difference)" "$out" sent
fi
check_eq "the DROP counted it" "$(rule_counters OUTPUT 1)" "1 78"
check_eq "the counting rule behind it did not" "$(rule_counters OUTPUT 2)" "1 78"

bf_summary
