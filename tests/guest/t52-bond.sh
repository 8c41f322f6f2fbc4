# A bond of two veths (balance-rr, so both slaves carry packets): the stack receives and
# routes on bond0, never on a slave; each packet is counted once.
check "modprobe bonding" $MODPROBE bonding max_bonds=0
bond_setup() {
	$IP netns add bd && $IP link add bond0 type bond mode balance-rr miimon 100 &&
		$IP -n bd link add bond1 type bond mode balance-rr miimon 100 || return 1
	for s in a b; do
		$IP link add bv0$s type veth peer name bv1$s netns bd &&
			$IP link set bv0$s master bond0 && $IP -n bd link set bv1$s master bond1 || return 1
	done
	$IP addr add 10.53.0.1/24 dev bond0 && $IP link set bond0 up &&
		$IP -n bd addr add 10.53.0.2/24 dev bond1 && $IP -n bd link set bond1 up &&
		$IP -n bd link set lo up &&
		wait_for 3 sh -c "$IP link show bond0 | grep -q LOWER_UP" &&
		wait_for 3 sh -c "$IP -n bd link show bond1 | grep -q LOWER_UP"
}
check "bond0 of two veths to namespace bd" bond_setup
check "fresh table" fresh_table
check "iptables -A on a host with a bond" add_rules \
	"-A INPUT -i bond0 -p icmp" \
	"-A INPUT -i bv0+" \
	"-A INPUT -p icmp" \
	"-A OUTPUT -o bond0 -p icmp" \
	"-A OUTPUT -o bv0+" \
	"-A OUTPUT -p icmp"
expect_hooks bond0 "$ON_STACKED"
expect_hooks bv0a ""
expect_hooks bv0b ""
check "bd pings the host over the bond" pings bd 10.53.0.1 4
expect_counts INPUT "4 336" "0 0" "4 336"
expect_counts OUTPUT "4 336" "0 0" "4 336"
check "-I INPUT -i bond0 -j DROP" $IPT -I INPUT -i bond0 -j DROP
check "the bond's ping is dropped" ping_lost bd 10.53.0.1
check "the DROP rule counted one ping" counts_are INPUT 1 "1 84"
bond_teardown() {
	$IP netns del bd
	$IP link del bond0 && fresh_table
}
check "teardown" bond_teardown
