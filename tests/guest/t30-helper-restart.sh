# SIGKILL the helper: the attached program keeps filtering, the next request restarts it
# and the table comes back, with its counters.
check "the helper runs" helper_pid
check "a table in the peer namespace too" $IP netns exec peer $IPT -A INPUT -p icmp -j DROP
peers_packets() { $IPT -L PEERS -v -x -n --line-numbers | awk '$1 == 1 {print $2}'; }
peer_ping >/dev/null 2>&1 || true
counted=$(peers_packets)
check "the peers' rule has counted" test "${counted:-0}" -gt 0
old_pid=$(helper_pid)
check "kill -9 the helper" kill -9 "$old_pid"
sleep 1
check_fails "with the helper dead, the peer's ping is still dropped" peer_ping
check "iptables-legacy-save restarts the helper and shows the rules" sh -c "$IPT_SAVE | grep -q -- '-A PEERS -s 10.99.0.2/32 -p icmp -j DROP'"
new_pid=$(helper_pid)
check "a new helper runs" test -n "$new_pid" -a "$new_pid" != "$old_pid"
check "the module restored the table" sh -c "dmesg | grep -q 'restored table filter'"
# The ping sent while the helper was dead counts too.
check "the counters survived the restart ($counted packets, then 1 more)" \
	test "$(peers_packets)" -ge $((counted + 1))
check "the helper carried them" sh -c "dmesg | grep -q 'counters of [0-9]* rules carried over'"
check_fails "the restored table drops the ping" peer_ping
check "TCP still passes" peer_tcp
check "the peer namespace's table was restored" sh -c "$IP netns exec peer $IPT -S INPUT | grep -q -- '-A INPUT -p icmp -j DROP'"
check_fails "and drops our ping there" ping -c 1 -W 2 10.99.0.2
check "flush the peer's table" $IP netns exec peer $IPT -F
check "rules change after the restart" $IPT -D PEERS 1
check "peer pings after the change" peer_ping
check "flush" sh -c "$IPT -F && $IPT -X"
teardown_peer
