#!/bin/bash
# -j REJECT through the front door, against the kernel's own ipt_REJECT: the same crafted probes
# into two twin namespace pairs (bpfilter's, and one where ip_tables runs the same rules), the
# replies compared byte for byte (the reply's IP id and header checksum aside).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hooks.bash"
if [ "$BF_NETFILTER" = 1 ]; then
	echo "# netfilter mode: this test runs netfilter beside bpfilter already"
	echo "0 passed, 0 failed"
	exit 0
fi
bf_setup_netns
NFHOST=bf-nfhost-$$
NFPEER=bf-nfpeer-$$
bf_netns "$NFHOST"
bf_netns "$NFPEER"
bf_link "$NFHOST" veth0 "$HOST_IP/24" "$NFPEER" veth1 "$PEER_IP/24"
# Twins down to the MAC addresses; the peers also own 10.0.0.3, a second source.
for pair in "$HOST $PEER" "$NFHOST $NFPEER"; do
	set -- $pair
	ip -n "$1" link set veth0 address 02:00:00:00:01:01
	ip -n "$2" link set veth1 address 02:00:00:00:01:02
	ip -n "$2" addr add 10.0.0.3/24 dev veth1
done
bf_start_helper
for pair in "$PEER $HOST_IP" "$NFPEER $HOST_IP" "$HOST $PEER_IP" "$NFHOST $PEER_IP"; do
	set -- $pair
	ip netns exec "$1" busybox ping -c 1 -W 2 "$2" >/dev/null 2>&1 || true
done
# The peers run no XDP program: native XDP's XDP_TX would lose the reply on veth, which is
# why XDP hands the packet to tc ingress to answer.

nfipt() { ip netns exec "$NFHOST" iptables-legacy "$@"; }
both() {
	ipt "$@"
	nfipt "$@"
}
PROBE=$(dirname "$0")/reject_probe.py

# The replies to one probe from PEER (and its twin), compared; the count must be `want`.
compare_in()
{
	local what=$1 want=$2
	shift 2
	local ours theirs
	ours=$(ip netns exec "$PEER" "$PYTHON" "$PROBE" in veth1 "$@")
	theirs=$(ip netns exec "$NFPEER" "$PYTHON" "$PROBE" in veth1 "$@")
	check_eq "$what: netfilter sends $want" "$(tail -n 1 <<<"$theirs")" "replies $want"
	check_eq "$what: the same bytes as netfilter" "$ours" "$theirs"
}

# What a socket of HOST (and its twin) is told, and the replies lo delivered, compared.
compare_out()
{
	local what=$1 want=$2
	shift 2
	local ours theirs
	ours=$(ip netns exec "$HOST" "$PYTHON" "$PROBE" out "$@")
	theirs=$(ip netns exec "$NFHOST" "$PYTHON" "$PROBE" out "$@")
	check_eq "$what: netfilter's socket is told $want" "$(head -n 1 <<<"$theirs")" "$want"
	check_eq "$what: the same as netfilter" "$ours" "$theirs"
}

both -A INPUT -p udp -j REJECT
both -A INPUT -p icmp -j REJECT --reject-with icmp-host-prohibited
both -A INPUT -p tcp --dport 8080 -j REJECT --reject-with tcp-reset
both -A INPUT -p tcp --dport 8081 -j REJECT --reject-with icmp-admin-prohibited
compare_in "UDP: port unreachable" 1 udp "$PEER_IP" "$HOST_IP"
compare_in "a long UDP datagram: 548 bytes quoted" 1 udpbig "$PEER_IP" "$HOST_IP"
compare_in "ICMP echo: host prohibited" 1 icmp "$PEER_IP" "$HOST_IP"
compare_in "TCP SYN: RST, ACK" 1 syn "$PEER_IP" "$HOST_IP"
compare_in "TCP segment with ACK: RST" 1 ack "$PEER_IP" "$HOST_IP"
# The sender's tokens: a burst of 6, then one a second.
compare_in "10 datagrams from a fresh source: 6 answered" 6 udp 10.0.0.3 "$HOST_IP" 10
compare_in "resets are not limited" 10 syn 10.0.0.3 "$HOST_IP" 10
check_eq "the UDP rule counted as netfilter's" "$(rule_counters INPUT 1)" \
	"$(nfipt -L INPUT -v -x -n --line-numbers | awk '$1 == 1 { print $2, $3 }')"

# Real sockets see a refusal at once.
tcp_listen 8081
check "a connect to a port with tcp-reset is refused at once" in_peer "$PYTHON" -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 8080), timeout=1)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)
' "$HOST_IP"
check "a connect answered by admin-prohibited fails at once" in_peer "$PYTHON" -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 8081), timeout=1)
except OSError as e:
    sys.exit(0 if not isinstance(e, socket.timeout) else 1)
