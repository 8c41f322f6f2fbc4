# Shared by the guest tests (sourced by run-all): checks, counters, the real tools' paths.
# Busybox's shell prefers its own applets, so the real tools are called by absolute path.
IP=/usr/sbin/ip
MODPROBE=/usr/sbin/modprobe
RMMOD=/usr/sbin/rmmod
LSMOD=/usr/sbin/lsmod
BPFTOOL=/usr/sbin/bpftool
IPT=/usr/sbin/iptables-legacy
IPT_SAVE=/usr/sbin/iptables-legacy-save
IPT_RESTORE=/usr/sbin/iptables-legacy-restore

passed=0
failed=0

# check DESCRIPTION COMMAND...: one test, passes when COMMAND succeeds.
check() {
	desc=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		passed=$((passed + 1))
		echo "ok - $desc"
	else
		failed=$((failed + 1))
		echo "not ok - $desc"
		tail -n 20 /tmp/check.out | sed 's/^/#   /'
	fi
}

# check_fails DESCRIPTION COMMAND...: one test, passes when COMMAND fails.
check_fails() {
	desc=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		failed=$((failed + 1))
		echo "not ok - $desc (succeeded)"
		tail -n 20 /tmp/check.out | sed 's/^/#   /'
	else
		passed=$((passed + 1))
		echo "ok - $desc"
	fi
}

# The helper's pid: its argv[0] is bpfilter_umh (its comm is the descriptor it ran from).
helper_pid() {
	for p in /proc/[0-9]*; do
		[ "$(head -c 12 "$p/cmdline" 2>/dev/null)" = bpfilter_umh ] && { echo "${p#/proc/}"; return 0; }
	done
	return 1
}

# In the peer namespace: one ping to the host end / one TCP connect to port 8080.
peer_ping() { $IP netns exec peer ping -c 1 -W 2 10.99.0.1; }
peer_tcp() { $IP netns exec peer nc -w 3 10.99.0.1 8080 </dev/null; }

# A veth pair between this namespace (10.99.0.1) and "peer" (10.99.0.2), a TCP server here.
setup_peer() {
	$MODPROBE veth || return 1
	$IP netns add peer || return 1
	$IP link add veth0 type veth peer name veth1 netns peer || return 1
	$IP addr add 10.99.0.1/24 dev veth0 && $IP link set veth0 up || return 1
	$IP -n peer addr add 10.99.0.2/24 dev veth1 && $IP -n peer link set veth1 up || return 1
	$IP -n peer link set lo up
	nc -ll -p 8080 -e /bin/true >/dev/null 2>&1 &
	echo $! >/tmp/nc.pid
	# Let IPv6 DAD and the listener settle.
	sleep 1
}

teardown_peer() {
	kill "$(cat /tmp/nc.pid)" 2>/dev/null
	$IP link del veth0 2>/dev/null
	$IP netns del peer 2>/dev/null
}

# The packet count of rule N of INPUT, from iptables-legacy -L -v -x.
rule_pkts() {
	$IPT -L INPUT -v -x -n --line-numbers | awk -v n="$1" '$1 == n {print $2}'
}
