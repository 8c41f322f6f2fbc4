#!/bin/bash
# Ping through the front door: a DROP rule stops a peer at once, counts every dropped packet, and -D lets it through again.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

check "ping from the peer passes with the initial table" ping_ok
check_eq "the helper attached to veth0" "$(xdp_mode_of veth0)" xdp
check_eq "the helper attached to lo" "$(xdp_mode_of lo)" xdpgeneric

# How soon the rule bites: echo requests every 2 ms from the peer while iptables runs.
in_peer "$PYTHON" "$BF_ROOT/tests/host/icmp_probe.py" "$HOST_IP" 3.0 2 "$BF_TMP/ready" >"$BF_TMP/probe" &
probe=$!
for i in $(seq 100); do
	[ -e "$BF_TMP/ready" ] && break
	sleep 0.05
done
sleep 0.3
t0=$(now_ms)
ipt -A INPUT -s "$PEER_IP" -j DROP
t1=$(now_ms)
wait "$probe"
late=$(awk -v t="$t1" '$2 >= t && $3 == 1' "$BF_TMP/probe" | wc -l)
after=$(awk -v t="$t1" '$2 >= t' "$BF_TMP/probe" | wc -l)
last_ok=$(awk '$3 == 1 { t = $2 } END { printf "%.0f", t }' "$BF_TMP/probe")
echo "# iptables -A took $((t1 - t0)) ms; the last echo answered was sent $((t1 - last_ok)) ms" \
	"before it returned; of $after echoes sent after it returned (2 ms apart), $late answered"
before=$(awk -v t="$t0" '$2 < t && $3 == 1' "$BF_TMP/probe" | wc -l)
check "echoes were answered before the rule" test "$before" -gt 50
check "no echo sent after iptables -A returned is answered" test "$late" -eq 0 -a "$after" -gt 100
check "the peer's ping is dropped" ping_blocked

# Exact counts: zero the counters, send N, expect N packets of 84 bytes on the rule.
ipt -Z INPUT
n=25
check_eq "none of $n pings answered" "$(ping_count $n)" 0
check_eq "-L -v -x shows $n dropped packets on the rule" "$(rule_counters INPUT 1)" "$n $((n * 84))"
check_eq "the policy counted nothing" "$(policy_counters INPUT)" "0 0"

ipt -D INPUT -s "$PEER_IP" -j DROP
check "after -D the ping passes again" ping_ok
check_eq "after -D all of $n pings answered" "$(ping_count $n)" "$n"
check_eq "the policy counted them" "$(policy_counters INPUT)" "$((n + 1)) $(((n + 1) * 84))"

# A rule for another source leaves the peer alone but still counts nothing for it.
ipt -A INPUT -s 10.0.0.3 -j DROP
check "a rule for another source does not stop the peer" ping_ok
check_eq "and counts nothing" "$(rule_counters INPUT 1)" "0 0"

# Loopback is filtered too (netfilter's INPUT sees it), and keeps working meanwhile.
check "loopback ping works under XDP" in_host busybox ping -c 1 -W 1 127.0.0.1
ipt -A INPUT -i lo -p icmp -j DROP
check_fails "-i lo -p icmp -j DROP stops loopback ping" in_host busybox ping -c 1 -W 1 127.0.0.1
check_eq "and counts it" "$(rule_counters INPUT 2 | cut -d' ' -f1)" 1
check "the peer is not affected by the lo rule" ping_ok
ipt -F INPUT
check "after -F loopback ping works again" in_host busybox ping -c 1 -W 1 127.0.0.1

bf_summary
