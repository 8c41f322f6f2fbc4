# XDP offload on netdevsim (built from linux-source-6.1, tests/guest/t80 needs it in the
# initramfs): tables offloaded and replaced, counters read from the device's map, a table a
# NIC cannot run downgraded to native (auto) or refused (xdp_mode=offload) with the table in
# force kept, two ports in two namespaces apart, rmmod leaving nothing. netdevsim does not
# run offloaded programs on packets: their packet path is the unit tests' (OffloadFlavor,
# BPF_PROG_TEST_RUN of the same code loaded without offload).
NS1=offl1
NS2=offl2

# The netdev names of netdevsim device $1's ports, in port order.
nsim_ports() { ls "/sys/bus/netdevsim/devices/netdevsim$1/net/" 2>/dev/null | sort; }

# iptables in namespace $1.
ipt_in() { ns=$1; shift; $IP netns exec "$ns" $IPT "$@"; }

# The XDP program of device $2 in namespace $1: "MODE ID" (xdpoffload, xdp or xdpgeneric).
xdp_of() {
	$IP -n "$1" -d link show dev "$2" | awk '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^xdp/) m = $i }
		/prog\/xdp/ { for (i = 1; i <= NF; i++) if ($i == "id") id = $(i + 1) }
		END { if (m != "") print m, id }'
}
# mode_is NS DEV MODE: the device's XDP program is attached in MODE.
mode_is() { [ "$(xdp_of "$1" "$2" | cut -d' ' -f1)" = "$3" ]; }
prog_of() { xdp_of "$1" "$2" | cut -d' ' -f2; }
# check_eq DESCRIPTION ACTUAL EXPECTED
check_eq() {
	if [ "$2" = "$3" ]; then
		passed=$((passed + 1))
		echo "ok - $1"
	else
		failed=$((failed + 1))
		echo "not ok - $1 (got \"$2\", expected \"$3\")"
	fi
}
# dmesg_has PATTERN: the kernel log (the helper's lines among them) matches.
dmesg_has() { dmesg | grep -q -- "$1"; }

# set_fwd NS DEV 0|1: net.ipv4.conf.DEV.forwarding in namespace NS.
set_fwd() { $IP netns exec "$1" sh -c "echo $3 >/proc/sys/net/ipv4/conf/$2/forwarding"; }

offload_setup() {
	$MODPROBE netdevsim || return 1
	echo "81 1" >/sys/bus/netdevsim/new_device || return 1
	sleep 1
	port=$(nsim_ports 81)
	[ -n "$port" ] || return 1
	# Names of our own: netdevsim's are eth%d, as the guest's NICs'.
	A=offa
	$IP link set "$port" name $A && $IP netns add $NS1 && $IP link set $A netns $NS1 || return 1
	set_fwd $NS1 all 0 && set_fwd $NS1 "$A" 0 || return 1
	$IP -n $NS1 addr add 10.81.0.1/24 dev "$A" && $IP -n $NS1 link set "$A" up &&
		$IP -n $NS1 link set lo up
}
check "netdevsim loads and makes a port" offload_setup
echo "# netdevsim port: $A"
sleep 1

# --- auto (the module's default): the port runs BPF itself and gets the table ---
check "auto: a table in $NS1" ipt_in $NS1 -A INPUT -p tcp --dport 22 -j DROP
check "auto: the port runs it offloaded" mode_is $NS1 "$A" xdpoffload
id1=$(prog_of $NS1 "$A")
check "auto: bpftool prog show says offloaded_to" sh -c "$BPFTOOL prog show id $id1 | grep -q offloaded_to"
$BPFTOOL prog show id "$id1" | sed 's/^/# /'
# The kernel reports no func_info of an offloaded program, so bpftool shows its 15
# characters; the whole name is in the program's BTF.
check "auto: its kernel name is XDP's" sh -c "$BPFTOOL prog show id $id1 | grep -q 'name bpfilter_xdp_in '"
offl_btf=$($BPFTOOL prog show id "$id1" | sed -n 's/.*btf_id \([0-9]*\).*/\1/p')
check "auto: its BTF names it for offloaded INPUT and the namespace" sh -c "$BPFTOOL btf dump id '$offl_btf' |
	grep -q \"FUNC 'bpfilter_xdp_in_filter_INPUT_offload_net$($IP netns exec $NS1 readlink /proc/self/ns/net | tr -dc 0-9)'\""
