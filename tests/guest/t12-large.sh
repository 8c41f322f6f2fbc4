# A long INPUT chain through the module: cut into chunks, each a global function that
# Linux 6.1's verifier checks on its own (the helper gives it the BTF), filtering and
# counting like any table. Its rules alternate -s and -d, so that no run of them is a
# service list (which would be one lookup); then a service list of 20000 rules, one
# tuple-set lookup on 6.1 as on the host.
awk 'BEGIN {
	print "*filter"; print ":INPUT ACCEPT [0:0]"; print ":FORWARD ACCEPT [0:0]"; print ":OUTPUT ACCEPT [0:0]"
	for (i = 1; i <= 6000; i++)
		printf "-A INPUT -%s 192.168.%d.%d/32 -p tcp -m tcp --dport %d -j DROP\n", i % 2 ? "d" : "s", int(i / 250), i % 250 + 1, 1000 + i
	print "-A INPUT -s 10.99.0.2/32 -p icmp -j DROP"; print "COMMIT"
}' >/tmp/large.rules
check "a table of 6001 rules applies" sh -c "$IPT_RESTORE </tmp/large.rules"
dmesg | grep "rules in force" | tail -n 1 | sed "s/^/# /"
check "INPUT went in chunks with a jump per test" sh -c "dmesg | grep 'rules in force' | tail -n 1 | grep -q 'a jump per test, chains in [0-9]* chunks'"
check_fails "its last rule drops the peer's ping" peer_ping
check "and counts it" sh -c "[ \"\$($IPT -L INPUT -v -x -n --line-numbers | awk '\$1 == 6001 { print \$2 }')\" -ge 1 ]"
check "flush the large table" $IPT -F
check "the peer pings again" peer_ping
awk 'BEGIN {
	print "*filter"; print ":INPUT ACCEPT [0:0]"; print ":FORWARD ACCEPT [0:0]"; print ":OUTPUT ACCEPT [0:0]"
	for (i = 1; i <= 20000; i++)
		printf "-A INPUT -s 192.168.%d.%d/32 -p %s -m %s --dport %d -j DROP\n", int(i / 250), i % 250 + 1, i % 3 ? "udp" : "tcp", i % 3 ? "udp" : "tcp", 1000 + i
	print "-A INPUT -s 10.99.0.2/32 -p icmp -j DROP"; print "COMMIT"
}' >/tmp/services.rules
check "a service list of 20001 rules applies" sh -c "$IPT_RESTORE </tmp/services.rules"
dmesg | grep "rules in force" | tail -n 1 | sed "s/^/# /"
check "its 20000 service rules are one lookup" sh -c "dmesg | grep 'rules in force' | tail -n 1 | grep -q '20000 rules classified in 1 lookups'"
check_fails "its last rule drops the peer's ping" peer_ping
check "and counts it" sh -c "[ \"\$($IPT -L INPUT -v -x -n --line-numbers | awk '\$1 == 20001 { print \$2 }')\" -ge 1 ]"
check "flush the service list" $IPT -F
check "the peer pings again" peer_ping
