#!/bin/bash
# A Docker-like bridge: br0 (172.17.0.1/16) in HOST with containers C1, C2 on veth ports vc1,
# vc2; veth0 is the uplink to PEER. The filter table sees the host's traffic with the
# containers as -i br0 / -o br0 (never a port), routed traffic between the containers and
# the outside in FORWARD, and bridged traffic between containers not at all. Without
# br_netfilter, that is: this kernel has it built in, so HOST turns
# net.bridge.bridge-nf-call-iptables off, which is what bpfilter implements.
# Counts proven against netfilter (BPFILTER_TEST_NETFILTER=1).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hooks.bash"
bf_setup_netns

C1=bf-c1-$$
C2=bf-c2-$$
C3=bf-c3-$$
in_host sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
in_host sysctl -qw net.ipv4.ip_forward=1
in_host ip link add br0 type bridge
# A bridge (multicast snooping on, as Docker's) joins 224.0.0.106 when it comes up and sends
# two IGMPv3 reports (40 bytes each) out of br0, a random time apart up to the unsolicited
# report interval: OUTPUT's in netfilter. Not what the counts below are about: send them
# within 20 ms.
in_host sysctl -qw net.ipv4.conf.br0.igmpv3_unsolicited_report_interval=10
in_host ip addr add 172.17.0.1/16 dev br0
in_host ip link set br0 up
container()
{
	local ns=$1 port=$2 addr=$3
	bf_netns "$ns"
	bf_link "$HOST" "$port" - "$ns" eth0 "$addr/16"
	in_host ip link set "$port" master br0
	ip -n "$ns" route add default via 172.17.0.1
}
container "$C1" vc1 172.17.0.2
container "$C2" vc2 172.17.0.3
in_peer ip route add 172.17.0.0/16 via "$HOST_IP"
check "the helper starts with a bridge and its ports in the namespace" bf_start_helper
for ns in "$C1" "$C2"; do
	ping_from "$ns" 1 172.17.0.1 >/dev/null
	ping_from "$ns" 1 "$PEER_IP" >/dev/null
done
ping_from "$C1" 1 172.17.0.3 >/dev/null

check "-A INPUT -i br0 is accepted (no EBUSY)" ipt -A INPUT -i br0 -p icmp
ipt_ok -A INPUT -i vc1
ipt_ok -A INPUT -i vc2
ipt_ok -A OUTPUT -o br0 -p icmp
ipt_ok -A OUTPUT -o vc1
ipt_ok -A OUTPUT -o vc2
ipt_ok -A FORWARD -i br0 -o veth0 -j ACCEPT
ipt_ok -A FORWARD -i veth0 -o br0 -j ACCEPT
ipt_ok -A FORWARD -i vc1
ipt_ok -A FORWARD -o vc1
ipt_ok -A FORWARD -i br0 -o br0
bf_only check_eq "br0 carries tc in and out" "$(progs_on br0)" "$PROGS_TC"
bf_only check_eq "the port vc1 carries no program" "$(progs_on vc1)" ""
bf_only check_eq "the port vc2 carries no program" "$(progs_on vc2)" ""
bf_only check_eq "the uplink veth0 carries XDP in and tc out" "$(progs_on veth0)" "$PROGS_ETH"

# Host <-> container: once, as br0.
ipt_ok -Z
check_eq "C1 pings the host: 3 of 3 answered" "$(ping_from "$C1" 3 172.17.0.1)" 3
check_eq "the host pings C2: 2 of 2 answered" "$(ping_from "$HOST" 2 172.17.0.3)" 2
check_eq "INPUT: -i br0 counted the 3 requests and 2 replies, -i vc1/-i vc2 nothing" \
	"$(chain_counters INPUT)" "policy 5 420 | 1: 5 420 | 2: 0 0 | 3: 0 0"
check_eq "OUTPUT: -o br0 counted the 3 replies and 2 requests, -o vc1/-o vc2 nothing" \
	"$(chain_counters OUTPUT)" "policy 5 420 | 1: 5 420 | 2: 0 0 | 3: 0 0"
check_eq "FORWARD saw none of it" "$(chain_counters FORWARD)" \
	"policy 0 0 | 1: 0 0 | 2: 0 0 | 3: 0 0 | 4: 0 0 | 5: 0 0"