check "auto: a rule more (replace)" ipt_in $NS1 -A INPUT -p udp --dport 53 -j DROP
id2=$(prog_of $NS1 "$A")
check "auto: replaced by another offloaded program" sh -c "[ -n '$id2' ] && [ '$id2' != '$id1' ]"
check "auto: offloaded" mode_is $NS1 "$A" xdpoffload
check "auto: the old one is gone" sh -c "! $BPFTOOL prog show id $id1"

# Counters come from the device's map: write counts there (netdevsim runs no packets) and
# read them back through iptables -L -v.
counters_map_of() { # the Counters map of program $1 (bound to the device)
	for m in $($BPFTOOL prog show id "$1" | sed -n 's/.*map_ids \([0-9,]*\).*/\1/p' | tr , ' '); do
		$BPFTOOL map show id "$m" | grep -q bpfilter_cnt && { echo "$m"; return 0; }
	done
	return 1
}
put_counts() { # map $1: rule 0 counts 7 packets, 420 bytes
	size=$($BPFTOOL map show id "$1" | sed -n 's/.*value \([0-9]*\)B.*/\1/p')
	hex="07 00 00 00 00 00 00 00 a4 01 00 00 00 00 00 00"
	i=16
	while [ "$i" -lt "$size" ]; do hex="$hex 00"; i=$((i + 1)); done
	$BPFTOOL map update id "$1" key hex 00 00 00 00 value hex $hex
}
map=$(counters_map_of "$id2")
check "auto: the program counts in a map bound to the port" sh -c "$BPFTOOL map show id '$map' | grep -q offloaded_to"
check "auto: counts written into the device's map" put_counts "$map"
check_eq "auto: iptables -L -v reads them" "$(ipt_in $NS1 -L INPUT -v -x -n | awk 'NR == 3 {print $1, $2}')" "7 420"
check "auto: another replace" ipt_in $NS1 -I INPUT -s 192.0.2.9 -j DROP
check_eq "auto: the counts go with their rule" "$(ipt_in $NS1 -L INPUT -v -x -n | awk 'NR == 4 {print $1, $2}')" "7 420"
check "auto: still offloaded" mode_is $NS1 "$A" xdpoffload

# A table a NIC cannot run: native on the port, and the log says why.
check "auto: a REJECT rule" ipt_in $NS1 -A INPUT -p tcp --dport 23 -j REJECT
check "auto: the port gets the native program" mode_is $NS1 "$A" xdp
check "auto: the log says why" dmesg_has "gets the native program: offload: rule .* -j REJECT"
check_eq "auto: the counts survive the move" "$(ipt_in $NS1 -L INPUT -v -x -n | awk 'NR == 4 {print $1, $2}')" "7 420"
check "auto: without it" ipt_in $NS1 -D INPUT -p tcp --dport 23 -j REJECT
check "auto: offloaded again" mode_is $NS1 "$A" xdpoffload
set_fwd $NS1 "$A" 1
check "auto: forwarding on, a table" ipt_in $NS1 -A INPUT -s 192.0.2.10 -j DROP
check "auto: forwarding on: native" mode_is $NS1 "$A" xdp
check "auto: forwarding on: the log says why" dmesg_has "forwards (net.ipv4.conf"
set_fwd $NS1 "$A" 0
ipt_in $NS1 -F

# --- xdp_mode=offload: the module's parameter ---
check "rmmod bpfilter (auto)" $RMMOD bpfilter
check_eq "no program is left on the port" "$(xdp_of $NS1 "$A")" ""
check "modprobe bpfilter xdp_mode=offload" $MODPROBE bpfilter xdp_mode=offload
check_fails "xdp_mode=bogus is refused" sh -c "$RMMOD bpfilter; $MODPROBE bpfilter xdp_mode=bogus"
$MODPROBE bpfilter xdp_mode=offload 2>/dev/null
check "offload: a table" ipt_in $NS1 -A INPUT -p tcp --dport 22 -j DROP
check "offload: offloaded" mode_is $NS1 "$A" xdpoffload
id3=$(prog_of $NS1 "$A")
check_fails "offload: a REJECT rule is refused" ipt_in $NS1 -A INPUT -p tcp --dport 23 -j REJECT
check "offload: the log names the rule and the reason" dmesg_has "offload: rule 1 (offset .*) cannot run on the NIC: -j REJECT"
check_eq "offload: the table in force stays" "$(ipt_in $NS1 -S INPUT | grep -c -- '-j')" 1
check_eq "offload: and its program" "$(xdp_of $NS1 "$A")" "xdpoffload $id3"
check_fails "offload: -m limit is refused" ipt_in $NS1 -A INPUT -m limit --limit 1/s -j ACCEPT
check_fails "offload: -j LOG is refused" ipt_in $NS1 -A INPUT -j LOG
check_fails "offload: -m state is refused" ipt_in $NS1 -A INPUT -m state --state ESTABLISHED -j ACCEPT

