#!/bin/bash
# Proves our IPT_SO_GET_INFO / GET_ENTRIES answers equal real netfilter's, byte for byte.
#
# For each ruleset: a fresh network namespace, stock iptables-legacy(-restore) run under
# strace so that every setsockopt it makes is logged with its full optval, then
# ipt_snapshot reads the kernel's table and compares it with the one our TableService
# builds (1) from the very SET_REPLACE / ADD_COUNTERS bytes iptables sent and (2) from an
# ipt_replace rebuilt out of the kernel's GET_ENTRIES reply. Exits non-zero on any
# difference. Then ipt_errno sends the same good and malformed requests to the kernel and
# to us and compares the errnos. Needs root, ip netns, strace and iptables-legacy.
set -euo pipefail

cd "$(dirname "$0")/../.."
for tool in strace iptables-legacy iptables-legacy-restore ip; do
	command -v "$tool" >/dev/null || { echo "abi_bytes.sh: $tool is missing (scripts/setup-deps)" >&2; exit 1; }
done
BUILD=${BUILD:-build}
TOOL=${IPT_SNAPSHOT:-$BUILD/abi-tools/ipt_snapshot}
ERRNO_TOOL=${IPT_ERRNO:-$BUILD/abi-tools/ipt_errno}
EVAL_TOOL=${IPT_EVALCHECK:-$BUILD/abi-tools/ipt_evalcheck}
make -s BUILD="$BUILD" "$TOOL" "$ERRNO_TOOL" "$EVAL_TOOL" >/dev/null

WORK=$(mktemp -d)
NS=bf-abi-$$
PEER=bf-abi-peer-$$
cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$PEER" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

fail=0
cases=0

# run_case NAME: the commands to run come on stdin, one per line, in the netns.
run_case() {
	local name=$1
	cases=$((cases + 1))
	ip netns del "$NS" 2>/dev/null || true
	ip netns add "$NS"
	: >"$WORK/$name.strace"
	while IFS= read -r cmd; do
		[ -z "$cmd" ] && continue
		# shellcheck disable=SC2086
		if ! ip netns exec "$NS" strace -f -qq -xx -s 100000000 -e trace=setsockopt \
			-o "$WORK/one.strace" $cmd <"$WORK/input" >/dev/null; then
			echo "FAIL $name: '$cmd' failed under real netfilter"
			fail=$((fail + 1))
			ip netns del "$NS"
			return
		fi
		cat "$WORK/one.strace" >>"$WORK/$name.strace"
	done
	local ok=1
	if ! ip netns exec "$NS" "$TOOL" --replay "$WORK/$name.strace" >"$WORK/$name.replay" 2>&1; then
		ok=0
	fi
	if ! ip netns exec "$NS" "$TOOL" >"$WORK/$name.rebuild" 2>&1; then
		ok=0
	fi
	if [ $ok = 1 ]; then
		echo "ok   $name: $(head -1 "$WORK/$name.replay")"
	else
		fail=$((fail + 1))
		echo "FAIL $name"
		sed 's/^/     replay:  /' "$WORK/$name.replay"
		sed 's/^/     rebuild: /' "$WORK/$name.rebuild"
	fi
	ip netns del "$NS"
}

# restore_case NAME: an iptables-legacy-restore input on stdin.
restore_case() {
	cat >"$WORK/input"
	cp "$WORK/input" "$WORK/$1.rules"
	run_case "$1" <<<"iptables-legacy-restore $2"
}

restore_case empty "" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
RULES

restore_case ip_header "" <<'RULES'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 10.0.0.0/8 -d 192.168.1.1/32 -j ACCEPT
-A INPUT ! -s 172.16.0.0/12 ! -d 10.1.2.0/24 -j DROP
-A INPUT -i eth+ -p tcp -j ACCEPT
-A INPUT ! -i veth0 -p udp -j DROP
-A INPUT ! -p icmp -j ACCEPT
-A INPUT -f -j DROP
-A INPUT ! -f -s 1.2.3.4/32 -j ACCEPT
-A INPUT -p 47 -j ACCEPT
-A FORWARD -i br0 -o eth1 -j ACCEPT
-A FORWARD ! -o lo+ -j DROP
-A OUTPUT -o eth0 -d 8.8.8.8/32 -j DROP
COMMIT
RULES

