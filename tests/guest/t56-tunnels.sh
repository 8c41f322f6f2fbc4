# GRE and IPIP tunnels over a veth (tu0 10.62.0.1 to namespace tnl): the inner ping on
# gre1/ipip1 and the outer packet (protocol 47 / 4) on tu0 each cross INPUT and OUTPUT once.
# The tunnels carry no IPv6: their router solicitations would be more outer packets.
check "modprobe ip_gre ipip" $MODPROBE -a ip_gre ipip
tnl_setup() {
	$IP netns add tnl && $IP link add tu0 type veth peer name tu1 netns tnl &&
		$IP addr add 10.62.0.1/24 dev tu0 && $IP link set tu0 up &&
		$IP -n tnl addr add 10.62.0.2/24 dev tu1 && $IP -n tnl link set tu1 up || return 1
	for t in gre ipip; do
		inner=$([ $t = gre ] && echo 10.63.0 || echo 10.64.0)
		$IP link add ${t}1 type $t local 10.62.0.1 remote 10.62.0.2 ttl 64 &&
			echo 1 >/proc/sys/net/ipv6/conf/${t}1/disable_ipv6 &&
			$IP addr add $inner.1/30 dev ${t}1 && $IP link set ${t}1 up &&
			$IP -n tnl link add ${t}1 type $t local 10.62.0.2 remote 10.62.0.1 ttl 64 &&
			$IP netns exec tnl sh -c "echo 1 >/proc/sys/net/ipv6/conf/${t}1/disable_ipv6" &&
			$IP -n tnl addr add $inner.2/30 dev ${t}1 && $IP -n tnl link set ${t}1 up || return 1
	done
}
check "gre1 and ipip1 over veth tu0 to namespace tnl" tnl_setup
check "fresh table" fresh_table
check "iptables -A on a host with GRE and IPIP tunnels" add_rules \
	"-A INPUT -i gre1 -p icmp" \
	"-A INPUT -i ipip1 -p icmp" \
	"-A INPUT -i tu0 -p 47" \
	"-A INPUT -i tu0 -p 4" \
	"-A INPUT -i tu0 -p icmp" \
	"-A OUTPUT -o gre1 -p icmp" \
	"-A OUTPUT -o ipip1 -p icmp" \
	"-A OUTPUT -o tu0 -p 47" \
	"-A OUTPUT -o tu0 -p 4" \
	"-A OUTPUT -o tu0 -p icmp"
expect_hooks gre1 "$ON_STACKED"
expect_hooks ipip1 "$ON_STACKED"
expect_hooks tu0 "$ON_ETH"
check "tnl pings the host through GRE" pings tnl 10.63.0.1 3
check "tnl pings the host through IPIP" pings tnl 10.64.0.1 3
expect_counts INPUT "3 252" "3 252" "3 324" "3 312" "0 0"
expect_counts OUTPUT "3 252" "3 252" "3 324" "3 312" "0 0"
check "-I INPUT -i gre1 -j DROP" $IPT -I INPUT -i gre1 -j DROP
check "the ping through GRE is dropped" ping_lost tnl 10.63.0.1
check "the ping through IPIP passes" pings tnl 10.64.0.1 1
check "the DROP rule counted one ping" counts_are INPUT 1 "1 84"
tnl_teardown() {
	$IP netns del tnl
	$IP link del gre1 && $IP link del ipip1 && $IP link del tu0 2>/dev/null
	fresh_table
}
check "teardown" tnl_teardown