# A 1000-rule table offloaded, timed.
big_table() {
	echo "*filter"
	i=0
	while [ $i -lt 1000 ]; do
		echo "-A INPUT -s 10.$((i / 250)).$((i % 250)).1 -p tcp --dport $((1000 + i)) -j DROP"
		i=$((i + 1))
	done
	echo "COMMIT"
}
big_table >/tmp/offload-1k.rules
t0=$(cut -d' ' -f1 /proc/uptime)
check "offload: 1000 rules" sh -c "$IP netns exec $NS1 $IPT_RESTORE </tmp/offload-1k.rules"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "# 1000-rule table offloaded in $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}') s (iptables-legacy-restore, qemu TCG)"
dmesg | grep "offloaded the table's INPUT" | tail -n 1 | sed 's/^/# /'
check "offload: 1000 rules offloaded" mode_is $NS1 "$A" xdpoffload
check "offload: the log gives its size" dmesg_has "offloaded the table.s INPUT to $A: [0-9]* instructions"
ipt_in $NS1 -F

# --- two ports in two namespaces, kept apart ---
two_ports() {
	echo "82 2" >/sys/bus/netdevsim/new_device || return 1
	sleep 1
	set -- $(nsim_ports 82)
	[ -n "$1" ] && [ -n "$2" ] || return 1
	$IP link set "$1" name $B && $IP link set "$2" name $C || return 1
	$IP netns add $NS2 || return 1
	$IP link set "$B" netns $NS1 && $IP link set "$C" netns $NS2 || return 1
	set_fwd $NS2 all 0 && set_fwd $NS1 "$B" 0 && set_fwd $NS2 "$C" 0 &&
		$IP -n $NS2 link set lo up
}
B=offb C=offc
check "a second netdevsim device, two ports, one in each namespace" two_ports
echo "# ports: $B in $NS1, $C in $NS2"
check "$NS1: its table" ipt_in $NS1 -A INPUT -p tcp --dport 22 -j DROP
check "$NS2: its table" sh -c "$IP netns exec $NS2 $IPT -A INPUT -p udp --dport 53 -j DROP && $IP netns exec $NS2 $IPT -A INPUT -p udp --dport 54 -j DROP"
pb=$(prog_of $NS1 "$B")
pc=$(prog_of $NS2 "$C")
check "each port runs its own program" sh -c "[ -n '$pb' ] && [ -n '$pc' ] && [ '$pb' != '$pc' ]"
check "$B offloaded" mode_is $NS1 "$B" xdpoffload
check "$C offloaded" mode_is $NS2 "$C" xdpoffload
check "$NS1's other port runs a program of its own" sh -c "[ '$(prog_of $NS1 "$A")' != '$pb' ]"
check "$A offloaded" mode_is $NS1 "$A" xdpoffload
mb=$(counters_map_of "$pb")
check "counts written on $B's map" put_counts "$mb"
check_eq "$NS1 reads them" "$(ipt_in $NS1 -L INPUT -v -x -n | awk 'NR == 3 {print $1, $2}')" "7 420"
check_eq "$NS2 does not" "$(ipt_in $NS2 -L INPUT -v -x -n | awk 'NR == 3 {print $1, $2}')" "0 0"
check "$NS2 flushed" ipt_in $NS2 -F
check_eq "$NS1's program untouched" "$(prog_of $NS1 "$B")" "$pb"

# --- rmmod leaves nothing ---
check "rmmod bpfilter (offload)" $RMMOD bpfilter
check "no BPF program is left" sh -c "[ -z \"\$($BPFTOOL prog show 2>&1)\" ]"
check_eq "no port carries XDP" "$(xdp_of $NS1 "$A")$(xdp_of $NS1 "$B")$(xdp_of $NS2 "$C")" ""
check "no offloaded map is left" sh -c "! $BPFTOOL map show | grep -q offloaded_to"
$IP netns del $NS1
$IP netns del $NS2
echo 81 >/sys/bus/netdevsim/del_device
echo 82 >/sys/bus/netdevsim/del_device
check "rmmod netdevsim" $RMMOD netdevsim
check "modprobe bpfilter (auto) for what follows" $MODPROBE bpfilter
