# A namespace deleted while it holds devices. A veth goes with it (and its peer here); a
# real NIC comes back here as devN, carrying neither the dead namespace's table nor a
# program of its own, and this namespace's table covers it. The NICs are qemu's two e1000
# ports on one hub (eth0 and eth1 see each other and nothing else).
del_veth() {
	$IP netns add dv && $IP link add dv0 type veth peer name dv1 netns dv &&
		$IP addr add 10.65.0.1/24 dev dv0 && $IP link set dv0 up &&
		$IP -n dv addr add 10.65.0.2/24 dev dv1 && $IP -n dv link set dv1 up
}
check "fresh table" fresh_table
check "iptables -A here" add_rules "-A INPUT -i eth+ -p icmp" "-A OUTPUT -o eth+ -p icmp"
check "veth dv0 to namespace dv" del_veth
check "a table in dv" add_rules -n dv "-A INPUT -i dv1 -p icmp"
expect_hooks dv1 "$ON_ETH" dv
dv_progs=$(hook_ids dv1 dv)
check "the host pings dv" pings "" 10.65.0.2 1
expect_counts -n dv INPUT "1 84"
check "delete namespace dv" $IP netns del dv
check "the veth pair went with it" wait_for 3 sh -c "! $IP link show dv0"
bpf_check "dv's programs are gone" wait_for 3 progs_gone $dv_progs

# eth0 (10.61.0.1) in phy2, which has no table; eth1 (10.61.0.2) in phy, whose table drops
# phy2's pings.
check "modprobe e1000" $MODPROBE e1000
check "qemu's NICs eth0 and eth1" wait_for 5 sh -c "$IP link show eth0 && $IP link show eth1"
nic_setup() {
	$IP netns add phy2 && $IP link set eth0 netns phy2 &&
		$IP -n phy2 addr add 10.61.0.1/24 dev eth0 && $IP -n phy2 link set eth0 up &&
		$IP netns add phy && $IP link set eth1 netns phy &&
		$IP -n phy addr add 10.61.0.2/24 dev eth1 && $IP -n phy link set eth1 up &&
		wait_for 5 sh -c "$IP -n phy2 link show eth0 | grep -q LOWER_UP" &&
		wait_for 5 sh -c "$IP -n phy link show eth1 | grep -q LOWER_UP"
}
check "eth0 into namespace phy2, eth1 into namespace phy" nic_setup
check "a DROP rule in phy for phy2's pings" add_rules -n phy "-A INPUT -s 10.61.0.1 -p icmp -j DROP"
expect_hooks eth1 "$ON_GENERIC" phy
expect_hooks eth0 "" phy2
phy_progs=$(hook_ids eth1 phy)
check "phy drops phy2's ping" ping_lost phy2 10.61.0.2
expect_counts -n phy INPUT "1 84"
expect_counts INPUT "0 0"
expect_counts OUTPUT "0 0"
nic_back() {
	$IP netns del phy || return 1
	wait_for 5 sh -c "$IP -o link show | grep -q '52:54:00:12:34:02'" || return 1
	dev=$($IP -o link show | awk -F': ' '/52:54:00:12:34:02/ {print $2}')
	echo "eth1 came back as $dev"
	[ "$dev" = eth1 ] || $IP link set "$dev" name eth1 || return 1
	$IP addr add 10.61.0.2/24 dev eth1 && $IP link set eth1 up &&
		wait_for 5 sh -c "$IP link show eth1 | grep -q LOWER_UP"
}
check "delete namespace phy: eth1 comes back here" nic_back
expect_hooks eth1 "$ON_GENERIC"
bpf_check "phy's programs are gone" wait_for 3 progs_gone $phy_progs
check "phy2 pings eth1 here: nothing of phy's table is left on it" pings phy2 10.61.0.2 3
expect_counts INPUT "3 252"
expect_counts OUTPUT "3 252"
nic_teardown() {
	$IP netns del phy2 || return 1
	wait_for 5 sh -c "$IP -o link show | grep -q '52:54:00:12:34:01'" || return 1
	dev=$($IP -o link show | awk -F': ' '/52:54:00:12:34:01/ {print $2}')
	[ "$dev" = eth0 ] || $IP link set "$dev" name eth0
	$IP addr flush dev eth1 && $IP link set eth1 down && fresh_table
}
check "teardown: eth0 back, both NICs down" nic_teardown
