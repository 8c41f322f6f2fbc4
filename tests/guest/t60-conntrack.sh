# Connection tracking through the module: a stateful INPUT (policy DROP, ESTABLISHED and
# RELATED accepted, new connections only to port 8080) with real TCP both ways; the
# module turns conntrack on in the namespace while such a table is in force, and off
# when a table without state replaces it.
ct_count() { cat /proc/sys/net/netfilter/nf_conntrack_count; }
tracked_grows() {
	before=$(ct_count)
	$IP netns exec peer ping -c 1 -W 2 10.99.0.1 >/dev/null
	[ "$(ct_count)" -gt "$before" ]
}
peer_listen() {
	$IP netns exec peer nc -ll -p 9090 -e /bin/true >/dev/null 2>&1 &
	echo $! >/tmp/nc9090.pid
	sleep 0.5
}
host_tcp() { nc -w 3 10.99.0.2 9090 </dev/null; }
peer_tcp_to() { $IP netns exec peer nc -w 3 10.99.0.1 "$1" </dev/null; }

check "veth pair to a peer namespace" setup_peer
check "nf_conntrack is loaded with bpfilter" sh -c "$LSMOD | grep -q '^nf_conntrack '"
check "a stateful INPUT" add_rules "-P INPUT DROP" \
	"-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT" \
	"-A INPUT -m state --state INVALID -j DROP" \
	"-A INPUT -p tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT" \
	"-A INPUT -p icmp --icmp-type echo-request -j ACCEPT"
$IPT -S INPUT | sed "s/^/# /"
check "conntrack tracks here now (a ping makes an entry)" tracked_grows
check "the peer connects to 8080 (NEW, then ESTABLISHED)" peer_tcp
nc -ll -p 8081 -e /bin/true >/dev/null 2>&1 &
echo $! >/tmp/nc8081.pid
sleep 0.5
check_fails "but not to 8081 (NEW, not allowed)" peer_tcp_to 8081
kill "$(cat /tmp/nc8081.pid)" 2>/dev/null
check "a peer listener on 9090" peer_listen
check "we connect to the peer: its answers are ESTABLISHED" host_tcp
kill "$(cat /tmp/nc9090.pid)" 2>/dev/null
established_counted() { [ "$(rule_pkts 1)" -ge 4 ]; }
new_counted_once() { [ "$(rule_pkts 3)" -eq 1 ]; }
check "the ESTABLISHED rule counted the answers" established_counted
check "the NEW rule counted one SYN" new_counted_once
$IPT -L INPUT -v -x -n --line-numbers | sed "s/^/# /"
grep -E "dport=(8080|9090)" /proc/net/nf_conntrack 2>/dev/null | sed "s/^/# /"
check "a table without state" sh -c "$IPT -F INPUT && $IPT -P INPUT ACCEPT"
check_fails "conntrack no longer tracks here" tracked_grows
teardown_peer
