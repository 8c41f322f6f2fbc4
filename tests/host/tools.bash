# Shared by the real-tool tests (fail2ban.sh, ufw.sh): twin namespace pairs, one behind
# bpfilter's front door, one on the kernel's own ip_tables, and the iptables a tool finds.
#
# Source it after lib.sh and hooks.bash. The helper runs with --xdp-mode generic: with native
# XDP on veth, REJECT's replies reach the peer only when the peer veth has an XDP program
# (Documentation/supported.md, REJECT); generic XDP has no such condition, and these tests
# leave the peers as a user's machine would be.

NFHOST=bf-nfhost-$$
NFPEER=bf-nfpeer-$$
OTHER_IP=10.0.0.3

# HOST/PEER behind bpfilter, NFHOST/NFPEER on netfilter, twins down to the MAC addresses;
# each peer also owns OTHER_IP, a second client.
tw_setup()
{
	bf_setup_netns
	bf_netns "$NFHOST"
	bf_netns "$NFPEER"
	bf_link "$NFHOST" veth0 "$HOST_IP/24" "$NFPEER" veth1 "$PEER_IP/24"
	local pair
	for pair in "$HOST $PEER" "$NFHOST $NFPEER"; do
		set -- $pair
		ip -n "$1" link set veth0 address 02:00:00:00:01:01
		ip -n "$2" link set veth1 address 02:00:00:00:01:02
		ip -n "$2" addr add "$OTHER_IP/24" dev veth1
	done
	bf_start_helper --xdp-mode generic
	for pair in "$PEER $HOST_IP" "$NFPEER $HOST_IP" "$HOST $PEER_IP" "$NFHOST $PEER_IP"; do
		set -- $pair
		ip netns exec "$1" busybox ping -c 1 -W 2 "$2" >/dev/null 2>&1 || true
	done
}

# The namespace pair of a side: "bf" or "nf".
tw_host() { [ "$1" = bf ] && echo "$HOST" || echo "$NFHOST"; }
tw_peer() { [ "$1" = bf ] && echo "$PEER" || echo "$NFPEER"; }

# A directory of the test's own where iptables, iptables-restore, iptables-save and the
# ip6tables ones name the legacy tools (xtables-legacy-multi picks its personality from the
# name). IPv6 stays with the kernel's ip6_tables on both sides: bpfilter serves IPv4 only.
tw_bindir()
{
	local dir=$BF_TMP/bin t
	if [ ! -d "$dir" ]; then
		mkdir -p "$dir"
		for t in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
			ln -s "/usr/sbin/${t%%-*}-legacy${t#${t%%-*}}" "$dir/$t"
		done
	fi
	echo "$dir"
}

# Runs a command in a side's host namespace, with the front door's environment on the bf
# side and iptables (through PATH) being iptables-legacy on both.
tw_run()
{
	local side=$1 bin
	shift
	bin=$(tw_bindir)
	if [ "$side" = bf ]; then
		ip netns exec "$HOST" env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" \
			PATH="$bin:$PATH" "$@"
	else
		ip netns exec "$NFHOST" env -u LD_PRELOAD PATH="$bin:$PATH" "$@"
	fi
}

# iptables-legacy in a side's host namespace (through the front door on the bf side).
tw_ipt()
{
	local side=$1
	shift
	if [ "$side" = bf ]; then
		ipt "$@"
	else
		ip netns exec "$NFHOST" iptables-legacy "$@"
	fi
}

# TCP listeners on a side's HOST:port for each port given, answering "hi" (as lib.sh's
# tcp_listen).
tw_listen()
{
	local ns port
	ns=$(tw_host "$1")
	shift
	for port in "$@"; do
		ip netns exec "$ns" "$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"hi")
    c.close()
' "$port" >/dev/null 2>&1 &
		BF_PIDS="$BF_PIDS $!"
	done
	for port in "$@"; do
		for _ in $(seq 100); do
			ip netns exec "$ns" ss -H -ltn "sport = :$port" | grep -q . && continue 2
			sleep 0.05
		done
		echo "# nothing listens on $port in $ns"
		return 1
	done
}

# A connect from a side's peer (source address src) to HOST:port, within 2 s. Prints
# "connected", "ECONNREFUSED", "EHOSTUNREACH", ... (the errno's name) or "timeout",
# followed by " at once" when the answer came within 0.5 s.
tw_connect()
{
	local ns
	ns=$(tw_peer "$1")
	ip netns exec "$ns" "$PYTHON" -c '
import errno, socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(2)
t = time.monotonic()
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    r = "connected" if s.recv(2) == b"hi" else "no answer"
except socket.timeout:
    r = "timeout"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
if r != "timeout" and time.monotonic() - t < 0.5:
    r += " at once"
print(r)
' "$2" "$HOST_IP" "$3"
}

# Checks that netfilter's side gives `want` and that bpfilter's gives the same.
tw_compare()
{
	local what=$1 want=$2 ours=$3 theirs=$4
	check_eq "netfilter: $what" "$theirs" "$want"
	check_eq "bpfilter: $what, as netfilter" "$ours" "$theirs"
}

# The same connect (source address, port) on both sides at once, compared as tw_compare.
tw_compare_connect()
{
	local what=$1 want=$2 src=$3 port=$4
	tw_connect bf "$src" "$port" >"$BF_TMP/connect-bf" 2>&1 &
	local pid=$!
	tw_connect nf "$src" "$port" >"$BF_TMP/connect-nf" 2>&1 || true
	wait "$pid" || true
	tw_compare "$what" "$want" "$(cat "$BF_TMP/connect-bf")" "$(cat "$BF_TMP/connect-nf")"
}

# Polls a command (up to n tenths of a second) until it succeeds.
tw_wait()
{
	local n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
