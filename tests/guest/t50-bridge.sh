# A Docker-like bridge: br0 10.50.0.1 with veth ports into containers c1 and c2, and a
# routed outside (namespace ext behind vout). Netfilter sees the host's traffic with the
# containers on INPUT/OUTPUT as br0 (never the port), their routed traffic on FORWARD
# between br0 and vout, and frames bridged from one container to another not at all
# (br_netfilter is not loaded). Kernel-made packets (echo replies, an RST, an ICMP time
# exceeded) cross OUTPUT; a packet whose TTL runs out is judged by neither INPUT nor FORWARD.
$MODPROBE veth
check "modprobe bridge" $MODPROBE bridge
bridge_setup() {
	$IP link add br0 type bridge &&
		$IP addr add 10.50.0.1/24 dev br0 && $IP link set br0 up || return 1
	for c in c1 c2; do
		a=$([ $c = c1 ] && echo 2 || echo 3)
		$IP netns add $c &&
			$IP link add vb-$c type veth peer name eth0 netns $c &&
			$IP link set vb-$c master br0 up &&
			$IP -n $c addr add 10.50.0.$a/24 dev eth0 && $IP -n $c link set eth0 up &&
			$IP -n $c link set lo up && $IP -n $c route add default via 10.50.0.1 || return 1
	done
	$IP netns add ext && $IP link add vout type veth peer name eth0 netns ext &&
		$IP addr add 10.60.0.1/24 dev vout && $IP link set vout up &&
		$IP -n ext addr add 10.60.0.2/24 dev eth0 && $IP -n ext link set eth0 up &&
		$IP -n ext route add default via 10.60.0.1 || return 1
	echo 1 >/proc/sys/net/ipv4/ip_forward
}
check "bridge br0 with two containers and a routed outside" bridge_setup
check "fresh table" fresh_table
check "iptables -A on a host with a bridge" add_rules \
	"-A INPUT -i br0 -p icmp --icmp-type echo-reply" \
	"-A INPUT -i br0 -d 10.60.0.1 -p icmp --icmp-type echo-request" \
	"-A INPUT -i br0 -p tcp --syn" \
	"-A INPUT -i vb+" \
	"-A INPUT -s 10.50.0.0/24" \
	"-A FORWARD -i br0 -o vout -s 10.50.0.2 -p icmp" \
	"-A FORWARD -i vout -o br0 -d 10.50.0.2 -p icmp" \
	"-A FORWARD -i vb+" \
	"-A FORWARD -o vb+" \
	"-A FORWARD -s 10.50.0.2 -d 10.50.0.3" \
	"-A FORWARD" \
	"-A OUTPUT -o br0 -p icmp --icmp-type echo-request" \
	"-A OUTPUT -o br0 -p icmp --icmp-type echo-reply" \
	"-A OUTPUT -o br0 -p icmp --icmp-type time-exceeded" \
	"-A OUTPUT -o br0 -p tcp --tcp-flags RST RST" \
	"-A OUTPUT -o vb+" \
	"-A OUTPUT -d 10.50.0.0/24"
expect_hooks br0 "$ON_STACKED"
expect_hooks vb-c1 ""
expect_hooks vb-c2 ""
expect_hooks vout "$ON_ETH"
check "the host pings container c1" pings "" 10.50.0.2 3
check "c1 pings the host's outside address through br0" pings c1 10.60.0.1 3
check "c1 pings the outside, routed" pings c1 10.60.0.2 3
check "c1 pings c2, bridged" pings c1 10.50.0.3 3
check_fails "c1's ping with TTL 1 to the outside expires here" in_ns c1 ping -q -c 1 -t 1 -W 1 10.60.0.2
check_fails "c1's TCP connect to a closed port here is reset" in_ns c1 nc -w 2 10.50.0.1 9
expect_counts INPUT "3 252" "3 252" "1 60" "0 0" "7 564"
expect_counts FORWARD "3 252" "3 252" "0 0" "0 0" "0 0" "6 504"
expect_counts OUTPUT "3 252" "3 252" "1 112" "1 40" "0 0" "8 656"
check "-I FORWARD -i br0 -o vout -j DROP" $IPT -I FORWARD -i br0 -o vout -j DROP
check "c1's routed ping is dropped" ping_lost c1 10.60.0.2
check "the host still pings c1" pings "" 10.50.0.2 1
check "c1 still pings c2" pings c1 10.50.0.3 1
check "the DROP rule counted the one routed ping" counts_are FORWARD 1 "1 84"
check "-I INPUT -i br0 -j DROP" $IPT -I INPUT -i br0 -j DROP
check "c1's ping to the host is dropped" ping_lost c1 10.50.0.1
check "c1 still pings c2 (bridged traffic is not INPUT)" pings c1 10.50.0.3 1
check "the INPUT DROP counted one ping" counts_are INPUT 1 "1 84"
bridge_teardown() {
	echo 0 >/proc/sys/net/ipv4/ip_forward
	$IP netns del c1
	$IP netns del c2
	$IP netns del ext
	$IP link del br0
	fresh_table
}
check "teardown" bridge_teardown
