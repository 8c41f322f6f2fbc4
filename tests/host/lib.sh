# Shared by the host end-to-end tests: namespaces, the helper behind its front door, TAP-like results.
#
# Source it from a test (bash, set -eu), then call bf_setup. Every test gets its own
# namespaces (bf-host-PID, bf-peer-PID) and socket, removed on exit, so tests may run
# side by side. BUILD names the build directory (default: build).

BF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BF_BUILD=${BUILD:-build}
case $BF_BUILD in /*) ;; *) BF_BUILD=$BF_ROOT/$BF_BUILD ;; esac
BF_UMH=$BF_BUILD/bpfilter_umh
BF_PRELOAD=$BF_BUILD/libbpfilter_preload.so

# Debian's python3 (setup-deps installs it); a python3 earlier in PATH may start slowly.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

HOST=bf-host-$$
PEER=bf-peer-$$
HOST_IP=10.0.0.1
PEER_IP=10.0.0.2
BF_TMP=
BF_SOCK=
BF_UMH_PID=
BF_PASSED=0
BF_FAILED=0
BF_N=0

bf_cleanup()
{
	local pid
	for pid in $BF_PIDS; do
		kill "$pid" 2>/dev/null || true
	done
	bf_stop_helper TERM
	ip netns del "$HOST" 2>/dev/null || true
	ip netns del "$PEER" 2>/dev/null || true
	local ns
	for ns in $BF_EXTRA_NETNS; do
		ip netns del "$ns" 2>/dev/null || true
	done
	[ -n "$BF_TMP" ] && [ -z "${BF_KEEP:-}" ] && rm -rf "$BF_TMP"
	return 0
}
BF_EXTRA_NETNS=
BF_PIDS=

bf_summary()
{
	# A failure on CI leaves only this output: the helper's last words go with it
	# (its log is in BF_TMP, which cleanup removes). Before the count, which the lane
	# takes from the last line.
	if [ "$BF_FAILED" -ne 0 ] && [ -s "$BF_TMP/umh.log" ]; then
		echo "# the helper's log, last 30 lines:"
		tail -n 30 "$BF_TMP/umh.log" | sed 's/^/#   /'
	fi
	echo "$BF_PASSED passed, $BF_FAILED failed"
	[ "$BF_FAILED" -eq 0 ]
}

# ok/not ok for a command's exit status.
check()
{
	local what=$1
	shift
	BF_N=$((BF_N + 1))
	if "$@" >"$BF_TMP/check.out" 2>&1; then
		BF_PASSED=$((BF_PASSED + 1))
		echo "ok $BF_N - $what"
	else
		BF_FAILED=$((BF_FAILED + 1))
		echo "not ok $BF_N - $what"
		sed 's/^/#   /' "$BF_TMP/check.out" | head -40
	fi
}

# ok/not ok for a command that must fail.
check_fails()
{
	local what=$1
	shift
	BF_N=$((BF_N + 1))
	if "$@" >"$BF_TMP/check.out" 2>&1; then
		BF_FAILED=$((BF_FAILED + 1))
		echo "not ok $BF_N - $what (succeeded)"
		sed 's/^/#   /' "$BF_TMP/check.out" | head -20
	else
		BF_PASSED=$((BF_PASSED + 1))
		echo "ok $BF_N - $what"
	fi
}

# ok/not ok comparing a value with what is expected.
check_eq()
{
	local what=$1 got=$2 want=$3
	BF_N=$((BF_N + 1))
	if [ "$got" = "$want" ]; then
		BF_PASSED=$((BF_PASSED + 1))
		echo "ok $BF_N - $what"
	else
		BF_FAILED=$((BF_FAILED + 1))
		echo "not ok $BF_N - $what: got '$got', want '$want'"
	fi
}

bf_need()
{
	if [ "$(id -u)" != 0 ]; then
		echo "host tests need root"
		exit 1
	fi
	local f
	for f in "$BF_UMH" "$BF_PRELOAD"; do
		if [ ! -e "$f" ]; then
			echo "missing $f: run make first"
			exit 1
		fi
	done
	for f in iptables-legacy iptables-legacy-save iptables-legacy-restore busybox python3 ip; do
		if ! command -v "$f" >/dev/null; then
			echo "missing $f: run scripts/setup-deps"
			exit 1
		fi
	done
}

# Two namespaces joined by a veth pair (veth0 in HOST, veth1 in PEER), then the helper.
bf_setup()
{
	bf_setup_netns
	bf_start_helper "$@"
	# The first packets wait for neighbour resolution; get that out of the way.
	ip netns exec "$PEER" busybox ping -c 1 -W 2 "$HOST_IP" >/dev/null 2>&1 || true
}

# The namespaces alone.
bf_setup_netns()
{
	bf_need
	BF_TMP=$(mktemp -d /tmp/bf-host-test.XXXXXX)
	BF_SOCK=$BF_TMP/bpfilter.sock
	trap bf_cleanup EXIT
	ip netns add "$HOST"
	ip netns add "$PEER"
	ip -n "$HOST" link add veth0 type veth peer name veth1 netns "$PEER"
	ip -n "$HOST" addr add "$HOST_IP/24" dev veth0
	ip -n "$PEER" addr add "$PEER_IP/24" dev veth1
	ip -n "$HOST" link set lo up
	ip -n "$PEER" link set lo up
	ip -n "$HOST" link set veth0 up
	ip -n "$PEER" link set veth1 up
}

# Starts bpfilter_umh --listen in HOST with extra arguments, waits for its socket.
bf_start_helper()
{
	# Ready when it says so: a socket file may be left from a helper that was killed.
	local i started
	started=$(grep -c "listening on" "$BF_TMP/umh.log" 2>/dev/null || true)
	ip netns exec "$HOST" "$BF_UMH" --listen "$BF_SOCK" "$@" >>"$BF_TMP/umh.log" 2>&1 &
	BF_UMH_PID=$!
	for i in $(seq 100); do
		[ "$(grep -c "listening on" "$BF_TMP/umh.log" || true)" -gt "${started:-0}" ] && return 0
		if ! kill -0 "$BF_UMH_PID" 2>/dev/null; then
			BF_UMH_PID=
			echo "# the helper did not start:"
			sed 's/^/#   /' "$BF_TMP/umh.log"
			return 1
		fi
		sleep 0.05
	done
	echo "# the helper did not open $BF_SOCK"
	return 1
}

bf_stop_helper()
{
	local sig=${1:-TERM}
	[ -n "$BF_UMH_PID" ] || return 0
	kill "-$sig" "$BF_UMH_PID" 2>/dev/null || true
	wait "$BF_UMH_PID" 2>/dev/null || true
	BF_UMH_PID=
}

# Stock iptables tools in HOST, through the front door.
ipt()
{
	ip netns exec "$HOST" env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" iptables-legacy "$@"
}
ipt_save()
{
	ip netns exec "$HOST" env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" iptables-legacy-save "$@"
}
ipt_restore()
{
	ip netns exec "$HOST" env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" iptables-legacy-restore "$@"
}

in_host() { ip netns exec "$HOST" "$@"; }
in_peer() { ip netns exec "$PEER" "$@"; }

# One ping from PEER to HOST (or the given address) answered within a second.
ping_ok() { in_peer busybox ping -c 1 -W 1 "${1:-$HOST_IP}" >/dev/null 2>&1; }
ping_blocked() { ! ping_ok "$@"; }

# Sends n pings 50 ms apart, prints how many were answered.
ping_count()
{
	local n=$1 out
	out=$(in_peer busybox ping -c "$n" -i 0.05 -W 1 "${2:-$HOST_IP}" 2>/dev/null || true)
	echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p'
}

# Packets and bytes of rule number n of a chain, from `iptables -L -v -x -n`.
rule_counters()
{
	local chain=$1 n=$2
	ipt -L "$chain" -v -x -n --line-numbers | awk -v n="$n" '$1 == n { print $2, $3 }'
}

# The policy's packets and bytes.
policy_counters()
{
	ipt -L "$1" -v -x -n | sed -n '1s/.*policy [A-Z]* \([0-9]*\) packets, \([0-9]*\) bytes.*/\1 \2/p'
}

