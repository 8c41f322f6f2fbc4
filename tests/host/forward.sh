#!/bin/bash
# FORWARD keeps netfilter's meaning: HOST routes between PEER (veth0) and PEER2 (veth2);
# routed packets are FORWARD's (-i where they came in, -o where routing sends them), packets
# for the router are INPUT's, and a TTL=1 packet is never FORWARD's: the router's time
# exceeded is OUTPUT's. Counts proven against netfilter (BPFILTER_TEST_NETFILTER=1).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hooks.bash"
bf_setup_netns

PEER2=bf-peer2-$$
bf_netns "$PEER2"
bf_link "$HOST" veth2 10.0.1.1/24 "$PEER2" veth3 10.0.1.2/24
in_peer ip route add default via "$HOST_IP"
ip -n "$PEER2" route add default via 10.0.1.1
in_host sysctl -qw net.ipv4.ip_forward=1
bf_start_helper
# Neighbours resolved before anything is counted.
ping_from "$PEER" 1 10.0.1.2 >/dev/null
ping_from "$PEER2" 1 "$PEER_IP" >/dev/null

check "-P FORWARD DROP is accepted" ipt -P FORWARD DROP
wait_progs veth2 "$PROGS_ETH"
bf_only check_eq "veth0 carries XDP in and tc out" "$(progs_on veth0)" "$PROGS_ETH"
bf_only check_eq "veth2 carries XDP in and tc out" "$(progs_on veth2)" "$PROGS_ETH"
ipt_ok -Z
check_eq "PEER -> PEER2 forwarded pings are dropped (5 sent)" "$(ping_from "$PEER" 5 10.0.1.2)" 0
check_eq "the FORWARD policy counted the 5 requests" "$(policy_counters FORWARD)" "5 420"
check_eq "INPUT saw none of them" "$(policy_counters INPUT)" "0 0"
check_eq "the router's own address on veth0 answers (INPUT)" "$(ping_from "$PEER" 3 "$HOST_IP")" 3
check_eq "so does its address on veth2, reached from PEER through veth0 (INPUT, not FORWARD)" \
	"$(ping_from "$PEER" 2 10.0.1.1)" 2
check_eq "INPUT counted the 5 requests" "$(policy_counters INPUT)" "5 420"
check_eq "OUTPUT counted the 5 replies" "$(policy_counters OUTPUT)" "5 420"
check_eq "FORWARD still 5 packets" "$(policy_counters FORWARD)" "5 420"
check_eq "the router itself reaches PEER2 (OUTPUT), FORWARD DROP notwithstanding" \
	"$(ping_from "$HOST" 2 10.0.1.2)" 2
check_eq "FORWARD still 5 packets after the router's own pings" "$(policy_counters FORWARD)" "5 420"

# One direction allowed: the requests pass, the replies meet the policy.
ipt_ok -Z
check "-A FORWARD -i veth0 -o veth2 -j ACCEPT is accepted" ipt -A FORWARD -i veth0 -o veth2 -j ACCEPT
check_eq "one way open: the replies are still dropped (4 sent)" "$(ping_from "$PEER" 4 10.0.1.2)" 0
check_eq "the rule counted the 4 requests" "$(rule_counters FORWARD 1)" "4 336"
check_eq "the policy counted the 4 replies" "$(policy_counters FORWARD)" "4 336"
udp_to_peer2()
{
	in_peer "$PYTHON" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"x" * 100, ("10.0.1.2", 9))
'
}
# UDP datagrams this way are the rule's; the port unreachables coming back, the policy's.
udp_to_peer2
sleep 0.2
check_eq "3 UDP datagrams of 128 bytes PEER -> PEER2 counted on the rule" "$(rule_counters FORWARD 1)" "7 720"
check_eq "and PEER2's 3 port unreachables (156 bytes each) on the policy" \
	"$(policy_counters FORWARD)" "7 804"

