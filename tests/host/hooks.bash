# Shared by the hook tests (forward.sh, output.sh, bridge.sh, devices.sh, atomic.sh):
# extra namespaces and links, the BPF programs on a device, and netfilter mode.
#
# Source it after lib.sh. With BPFILTER_TEST_NETFILTER=1 no helper runs: ipt, ipt_save and
# ipt_restore call the kernel's own ip_tables in HOST, so the same script proves its expected
# counts against netfilter; checks that only make sense for bpfilter (which program sits on
# which hook) go through bf_only and are skipped. (Named .bash so that run.sh does not take it
# for a test.)

BF_NETFILTER=${BPFILTER_TEST_NETFILTER:-0}

if [ "$BF_NETFILTER" = 1 ]; then
	bf_need()
	{
		if [ "$(id -u)" != 0 ]; then
			echo "host tests need root"
			exit 1
		fi
		local f
		for f in iptables-legacy iptables-legacy-save busybox python3 ip; do
			if ! command -v "$f" >/dev/null; then
				echo "missing $f: run scripts/setup-deps"
				exit 1
			fi
		done
	}
	bf_start_helper() { echo "# netfilter mode: no helper, the kernel's ip_tables in $HOST"; }
	ipt() { ip netns exec "$HOST" iptables-legacy "$@"; }
	ipt_save() { ip netns exec "$HOST" iptables-legacy-save "$@"; }
	ipt_restore() { ip netns exec "$HOST" iptables-legacy-restore "$@"; }
fi

# Runs a check only against bpfilter; in netfilter mode says it was skipped.
bf_only()
{
	if [ "$BF_NETFILTER" = 1 ]; then
		echo "# skipped in netfilter mode: $2"
		return 0
	fi
	"$@"
}

# A namespace removed on exit.
bf_netns()
{
	ip netns add "$1"
	ip -n "$1" link set lo up
	BF_EXTRA_NETNS="$BF_EXTRA_NETNS $1"
}

# A veth pair: name1 with addr1 in ns1, name2 with addr2 in ns2 (an address may be "-").
bf_link()
{
	local ns1=$1 name1=$2 addr1=$3 ns2=$4 name2=$5 addr2=$6
	ip -n "$ns1" link add "$name1" type veth peer name "$name2" netns "$ns2"
	[ "$addr1" = - ] || ip -n "$ns1" addr add "$addr1" dev "$name1"
	[ "$addr2" = - ] || ip -n "$ns2" addr add "$addr2" dev "$name2"
	ip -n "$ns1" link set "$name1" up
	ip -n "$ns2" link set "$name2" up
}

# The programs on a device's hooks, as netfilter's names for them would not say: a sorted
# list of HOOK:NAME, HOOK one of xdp, tc_in, tc_out (clsact or tcx). NAME is the program's
# whole name as bpftool prog shows it (for ours, their BTF name: Documentation/design.md,
# "Names"), less its "_net<inode>" when that is the namespace's own: a program of another
# namespace keeps it, and tells.
progs_on()
{
	local dev=$1 ns=${2:-$HOST} ino
	ino=$(ip netns exec "$ns" stat -L -c %i /proc/self/ns/net)
	ip netns exec "$ns" bpftool -j net show dev "$dev" 2>/dev/null | "$PYTHON" -c '
import json, subprocess, sys
suffix = "_net" + sys.argv[1]
out = []
for block in json.load(sys.stdin) or []:
    for x in block.get("xdp", []):
        out.append(("xdp", x.get("id")))
    for t in block.get("tc", []):
        kind = t.get("kind", "")
        hook = "tc_in" if kind.endswith("ingress") else "tc_out" if kind.endswith("egress") else kind
        out.append((hook, t.get("prog_id", t.get("id"))))
names = []
for hook, pid in out:
    name = "?"
    if pid is not None:
        r = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(pid)], capture_output=True, text=True)
        if r.returncode == 0:
            name = json.loads(r.stdout).get("name", "?")
    if name.endswith(suffix):
        name = name[: -len(suffix)]
    names.append("%s:%s" % (hook, name))
print(" ".join(sorted(names)))
' "$ino"
}

# Waits (up to 2 s) until a device's programs are as expected; in netfilter mode returns at once.
wait_progs()
{
	local dev=$1 want=$2 ns=${3:-$HOST} i
	[ "$BF_NETFILTER" = 1 ] && return 0
	for i in $(seq 40); do
		[ "$(progs_on "$dev" "$ns")" = "$want" ] && return 0
		sleep 0.05
	done
	return 0
}

# Programs with bpfilter's names anywhere in a namespace, one "dev:hook:name" a line.
bpfilter_progs_in()
{
	local ns=${1:-$HOST} dev
	for dev in $(ip -n "$ns" -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		progs_on "$dev" "$ns" | tr ' ' '\n' | grep '^[a-z_]*:bpfilter' | sed "s/^/$dev:/" || true
	done
}

# The usual program sets.
PROG_XDP="xdp:bpfilter_xdp_in_filter_INPUT_FORWARD"
PROG_TC_IN="tc_in:bpfilter_tc_in_filter_INPUT_FORWARD"
PROG_TC_OUT="tc_out:bpfilter_tc_out_filter_OUTPUT"
PROGS_ETH="$PROG_TC_IN $PROG_TC_OUT $PROG_XDP" # Ethernet, no master, no upper
PROGS_TC="$PROG_TC_IN $PROG_TC_OUT"            # bridges, macvlan and its lower, tun

# A tiny foreign XDP program (XDP_PASS), built once per test.
foreign_xdp_obj()
{
	local obj=$BF_TMP/foreign_xdp.o
	[ -e "$obj" ] || clang -O2 -target bpf -c "$BF_ROOT/tests/host/foreign_xdp.c" -o "$obj"
	echo "$obj"
}

# n pings from a namespace to an address, 50 ms apart: prints how many were answered.
ping_from()
{
	local ns=$1 n=$2 addr=$3 out
	shift 3
	out=$(ip netns exec "$ns" busybox ping -c "$n" -i 0.05 -W 1 "$@" "$addr" 2>/dev/null || true)
	echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p'
}

# Packets and bytes of every rule of a chain and its policy, as one line:
# "policy P B | 1: P B | 2: P B ...".
chain_counters()
{
	local chain=$1
	ipt -L "$chain" -v -x -n --line-numbers | awk '
		NR == 1 { sub(/.*policy [A-Z]* /, ""); sub(/\)$/, ""); split($0, a, " "); out = "policy " a[1] " " a[3]; next }
		$1 ~ /^[0-9]+$/ { out = out " | " $1 ": " $2 " " $3 }
		END { print out }'
}

# iptables in HOST for setting a test up: silent when it works; when it fails, a failed
# check naming the command, and the test goes on (so that every later check reports).
ipt_ok()
{
	if ! ipt "$@" >"$BF_TMP/ipt.out" 2>&1; then
		BF_N=$((BF_N + 1))
		BF_FAILED=$((BF_FAILED + 1))
		echo "not ok $BF_N - iptables $*"
		sed 's/^/#   /' "$BF_TMP/ipt.out" | head -5
	fi
	return 0
}