# Container <-> container is bridged, not routed: the filter table does not see it, and a
# FORWARD DROP policy does not stop it.
check "-P FORWARD DROP is accepted" ipt -P FORWARD DROP
ipt_ok -Z
check_eq "C1 pings C2 across the bridge: 4 of 4 answered" "$(ping_from "$C1" 4 172.17.0.3)" 4
udp_c1_c2()
{
	ip netns exec "$C1" "$PYTHON" -c '
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * 20, ("172.17.0.3", 5353))
'
}
udp_c1_c2
sleep 0.2
check_eq "INPUT saw none of it" "$(chain_counters INPUT)" "policy 0 0 | 1: 0 0 | 2: 0 0 | 3: 0 0"
check_eq "OUTPUT saw none of it" "$(chain_counters OUTPUT)" "policy 0 0 | 1: 0 0 | 2: 0 0 | 3: 0 0"
check_eq "FORWARD saw none of it" "$(chain_counters FORWARD)" \
	"policy 0 0 | 1: 0 0 | 2: 0 0 | 3: 0 0 | 4: 0 0 | 5: 0 0"

# Container -> outside is routed through the host: FORWARD, -i br0 -o veth0 and back.
ipt_ok -Z
check_eq "C1 pings PEER through the host: 3 of 3 answered" "$(ping_from "$C1" 3 "$PEER_IP")" 3
check_eq "PEER pings C2: 2 of 2 answered" "$(ping_from "$PEER" 2 172.17.0.3)" 2
check_eq "FORWARD: -i br0 -o veth0 and -i veth0 -o br0 counted 5 each, the port rules nothing" \
	"$(chain_counters FORWARD)" "policy 0 0 | 1: 5 420 | 2: 5 420 | 3: 0 0 | 4: 0 0 | 5: 0 0"
check_eq "INPUT and OUTPUT saw none of it" \
	"$(policy_counters INPUT) / $(policy_counters OUTPUT)" "0 0 / 0 0"
ipt_ok -R FORWARD 1 -i br0 -o veth0 -p icmp -j DROP
ipt_ok -Z
check_eq "a FORWARD DROP -i br0 -o veth0 stops C1 -> PEER" "$(ping_from "$C1" 2 "$PEER_IP")" 0
check_eq "and counts the 2 requests" "$(rule_counters FORWARD 1)" "2 168"
check_eq "the host still answers C1" "$(ping_from "$C1" 1 172.17.0.1)" 1
check_eq "and C1 still reaches C2" "$(ping_from "$C1" 1 172.17.0.3)" 1

# A port added after the table: no program on it, its container's traffic is br0's.
container "$C3" vc3 172.17.0.4
sleep 0.5
bf_only check_eq "the port vc3, added later, carries no program" "$(progs_on vc3)" ""
bf_only check_eq "br0 still carries tc in and out" "$(progs_on br0)" "$PROGS_TC"
ping_from "$C3" 1 172.17.0.1 >/dev/null
ipt_ok -Z
check_eq "C3 pings the host: 2 of 2 answered" "$(ping_from "$C3" 2 172.17.0.1)" 2
check_eq "INPUT counted them once, on -i br0" "$(chain_counters INPUT)" "policy 2 168 | 1: 2 168 | 2: 0 0 | 3: 0 0"
check_eq "C3 -> PEER is dropped by the FORWARD rule" "$(ping_from "$C3" 1 "$PEER_IP")" 0
check_eq "which counted it" "$(rule_counters FORWARD 1)" "1 84"
# A port leaving the bridge becomes a device of its own (no master, no upper): XDP again.
in_host ip link set vc3 nomaster
wait_progs vc3 "$PROGS_ETH"
bf_only check_eq "vc3 out of the bridge gets XDP in and tc out" "$(progs_on vc3)" "$PROGS_ETH"
in_host ip link set vc3 master br0
wait_progs vc3 ""
bf_only check_eq "back in the bridge it carries nothing again" "$(progs_on vc3)" ""
ipt_ok -Z
check_eq "C3 pings the host again: 2 of 2 answered" "$(ping_from "$C3" 2 172.17.0.1)" 2
check_eq "counted once, on -i br0" "$(chain_counters INPUT)" "policy 2 168 | 1: 2 168 | 2: 0 0 | 3: 0 0"

# The helper leaves: nothing of bpfilter's stays behind.
if [ "$BF_NETFILTER" != 1 ]; then
	bf_stop_helper TERM
	check_eq "after SIGTERM no bpfilter program is left in HOST" "$(bpfilter_progs_in "$HOST")" ""
fi

bf_summary
