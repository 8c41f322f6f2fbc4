#!/bin/bash
# A front-door helper that dies loses nothing: the next one puts the table that was in force back (saved in /run/bpfilter), with its counters, and the programs filter all along (issue 11, item 3).
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

host_cookie=$(in_host "$PYTHON" -c '
import socket, struct
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
print(struct.unpack("=Q", s.getsockopt(socket.SOL_SOCKET, 71, 8))[0])')
state=/run/bpfilter/table-$host_cookie
rule_listed() { ipt -S INPUT | grep -q -- "-A INPUT -s $PEER_IP/32 -p icmp -j DROP"; }

ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
check_eq "none of 3 pings answered" "$(ping_count 3)" 0
# iptables carries the counts of rules a change keeps with IPT_SO_SET_ADD_COUNTERS: those
# must survive too.
ipt -A INPUT -p tcp --dport 9 -j ACCEPT
check_eq "3 packets counted, carried across a change by ADD_COUNTERS" "$(rule_counters INPUT 1)" "3 252"
check "the table in force is saved" test -s "$state"
check_eq "root's alone" "$(stat -c '%U %a' "$state")" "root 600"

# The helper killed and a new one started while the peer pings every 2 ms: the old
# programs filter until the saved table replaces them.
in_peer "$PYTHON" "$BF_ROOT/tests/host/icmp_probe.py" "$HOST_IP" 2.0 2 >"$BF_TMP/probe" &
probe=$!
sleep 0.3
bf_stop_helper KILL
check "the new helper starts" bf_start_helper
wait "$probe"
check "it restored the saved table" grep -q "restored the table an earlier helper had in force" "$BF_TMP/umh.log"
check "keeping the old programs attached until then" grep -q "keeping the .* programs of an earlier helper attached" "$BF_TMP/umh.log"
check_eq "of $(wc -l <"$BF_TMP/probe") echoes sent across the restart, none answered" \
	"$(awk '$3 == 1' "$BF_TMP/probe" | wc -l)" 0
check "the rules are listed" rule_listed
check_eq "both of them" "$(ipt -S INPUT | grep -c -- '^-A INPUT')" 2
probes=$(wc -l <"$BF_TMP/probe")
# (The probe's echoes are 68 bytes at IP.)
check_eq "the counters survived: 3 pings and the probe's $probes echoes" "$(rule_counters INPUT 1)" \
	"$((3 + probes)) $((252 + probes * 68))"
check "the log says they were carried" grep -q "counters of [0-9]* rules carried over" "$BF_TMP/umh.log"
check_fails "the restored table drops the ping" ping_ok
check_eq "and counts on from there" "$(rule_counters INPUT 1 | cut -d' ' -f1)" "$((4 + probes))"

# Twice in a row: the carried counts are carried again.
before=$(rule_counters INPUT 1)
bf_stop_helper KILL
check "another restart" bf_start_helper
check_eq "the counters survive a second restart" "$(rule_counters INPUT 1)" "$before"

# --fresh: the user asks for the empty table.
bf_stop_helper KILL
check "a helper started with --fresh" bf_start_helper --fresh
check_eq "serves the empty table" "$(ipt -S INPUT | grep -c -- '^-A INPUT' || true)" 0
check "the peer pings" ping_ok

# A clean stop (SIGTERM) detaches: nothing is in force, and a later helper starts empty.
ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
bf_stop_helper TERM
check "SIGTERM removes the saved table" test ! -e "$state"
check "a helper after a clean stop" bf_start_helper
check_eq "starts empty" "$(ipt -S INPUT | grep -c -- '^-A INPUT' || true)" 0

# A saved table that no longer loads: the helper does not start, and the old programs
# stay in force (better than none) until the user starts it with --fresh.
ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
bf_stop_helper KILL
printf 'garbage' >"$state"
out=$(ip netns exec "$HOST" "$BF_UMH" --listen "$BF_SOCK" 2>&1) && rc=0 || rc=$?
check "a helper with an unreadable saved table refuses to start" test "$rc" -ne 0
check "and says why" grep -q "restoring the table saved by an earlier helper" <<<"$out"
check_fails "the old programs still drop the ping" ping_ok
check "--fresh starts" bf_start_helper --fresh
check "the peer pings" ping_ok

bf_summary
