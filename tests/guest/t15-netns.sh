# Per namespace tables: the peer namespace's table filters the peer's interfaces only, an
# interface that appears there later is filtered too, and this namespace is untouched.
host_ping() { ping -c 1 -W 2 "$1"; }
check "we ping the peer" host_ping 10.99.0.2
check "an ICMP DROP rule in the peer namespace" $IP netns exec peer $IPT -A INPUT -p icmp -j DROP
check "this namespace's table has no rule" sh -c "! $IPT -S INPUT | grep -q -- '^-A'"
check "the peer's table has it" sh -c "$IP netns exec peer $IPT -S INPUT | grep -q -- '-A INPUT -p icmp -j DROP'"
check_fails "the peer drops our ping" host_ping 10.99.0.2
check "TCP from the peer still passes here" peer_tcp
check "an interface that appears in the peer later" sh -c "$IP link add veth2 type veth peer name veth3 netns peer &&
	$IP addr add 10.98.0.1/24 dev veth2 && $IP link set veth2 up &&
	$IP -n peer addr add 10.98.0.2/24 dev veth3 && $IP -n peer link set veth3 up && sleep 1"
check "gets the peer's program" sh -c "$IP -n peer link show veth3 | grep -q xdp"
check_fails "and drops our ping there" host_ping 10.98.0.2
check "flush the peer's table" $IP netns exec peer $IPT -F
check "we ping the peer again" host_ping 10.99.0.2
check "and on its new interface" host_ping 10.98.0.2
$IP link del veth2