# Waits until something in HOST listens on a port (tcp or udp).
bf_wait_port()
{
	local opt i
	[ "$1" = tcp ] && opt=-ltn || opt=-lun
	for i in $(seq 100); do
		in_host ss -H "$opt" "sport = :$2" | grep -q . && return 0
		sleep 0.05
	done
	echo "# nothing listens on $1 port $2"
	return 1
}

# A TCP listener on HOST:port that answers "hi" to each connection, and a client that
# reports whether it got the answer within a second.
tcp_listen()
{
	# Not through in_host: a backgrounded function is a subshell, and killing it would
	# leave the listener running.
	ip netns exec "$HOST" "$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"hi")
    c.close()
' "$1" >/dev/null 2>&1 &
	BF_PIDS="$BF_PIDS $!"
	bf_wait_port tcp "$1"
}
tcp_ok()
{
	in_peer "$PYTHON" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
sys.exit(0 if s.recv(2) == b"hi" else 1)
' "${2:-$HOST_IP}" "$1" >/dev/null 2>&1
}

# A UDP echo on HOST:port, and a client that reports whether its datagram came back.
udp_listen()
{
	ip netns exec "$HOST" "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
' "$1" >/dev/null 2>&1 &
	BF_PIDS="$BF_PIDS $!"
	bf_wait_port udp "$1"
}
udp_ok()
{
	in_peer "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
sys.exit(0 if s.recv(16) == b"ping" else 1)
' "${2:-$HOST_IP}" "$1" >/dev/null 2>&1
}

# The XDP attachment of a device in HOST: "xdp" (native), "xdpgeneric" or "none".
xdp_mode_of()
{
	local line
	line=$(in_host ip -d link show dev "$1" | head -1)
	case $line in
	*" xdpgeneric "*) echo xdpgeneric ;;
	*" xdpoffload "*) echo xdpoffload ;;
	*" xdp "*) echo xdp ;;
	*) echo none ;;
	esac
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }
