# iptables-legacy-save and -restore round trip through bpfilter.
cat >/tmp/rules.v4 <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:PEERS - [0:0]
-A INPUT -i veth0 -j PEERS
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A PEERS -s 10.99.0.2/32 -p icmp -j DROP
-A PEERS -j RETURN
COMMIT
RULES
check "iptables-legacy-restore" sh -c "$IPT_RESTORE </tmp/rules.v4"
check "iptables-legacy-save gives the rules back" sh -c "$IPT_SAVE | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/' | diff /tmp/rules.v4 -"
check_fails "the user chain drops the peer's ping" peer_ping
check "RETURN from the user chain: TCP passes" peer_tcp
check "save, flush, restore the saved output" sh -c "$IPT_SAVE >/tmp/saved && $IPT -F && $IPT -X && $IPT_RESTORE </tmp/saved && $IPT_SAVE | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/' | diff /tmp/rules.v4 -"