restore_case user_chains "" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:empty - [0:0]
:logdrop - [0:0]
:orphan - [0:0]
:svc - [0:0]
:web - [0:0]
-A INPUT -p tcp -j svc
-A INPUT -p udp -g logdrop
-A INPUT -j empty
-A INPUT -s 10.0.0.1/32 -j RETURN
-A INPUT -j web
-A FORWARD -j svc
-A OUTPUT -p tcp -j web
-A logdrop -j DROP
-A orphan -j ACCEPT
-A svc -p tcp -m tcp --dport 22 -j ACCEPT
-A svc -s 10.0.0.0/8 -j RETURN
-A svc -p tcp -j web
-A svc -g logdrop
-A web -p tcp -m tcp --dport 80 -j ACCEPT
-A web -j RETURN
COMMIT
RULES

restore_case matches "" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --sport 1024:65535 --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp ! --dport 23:25 ! --sport 7 -j DROP
-A INPUT -p tcp -m tcp --tcp-flags SYN,RST,ACK,FIN SYN -j ACCEPT
-A INPUT -p tcp -m tcp ! --tcp-flags ALL NONE -j ACCEPT
-A INPUT -p tcp -m tcp --syn -j DROP
-A INPUT -p tcp -m tcp ! --syn --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --tcp-option 8 -j ACCEPT
-A INPUT -p tcp -m tcp ! --tcp-option 2 -j DROP
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -p udp -m udp ! --sport 67:68 -j DROP
-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 3/4 -j DROP
-A INPUT -p icmp -m icmp ! --icmp-type 0 -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type any -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type destination-unreachable -j DROP
-A INPUT -p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT
-A INPUT -p udp -m multiport --sports 53,123 -j ACCEPT
-A INPUT -p tcp -m multiport --ports 1:1023 -j DROP
-A INPUT -p tcp -m multiport ! --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j DROP
-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.50 -j ACCEPT
-A INPUT -m iprange ! --dst-range 192.168.0.10-192.168.0.20 -j DROP
-A INPUT -m iprange --src-range 1.1.1.1-1.1.1.2 ! --dst-range 2.2.2.2-2.2.2.3 -j ACCEPT
-A INPUT -m comment --comment "a comment with spaces, quotes \"x\" and symbols !@#" -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -m comment --comment "https" -m multiport --sports 1000:2000 -j ACCEPT
-A INPUT -m comment --comment "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345" -j DROP
COMMIT
RULES

restore_case counters "--counters" <<'RULES'
*filter
:INPUT DROP [11:2222]
:FORWARD ACCEPT [3:4]
:OUTPUT ACCEPT [123456789012:987654321098]
:chain - [0:0]
[5:600] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
[7:800] -A INPUT -j chain
[1:2] -A chain -j RETURN
COMMIT
RULES

# Chains entered from INPUT only, for the evaluator check below.
restore_case input_chains "" <<'RULES'
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:flags - [0:0]
:icmpchk - [0:0]
:ranges - [0:0]
:tcpchk - [0:0]
:udpchk - [0:0]
-A INPUT -p icmp -j icmpchk
-A INPUT -p tcp -j tcpchk
-A INPUT -p udp -g udpchk
-A INPUT -m iprange --src-range 1.1.1.1-1.2.3.4 -j ranges
-A INPUT -p sctp -m multiport --ports 7,22:25 -j ACCEPT
-A INPUT -s 10.0.0.0/26 -j RETURN
-A INPUT -d 2.2.2.0/24 -j DROP
-A flags -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP
-A flags -p tcp -m tcp --tcp-flags FIN,SYN FIN,SYN -j DROP
-A flags -p tcp -m tcp ! --tcp-flags SYN,ACK ACK -j RETURN
-A flags -s 10.0.0.50/32 -j ACCEPT
-A icmpchk -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A icmpchk -p icmp -m icmp ! --icmp-type 3/1 -j RETURN
-A icmpchk -p icmp -m icmp --icmp-type 11 -j DROP
-A icmpchk -j ACCEPT
-A ranges -m iprange ! --dst-range 192.168.0.10-192.168.0.20 -j RETURN
-A ranges -j ACCEPT
-A tcpchk -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT
-A tcpchk -j flags
-A tcpchk -p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT
-A tcpchk -p tcp -m tcp --tcp-option 8 -j DROP
-A tcpchk -p tcp -m tcp ! --sport 1024:65535 -j RETURN
-A tcpchk -p tcp -m tcp --dport 1000:2000 -j ACCEPT
-A udpchk -p udp -m udp --dport 53 -j ACCEPT
-A udpchk -p udp -m udp --sport 67:68 --dport 67:68 -j ACCEPT
-A udpchk -p udp -m multiport ! --sports 53,123 -j RETURN
-A udpchk -j ACCEPT
COMMIT
RULES

