#!/bin/bash
# Connection tracking (-m conntrack, -m state) through the front door, against real netfilter:
# the same stateful ruleset and the same traffic in two pairs of namespaces, one filtered by
# bpfilter, one by the kernel's ip_tables; every rule's counters must be equal.
set -eu
. "$(dirname "$0")/lib.sh"

# A raw TCP segment from the peer: flags by name, checksums right (conntrack checks them).
raw_tcp()
{
	in_peer "$PYTHON" - "$@" <<'PY'
import socket, struct, sys
src, dst, dport, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bits = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32}
fl = sum(bits[c] for c in flags)
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s_ip, d_ip = socket.inet_aton(src), socket.inet_aton(dst)
tcp = struct.pack("!HHIIBBHHH", 40000, dport, 1000, 2000 if fl & 16 else 0, 5 << 4, fl, 65535, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(s_ip + d_ip + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 4242, 0, 64, 6, 0, s_ip, d_ip)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + tcp, (dst, 0))
PY
}
# TCP with a fixed number of segments: a listener that reads until the peer goes, and a
# client that connects, waits and resets (SO_LINGER 0): SYN, SYN/ACK, ACK, RST and nothing
# else, whatever the timing.
quiet_listen() # NS PORT
{
	ip netns exec "$1" "$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    try:
        while c.recv(16):
            pass
    except OSError:
        pass
    c.close()
' "$2" >/dev/null 2>&1 &
	BF_PIDS="$BF_PIDS $!"
	sleep 0.3
}
# A connect that OUTPUT drops gives up after 0.5 s: the SYN's first retransmission comes at 1 s
# (TCP_TIMEOUT_INIT), so each side sends exactly one SYN, however loaded the machine.
connect_reset() # NS ADDR PORT
{
	ip netns exec "$1" "$PYTHON" -c '
import socket, struct, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.5)
time.sleep(0.1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
' "$2" "$3"
}
# UDP from the host to a closed port of the peer: the peer's port unreachable comes back.
host_udp_closed()
{
	in_host "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((sys.argv[1], 9999))
s.send(b"x")
try:
    s.recv(16)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)
' "$PEER_IP"
}

RULES='*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 7777 -m conntrack --ctstate NEW
-A INPUT -m state --state INVALID
-A INPUT -m conntrack --ctstate RELATED -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL -j ACCEPT
-A INPUT -m state --state INVALID -j DROP
-A INPUT -p tcp --dport 2222 -m conntrack --ctstate NEW --ctorigdst 10.0.0.1 --ctorigdstport 2222 -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -m state --state NEW -j ACCEPT
-A INPUT -m conntrack --ctstate NEW --ctproto udp
-A OUTPUT -m conntrack --ctstate NEW
-A OUTPUT -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL
-A OUTPUT -m conntrack --ctstate ESTABLISHED --ctdir REPLY
-A OUTPUT -m state --state RELATED
-A OUTPUT -m state --state INVALID
-A OUTPUT -p tcp --dport 3334 -m state --state NEW -j DROP
COMMIT'

# The traffic, the same on both sides; the counters after it.
scenario()
{
	quiet_listen "$HOST" 2222
	udp_listen 5353
	quiet_listen "$PEER" 3333
	ipt_restore <<<"$RULES"
	check "$1: the peer connects to 2222 (NEW, then ESTABLISHED)" connect_reset "$PEER" "$HOST_IP" 2222
	check_fails "$1: UDP to 5353 is NEW and not let in" udp_ok 5353
	check "$1: the peer pings us (NEW echo request)" ping_ok
	check "$1: we connect to the peer (its answers ESTABLISHED)" connect_reset "$HOST" "$PEER_IP" 3333
	check "$1: we ping the peer (the reply ESTABLISHED)" in_host busybox ping -c 1 -W 1 "$PEER_IP"
	check "$1: the peer's port unreachable is RELATED" host_udp_closed
	check_fails "$1: OUTPUT drops our NEW connection to 3334" connect_reset "$HOST" "$PEER_IP" 3334
	for f in A SA F R SF FPU; do
		raw_tcp "$PEER_IP" "$HOST_IP" 7777 "$f"
	done
	sleep 0.2
	ipt -L INPUT -v -x -n --line-numbers | awk '$1 ~ /^[0-9]+$/ { print "INPUT", $1, $2, $3 }' >"$BF_TMP/$1.counts"
	policy_counters INPUT >>"$BF_TMP/$1.counts"
	ipt -L OUTPUT -v -x -n --line-numbers | awk '$1 ~ /^[0-9]+$/ { print "OUTPUT", $1, $2, $3 }' >>"$BF_TMP/$1.counts"
}

bf_setup
scenario bpfilter
check "the front door turned conntrack on in the namespace" \
	sh -c "ip netns exec $HOST iptables-legacy -t raw -S PREROUTING | grep -q 'connection tracking on'"
bf_stop_helper TERM
check "and off when its helper left" \
	sh -c "! ip netns exec $HOST iptables-legacy -t raw -S PREROUTING | grep -q 'connection tracking on'"
for pid in $BF_PIDS; do kill "$pid" 2>/dev/null || true; done
BF_PIDS=
ip netns del "$HOST"
ip netns del "$PEER"

# The same in fresh namespaces under the kernel's own ip_tables.
HOST=bf-host-nf-$$
PEER=bf-peer-nf-$$
BF_EXTRA_NETNS="$HOST $PEER"
tmp=$BF_TMP
bf_setup_netns
rm -rf "$BF_TMP"
BF_TMP=$tmp
ipt() { in_host iptables-legacy "$@"; }
ipt_restore() { in_host iptables-legacy-restore "$@"; }
in_peer busybox ping -c 1 -W 2 "$HOST_IP" >/dev/null 2>&1 || true
scenario netfilter

check "every rule counted what netfilter counted" diff "$BF_TMP/netfilter.counts" "$BF_TMP/bpfilter.counts"
sed 's/^/# netfilter: /' "$BF_TMP/netfilter.counts"
sed 's/^/# bpfilter:  /' "$BF_TMP/bpfilter.counts"
bf_summary
