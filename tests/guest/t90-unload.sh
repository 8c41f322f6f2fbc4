# rmmod stops the helper and leaves no program behind; ip_tables and bpfilter exclude each other.
check "a rule before the unload" $IPT -A INPUT -s 10.99.0.3 -j DROP
check "and in FORWARD and OUTPUT" add_rules "-A FORWARD -d 10.99.0.3 -j DROP" "-A OUTPUT -d 10.99.0.3 -j DROP"
check "bpftool prog show lists a program" sh -c "[ -n \"\$($BPFTOOL prog show 2>&1)\" ]"
# Devices whose hooks are tc programs, not XDP: a bridge with a port, a VLAN on a veth.
unload_devices() {
	$MODPROBE -a bridge 8021q &&
		$IP link add brx type bridge && $IP link add vx0 type veth peer name vx1 &&
		$IP link set vx0 master brx && $IP link add link vx1 name vx1.5 type vlan id 5 &&
		for d in brx vx0 vx1 vx1.5; do $IP link set $d up || return 1; done &&
		$IP addr add 10.66.0.1/24 dev brx && $IP addr add 10.66.1.1/24 dev vx1.5
}
check "a bridge and a VLAN" unload_devices
# The helper hears of new devices by events, rescanned at most twice a second: wait.
bpf_check "brx carries tc ingress and egress" wait_for 3 hooks_are brx "$ON_STACKED"
bpf_check "vx1.5 carries tc ingress and egress" wait_for 3 hooks_are vx1.5 "$ON_STACKED"
$BPFTOOL prog show
$BPFTOOL net show | sed "s/^/# /"
# With the helper dead, its programs are still attached: rmmod must still remove them.
check "kill -9 the helper" kill -9 "$(helper_pid)"
sleep 1
check "rmmod bpfilter" $RMMOD bpfilter
check_fails "the helper is gone" helper_pid
check "no BPF program is left" sh -c "[ -z \"\$($BPFTOOL prog show 2>&1)\" ]"
check "no device carries an XDP or tc program" sh -c "! $BPFTOOL net show | grep ' id '"
check "modprobe ip_tables" $MODPROBE ip_tables
check_fails "bpfilter refuses to load beside ip_tables" $MODPROBE bpfilter
check "and says what to do" sh -c "dmesg | grep -q 'ip_tables is loaded'"
check "rmmod ip_tables" $RMMOD ip_tables
check "modprobe bpfilter again" $MODPROBE bpfilter
check "served again" $IPT -L -n
check "rmmod bpfilter again" $RMMOD bpfilter
check "no BPF program is left again" sh -c "[ -z \"\$($BPFTOOL prog show 2>&1)\" ]"
check "no device carries an XDP or tc program again" sh -c "! $BPFTOOL net show | grep ' id '"
$IP link del brx
$IP link del vx0
