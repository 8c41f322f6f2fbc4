#!/bin/bash
# fail2ban (Debian 12's package) on bpfilter, as a user runs it, against the same on netfilter.
#
# In twin namespace pairs (tools.bash) a fail2ban-server runs in each host namespace with
# Debian's own configuration (copied to the test's temp dir) and the sshd jail watching a log
# file of the test's own: banaction iptables-multiport (the default), blocktype REJECT
# --reject-with icmp-port-unreachable (the default), backend polling. Its iptables is
# iptables-legacy through a PATH directory of the test's own; on bpfilter's side its
# environment holds LD_PRELOAD and BPFILTER_SOCKET, so every iptables it runs goes through the
# front door. Failed logins of PEER_IP are written to the log; both sides must ban it, refuse
# its connects to port 22 the same way, let OTHER_IP in, and lift the ban on `unban`.
# The helper runs with --xdp-mode generic (tools.bash says why).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hooks.bash"
. "$(dirname "$0")/tools.bash"
if [ "$BF_NETFILTER" = 1 ]; then
	echo "# netfilter mode: this test runs netfilter beside bpfilter already"
	echo "0 passed, 0 failed"
	exit 0
fi
if ! command -v fail2ban-server >/dev/null || ! command -v fail2ban-client >/dev/null; then
	echo "missing fail2ban: run scripts/setup-deps"
	exit 1
fi
tw_setup

# The configuration of a side: Debian's, with the jail pointed at our log, and the server's
# socket, pid file, log and database in the side's directory.
f2b_conf()
{
	local d=$BF_TMP/f2b-$1
	mkdir -p "$d"
	cp -a /etc/fail2ban "$d/etc"
	: >"$d/auth.log"
	cat >"$d/etc/fail2ban.d/zz-bpfilter-test.local" <<-EOF
		[Definition]
		logtarget = $d/fail2ban.log
		socket = $d/fail2ban.sock
		pidfile = $d/fail2ban.pid
		dbfile = :memory:
	EOF
	cat >"$d/etc/jail.d/zz-bpfilter-test.local" <<-EOF
		[sshd]
		enabled = true
		backend = polling
		logpath = $d/auth.log
	EOF
	echo "$d"
}

f2b_client()
{
	local side=$1 d=$BF_TMP/f2b-$1
	shift
	tw_run "$side" fail2ban-client -c "$d/etc" -s "$d/fail2ban.sock" "$@"
}

# sshd's lines for failed logins of an address, as syslog writes them.
fail_logins()
{
	local file=$1 ip=$2 n=$3 i
	for i in $(seq "$n"); do
		echo "$(date '+%b %e %H:%M:%S') bf-test sshd[$((4000 + i))]: Failed password for root from $ip port $((40000 + i)) ssh2" >>"$file"
	done
}

banned() { f2b_client "$1" status sshd | grep -q "Banned IP list:.*$2"; }

declare -A D
for side in bf nf; do
	D[$side]=$(f2b_conf "$side")
	tw_listen "$side" 22
done
check_eq "netfilter: a peer connects to port 22 before any ban" "$(tw_connect nf "$PEER_IP" 22)" "connected at once"
check_eq "bpfilter: a peer connects to port 22 before any ban" "$(tw_connect bf "$PEER_IP" 22)" "connected at once"

for side in bf nf; do
	# As systemd starts it (fail2ban.service): in the foreground, -x to clear a stale socket.
	tw_run "$side" fail2ban-server -c "${D[$side]}/etc" -xf start >"${D[$side]}/server.out" 2>&1 &
	BF_PIDS="$BF_PIDS $!"
done
for side in bf nf; do
	check "$side: fail2ban-server starts the sshd jail" tw_wait 150 f2b_client "$side" status sshd
done
check_eq "bpfilter: the jail's action is Debian's default, iptables-multiport" \
	"$(f2b_client bf get sshd actions | tail -n 1)" "iptables-multiport"
check_eq "bpfilter: its blocktype is the default" \
	"$(f2b_client bf get sshd action iptables-multiport blocktype)" "REJECT --reject-with icmp-port-unreachable"
# Debian's maxretry (5) within findtime (10 minutes).
for side in bf nf; do
	fail_logins "${D[$side]}/auth.log" "$PEER_IP" 5
