#!/bin/bash
# The module's side of the helper on the host: bpfilter_umh --channel in the root namespace serving another namespace through descriptors, restarted without a gap in filtering.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup_netns

# channel_proxy.py plays bpfilter.ko: it runs the helper in the root namespace and
# serves the front door socket with requests about HOST.
"$PYTHON" "$BF_ROOT/tests/host/channel_proxy.py" "$BF_SOCK" "$HOST" "$BF_UMH" "$BF_TMP/umh.log" &
proxy=$!
BF_PIDS="$BF_PIDS $proxy"
for i in $(seq 100); do
	grep -q "proxy: listening" "$BF_TMP/umh.log" 2>/dev/null && break
	sleep 0.05
done
root_xdp() { ip -d link show | grep -c "prog/xdp.*bpfilter_xdp_in" || true; }
root_before=$(root_xdp)

check "iptables through the channel helper works" ipt -A INPUT -s "$PEER_IP" -p icmp -j DROP
check_eq "the program is attached in HOST, the caller's namespace" "$(xdp_mode_of veth0)" xdp
check_eq "and nothing was attached in the helper's own namespace" "$(root_xdp)" "$root_before"
check_fails "the rule drops the peer's ping" ping_ok
ipt -Z INPUT
check_eq "none of 10 pings answered" "$(ping_count 10)" 0
check_eq "10 packets counted" "$(rule_counters INPUT 1)" "10 840"

# The helper killed and restarted while the peer pings every 2 ms: the old programs
# filter until the replayed table replaces them; not one echo gets through.
in_peer "$PYTHON" "$BF_ROOT/tests/host/icmp_probe.py" "$HOST_IP" 2.0 2 >"$BF_TMP/probe" &
probe=$!
sleep 0.5
kill -USR1 "$proxy"
wait "$probe"
for i in $(seq 100); do
	grep -q "proxy: restarted" "$BF_TMP/umh.log" && break
	sleep 0.05
done
check "the new helper kept the old programs until the table was restored" \
	grep -q "keeping the 2 programs of an earlier helper attached" "$BF_TMP/umh.log"
check "the replayed table was accepted" grep -q "proxy: replayed the table: status 0" "$BF_TMP/umh.log"
check_eq "of $(wc -l <"$BF_TMP/probe") echoes sent across the restart, none answered" \
	"$(awk '$3 == 1' "$BF_TMP/probe" | wc -l)" 0
rule_listed() { ipt -S INPUT | grep -q -- "$1"; }
check "the restored table lists the rule" rule_listed "-s $PEER_IP/32 -p icmp -j DROP"
check_eq "its counters survived the restart: the 10 pings and the $(wc -l <"$BF_TMP/probe") echoes" \
	"$(rule_counters INPUT 1 | cut -d' ' -f1)" "$((10 + $(wc -l <"$BF_TMP/probe")))"
check "the log says they were carried" grep -q "counters of [0-9]* rules carried over" "$BF_TMP/umh.log"
ipt -D INPUT 1
check "after -D the peer gets through" ping_ok

# Links the module reports: the helper keeps no watcher in other namespaces.
ipt -A INPUT -s 10.1.0.2 -j DROP
ip -n "$HOST" link add late0 type veth peer name peer0 netns "$PEER"
ip -n "$HOST" addr add 10.1.0.1/24 dev late0
ip -n "$PEER" addr add 10.1.0.2/24 dev peer0
ip -n "$HOST" link set late0 up
ip -n "$PEER" link set peer0 up
kill -HUP "$proxy"
for i in $(seq 100); do
	grep -q "proxy: LINK_ADDED" "$BF_TMP/umh.log" && break
	sleep 0.05
done
check_eq "LINK_ADDED attaches to the new link" "$(xdp_mode_of late0)" xdp
check_fails "and its traffic is filtered" ping_ok 10.1.0.1

# rmmod: DETACH for the namespace, then the channel closes and the helper exits. Done
# by a helper that never served the namespace (restarted, nothing to replay): it
# finds the earlier helper's programs by name and removes them all the same.
kill -USR2 "$proxy"
for i in $(seq 100); do
	grep -q "proxy: restarted without replay" "$BF_TMP/umh.log" && break
	sleep 0.05
done
kill -TERM "$proxy"
wait "$proxy" && rc=0 || rc=$?
check_eq "the helper exits 0 at the end of the channel" "$rc" 0
check "DETACH was answered 0" grep -q "proxy: DETACH: status 0" "$BF_TMP/umh.log"
check "the helper that never served the namespace found the programs" \
	grep -q "adopting program id .* on late0" "$BF_TMP/umh.log"
check_eq "no program left on veth0" "$(xdp_mode_of veth0)" none
check_eq "no program left on late0" "$(xdp_mode_of late0)" none
check_eq "no program left on lo" "$(xdp_mode_of lo)" none

bf_summary
