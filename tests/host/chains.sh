#!/bin/bash
# User chains, RETURN and goto, and every chain and rule command: -N -X -E -I -R -D -F -Z -P.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

tcp_listen 8080

# INPUT -> checks; checks RETURNs icmp to INPUT, drops TCP. RETURN must come back to
# the rule after the jump, not leave the table.
ipt -N checks
ipt -A checks -p icmp -j RETURN
ipt -A checks -p tcp -j DROP
ipt -A INPUT -j checks
ipt -A INPUT -p icmp -j DROP
check_fails "icmp RETURNs from the user chain and meets the DROP after the jump" ping_ok
check_fails "TCP is dropped inside the user chain" tcp_ok 8080
check_eq "the RETURN rule counted the ping" "$(rule_counters checks 1 | cut -d' ' -f1)" 1
check_eq "the DROP after the jump counted the ping" "$(rule_counters INPUT 2 | cut -d' ' -f1)" 1

# -R replaces rule 2 of INPUT: icmp now accepted after the RETURN.
ipt -R INPUT 2 -p icmp -j ACCEPT
check "-R: the replaced rule accepts icmp" ping_ok
# -I inserts at the head, before the jump.
ipt -I INPUT 1 -p tcp --dport 8080 -j ACCEPT
check "-I: the inserted ACCEPT comes before the user chain's DROP" tcp_ok 8080
ipt -D INPUT 1
check_fails "-D 1: TCP meets the user chain's DROP again" tcp_ok 8080

# -E renames the chain; the jump follows.
ipt -E checks filters
check_fails "-E: after renaming, the jump still drops TCP" tcp_ok 8080
chain_listed() { ipt -L "$1" -n | grep -q "^Chain $1 "; }
check "-L shows the renamed chain" chain_listed filters

# -Z zeroes the counters.
ping_ok || true
ipt -Z
check_eq "-Z: counters of a user chain are zero" "$(rule_counters filters 1)" "0 0"
check_eq "-Z: counters of INPUT are zero" "$(rule_counters INPUT 2)" "0 0"

# -F on the user chain empties it: TCP passes (falls off the end, implicit RETURN).
ipt -F filters
check "-F filters: TCP falls through the empty chain" tcp_ok 8080
check_fails "-X fails while INPUT still jumps to it" ipt -X filters
ipt -D INPUT -j filters
ipt -X filters
check_fails "-X: the chain is gone" ipt -L filters -n

# goto: -g leaves INPUT for good; the chain's end continues after the *caller's*
# caller, here INPUT's policy, so the DROP after the goto is never reached.
ipt -N viagoto
ipt -A viagoto -p icmp -j RETURN
ipt -A INPUT -p icmp -g viagoto
ipt -A INPUT -p icmp -j DROP
check "-g: RETURN from a goto chain goes to the policy, skipping the DROP" ping_ok
ipt -F INPUT
ipt -N inner
ipt -A inner -p icmp -j RETURN
ipt -F viagoto
ipt -A viagoto -j inner
ipt -A viagoto -p icmp -j DROP
ipt -A INPUT -j viagoto
check_fails "nested jump: RETURN from inner continues in viagoto, whose DROP applies" ping_ok
ipt -F INPUT
ipt -F viagoto
ipt -X viagoto
ipt -F inner
ipt -X inner

# -P: the policy decides what no rule took, and counts it.
ipt -P INPUT DROP
check_fails "-P INPUT DROP drops the ping" ping_ok
check_eq "and the policy counted it" "$(policy_counters INPUT | cut -d' ' -f1)" 1
ipt -P INPUT ACCEPT
check "-P INPUT ACCEPT lets it through" ping_ok

# Chains nested some levels deep, each jumping to the next, the last dropping icmp.
prev=INPUT
for i in 1 2 3 4 5 6; do
	ipt -N "deep$i"
	ipt -A "$prev" -j "deep$i"
	prev=deep$i
done
ipt -A deep6 -p icmp -j DROP
check_fails "a DROP six chains deep applies" ping_ok
ipt -D deep6 -p icmp -j DROP
ipt -A deep6 -p icmp -j RETURN
ipt -A deep5 -p icmp -j DROP
check_fails "RETURN from the sixth chain lands in the fifth" ping_ok
ipt -F deep5
check "with the fifth emptied the ping passes" ping_ok

bf_summary