check "-A FORWARD -i veth2 -o veth0 -j ACCEPT is accepted" ipt -A FORWARD -i veth2 -o veth0 -j ACCEPT
ipt_ok -Z
check_eq "both ways open: 6 of 6 pings answered" "$(ping_from "$PEER" 6 10.0.1.2)" 6
check_eq "FORWARD rule 1 counted the 6 requests" "$(rule_counters FORWARD 1)" "6 504"
check_eq "FORWARD rule 2 counted the 6 replies" "$(rule_counters FORWARD 2)" "6 504"
check_eq "the policy counted nothing" "$(policy_counters FORWARD)" "0 0"
check_eq "PEER2 -> PEER works too (3 pings)" "$(ping_from "$PEER2" 3 "$PEER_IP")" 3
check_eq "and is counted on rule 2 (requests) and rule 1 (replies)" \
	"$(chain_counters FORWARD)" "policy 0 0 | 1: 9 756 | 2: 9 756"
check_eq "INPUT and OUTPUT saw none of the forwarded packets" \
	"$(policy_counters INPUT) / $(policy_counters OUTPUT)" "0 0 / 0 0"

# Rules whose -i or -o is wrong for the route do not match.
ipt_ok -F FORWARD
ipt_ok -A FORWARD -i veth0 -o veth0 -j DROP
ipt_ok -A FORWARD -i veth2 -o veth2 -j DROP
ipt_ok -A FORWARD -o lo -j DROP
ipt_ok -A FORWARD -i veth0 -o veth2 -p icmp
ipt_ok -A FORWARD -j ACCEPT
ipt_ok -Z
check_eq "-o veth0 / -i veth2 / -o lo do not match PEER -> PEER2: 4 of 4 answered" \
	"$(ping_from "$PEER" 4 10.0.1.2)" 4
check_eq "only the right rule and the catch-all counted" \
	"$(chain_counters FORWARD)" "policy 0 0 | 1: 0 0 | 2: 0 0 | 3: 0 0 | 4: 4 336 | 5: 8 672"
ipt_ok -F FORWARD
ipt_ok -A FORWARD -i veth+ ! -o veth0 -j ACCEPT
ipt_ok -A FORWARD -i veth2 -o veth+ -j ACCEPT
ipt_ok -Z
check_eq "wildcards and ! on -o: 3 of 3 answered" "$(ping_from "$PEER" 3 10.0.1.2)" 3
check_eq "requests on rule 1, replies on rule 2" "$(chain_counters FORWARD)" "policy 0 0 | 1: 3 252 | 2: 3 252"

# TTL=1: the router does not forward it; FORWARD never sees it, OUTPUT sees the router's
# ICMP time exceeded (20 + 8 + the 84-byte original = 112 bytes), INPUT sees nothing.
ipt_ok -F FORWARD
ipt_ok -A FORWARD -p icmp -j ACCEPT
ipt_ok -A OUTPUT -p icmp --icmp-type time-exceeded
ipt_ok -A INPUT -p icmp
ipt_ok -Z
check_eq "a TTL=1 ping through the router is not answered" "$(ping_from "$PEER" 1 10.0.1.2 -t 1)" 0
check_eq "FORWARD did not see it (rule and policy)" "$(chain_counters FORWARD)" "policy 0 0 | 1: 0 0"
check_eq "OUTPUT counted the router's time exceeded" "$(rule_counters OUTPUT 1)" "1 112"
check_eq "INPUT did not see the expired packet" "$(chain_counters INPUT)" "policy 0 0 | 1: 0 0"
check_eq "a TTL=2 ping is forwarded (and answered)" "$(ping_from "$PEER" 1 10.0.1.2 -t 2)" 1
check_eq "FORWARD counted its request and reply" "$(chain_counters FORWARD)" "policy 0 0 | 1: 2 168"

# Forwarding off: FORWARD sees nothing and the packets go nowhere.
in_host sysctl -qw net.ipv4.ip_forward=0
ipt_ok -Z
check_eq "with ip_forward off nothing is routed" "$(ping_from "$PEER" 2 10.0.1.2)" 0
check_eq "and FORWARD counts nothing" "$(chain_counters FORWARD)" "policy 0 0 | 1: 0 0"

bf_summary
