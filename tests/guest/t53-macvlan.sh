# macvlan and ipvlan on veths: the stack receives on the upper device (mac0, ipv0), never on
# the lower one, and sends from the upper one; the lower device's own transmission of the
# upper's packets is not a second OUTPUT. (The lower devices answer ARP only for their own
# addresses: with arp_ignore=0 mvl0 also answers for mac0's address, the peer may take its
# MAC, and the pings then arrive as -i mvl0, for netfilter as for bpfilter.)
check "modprobe macvlan ipvlan" $MODPROBE -a macvlan ipvlan
mvlan_setup() {
	$IP netns add mv && $IP link add mvl0 type veth peer name mvl1 netns mv &&
		echo 1 >/proc/sys/net/ipv4/conf/mvl0/arp_ignore &&
		$IP link add mac0 link mvl0 type macvlan mode bridge &&
		$IP addr add 10.54.0.1/24 dev mac0 && $IP link set mvl0 up && $IP link set mac0 up &&
		$IP -n mv addr add 10.54.0.2/24 dev mvl1 && $IP -n mv link set mvl1 up || return 1
	$IP netns add iv && $IP link add ivl0 type veth peer name ivl1 netns iv &&
		echo 1 >/proc/sys/net/ipv4/conf/ivl0/arp_ignore &&
		$IP link add ipv0 link ivl0 type ipvlan mode l2 &&
		$IP addr add 10.58.0.1/24 dev ipv0 && $IP link set ivl0 up && $IP link set ipv0 up &&
		$IP -n iv addr add 10.58.0.2/24 dev ivl1 && $IP -n iv link set ivl1 up
}
check "macvlan mac0 on mvl0, ipvlan ipv0 on ivl0" mvlan_setup
check "fresh table" fresh_table
check "iptables -A on a host with macvlan and ipvlan" add_rules \
	"-A INPUT -i mac0 -p icmp" \
	"-A INPUT -i ipv0 -p icmp" \
	"-A INPUT -i mvl0" \
	"-A INPUT -i ivl0" \
	"-A INPUT -p icmp" \
	"-A OUTPUT -o mac0 -p icmp" \
	"-A OUTPUT -o ipv0 -p icmp" \
	"-A OUTPUT -o mvl0" \
	"-A OUTPUT -o ivl0" \
	"-A OUTPUT -p icmp"
expect_hooks mac0 "$ON_STACKED"
expect_hooks mvl0 "$ON_STACKED"
expect_hooks ipv0 "$ON_STACKED"
expect_hooks ivl0 "$ON_STACKED"
check "mv pings the host's macvlan" pings mv 10.54.0.1 3
check "iv pings the host's ipvlan" pings iv 10.58.0.1 3
expect_counts INPUT "3 252" "3 252" "0 0" "0 0" "6 504"
expect_counts OUTPUT "3 252" "3 252" "0 0" "0 0" "6 504"
check "-I INPUT -i mac0 -j DROP" $IPT -I INPUT -i mac0 -j DROP
check "the macvlan's ping is dropped" ping_lost mv 10.54.0.1
check "the ipvlan's ping passes" pings iv 10.58.0.1 1
check "the DROP rule counted one ping" counts_are INPUT 1 "1 84"
mvlan_teardown() {
	$IP netns del mv
	$IP netns del iv
	$IP link del mvl0 2>/dev/null
	$IP link del ivl0 2>/dev/null
	wait_for 3 sh -c "! $IP link show mac0 && ! $IP link show ipv0" && fresh_table
}
check "teardown" mvlan_teardown
