#!/bin/bash
# -m hashlimit through the front door: a burst per source, the htable kept across a replace
# that keeps its name and made anew when the name goes, expired entries collected, and
# /proc/net/ipt_hashlimit/NAME read through the preload beside netfilter's own (the peer's
# OUTPUT, same rate): the same key, credit cap and cost.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

hl_proc() { in_host env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" cat "/proc/net/ipt_hashlimit/$1"; }
pings() { local n=0 i; for i in $(seq "$1"); do ping_ok && n=$((n + 1)); done; echo "$n"; }

ipt -A INPUT -p icmp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl-host -j ACCEPT
ipt -A INPUT -p icmp -j DROP
check_eq "a burst of 3 per source: 3 of 5 pings answered" "$(pings 5)" 3
check_eq "the hashlimit rule counted 3" "$(rule_counters INPUT 1 | cut -d' ' -f1)" 3

# netfilter's own, on the peer's OUTPUT, for the same pings.
in_peer iptables-legacy -A OUTPUT -p icmp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode dstip --hashlimit-name hl-host -j ACCEPT
in_peer iptables-legacy -A OUTPUT -p icmp -j DROP
pings 5 >/dev/null
ours=$(hl_proc hl-host)
theirs=$(in_peer cat /proc/net/ipt_hashlimit/hl-host)
echo "# bpfilter: $ours"
echo "# netfilter: $theirs"
check_eq "/proc/net/ipt_hashlimit: one entry, keyed by the source" "$(echo "$ours" | wc -l) $(echo "$ours" | cut -d' ' -f2)" "1 $PEER_IP:0->0.0.0.0:0"
check_eq "credit cap and cost as netfilter's" "$(echo "$ours" | cut -d' ' -f4,5)" "$(echo "$theirs" | cut -d' ' -f4,5)"
# libxt_hashlimit sets the expiry to the rate's period (an hour) when none is given.
secs=$(echo "$ours" | cut -d' ' -f1)
nf_secs=$(echo "$theirs" | cut -d' ' -f1)
check "seconds to expiry as netfilter's, within one" test $((secs - nf_secs)) -ge -1 -a $((secs - nf_secs)) -le 1
check_fails "a name no rule has: no file" hl_proc hl-none
in_peer iptables-legacy -F OUTPUT

# A replace that keeps the name keeps the entries.
ipt -I INPUT 1 -p tcp --dport 1 -j DROP
check_eq "after an unrelated replace the source's burst is still spent" "$(pings 2)" 0
# One that drops the name drops the htable: the rule added again starts full.
ipt -D INPUT 2
ipt -I INPUT 2 -p icmp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl-host -j ACCEPT
check_eq "the name gone from one table, back in the next: a fresh burst" "$(pings 5)" 3

# Expiry: entries of --hashlimit-htable-expire 3000 are gone after the next collections
# (one datagram, sent without waiting for an answer).
ipt -A INPUT -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-name hl-short --hashlimit-mode srcip --hashlimit-htable-expire 3000 --hashlimit-htable-gcinterval 1000 -j DROP
in_peer "$PYTHON" -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (sys.argv[1], 7))' "$HOST_IP"
sleep 0.2
check_eq "an entry is made" "$(hl_proc hl-short | wc -l)" 1
sleep 5
check_eq "and collected once expired" "$(hl_proc hl-short | wc -l)" 0

bf_summary