# -m limit: struct xt_rateinfo, whose kernel-private fields (prev, credit, credit_cap, cost,
# master) GET_ENTRIES returns as zeroes (xt_limit's usersize).
restore_case limit "" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:lim - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m limit --limit 3/min --limit-burst 10 -j ACCEPT
-A INPUT -m limit --limit 1/sec -j LOG --log-prefix "lim "
-A INPUT -m limit --limit 10000/sec --limit-burst 10000 -j lim
-A lim -m limit --limit 1/day --limit-burst 1 -j RETURN
COMMIT
RULES

# Single commands, each a GET_INFO/GET_ENTRIES/SET_REPLACE/ADD_COUNTERS round trip whose
# SET_REPLACE carries the table the kernel handed back, with counters moved along.
: >"$WORK/input"
run_case commands <<'CMDS'
iptables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT
iptables-legacy -N web
iptables-legacy -A web -p tcp -m multiport --dports 80,443 -j ACCEPT
iptables-legacy -I INPUT 1 -p tcp -j web
iptables-legacy -A INPUT -m comment --comment hello -j DROP
iptables-legacy -R INPUT 2 -p tcp --dport 2222 -j ACCEPT
iptables-legacy -N tmp
iptables-legacy -E tmp tmp2
iptables-legacy -A OUTPUT -j tmp2
iptables-legacy -D OUTPUT -j tmp2
iptables-legacy -X tmp2
iptables-legacy -P FORWARD DROP
iptables-legacy -Z
iptables-legacy -D INPUT -m comment --comment hello -j DROP
iptables-legacy -F web
iptables-legacy -A INPUT -m limit --limit 5/min --limit-burst 7 -j ACCEPT
iptables-legacy -A INPUT -p udp -m limit --limit 2/hour -j DROP
iptables-legacy -D INPUT -m limit --limit 5/min --limit-burst 7 -j ACCEPT
CMDS

# The same well-formed and malformed requests to the kernel and to us: same errno.
cases=$((cases + 1))
ip netns add "$NS"
if ip netns exec "$NS" "$ERRNO_TOOL" >"$WORK/errno.log" 2>&1; then
	echo "ok   errno: $(grep -c '^ok ' "$WORK/errno.log") requests answered alike by the kernel and by us"
else
	fail=$((fail + 1))
	echo "FAIL errno"
	grep -v '^ok ' "$WORK/errno.log" | sed 's/^/     /'
fi
ip netns del "$NS"

# Randomly mutated tables (bytes, offsets, verdicts, hooks, names, revisions): the same
# errno from both, and where both accept, the same GET_ENTRIES bytes.
cases=$((cases + 1))
ip netns add "$NS"
if ip netns exec "$NS" "$ERRNO_TOOL" --fuzz "${FUZZ_SEED:-1}" "${FUZZ_COUNT:-5000}" >"$WORK/fuzz.log" 2>/dev/null; then
	echo "ok   fuzz: $(grep 'accepted by both' "$WORK/fuzz.log")"
else
	fail=$((fail + 1))
	echo "FAIL fuzz"
	grep -v '^ok ' "$WORK/fuzz.log" | sed 's/^/     /'
fi
ip netns del "$NS"

# The reference evaluator against netfilter: random packets from a peer namespace over a
# veth pair into $NS, whose INPUT counters must move exactly as ir::evaluate predicts.
ip netns add "$NS"
ip netns add "$PEER"
ip link add eth0 netns "$NS" type veth peer name peer0 netns "$PEER"
ip -n "$NS" addr add 10.9.0.1/24 dev eth0
DSTS=10.9.0.1
for a in 192.168.0.15 192.168.1.1 2.2.2.2 2.2.2.4 10.1.2.3; do
	ip -n "$NS" addr add $a/32 dev eth0
	DSTS=$DSTS,$a
done
ip -n "$NS" link set lo up
ip -n "$NS" link set eth0 up
ip -n "$PEER" addr add 10.9.0.2/24 dev peer0
ip -n "$PEER" link set peer0 up
ip -n "$PEER" route add default dev peer0
for c in all default eth0; do
	ip netns exec "$NS" sysctl -qw net.ipv4.conf.$c.rp_filter=0
done
seed=1
for name in matches ip_header input_chains user_chains; do
	cases=$((cases + 1))
	seed=$((seed + 1))
	if ip netns exec "$NS" iptables-legacy-restore <"$WORK/$name.rules" &&
		ip netns exec "$NS" "$EVAL_TOOL" "/run/netns/$PEER" eth0 $seed 600 "$DSTS" \
			>"$WORK/$name.eval" 2>&1; then
		echo "ok   eval $name: $(tail -1 "$WORK/$name.eval")"
	else
		fail=$((fail + 1))
		echo "FAIL eval $name"
		sed 's/^/     /' "$WORK/$name.eval"
	fi
done

echo "$((cases - fail)) passed, $fail failed"
[ "$fail" = 0 ]
