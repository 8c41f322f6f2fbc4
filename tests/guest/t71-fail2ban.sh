# fail2ban (Debian 12's 1.0.2, the host's package) through bpfilter.ko, as a user runs it:
# in the tools' chroot (tools.sh) with iptables pointed at iptables-legacy by
# update-alternatives, fail2ban-server in namespace twhost with Debian's configuration and
# its default banaction (iptables-multiport, blocktype REJECT --reject-with
# icmp-port-unreachable); the sshd jail watches a log file the test writes failed logins
# into (backend polling). The banned peer's connect is refused at once by the ICMP port
# unreachable, another address still connects, unban lifts the ban.
. /tests/tools.sh

F2B_LOG=/var/log/bf-auth.log

f2b_conf() {
	mkdir -p "$TOOLS/run/fail2ban" "$TOOLS/var/log" || return 1
	: >"$TOOLS$F2B_LOG"
	# An in-memory database: nothing from the host's, nothing left behind.
	printf '[Definition]\ndbfile = :memory:\n' >"$TOOLS/etc/fail2ban/fail2ban.d/zz-bpfilter-test.local"
	printf '[sshd]\nenabled = true\nbackend = polling\nlogpath = %s\n' "$F2B_LOG" \
		>"$TOOLS/etc/fail2ban/jail.d/zz-bpfilter-test.local"
}

f2b() { tools_run twhost fail2ban-client "$@"; }

# fail_logins IP N: sshd's lines for N failed logins of IP, as syslog writes them.
fail_logins() {
	local i
	for i in $(seq "$2"); do
		echo "$(date '+%b %e %H:%M:%S') bf-test sshd[$((4000 + i))]: Failed password for root from $1 port $((40000 + i)) ssh2"
	done >>"$TOOLS$F2B_LOG"
}

f2b_default_action() {
	local a b
	a=$(f2b get sshd actions | tail -n 1)
	b=$(f2b get sshd action iptables-multiport blocktype)
	echo "action $a, blocktype $b"
	[ "$a" = iptables-multiport ] && [ "$b" = "REJECT --reject-with icmp-port-unreachable" ]
}

banned() { f2b status sshd | grep -q "Banned IP list:.*$1"; }
ban_rule() { in_ns twhost $IPT -S f2b-sshd | grep -qx -- "-A f2b-sshd -s $1/32 -j REJECT --reject-with icmp-port-unreachable"; }
no_ban_rule() { ! in_ns twhost $IPT -S f2b-sshd | grep -q -- "-s $1/32"; }
no_f2b_chain() { ! in_ns twhost $IPT -S | grep -q f2b-sshd; }

# refused_by_icmp IP: IP's connect to 22 is refused at once, by an ICMP destination
# unreachable (a reset would be refused too, without one).
refused_by_icmp() {
	local before after
	before=$(peer_unreachs)
	connect_is "$1" 22 "ECONNREFUSED at once" || return 1
	after=$(peer_unreachs)
	echo "ICMP destination unreachables received by the peer: $before, then $after"
	[ "$after" -eq $((before + 1)) ]
}

f2b_dmesg=$(dmesg | wc -l)
check "the host's root, shared read-only, under an overlay at $TOOLS" tools_up
check "python3, ufw, fail2ban and iptables-legacy are there (the host's packages)" tools_present
check "update-alternatives points iptables at iptables-legacy (the chroot's /etc)" tools_legacy
check "veth pair twhost/twpeer" tw_setup
check "fail2ban: Debian's configuration, the sshd jail on $F2B_LOG" f2b_conf
tw_listen 22
check "the peer connects to 22 before any ban" connect_is $TW_PEER 22 "connected at once"

# As systemd starts it (fail2ban.service): in the foreground, -x to clear a stale socket.
tools_run twhost fail2ban-server -xf start >/tmp/f2b-server.out 2>&1 &
TW_PIDS="$TW_PIDS $!"
tw_at "fail2ban-server starts"
check "fail2ban-server starts the sshd jail" wait_for 120 f2b status sshd
tw_at "the jail is up"
check "the jail's action is Debian's default, iptables-multiport, blocktype REJECT" f2b_default_action
# Debian's maxretry (5) within findtime (10 minutes).
fail_logins $TW_PEER 5
check "fail2ban bans $TW_PEER after 5 failed logins (fail2ban-client status sshd lists it)" \
	wait_for 30 banned $TW_PEER
f2b status sshd | sed 's/^/# /'
tw_at "banned"
# fail2ban lists the ban before its actions have run: wait for the rule itself.
check "the ban reaches bpfilter's table" wait_for 30 ban_rule $TW_PEER
in_ns twhost $IPT -L -v -n >/tmp/f2b.list 2>&1
sed 's/^/# /' /tmp/f2b.list
check "iptables-legacy -L -v: INPUT jumps to f2b-sshd for port 22" \
	grep -Eq '^ +0 +0 f2b-sshd +(6|tcp) +-- +\* +\* +0\.0\.0\.0/0 +0\.0\.0\.0/0 +multiport dports 22$' /tmp/f2b.list
check "the banned peer's connect to 22 is refused at once, by ICMP port unreachable" refused_by_icmp $TW_PEER
check "another peer address still connects to 22" connect_is $TW_OTHER 22 "connected at once"
in_ns twhost $IPT -L -v -x -n >/tmp/f2b.list 2>&1
check "iptables-legacy -L -v: the ban counted the refused SYN (1 packet, 60 bytes)" \
	grep -Eq "^ +1 +60 REJECT +(0|all) +-- +\\* +\\* +$TW_PEER +0\\.0\\.0\\.0/0 +reject-with icmp-port-unreachable\$" /tmp/f2b.list
# The jump sees every packet to 22 since the ban (no conntrack shortcut in fail2ban's rules):
# the refused SYN, and the other address's whole connection.
jump_counted() {
	awk '$3 == "f2b-sshd" { print; n = $1 } END { exit !(n >= 3) }' /tmp/f2b.list
}
check "iptables-legacy -L -v: INPUT's jump counted the refused SYN and the other connection" jump_counted
expect_hooks tw0 "$ON_ETH" twhost

tw_at "unban"
check "fail2ban-client unban $TW_PEER" f2b unban $TW_PEER
check "the ban is gone from the table" wait_for 30 no_ban_rule $TW_PEER
check_fails "fail2ban-client status sshd no longer lists it" banned $TW_PEER
check "the unbanned peer connects to 22 again" connect_is $TW_PEER 22 "connected at once"
check "fail2ban-client stop" f2b stop
check "fail2ban's actionstop removed its chain and jump" wait_for 30 no_f2b_chain
check_fails "while fail2ban ran, bpfilter refused nothing and logged no error" sh -c \
	"dmesg | tail -n +$((f2b_dmesg + 1)) | grep -iE 'bpfilter.*(error|refused|warn)'"
tw_at "stopped"
tw_teardown
tools_down
