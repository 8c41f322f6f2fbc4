#!/bin/bash
# iptables-legacy-save and -restore through the front door: round trips with counters, --noflush.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

# Everything the translator knows, with counters that mean something (user chains in
# the order iptables-save prints them: sorted).
cat >"$BF_TMP/rules" <<RULES
*filter
:INPUT ACCEPT [7:588]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [3:252]
:blocklist - [0:0]
:services - [0:0]
[5:420] -A INPUT -i lo -j ACCEPT
[0:0] -A INPUT -s 192.0.2.0/24 -j blocklist
[2:168] -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT
[0:0] -A INPUT ! -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j DROP
[0:0] -A INPUT -i veth+ -p tcp -j services
[0:0] -A INPUT -p udp -m udp --sport 53 --dport 1024:65535 -j ACCEPT
[0:0] -A INPUT -m iprange --src-range 198.51.100.1-198.51.100.9 -j DROP
[0:0] -A INPUT -p tcp -m multiport --dports 80,443,8000:8080 -m comment --comment "web ports" -j ACCEPT
[0:0] -A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT
[0:0] -A INPUT -f -j DROP
[1:60] -A blocklist -j DROP
[0:0] -A services -p tcp -m tcp --dport 8080 -j ACCEPT
[0:0] -A services -j RETURN
COMMIT
RULES

strip() { grep -v '^#' "$1"; }
check "iptables-legacy-restore -c loads the ruleset" ipt_restore -c "$BF_TMP/rules"
ipt_save -c >"$BF_TMP/saved1"
check "save -c gives back exactly what restore -c loaded" diff <(strip "$BF_TMP/rules") <(strip "$BF_TMP/saved1")

# Traffic moves the counters; the round trip must keep them all.
ping_ok
ping_ok
ipt_save -c >"$BF_TMP/saved2"
check "the pings were counted on the icmp rule" grep -q '^\[4:336\] -A INPUT -p icmp' "$BF_TMP/saved2"
ipt_save -c | ipt_restore -c
ipt_save -c >"$BF_TMP/saved3"
check "save -c | restore -c | save -c is identical" diff <(strip "$BF_TMP/saved2") <(strip "$BF_TMP/saved3")
check "the restored table still accepts ping" ping_ok

# Without -c, restore zeroes the counters (and keeps the rules).
ipt_save >"$BF_TMP/nocounters"
ipt_restore <"$BF_TMP/nocounters"
check_eq "restore without -c: rule counters are zero" \
	"$(ipt_save -c | grep -c '^\[0:0\] -A')" "$(grep -c '^-A' "$BF_TMP/nocounters")"

# --noflush adds to what is there.
before=$(ipt_save | grep -c '^-A')
printf '*filter\n-A INPUT -s %s -p icmp -j DROP\nCOMMIT\n' "$PEER_IP" | ipt_restore --noflush
check_eq "--noflush appends one rule" "$(ipt_save | grep -c '^-A')" "$((before + 1))"
# The ACCEPT for icmp comes first; insert the DROP ahead of it.
printf '*filter\n-I INPUT 1 -s %s -p icmp -j DROP\nCOMMIT\n' "$PEER_IP" | ipt_restore --noflush
check_fails "--noflush -I puts a DROP ahead: ping is dropped" ping_ok
check_eq "user chains are still there" "$(ipt_save | grep -c '^:services\|^:blocklist')" 2

# A plain restore (flush) of the original ruleset: the ping is accepted again.
ipt_restore <"$BF_TMP/rules"
check "restore (flushing) brings the original rules back" ping_ok
check_eq "rule count after flushing restore" "$(ipt_save | grep -c '^-A')" "$(grep -c -- '-A' "$BF_TMP/rules")"

# An empty table.
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' | ipt_restore
check_eq "restore of an empty table leaves no rules" "$(ipt_save | grep -c '^-A' || true)" 0

bf_summary
