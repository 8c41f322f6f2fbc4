# Stock iptables-legacy through bpfilter: a DROP rule stops a peer's ping and TCP connects
# through veth, its counters count, deleting it lets traffic through again.
check "veth pair to a peer namespace" setup_peer
check "peer pings before any rule" peer_ping
check "peer connects over TCP before any rule" peer_tcp
check "iptables-legacy -A INPUT -s 10.99.0.2 -j DROP" $IPT -A INPUT -s 10.99.0.2 -j DROP
check "the rule is listed" sh -c "$IPT -S INPUT | grep -q -- '-A INPUT -s 10.99.0.2/32 -j DROP'"
check "an XDP program is attached to veth0" sh -c "$IP link show veth0 | grep -q xdp"
check "bpftool shows the program" sh -c "$BPFTOOL net show dev veth0 | grep -q xdp"
$IP -d link show veth0 | sed "s/^/# /"
$BPFTOOL net show | sed "s/^/# /"
check_fails "peer ping is dropped" peer_ping
check_fails "peer TCP connect is dropped" peer_tcp
check "the DROP rule counted the packets" sh -c "[ \"\$($IPT -L INPUT -v -x -n --line-numbers | awk '\$1 == 1 {print \$2}')\" -ge 2 ]"
$IPT -L INPUT -v -x -n --line-numbers
check "iptables-legacy -Z zeroes the counters" sh -c "$IPT -Z INPUT && [ \"\$($IPT -L INPUT -v -x -n --line-numbers | awk '\$1 == 1 {print \$2}')\" -eq 0 ]"
check "iptables-legacy -D INPUT 1" $IPT -D INPUT 1
check "peer pings again" peer_ping
check "peer connects over TCP again" peer_tcp
check "a TCP port rule: -p tcp --dport 8080 -j DROP" $IPT -A INPUT -p tcp --dport 8080 -j DROP
check_fails "TCP to 8080 is dropped" peer_tcp
check "ping still passes" peer_ping
check "iptables-legacy -F" $IPT -F
check "TCP passes after the flush" peer_tcp

# Datagrams in pieces: a ping of 3000 bytes leaves the peer as three fragments. The first
# is judged, the piece that completes the datagram is counted: once, with its whole length.
big_ping() { $IP netns exec peer ping -c "$1" -s 3000 -W 2 10.99.0.1; }
rule1() { $IPT -L INPUT -v -x -n --line-numbers | awk '$1 == 1 { print $2, $3 }'; }
rule1_is() { [ "$(rule1)" = "$1" ]; }
check "a counting rule for ICMP" $IPT -A INPUT -p icmp
check "pings of 3000 bytes are answered" big_ping 2
check "each counted once, as a datagram of 3028 bytes" rule1_is "2 6056"
rule1 | sed "s/^/# rule 1: /"
check "-I INPUT -p icmp -j DROP" $IPT -I INPUT -p icmp -j DROP
check_fails "a fragmented ping is dropped" big_ping 1
check "and counted once by the DROP rule" rule1_is "1 3028"
rule1 | sed "s/^/# rule 1: /"
check "iptables-legacy -F again" $IPT -F
