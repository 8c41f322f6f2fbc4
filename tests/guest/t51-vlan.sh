# A VLAN on a veth: vl0.10 (10.51.0.1) on vl0, which also carries untagged traffic of its
# own (10.52.0.1). Tagged packets are seen as vl0.10, untagged ones as vl0, each once, with
# the IP datagram's length (not the frame's, not the tag's).
check "modprobe 8021q" $MODPROBE 8021q
vlan_setup() {
	$IP netns add vl && $IP link add vl0 type veth peer name vl1 netns vl &&
		$IP link add link vl0 name vl0.10 type vlan id 10 &&
		$IP addr add 10.52.0.1/24 dev vl0 && $IP addr add 10.51.0.1/24 dev vl0.10 &&
		$IP link set vl0 up && $IP link set vl0.10 up &&
		$IP -n vl link add link vl1 name vl1.10 type vlan id 10 &&
		$IP -n vl addr add 10.52.0.2/24 dev vl1 && $IP -n vl addr add 10.51.0.2/24 dev vl1.10 &&
		$IP -n vl link set vl1 up && $IP -n vl link set vl1.10 up && $IP -n vl link set lo up
}
check "VLAN 10 on a veth to namespace vl" vlan_setup
check "fresh table" fresh_table
check "iptables -A on a host with a VLAN" add_rules \
	"-A INPUT -i vl0.10 -p icmp" \
	"-A INPUT -i vl0 -p icmp" \
	"-A INPUT -p icmp" \
	"-A OUTPUT -o vl0.10 -p icmp" \
	"-A OUTPUT -o vl0 -p icmp" \
	"-A OUTPUT -p icmp"
expect_hooks vl0.10 "$ON_STACKED"
expect_hooks vl0 "$ON_STACKED"
check "vl pings the host over VLAN 10" pings vl 10.51.0.1 3
check "vl pings the host untagged" pings vl 10.52.0.1 3
expect_counts INPUT "3 252" "3 252" "6 504"
expect_counts OUTPUT "3 252" "3 252" "6 504"
check "-I INPUT -i vl0.10 -j DROP" $IPT -I INPUT -i vl0.10 -j DROP
check "the tagged ping is dropped" ping_lost vl 10.51.0.1
check "the untagged ping passes" pings vl 10.52.0.1 1
check "the DROP rule counted one ping" counts_are INPUT 1 "1 84"
vlan_teardown() {
	$IP netns del vl
	$IP link del vl0 2>/dev/null
	wait_for 3 sh -c "! $IP link show vl0" && fresh_table
}
check "teardown" vlan_teardown
