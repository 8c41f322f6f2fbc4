#!/bin/bash
# A table that is refused (by the translator, the ABI checks or at attach time) changes nothing: the old rules keep filtering and counting.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
ipt -A INPUT -s 10.9.9.9 -j DROP
ipt_save >"$BF_TMP/before"
check_fails "the DROP rule is in force" ping_ok
prog_id() { in_host ip -d link show dev "$1" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
id_before=$(prog_id veth0)

# Each refusal: the command fails with the errno iptables expects, and nothing changes.
refused()
{
	local what=$1 want=$2
	shift 2
	local out
	if out=$(ipt "$@" 2>&1); then
		check_eq "$what is refused" "accepted" "refused"
		return
	fi
	check "$what: iptables says \"$want\"" grep -q "$want" <<<"$out"
}
refused "-j NFLOG, a target we lack (ENOENT)" "No chain/target/match by that name" -A INPUT -j NFLOG
refused "-m cpu, a match we lack (ENOENT)" "No chain/target/match by that name" -A INPUT -m cpu --cpu 0 -j ACCEPT
refused "-m quota, a match we lack (ENOENT)" "No chain/target/match by that name" -A INPUT -m quota --quota 100
# -m connlimit is translated, but a limit a list of 16 tuples cannot decide is refused.
refused "-m connlimit above 100 (EOPNOTSUPP)" "not supported" -A INPUT -p tcp -m connlimit --connlimit-above 100
# -m owner is translated, but only from OUTPUT (and POSTROUTING), as xt_check_match() says.
refused "-m owner in INPUT (EINVAL)" "Invalid argument" -A INPUT -m owner --uid-owner 0

ipt_save >"$BF_TMP/after"
check "the rules are those of before the refusals" diff "$BF_TMP/before" <(cat "$BF_TMP/after") -I '^#'
check_eq "the same program still runs on veth0" "$(prog_id veth0)" "$id_before"
ipt -Z INPUT
check_eq "the old rules still filter: none of 10 pings answered" "$(ping_count 10)" 0
check_eq "and still count: 10 packets on the DROP rule" "$(rule_counters INPUT 1)" "10 840"

# A failure half way through attaching: a foreign XDP program replaces ours on a second
# interface, so the next table cannot be attached there. The interfaces already switched
# must go back to the old program.
ip -n "$HOST" link add veth2 type veth peer name veth3 netns "$PEER"
ip -n "$HOST" link set veth2 up
ip -n "$PEER" link set veth3 up
for i in $(seq 40); do
	[ "$(xdp_mode_of veth2)" != none ] && break
	sleep 0.05
done
id_before=$(prog_id veth0)
check_eq "the new interface got our program" "$(prog_id veth2)" "$id_before"
cat >"$BF_TMP/foreign.c" <<'C'
__attribute__((section("xdp"), used)) int foreign(void *ctx) { return 2; /* XDP_PASS */ }
char _license[] __attribute__((section("license"), used)) = "GPL";
C
clang -O2 -target bpf -c "$BF_TMP/foreign.c" -o "$BF_TMP/foreign.o"
mode=$(xdp_mode_of veth2)
# In one step: bpfilter puts its program back on a device where it finds none.
in_host ip -force link set dev veth2 "$mode" obj "$BF_TMP/foreign.o" sec xdp
out=$(ipt -A INPUT -s 10.8.8.8 -j DROP 2>&1) && rc=0 || rc=$?
check "a table that cannot be attached everywhere is refused" test "$rc" -ne 0
check "the helper says why" grep -q "veth2 runs XDP program .*foreign.* in place of bpfilter's" "$BF_TMP/umh.log"
check "iptables says the device is busy" grep -q "busy" <<<"$out"
check_eq "veth0 is back on the old program" "$(prog_id veth0)" "$id_before"
check_eq "lo is back on the old program" "$(prog_id lo)" "$id_before"
check "the rules are unchanged" diff "$BF_TMP/before" <(ipt_save) -I '^#'
check_eq "the old program still drops the peer's pings" "$(ping_count 5)" 0
check_eq "and counts them" "$(rule_counters INPUT 1)" "15 1260"
in_host ip link set dev veth2 "$mode" off
check "with the foreign program gone, tables load again" ipt -A INPUT -s 10.8.8.8 -j DROP
check_eq "counters survived that replace" "$(rule_counters INPUT 1)" "15 1260"

bf_summary
