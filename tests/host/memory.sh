#!/bin/bash
# The helper's memory at 100k rules (issue 10: under 64 MiB resident): its peak (VmHWM)
# after iptables-restore of 100k service rules (-s a.b.c.d -p udp --dport P -j DROP, the
# largest blob a rule of the common shapes makes) and after one iptables -A on that table
# (GET_ENTRIES of it all, then a replace with it all and one rule more). The table still
# filters and counts afterwards. Measured 48 / 53 MiB (Documentation/design.md, "Memory").
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

n=100000
limit_kib=$((64 * 1024))

{
	echo '*filter'
	echo ':INPUT ACCEPT [0:0]'
	echo ':FORWARD ACCEPT [0:0]'
	echo ':OUTPUT ACCEPT [0:0]'
	awk -v n=$n 'BEGIN { for (i = 0; i < n; i++)
		printf "-A INPUT -s 10.%d.%d.%d/32 -p udp -m udp --dport %d -j DROP\n",
			int(i / 62500) % 250, int(i / 250) % 250, i % 250 + 1, 1000 + i % 50000 }'
	echo "-A INPUT -s $PEER_IP/32 -p icmp -j DROP"
	echo 'COMMIT'
} >"$BF_TMP/table"

hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$BF_UMH_PID/status"; }

check "a table of $n service rules applies" ipt_restore "$BF_TMP/table"
hwm=$(hwm_kib)
echo "# peak RSS after the restore: $((hwm / 1024)) MiB"
check "the helper's peak after it is under 64 MiB" test "$hwm" -lt $limit_kib
check "iptables appends a rule to it" ipt -A INPUT -s 192.0.2.1 -p udp --dport 7 -j DROP
hwm=$(hwm_kib)
echo "# peak RSS after the append: $((hwm / 1024)) MiB"
check "the helper's peak after it is under 64 MiB" test "$hwm" -lt $limit_kib
check_eq "iptables lists them all" "$(ipt -S INPUT | grep -c '^-A INPUT')" $((n + 2))
check_eq "the last rule but one drops the peer's pings: none of 3 answered" "$(ping_count 3)" 0
check_eq "and counts them" "$(rule_counters INPUT $((n + 1)))" "3 252"
ipt -F INPUT
check "after a flush the peer pings" ping_ok

bf_summary
