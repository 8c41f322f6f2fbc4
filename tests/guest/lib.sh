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

# --- The device tests (t5x) ---
# They run under bpfilter (MODE=bpfilter, in run-all and tests/guest/devices) and under the
# kernel's own ip_tables (MODE=netfilter, tests/guest/devices-netfilter), the proof that the
# counts they expect are netfilter's. Checks of where bpfilter's programs sit run under
# bpfilter only.
MODE=${MODE:-bpfilter}
WG=/usr/bin/wg
TUNPING=/usr/bin/tunping

# bpf_check DESCRIPTION COMMAND...: a check of bpfilter's own, skipped under netfilter.
bpf_check() {
	[ "$MODE" = netfilter ] || check "$@"
}

# in_ns NS COMMAND...: COMMAND in network namespace NS, or here when NS is empty.
in_ns() {
	local ns=$1
	shift
	if [ -n "$ns" ]; then $IP netns exec "$ns" "$@"; else "$@"; fi
}

# add_rules [-n NS] RULE...: the first RULE through iptables-legacy (as a user would type
# it), the others in one iptables-legacy-restore --noflush (one table replace, not one
# each: TCG is slow), in this namespace or NS. Fails with iptables' message when refused.
add_rules() {
	local ns= r
	[ "$1" = -n ] && { ns=$2; shift 2; }
	# shellcheck disable=SC2086
	in_ns "$ns" $IPT $1 || { echo "refused: iptables $1"; return 1; }
	shift
	[ $# -eq 0 ] && return 0
	{
		echo "*filter"
		for r in "$@"; do echo "$r"; done
		echo "COMMIT"
	} >/tmp/rules.add
	in_ns "$ns" $IPT_RESTORE --noflush </tmp/rules.add || { echo "refused:"; cat /tmp/rules.add; return 1; }
}

# counts_are [-n NS] CHAIN N "PKTS BYTES": rule N of CHAIN counted exactly that; on a
# mismatch prints the chain with its counters.
counts_are() {
	local ns=
	[ "$1" = -n ] && { ns=$2; shift 2; }
	in_ns "$ns" $IPT -L "$1" -v -x -n --line-numbers >/tmp/counts.L 2>&1
	listed_counts "$2" "$3"
}

# listed_counts N "PKTS BYTES": rule N in the listing in /tmp/counts.L counted that.
listed_counts() {
	local got
	got=$(awk -v n="$1" '$1 == n {print $2, $3}' /tmp/counts.L)
	[ "$got" = "$2" ] && return 0
	echo "rule $1: counted \"$got\", expected \"$2\""
	cat /tmp/counts.L
	return 1
}

# expect_counts [-n NS] CHAIN "PKTS BYTES"...: one check per rule of CHAIN, in order, from
# one listing.
expect_counts() {
	local ns= chain n want rule
	[ "$1" = -n ] && { ns=$2; shift 2; }
	chain=$1
	shift
	in_ns "$ns" $IPT -S "$chain" | sed -n "s/^-A $chain //p" >/tmp/counts.S
	in_ns "$ns" $IPT -L "$chain" -v -x -n --line-numbers >/tmp/counts.L 2>&1
	n=1
	for want in "$@"; do
		rule=$(sed -n "${n}p" /tmp/counts.S)
		check "${ns:+$ns: }$chain ${rule:-(rule $n)}: counted $want" listed_counts "$n" "$want"
		n=$((n + 1))
	done
}

# pings NS DST COUNT: COUNT pings from NS (empty: here) to DST, all answered.
pings() {
	in_ns "$1" ping -q -c "$3" -i 0.2 -W 2 "$2" >/tmp/ping.out 2>&1
	cat /tmp/ping.out
	grep -q "$3 packets received" /tmp/ping.out
}

# ping_lost NS DST: one ping from NS to DST that gets no answer within half a second (an
# answer here takes milliseconds; the tests also check that the DROP rule counted it).
ping_lost() {
	local p
	# Its own file: the kill may reach only the subshell, and a ping that lives on must not
	# write into the output of the pings() that follows.
	in_ns "$1" ping -q -c 1 -W 1 "$2" >/tmp/ping_lost.out 2>&1 &
	p=$!
	sleep 0.5
	kill "$p" 2>/dev/null
	wait "$p"
	cat /tmp/ping_lost.out
	! grep -q "1 packets received" /tmp/ping_lost.out
}

# hooks DEV [NS]: bpfilter's view of DEV from bpftool, as "xdp:NAME ingress:NAME
# egress:NAME" for the hooks that carry a program (empty when none does). NAME is the
# program's whole name as bpftool shows it (its BTF name, Documentation/design.md "Names"),
# less its "_net<inode>" when that is the namespace's own: a program of another
# namespace keeps it, and tells.
hooks() {
	local hook id name ino
	ino=$(in_ns "${2:-}" readlink /proc/self/ns/net | tr -dc 0-9)
	in_ns "${2:-}" $BPFTOOL net show dev "$1" 2>/dev/null | awk '
		/^xdp:/ { s = "xdp"; next }
		/^tc:/ { s = "tc"; next }
		/^[a-z_]+:$/ { s = ""; next }
		s == "" { next }
		{
			h = s
			if (s == "tc" && / clsact\/ingress /) h = "ingress"
			else if (s == "tc" && / clsact\/egress /) h = "egress"
			for (i = 1; i < NF; i++) if ($i == "id") print h, $(i + 1)
		}' | while read -r hook id; do
		name=$($BPFTOOL prog show id "$id" 2>/dev/null | sed -n '1s/.* name \([^ ]*\).*/\1/p')
		name=${name:-?}
		printf '%s:%s\n' "$hook" "${name%_net"$ino"}"
	done | sort | tr '\n' ' ' | sed 's/ $//'
}

# hooks_are DEV "EXPECTED" [NS]: DEV carries exactly those programs (sorted as hooks prints).
hooks_are() {
	local got
	got=$(hooks "$1" "${3:-}")
	[ "$got" = "$2" ] && return 0
	echo "$1${3:+ in $3}: \"$got\", expected \"$2\""
	in_ns "${3:-}" $BPFTOOL net show dev "$1"
	return 1
}

# The programs bpfilter places, as hooks prints them.
# Native XDP (veth): tc ingress too, for the copies the host loops back to itself.
ON_ETH="egress:bpfilter_tc_out_filter_OUTPUT ingress:bpfilter_tc_in_filter_INPUT_FORWARD xdp:bpfilter_xdp_in_filter_INPUT_FORWARD"
# Generic XDP (e1000, which has no native XDP): it sees those copies itself.
ON_GENERIC="egress:bpfilter_tc_out_filter_OUTPUT xdp:bpfilter_xdp_in_filter_INPUT_FORWARD"
ON_STACKED="egress:bpfilter_tc_out_filter_OUTPUT ingress:bpfilter_tc_in_filter_INPUT_FORWARD"

# expect_hooks DEV "EXPECTED" [NS]: a bpfilter-only check of the programs on DEV.
expect_hooks() {
	local what
	case "$2" in
	"") what="no bpfilter program" ;;
	"$ON_ETH") what="XDP bpfilter_xdp_in, tc ingress and egress" ;;
	"$ON_GENERIC") what="generic XDP bpfilter_xdp_in and tc egress" ;;
	"$ON_STACKED") what="tc ingress and egress" ;;
	*) what=$2 ;;
	esac
	bpf_check "$1${3:+ in $3} carries $what" hooks_are "$@"
}

# hook_ids DEV [NS]: the ids of the programs on DEV.
hook_ids() {
	in_ns "${2:-}" $BPFTOOL net show dev "$1" 2>/dev/null |
		awk '{ for (i = 1; i < NF; i++) if ($i == "id") print $(i + 1) }'
}

# progs_gone ID...: no program with any of these ids is loaded any more.
progs_gone() {
	local id
	for id in "$@"; do
		$BPFTOOL prog show id "$id" >/dev/null 2>&1 && { echo "program $id is still loaded"; return 1; }
	done
	return 0
}

# wait_for SECONDS COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
	local tries
	tries=$(($1 * 5))
	shift
	while [ "$tries" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		tries=$((tries - 1))
	done
	"$@"
}

# fresh_table: an empty filter table here with zeroed counters, ACCEPT policies.
fresh_table() {
	$IPT -F && $IPT -X && $IPT -Z
}