sys.exit(1)
' "$HOST_IP"

# The replies leave as ip_local_out() sends netfilter's: OUTPUT counts them, with the rejected
# packet's conntrack entry (nf_ct_attach(): RELATED, the reply direction), and may drop them.
nf_same()
{
	local what=$1 chain=$2 n=$3
	check_eq "$what" "$(rule_counters "$chain" "$n")" \
		"$(nfipt -L "$chain" -v -x -n --line-numbers | awk -v n="$n" '$1 == n { print $2, $3 }')"
}
both -A OUTPUT -p icmp --icmp-type destination-unreachable
both -A OUTPUT -p tcp --tcp-flags RST RST -m state --state RELATED -m conntrack --ctdir REPLY
both -A OUTPUT -p tcp --tcp-flags RST RST -m conntrack --ctorigsrc "$PEER_IP" --ctorigdstport 8080
compare_in "UDP: port unreachable, through OUTPUT" 1 udp "$PEER_IP" "$HOST_IP"
compare_in "TCP SYN: RST, ACK, through OUTPUT" 1 syn "$PEER_IP" "$HOST_IP"
nf_same "OUTPUT counted the ICMP error as netfilter's" OUTPUT 1
nf_same "OUTPUT saw the reset RELATED, in the reply direction, as netfilter's" OUTPUT 2
nf_same "OUTPUT saw the reset with the rejected SYN's entry, as netfilter's" OUTPUT 3
for n in 1 2 3; do
	check_eq "OUTPUT rule $n counted one reply" "$(rule_counters OUTPUT $n | cut -d' ' -f1)" 1
done
both -I OUTPUT -p icmp --icmp-type destination-unreachable -j DROP
both -I OUTPUT -p tcp --tcp-flags RST RST -j DROP
compare_in "UDP: OUTPUT drops the port unreachable" 0 udp "$PEER_IP" "$HOST_IP"
compare_in "TCP SYN: OUTPUT drops the reset" 0 syn "$PEER_IP" "$HOST_IP"
nf_same "OUTPUT's DROP counted the ICMP error as netfilter's" OUTPUT 1
nf_same "OUTPUT's DROP counted the reset as netfilter's" OUTPUT 2
both -F OUTPUT
both -F INPUT

# OUTPUT: the reply is this host's, through lo.
both -A OUTPUT -p udp --dport 6000 -j REJECT
both -A OUTPUT -p tcp --dport 6001 -j REJECT --reject-with tcp-reset
both -A OUTPUT -p tcp --dport 6002 -j REJECT
# The ICMP error comes from our own address, the source the output route back to the sender
# gives (icmp_send() without RTCF_LOCAL), as netfilter's: compared whole (supported.md).
compare_out "OUTPUT TCP: tcp-reset" refused tcp "$PEER_IP" 6001
for port in 6000 6002; do
	kind=udp
	[ $port = 6002 ] && kind=tcp
	ours=$(in_host "$PYTHON" "$PROBE" out $kind "$PEER_IP" $port)
	theirs=$(ip netns exec "$NFHOST" "$PYTHON" "$PROBE" out $kind "$PEER_IP" $port)
	check_eq "OUTPUT $kind: port unreachable: netfilter's socket is told" "$(head -n 1 <<<"$theirs")" refused
	check_eq "OUTPUT $kind: port unreachable: ours too" "$(head -n 1 <<<"$ours")" refused
	check_eq "OUTPUT $kind: the reply's headers are netfilter's, its source too" \
		"$(sed -n 2p <<<"$ours")" "$(sed -n 2p <<<"$theirs")"
done
# To one of our own addresses (RTCF_LOCAL): from the packet's destination, over lo.
both -A OUTPUT -d "$HOST_IP" -p udp -j REJECT
ours=$(in_host "$PYTHON" "$PROBE" out udp "$HOST_IP" 6000)
theirs=$(ip netns exec "$NFHOST" "$PYTHON" "$PROBE" out udp "$HOST_IP" 6000)
check_eq "OUTPUT to our own address: netfilter answers" "$(head -n 1 <<<"$theirs")" refused
check_eq "OUTPUT to our own address: ours too" "$(head -n 1 <<<"$ours")" refused
check_eq "OUTPUT to our own address: the reply's headers are netfilter's" \
	"$(sed -n 2p <<<"$ours")" "$(sed -n 2p <<<"$theirs")"
both -F OUTPUT

