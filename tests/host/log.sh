#!/bin/bash
# -j LOG: the same rules in netfilter and in bpfilter, the same frames, the same kernel log lines.
#
# Frames from tests/host/log_frames.py (every branch of nf_log's IPv4 line: TCP with options,
# UDP, UDPLITE, ICMP and the packets ICMP errors quote, AH, ESP, unknown protocols, INCOMPLETE,
# fragments) come in on veth0 for INPUT and for FORWARD (to veth2); the host's answers (resets,
# ICMP errors, echo replies) go through OUTPUT. First iptables-legacy in the kernel logs them,
# then bpfilter through the front door (/dev/kmsg): the lines must be the same, but for the IP
# ids of the host's own answers.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup_netns
FWD_IP=10.9.9.9
ip -n "$HOST" link add veth2 type veth peer name veth3
for l in veth2 veth3; do ip -n "$HOST" link set "$l" up; done
ip -n "$HOST" route add 10.9.9.0/24 dev veth2
ip -n "$HOST" neigh add "$FWD_IP" lladdr 02:00:00:00:00:09 dev veth2
in_host sysctl -qw net.ipv4.ip_forward=1
# Every ICMP error the host owes, in both runs.
in_host sysctl -qw net.ipv4.icmp_ratelimit=0

# Non-initial namespaces log only with nf_log_all_netns; /dev/kmsg writes are rate limited.
old_all=$(sysctl -n net.netfilter.nf_log_all_netns)
old_devkmsg=$(sysctl -n kernel.printk_devkmsg)
restore()
{
	sysctl -qw net.netfilter.nf_log_all_netns="$old_all"
	sysctl -qw kernel.printk_devkmsg="$old_devkmsg"
	bf_cleanup
}
trap restore EXIT
sysctl -qw net.netfilter.nf_log_all_netns=1
sysctl -qw kernel.printk_devkmsg=on

TAG=bflog$$
HOST_MAC=$(ip -n "$HOST" -br link show veth0 | awk '{print $3}')
PEER_MAC=$(ip -n "$PEER" -br link show veth1 | awk '{print $3}')

# The rules, with the tool given ($1) and the run's mark in the prefix ($2).
add_rules()
{
	local t=$1 run=$2
	$t -A INPUT -s "$PEER_IP" -j LOG --log-prefix "$TAG.$run.p0 "
	$t -A INPUT -s "$PEER_IP" -j LOG --log-prefix "$TAG.$run.p1 " --log-level 6 \
		--log-tcp-sequence --log-tcp-options --log-ip-options --log-uid
	$t -A INPUT -s "$PEER_IP" -j LOG --log-prefix "$TAG.$run.p2 " --log-level 7 --log-macdecode
	$t -A INPUT -p udp --dport 9 -j DROP
	$t -A FORWARD -j LOG --log-prefix "$TAG.$run.f1 " --log-tcp-sequence --log-tcp-options \
		--log-ip-options
	$t -A OUTPUT -d "$PEER_IP" -j LOG --log-prefix "$TAG.$run.o1 " --log-level 5 \
		--log-tcp-sequence --log-tcp-options --log-ip-options --log-macdecode
}
kernel_ipt() { in_host iptables-legacy "$@"; }

send_frames()
{
	in_peer "$PYTHON" "$BF_ROOT/tests/host/log_frames.py" send veth1 "$HOST_MAC" "$PEER_MAC" \
		"$PEER_IP" "$HOST_IP" "$FWD_IP"
	sleep 1
}

# The run's lines, its mark taken off and the host's own IP ids masked, sorted.
lines_of()
{
	dmesg | grep -o "$TAG\.$1\..*" | sed "s/^$TAG\.$1\.//" |
		sed '/^o1 /s/ID=[0-9]*/ID=_/g' | sort
}

# The kernel first.
in_peer busybox ping -c 1 -W 2 "$HOST_IP" >/dev/null 2>&1 || true
add_rules kernel_ipt k
send_frames
kernel_ipt -F
lines_of k >"$BF_TMP/kernel"

# Then bpfilter, with the same rules through the front door.
bf_start_helper
add_rules ipt b
send_frames
lines_of b >"$BF_TMP/ours"

n=$(wc -l <"$BF_TMP/kernel")
check "the kernel logged every frame and answer ($n lines)" test "$n" -ge 60
for r in p0 p1 p2 f1 o1; do
	check_eq "rule $r: as many lines as the kernel's" "$(grep -c "^$r " "$BF_TMP/ours" || true)" \
		"$(grep -c "^$r " "$BF_TMP/kernel" || true)"
done
if ! check "bpfilter's lines are the kernel's" diff -u "$BF_TMP/kernel" "$BF_TMP/ours"; then
	diff -u "$BF_TMP/kernel" "$BF_TMP/ours" | sed 's/^/#   /' | head -40
fi
check "the levels are the rules' (p1 at info)" \
	sh -c "dmesg -l info | grep -q '$TAG\.b\.p1 '"
check "and p2 at debug" sh -c "dmesg -l debug | grep -q '$TAG\.b\.p2 '"
pk=$(rule_counters INPUT 1 | cut -d' ' -f1)
check "a LOG rule counts what it logged, and the next rule runs" \
	test "$pk" -ge 15 -a "$(rule_counters INPUT 3 | cut -d' ' -f1)" = "$pk"
check_fails "no line was lost" sh -c "dmesg | grep -q 'LOG lines lost in'"

bf_summary