done
for side in bf nf; do
	check "$side: fail2ban bans $PEER_IP after 5 failed logins" tw_wait 150 banned "$side" "$PEER_IP"
done
# fail2ban lists the ban before its actions have run (actionstart, then actionban): wait for
# the rule itself.
in_table() { tw_ipt "$1" -S | grep -qx -- "-A f2b-sshd -s $2/32 -j REJECT --reject-with icmp-port-unreachable"; }
not_in_table() { ! tw_ipt "$1" -S f2b-sshd | grep -q -- "-s $2/32"; }
for side in bf nf; do
	check "$side: the ban reaches the table" tw_wait 100 in_table "$side" "$PEER_IP"
done
for side in bf nf; do
	tw_ipt "$side" -L -v -n >"$BF_TMP/list-$side"
	tw_ipt "$side" -S >"$BF_TMP/rules-$side"
done
# iptables 1.8.9's -L -n prints protocols by number (6: tcp, 0: all).
check "bpfilter: iptables -L -v shows INPUT jumping to f2b-sshd for port 22" \
	grep -Eq '^ +0 +0 f2b-sshd +6 +-- +\* +\* +0\.0\.0\.0/0 +0\.0\.0\.0/0 +multiport dports 22$' "$BF_TMP/list-bf"
check "bpfilter: iptables -L -v shows the ban" \
	grep -Eq "^ +0 +0 REJECT +0 +-- +\\* +\\* +$PEER_IP +0\\.0\\.0\\.0/0 +reject-with icmp-port-unreachable\$" "$BF_TMP/list-bf"
check_eq "bpfilter: iptables -L -v is netfilter's" "$(cat "$BF_TMP/list-bf")" "$(cat "$BF_TMP/list-nf")"
check_eq "bpfilter: the rules fail2ban wrote are netfilter's" "$(cat "$BF_TMP/rules-bf")" "$(cat "$BF_TMP/rules-nf")"

tw_compare_connect "the banned peer's connect to 22 is refused" "ECONNREFUSED at once" "$PEER_IP" 22
tw_compare_connect "another peer still connects to 22" "connected at once" "$OTHER_IP" 22
for side in bf nf; do
	tw_ipt "$side" -L f2b-sshd -v -x -n | awk -v ip="$PEER_IP" '$3 == "REJECT" && $8 == ip { print $1, $2 }' >"$BF_TMP/ban-$side"
done
check_eq "bpfilter: the ban's counters are netfilter's" "$(cat "$BF_TMP/ban-bf")" "$(cat "$BF_TMP/ban-nf")"
check_eq "netfilter: the ban counted the refused SYN" "$(cut -d' ' -f1 "$BF_TMP/ban-nf")" 1

for side in bf nf; do
	check "$side: fail2ban-client unban $PEER_IP" f2b_client "$side" unban "$PEER_IP"
done
for side in bf nf; do
	check "$side: the ban is gone from f2b-sshd" tw_wait 100 not_in_table "$side" "$PEER_IP"
done
tw_compare_connect "the unbanned peer connects to 22 again" "connected at once" "$PEER_IP" 22

# A ban again, then fail2ban's own stop: its actionstop removes the chain and the jump.
for side in bf nf; do
	fail_logins "${D[$side]}/auth.log" "$PEER_IP" 5
done
for side in bf nf; do
	check "$side: banned again" tw_wait 150 in_table "$side" "$PEER_IP"
done
tw_compare_connect "refused again" "ECONNREFUSED at once" "$PEER_IP" 22
for side in bf nf; do
	check "$side: fail2ban-client stop" f2b_client "$side" stop
done
no_f2b() { ! tw_ipt "$1" -S | grep -q f2b-sshd; }
for side in bf nf; do
	tw_wait 50 no_f2b "$side" || true
done
check_eq "bpfilter: after stop the table is netfilter's" "$(tw_ipt bf -S)" "$(tw_ipt nf -S)"
check_eq "netfilter: after stop no f2b chain is left" "$(tw_ipt nf -S | grep -c f2b || true)" 0
tw_compare_connect "after stop the peer connects" "connected at once" "$PEER_IP" 22
check_fails "bpfilter: the helper logged no error or warning" grep -E '^bpfilter: (error|warn)' "$BF_TMP/umh.log"

bf_summary
