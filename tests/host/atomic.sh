#!/bin/bash
# A replace is all or nothing across devices and hooks: when the kernel refuses an attach on
# one device (a foreign XDP program sits on veth2), iptables fails with an errno, the helper's
# log names the device, and the previous table keeps judging and counting packets on every
# device and hook (INPUT on veth0 and lo, FORWARD veth0 -> veth2, OUTPUT -o veth2). With the
# foreign program gone the same replace succeeds. In netfilter mode
# (BPFILTER_TEST_NETFILTER=1) there is nothing to refuse: the refusal is skipped and the
# counts of the old table, then the new, are proven against netfilter.
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
ping_from "$PEER" 1 10.0.1.2 >/dev/null
ping_from "$PEER" 1 "$HOST_IP" >/dev/null

# The old table: something to judge on every device and hook.
ipt_ok -A INPUT -s "$PEER_IP" -p icmp -j DROP
ipt_ok -A INPUT -i lo -p icmp
ipt_ok -A FORWARD -i veth0 -o veth2 -p icmp -j DROP
ipt_ok -A OUTPUT -o veth2 -p icmp -j DROP
ipt_save | grep '^-' >"$BF_TMP/before"
wait_progs veth2 "$PROGS_ETH"
bf_only check_eq "veth0 carries XDP in and tc out" "$(progs_on veth0)" "$PROGS_ETH"
bf_only check_eq "veth2 carries XDP in and tc out" "$(progs_on veth2)" "$PROGS_ETH"
ids_of() { in_host bpftool net show dev "$1" 2>/dev/null | grep -o 'id [0-9]*' | sort | tr '\n' ' '; }

# The old table in force on every device: INPUT veth0, INPUT lo, FORWARD veth0 -> veth2,
# OUTPUT -o veth2 (the replies to PEER2's pings). Counters add up from the zero here.
ipt_ok -Z
old_table_judges()
{
	local when=$1 k=$2 # the k-th round since the zero
	check_eq "$when: PEER's pings to HOST are dropped (2 sent)" "$(ping_from "$PEER" 2 "$HOST_IP")" 0
	check_eq "$when: INPUT -s PEER counted them" "$(rule_counters INPUT 1)" "$((2 * k)) $((168 * k))"
	check_eq "$when: HOST pings 127.0.0.1" "$(ping_from "$HOST" 1 127.0.0.1)" 1
	check_eq "$when: INPUT -i lo counted request and reply" "$(rule_counters INPUT 2)" "$((2 * k)) $((168 * k))"
	check_eq "$when: PEER -> PEER2 is dropped in FORWARD (2 sent)" "$(ping_from "$PEER" 2 10.0.1.2)" 0
	check_eq "$when: FORWARD counted them" "$(rule_counters FORWARD 1)" "$((2 * k)) $((168 * k))"
	check_eq "$when: PEER2's pings to HOST get no reply (2 sent)" "$(ping_from "$PEER2" 2 10.0.1.1)" 0
	check_eq "$when: OUTPUT -o veth2 counted the 2 replies" "$(rule_counters OUTPUT 1)" "$((2 * k)) $((168 * k))"
}
old_table_judges "before" 1
progs_veth0=$(progs_on veth0)
ids_veth0=$(ids_of veth0) # every replace (-Z too) installs new programs: taken after the last
ids_lo=$(ids_of lo)

# A foreign XDP program on veth2, put in place of ours in one step: bpfilter puts its own
# back on a device where it finds none, so taking it off first would race with that.
in_host ip -force link set dev veth2 xdp obj "$(foreign_xdp_obj)" sec xdp
check_eq "veth2 runs the foreign program" "$(xdp_mode_of veth2)" xdp

if [ "$BF_NETFILTER" != 1 ]; then
	log_lines=$(wc -l <"$BF_TMP/umh.log")
	out=$(ipt -A INPUT -s 10.9.9.9 -j DROP 2>&1) && rc=0 || rc=$?
	check "a replace that cannot attach on veth2 is refused" test "$rc" -ne 0
	echo "# iptables said: $out"
	check "iptables reports an errno" grep -q -i "busy\|exists\|not supported\|invalid\|permitted\|error" <<<"$out"
	check "the helper's log names veth2" grep -q veth2 <(tail -n +"$((log_lines + 1))" "$BF_TMP/umh.log")
	tail -n +"$((log_lines + 1))" "$BF_TMP/umh.log" | sed 's/^/# umh: /'
	check_eq "veth0 keeps the old programs (same ids)" "$(ids_of veth0)" "$ids_veth0"
	check_eq "veth0 keeps XDP in and tc out" "$(progs_on veth0)" "$progs_veth0"
	check_eq "lo keeps the old programs (same ids)" "$(ids_of lo)" "$ids_lo"
	check_eq "veth2 keeps its tc out and the foreign XDP" "$(progs_on veth2)" "$PROG_TC_IN $PROG_TC_OUT xdp:foreign"
fi
check "the rules are those of before" diff "$BF_TMP/before" <(ipt_save | grep '^-')
old_table_judges "after the refusal" 2

# The foreign program gone, the same replace succeeds and the new table is in force.
in_host ip link set dev veth2 xdp off
check "with the foreign program gone the replace succeeds" ipt -A INPUT -s 10.9.9.9 -j DROP
wait_progs veth2 "$PROGS_ETH"
bf_only check_eq "veth2 carries XDP in and tc out again" "$(progs_on veth2)" "$PROGS_ETH"
check_eq "the counters survived the replace" \
	"$(rule_counters INPUT 1) / $(rule_counters FORWARD 1) / $(rule_counters OUTPUT 1)" \
	"4 336 / 4 336 / 4 336"
old_table_judges "after the replace" 3
check_eq "the new rule counted nothing" "$(rule_counters INPUT 3)" "0 0"
ipt_ok -I INPUT -i veth2 -p icmp -j DROP
check_eq "veth2's ingress is judged by the new table: PEER2's pings dropped at INPUT" \
	"$(ping_from "$PEER2" 2 10.0.1.1)" 0
check_eq "and counted" "$(rule_counters INPUT 1)" "2 168"

bf_summary
