# A veth moved into another namespace and back. Each namespace's table judges the device
# while it is there and only then: the host's DROP rule does not follow mv0 into mvns, and
# mvns's DROP rule does not follow it back. (Linux 6.1 keeps a device's XDP program across
# a namespace move and drops its qdiscs, tc filters included.)
move_setup() {
	$IP netns add far && $IP netns add mvns &&
		$IP link add mv0 type veth peer name mv1 netns far &&
		$IP addr add 10.59.0.1/24 dev mv0 && $IP link set mv0 up &&
		$IP -n far addr add 10.59.0.2/24 dev mv1 && $IP -n far link set mv1 up
}
check "veth mv0 to namespace far" move_setup
check "fresh table" fresh_table
check "iptables -A here" add_rules "-A INPUT -i mv0 -p icmp" "-A OUTPUT -o mv0 -p icmp"
check "iptables -A in mvns" add_rules -n mvns "-A INPUT -i mv0 -p icmp" "-A OUTPUT -o mv0 -p icmp"
check "far pings the host" pings far 10.59.0.1 3
expect_counts INPUT "3 252"
expect_counts OUTPUT "3 252"
check "a DROP rule here for mv0" $IPT -A INPUT -i mv0 -j DROP
move_there() {
	$IP link set mv0 netns mvns && $IP -n mvns addr add 10.59.0.1/24 dev mv0 &&
		$IP -n mvns link set mv0 up && $IP -n mvns link set lo up
}
check "mv0 moves into mvns" move_there
# local_known DEV HEX [NS]: the local-address map of NS's program on DEV holds HEX.
local_known() {
	local xdp m
	xdp=$(in_ns "${3:-}" $BPFTOOL net show dev "$1" | awk '/^xdp:/ { s = 1; next } /^[a-z_]+:$/ { s = 0 }
		s { for (i = 1; i < NF; i++) if ($i == "id") { print $(i + 1); exit } }')
	[ -n "$xdp" ] || return 1
	for m in $($BPFTOOL prog show id "$xdp" | sed -n 's/.*map_ids \([0-9,]*\).*/\1/p' | tr , ' '); do
		$BPFTOOL map show id "$m" | grep -q 'name bpfilter_local ' || continue
		$BPFTOOL map dump id "$m" | grep -q "$2" && return 0
	done
	return 1
}
# mv0 brought the host's XDP program along (its name ends in the host's _net<inode>, which
# hooks shows) until mvns's helper replaces it with mvns's.
bpf_check "mv0 carries mvns's programs, named for mvns" wait_for 3 hooks_are mv0 "$ON_ETH" mvns
bpf_check "mvns's programs know 10.59.0.1 is local" wait_for 3 local_known mv0 "0a 3b 00 01" mvns
check "far pings mv0 in mvns: the host's DROP rule stayed here" pings far 10.59.0.1 3
expect_counts -n mvns INPUT "3 252"
expect_counts -n mvns OUTPUT "3 252"
expect_counts INPUT "3 252" "0 0"
expect_counts OUTPUT "3 252"
check "a DROP rule in mvns for mv0" add_rules -n mvns "-A INPUT -i mv0 -j DROP"
check "and none here" $IPT -D INPUT 2
move_back() {
	$IP -n mvns link set mv0 netns 1 && $IP addr add 10.59.0.1/24 dev mv0 &&
		$IP link set mv0 up
}
check "mv0 moves back" move_back
# mv0 brought mvns's XDP program back with it, and until the helper here replaces it,
# mvns's table judges what mv0 receives. Wait for the replacement: the names say whose
# programs they are (the namespace's inode).
bpf_check "mv0 carries this namespace's programs, named for it" wait_for 3 hooks_are mv0 "$ON_ETH"
# And for the helper to know 10.59.0.1 is local again: until its address rescan a packet to
# it is taken for one to another host, which a host that does not forward drops, and passes
# unjudged (Documentation/supported.md, "Addresses"). With rescans 0.5 s apart the first ping
# went uncounted in most runs without this wait; with the module's bucket of credits the map
# holds the address by the time the programs are replaced.
bpf_check "this namespace's programs know 10.59.0.1 is local" wait_for 3 local_known mv0 "0a 3b 00 01"
check "far pings the host again: mvns's DROP rule stayed there" pings far 10.59.0.1 3
expect_counts INPUT "6 504"
expect_counts OUTPUT "6 504"
expect_counts -n mvns INPUT "3 252" "0 0"
mvns_policy() {
	local line
	line=$($IP netns exec mvns $IPT -L INPUT -n -v -x | head -n 1)
	case "$line" in *"policy ACCEPT 0 packets, 0 bytes"*) return 0 ;; esac
	echo "$line"
	return 1
}
# (iptables-legacy -A zeroes a chain's policy counters, as it does over netfilter: mvns's
# DROP rule left them at 0.)
check "mvns's INPUT policy counted none of mv0's pings since" mvns_policy
# mvns keeps its table, on lo: mv0 took nothing of it back, and left nothing behind.
# (tc programs on mvns's own devices, gre0 and the like, are its table's.)
xdp_on_lo_only() {
	local others
	others=$($IP netns exec mvns $BPFTOOL net show | sed -n '/^xdp:/,/^tc:/p' |
		grep ' id ' | grep -v 'lo(')
	[ -z "$others" ] || { echo "$others"; return 1; }
}
bpf_check "mvns's XDP programs are on lo only: mv0 left none" xdp_on_lo_only
move_teardown() {
	$IP netns del far
	$IP netns del mvns
	wait_for 3 sh -c "! $IP link show mv0" && fresh_table
}
check "teardown" move_teardown
