#!/bin/bash
# XDP modes (generic, native, auto, offload), the helper's life cycle: SIGTERM detaches, SIGKILL leaves the rules filtering, a new helper adopts them and restores their table.
set -eu
. "$(dirname "$0")/lib.sh"

drop_and_count()
{
	local mode=$1
	ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
	check_eq "$mode: none of 10 pings answered" "$(ping_count 10)" 0
	check_eq "$mode: 10 packets counted on the rule" "$(rule_counters INPUT 1)" "10 840"
	ipt -D INPUT 1
	check "$mode: after -D the ping passes" ping_ok
}

bf_setup --xdp-mode generic
check_eq "generic: veth0 runs generic XDP" "$(xdp_mode_of veth0)" xdpgeneric
check_eq "generic: lo runs generic XDP" "$(xdp_mode_of lo)" xdpgeneric
drop_and_count generic
bf_stop_helper TERM
check_eq "SIGTERM: the program is gone from veth0" "$(xdp_mode_of veth0)" none
check_eq "SIGTERM: the program is gone from lo" "$(xdp_mode_of lo)" none
check "SIGTERM: the socket is removed" test ! -e "$BF_SOCK"

bf_start_helper --xdp-mode native
check_eq "native: veth0 runs native XDP" "$(xdp_mode_of veth0)" xdp
check_eq "native: lo still runs generic XDP (it has no driver hook)" "$(xdp_mode_of lo)" xdpgeneric
drop_and_count native
bf_stop_helper TERM

bf_start_helper --no-loopback
check_eq "auto: veth0 runs native XDP" "$(xdp_mode_of veth0)" xdp
check_eq "--no-loopback: lo is left alone" "$(xdp_mode_of lo)" none
drop_and_count auto

# A helper that dies leaves its programs attached: the rules keep filtering.
ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
bf_stop_helper KILL
check_eq "SIGKILL: the program stays on veth0" "$(xdp_mode_of veth0)" xdp
check_fails "SIGKILL: the rules keep filtering without the helper" ping_ok
out=$(ipt -L -n 2>&1) && rc=0 || rc=$?
check "without the helper iptables fails" test "$rc" -ne 0
check "and says the helper is not reachable" grep -q "not reachable at $BF_SOCK" <<<"$out"

# A new helper adopts the programs it finds (ours by name) and replaces them atomically
# with the table they ran, saved in /run/bpfilter (restart.sh has the details).
bf_start_helper
check "the new helper adopted the old program" grep -q "adopting program id .* on veth0" "$BF_TMP/umh.log"
check_fails "the new helper serves the table that was in force" ping_ok
check_eq "its rule is listed" "$(ipt_save | grep -c '^-A' || true)" 1
ipt -D INPUT 1
drop_and_count restarted
bf_stop_helper TERM

# Offload needs a NIC that runs BPF; veth cannot: the helper says so and does not start.
out=$(ip netns exec "$HOST" "$BF_UMH" --listen "$BF_SOCK" --xdp-mode offload 2>&1) && rc=0 || rc=$?
check "offload on veth: the helper refuses to start" test "$rc" -ne 0
check "offload on veth: it names the device" grep -q "offloading to veth0 failed" <<<"$out"
check_eq "offload on veth: nothing stays attached" "$(xdp_mode_of veth0)" none
echo "# $out"
bad_mode() { ! out=$("$BF_UMH" --listen "$BF_SOCK" --xdp-mode fast 2>&1) && grep -q "unknown XDP mode" <<<"$out"; }
check "an unknown mode is refused with a message" bad_mode

bf_summary
