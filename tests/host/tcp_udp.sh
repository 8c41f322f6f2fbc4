#!/bin/bash
# TCP connects and UDP datagrams through the front door: port rules stop exactly their port.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

tcp_listen 8080
tcp_listen 8081
udp_listen 5353
udp_listen 5354

check "TCP connect to 8080 works" tcp_ok 8080
check "UDP echo on 5353 works" udp_ok 5353

ipt -A INPUT -p tcp --dport 8080 -j DROP
check_fails "-p tcp --dport 8080 -j DROP stops connects to 8080" tcp_ok 8080
check "connects to 8081 still work" tcp_ok 8081
check "UDP to 5353 is not affected by the TCP rule" udp_ok 5353
check "ping is not affected by the TCP rule" ping_ok
pk=$(rule_counters INPUT 1 | cut -d' ' -f1)
check "the TCP rule counted the SYN and its retransmissions" test "$pk" -ge 1

ipt -A INPUT -p udp --dport 5353 -j DROP
check_fails "-p udp --dport 5353 -j DROP stops UDP to 5353" udp_ok 5353
check "UDP to 5354 still works" udp_ok 5354
check_eq "the UDP rule counted one datagram of 32 bytes" "$(rule_counters INPUT 2)" "1 32"

ipt -D INPUT -p tcp --dport 8080 -j DROP
check "after -D connects to 8080 work again" tcp_ok 8080
ipt -D INPUT 1
check "after -D by number UDP to 5353 works again" udp_ok 5353

# A port range with the SYN flag and a source match; and multiport.
ipt -A INPUT -s "$PEER_IP" -p tcp --syn --dport 8000:8080 -j DROP
check_fails "--syn --dport 8000:8080 stops 8080" tcp_ok 8080
check "and leaves 8081" tcp_ok 8081
ipt -F INPUT
ipt -A INPUT -p tcp -m multiport --dports 8079,8081 -j DROP
check_fails "-m multiport --dports 8079,8081 stops 8081" tcp_ok 8081
check "and leaves 8080" tcp_ok 8080
ipt -F INPUT

# Accept what is wanted, drop the rest, as a server would.
ipt -A INPUT -p tcp --dport 8080 -j ACCEPT
ipt -A INPUT -p icmp -j ACCEPT
ipt -P INPUT DROP
check "policy DROP with an ACCEPT for 8080: 8080 works" tcp_ok 8080
check_fails "policy DROP: 8081 is dropped" tcp_ok 8081
check_fails "policy DROP: UDP is dropped" udp_ok 5354
check "policy DROP: icmp accepted" ping_ok
ipt -P INPUT ACCEPT
ipt -F INPUT
check "back to ACCEPT: 8081 works" tcp_ok 8081

bf_summary
