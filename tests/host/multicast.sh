#!/bin/bash
# Multicast at INPUT: netfilter sees datagrams for the groups the host has joined (and
# 224.0.0.1); input routing drops the rest before INPUT. bpfilter reads the joined groups
# when a table is applied and counts only those; the rest are judged but not counted.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

JOINED=239.1.2.3
OTHER=239.9.9.9
PORT=5000

# A receiver in HOST that joins a group on veth0 and counts what it gets in a file.
receive()
{
	local group=$1 file=$2 hex
	in_host "$PYTHON" -c '
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[3])))
n = 0
with open(sys.argv[4], "w") as out:
    while True:
        s.recvfrom(2048)
        n += 1
        out.seek(0)
        out.write("%d\n" % n)
        out.flush()
' "$group" "$PORT" "$HOST_IP" "$file" >/dev/null 2>&1 &
	BF_PIDS="$BF_PIDS $!"
	# /proc/net/igmp prints the group as the hex of its network-order u32.
	hex=$(printf '%02X%02X%02X%02X' $(echo "$group" | awk -F. '{ print $4, $3, $2, $1 }'))
	for _ in $(seq 50); do
		in_host grep -q "$hex" /proc/net/igmp && return 0
		sleep 0.05
	done
	echo "# $group was not joined"
	return 1
}
receive "$JOINED" "$BF_TMP/received"

# Sends n datagrams of 12 bytes from PEER to a group.
send_to()
{
	in_peer "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[3]))
for _ in range(int(sys.argv[2])):
    s.sendto(b"hello, group", (sys.argv[1], int(sys.argv[4])))
' "$1" "$2" "$PEER_IP" "$PORT"
}
received() { cat "$BF_TMP/received" 2>/dev/null || echo 0; }

# The table is applied after the join: the helper reads the group then.
ipt -A INPUT -d 239.0.0.0/8 -p udp
ipt -A INPUT -d 224.0.0.1 -p udp
send_to "$JOINED" 3
send_to "$OTHER" 4
send_to 224.0.0.1 2
sleep 0.3
check_eq "the receiver got the 3 datagrams for its group" "$(received)" 3
check_eq "the joined group's 3 datagrams are counted, the other group's 4 are not" \
	"$(rule_counters INPUT 1)" "3 120"
check_eq "224.0.0.1, which every device joins, is counted" "$(rule_counters INPUT 2)" "2 80"

# A DROP holds on the joined group; on the other it changes nothing and counts nothing.
ipt -I INPUT -d "$JOINED" -j DROP
ipt -I INPUT -d "$OTHER" -j DROP
send_to "$JOINED" 2
send_to "$OTHER" 2
sleep 0.3
check_eq "the DROP stops the group's datagrams" "$(received)" 3
check_eq "and counts them" "$(rule_counters INPUT 2)" "2 80"
check_eq "the DROP for a group nobody joined counts nothing, as in netfilter" \
	"$(rule_counters INPUT 1)" "0 0"

# A group joined while the table is in force: the helper looks again within a second.
LATER=239.5.5.5
ipt -F INPUT
ipt -A INPUT -d 239.0.0.0/8 -p udp
send_to "$LATER" 2
receive "$LATER" "$BF_TMP/later"
sleep 1.5
send_to "$LATER" 3
sleep 0.3
check_eq "a group joined after the table came is counted from then on" \
	"$(rule_counters INPUT 1)" "3 120"

bf_summary