# FORWARD: HOST (and its twin) route to a third namespace behind veth2. Resets are sent,
# from the packet's destination.
for trio in "$HOST $PEER bf-far-$$" "$NFHOST $NFPEER bf-nffar-$$"; do
	set -- $trio
	bf_netns "$3"
	bf_link "$1" veth2 10.0.1.1/24 "$3" veth3 10.0.1.2/24
	ip -n "$2" route add 10.0.1.0/24 via "$HOST_IP"
	ip -n "$3" route add default via 10.0.1.1
	ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$2" busybox ping -c 1 -W 2 10.0.1.2 >/dev/null 2>&1 || true
done
check "FORWARD -j REJECT --reject-with tcp-reset is taken" ipt -A FORWARD -p tcp -j REJECT --reject-with tcp-reset
nfipt -A FORWARD -p tcp -j REJECT --reject-with tcp-reset
compare_in "FORWARD TCP SYN: RST, ACK from the destination" 1 syn "$PEER_IP" 10.0.1.2
compare_in "FORWARD TCP segment with ACK: RST" 1 ack "$PEER_IP" 10.0.1.2
check_eq "the FORWARD rule counted as netfilter's" "$(rule_counters FORWARD 1)" \
	"$(nfipt -L FORWARD -v -x -n --line-numbers | awk '$1 == 1 { print $2, $3 }')"
# ICMP errors too, from the source the route back to the sender prefers (here veth0's
# address, as netfilter's icmp_send() picks it), not from the packet's destination.
check "FORWARD -j REJECT (ICMP) is taken" ipt -A FORWARD -p udp -j REJECT
nfipt -A FORWARD -p udp -j REJECT
compare_in "FORWARD UDP: port unreachable from the route's source" 1 udp "$PEER_IP" 10.0.1.2
compare_in "FORWARD long UDP: 548 bytes quoted" 1 udpbig "$PEER_IP" 10.0.1.2
check_eq "the FORWARD ICMP rule counted as netfilter's" "$(rule_counters FORWARD 2)" \
	"$(nfipt -L FORWARD -v -x -n --line-numbers | awk '$1 == 2 { print $2, $3 }')"
both -F FORWARD
# With icmp_errors_use_inbound_ifaddr the source is an address of the input device, which
# bpfilter does not pick: refused.
in_host sysctl -qw net.ipv4.icmp_errors_use_inbound_ifaddr=1
check_fails "FORWARD ICMP REJECT with icmp_errors_use_inbound_ifaddr is refused" \
	ipt -A FORWARD -p udp -j REJECT
check "the refusal says why" grep -q "icmp_errors_use_inbound_ifaddr" "$BF_TMP/umh.log"
in_host sysctl -qw net.ipv4.icmp_errors_use_inbound_ifaddr=0

# Routed: the route back to the sender leaves by another link (PEER's second link to HOST,
# veth5), and the reply takes it as netfilter's does: from veth4's MAC address to the next
# hop's, first unresolved (the kernel asks ARP), then resolved.
for pair in "$HOST $PEER" "$NFHOST $NFPEER"; do
	set -- $pair
	bf_link "$1" veth4 10.0.3.1/24 "$2" veth5 10.0.3.2/24
	ip -n "$1" link set veth4 address 02:00:00:00:03:01
	ip -n "$2" link set veth5 address 02:00:00:00:03:02
	ip -n "$1" route add 10.0.2.0/24 via 10.0.3.2
	ip netns exec "$1" busybox ping -c 1 -W 2 10.0.3.2 >/dev/null 2>&1 || true
	ip -n "$1" neigh flush dev veth4
done
both -A INPUT -s 10.0.2.0/24 -p udp -j REJECT
both -A INPUT -s 10.0.2.0/24 -p tcp -j REJECT --reject-with tcp-reset
compare_routed()
{
	local what=$1 want=$2
	shift 2
	local ours theirs
	ours=$(ip netns exec "$PEER" "$PYTHON" "$PROBE" in veth5 "$@")
	theirs=$(ip netns exec "$NFPEER" "$PYTHON" "$PROBE" in veth5 "$@")
	check_eq "$what: netfilter sends $want by the route" "$(tail -n 1 <<<"$theirs")" "replies $want"
	check_eq "$what: the same bytes as netfilter" "$ours" "$theirs"
}
compare_routed "routed UDP, next hop unresolved: port unreachable" 1 udp 10.0.2.9 "$HOST_IP"
compare_routed "routed TCP SYN, next hop resolved: RST, ACK" 1 syn 10.0.2.9 "$HOST_IP"
compare_routed "routed long UDP: 548 bytes quoted" 1 udpbig 10.0.2.9 "$HOST_IP"
check_eq "nothing comes back by the way in" \
	"$(ip netns exec "$PEER" "$PYTHON" "$PROBE" in veth1 syn 10.0.2.9 "$HOST_IP" | tail -n 1)" \
	"replies 0"
both -F INPUT

bf_summary
