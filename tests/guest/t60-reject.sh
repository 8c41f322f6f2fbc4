# -j REJECT through the module on 6.1: a TCP connect meets a reset at once, at INPUT (built at tc ingress,
# back out of veth) and at OUTPUT (delivered through lo); an ICMP error in FORWARD is taken.
rj_setup() {
	$IP netns add rjpeer || return 1
	$IP link add rj0 type veth peer name rj1 netns rjpeer || return 1
	$IP addr add 10.98.0.1/24 dev rj0 && $IP link set rj0 up || return 1
	$IP -n rjpeer addr add 10.98.0.2/24 dev rj1 && $IP -n rjpeer link set rj1 up || return 1
	$IP -n rjpeer link set lo up
	# veth takes an XDP_TX frame only with NAPI on the peer: the peer's own table gives
	# rj1 an XDP program.
	$IP netns exec rjpeer $IPT -A INPUT -j ACCEPT || return 1
	nc -ll -p 8090 -e /bin/true >/dev/null 2>&1 &
	echo $! >/tmp/rj_nc1.pid
	$IP netns exec rjpeer nc -ll -p 8091 -e /bin/true >/dev/null 2>&1 &
	echo $! >/tmp/rj_nc2.pid
	sleep 1
}
rj_teardown() {
	kill "$(cat /tmp/rj_nc1.pid)" "$(cat /tmp/rj_nc2.pid)" 2>/dev/null
	$IP link del rj0 2>/dev/null
	$IP netns del rjpeer 2>/dev/null
	return 0
}
# Centiseconds since boot.
rj_cs() { cut -d' ' -f1 /proc/uptime | tr -d .; }
# rj_refused_fast COMMAND...: COMMAND fails within 1.5 s (a lost SYN would take 3).
rj_refused_fast() {
	local t0 t1
	t0=$(rj_cs)
	"$@" && return 1
	t1=$(rj_cs)
	echo "failed after $((t1 - t0)) cs"
	[ $((t1 - t0)) -lt 150 ]
}
rj_in() { $IP netns exec rjpeer nc -w 3 10.98.0.1 8090 </dev/null; }
rj_out() { nc -w 3 10.98.0.2 8091 </dev/null; }
rj_counted() { [ "$(rule_pkts 1)" -ge 1 ]; }

check "fresh table" fresh_table
check "veth pair to rjpeer, listeners on both ends" rj_setup
check "rjpeer connects before any rule" rj_in
check "this host connects to rjpeer before any rule" rj_out
check "-A INPUT -p tcp --dport 8090 -j REJECT --reject-with tcp-reset" \
	$IPT -A INPUT -p tcp --dport 8090 -j REJECT --reject-with tcp-reset
check "rjpeer's connect is refused at once (a reset from tc ingress)" rj_refused_fast rj_in
check "the REJECT rule counted the SYN" rj_counted
check "-A OUTPUT -p tcp --dport 8091 -j REJECT --reject-with tcp-reset" \
	$IPT -A OUTPUT -p tcp --dport 8091 -j REJECT --reject-with tcp-reset
check "this host's connect is refused at once (a reset through lo)" rj_refused_fast rj_out
check "-A INPUT -p icmp -j REJECT --reject-with icmp-admin-prohibited" \
	$IPT -I INPUT -p icmp -j REJECT --reject-with icmp-admin-prohibited
check_fails "rjpeer's ping gets no echo reply" $IP netns exec rjpeer ping -c 1 -W 1 10.98.0.1
check "an ICMP error in FORWARD is taken" $IPT -A FORWARD -p udp -j REJECT
check_fails "tcp-reset without -p tcp is refused" $IPT -A INPUT -j REJECT --reject-with tcp-reset
check "FORWARD's tcp-reset is taken" $IPT -A FORWARD -p tcp -j REJECT --reject-with tcp-reset
check "flush" fresh_table
check "rjpeer connects again" rj_in
rj_teardown
