#!/bin/bash
# iptables-nft beside bpfilter: a table in nf_tables (Debian's default iptables made it) is
# unseen by bpfilter, and the helper says so in its log once a table is put in force.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

warnings() { grep -c 'nf_tables filters IPv4 here too' "$BF_TMP/umh.log" || true; }

ipt -A INPUT -s 192.0.2.1 -j DROP
check_eq "without nf_tables tables, no warning" "$(warnings)" 0
in_host iptables-nft -A INPUT -s 192.0.2.9 -j DROP
ipt -A INPUT -s 192.0.2.2 -j DROP
check_eq "with iptables-nft's table ip filter, the next replace warns" "$(warnings)" 1
check "the warning names the table and the command that points iptables at legacy" \
	grep -q 'table ip filter).*update-alternatives --set iptables /usr/sbin/iptables-legacy' "$BF_TMP/umh.log"
ipt -A INPUT -s 192.0.2.3 -j DROP
check_eq "said once, not at every replace" "$(warnings)" 1
check "bpfilter's table is its own (the nft rule is not in it)" \
	sh -c "! ip netns exec $HOST env LD_PRELOAD=$BF_PRELOAD BPFILTER_SOCKET=$BF_SOCK iptables-legacy -S INPUT | grep -q 192.0.2.9"
bf_summary
