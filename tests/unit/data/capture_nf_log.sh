#!/bin/bash
# Captures the kernel's own -j LOG lines for tests/host/log_frames.py's frames: nf_log_kernel.txt.
# Run as root on a kernel with iptables-legacy: tests/unit/data/capture_nf_log.sh >nf_log_kernel.txt
set -eu
cd "$(dirname "$0")"
H=nfcap-host-$$
P=nfcap-peer-$$
T=nfcap$$
old=$(sysctl -n net.netfilter.nf_log_all_netns)
cleanup()
{
	ip netns del $H 2>/dev/null || true
	ip netns del $P 2>/dev/null || true
	sysctl -qw net.netfilter.nf_log_all_netns="$old"
}
trap cleanup EXIT
ip netns add $H
ip netns add $P
ip -n $H link add veth0 address 02:00:00:00:00:01 type veth peer name veth1 \
	address 02:00:00:00:00:02 netns $P
ip -n $H link add veth2 address 02:00:00:00:00:03 type veth peer name veth3
ip -n $H addr add 10.0.0.1/24 dev veth0
ip -n $P addr add 10.0.0.2/24 dev veth1
for l in lo veth0 veth2 veth3; do ip -n $H link set $l up; done
for l in lo veth1; do ip -n $P link set $l up; done
ip -n $H route add 10.9.9.0/24 dev veth2
ip -n $H neigh add 10.9.9.9 lladdr 02:00:00:00:00:09 dev veth2
ip netns exec $H sysctl -qw net.ipv4.ip_forward=1
ipt() { ip netns exec $H iptables-legacy "$@"; }
ipt -A INPUT -s 10.0.0.2 -j LOG --log-prefix "$T.p0 "
ipt -A INPUT -s 10.0.0.2 -j LOG --log-prefix "$T.p1 " --log-level 6 --log-tcp-sequence \
	--log-tcp-options --log-ip-options --log-uid
ipt -A INPUT -s 10.0.0.2 -j LOG --log-prefix "$T.p2 " --log-level 7 --log-macdecode
ipt -A FORWARD -j LOG --log-prefix "$T.f1 " --log-tcp-sequence --log-tcp-options --log-ip-options
sysctl -qw net.netfilter.nf_log_all_netns=1
args=(02:00:00:00:00:01 02:00:00:00:00:02 10.0.0.2 10.0.0.1 10.9.9.9)
echo "# Linux $(uname -r): the kernel's lines for tests/host/log_frames.py's frames"
echo "# (veth0 02:00:00:00:00:01 in, veth1 02:00:00:00:00:02 the sender, veth2 FORWARD's out)."
echo "# frame NAME HEX, then: line RULE TEXT (RULE: p0, p1, p2 at INPUT, f1 at FORWARD)."
python3 ../../host/log_frames.py hex "${args[@]}" | while read -r name hex; do
	echo "frame $name $hex"
	before=$(dmesg | grep -c "$T\." || true)
	ip netns exec $P python3 ../../host/log_frames.py send veth1 "${args[@]}" "$name"
	sleep 0.2
	dmesg | grep -o "$T\..*" | tail -n +"$((before + 1))" | sed "s/^$T\.\([a-z0-9]*\) /line \1 /"
done
