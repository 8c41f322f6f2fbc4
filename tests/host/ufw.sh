#!/bin/bash
# ufw (Debian 12's package) on bpfilter, as a user runs it, against the same on netfilter.
#
# Twin namespace pairs (tools.bash); in each host namespace ufw runs with --datadir, a copy of
# its configuration in the test's temp dir, and with /usr/sbin/iptables (and -restore, -save,
# ip6tables*) naming the legacy tools: ufw runs /usr/sbin/iptables by absolute path and
# ufw-init resets PATH, so each ufw command runs in a private mount namespace where a copy of
# /etc/alternatives is mounted over the real one (the host's alternatives are not touched).
# On bpfilter's side ufw's environment holds LD_PRELOAD and BPFILTER_SOCKET, so every
# iptables it runs goes through the front door. IPv6 (ip6tables-legacy) stays with the
# kernel on both sides: bpfilter serves IPv4 only.
#
# The test's copy is Debian's configuration as it ships: its rule files (with their
# -m addrtype and -m limit rules), LOGLEVEL=low (ufw's own -m limit LOG rules), only
# default/ufw's IPT_SYSCTL pointed at the copy's sysctl.conf (applied in the namespace).
# ufw probes the kernel for -m recent (util.get_netfilter_capabilities): bpfilter answers it
# as netfilter does, so ufw writes its ufw-user-limit chains and takes `ufw limit` rules
# (-m recent --set, then --update --seconds 30 --hitcount 6), and the lists are compared
# with netfilter's /proc/net/xt_recent through `bpfilter_umh --recent`.
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
if ! command -v ufw >/dev/null || [ ! -d /usr/share/ufw/iptables ]; then
	echo "missing ufw: run scripts/setup-deps"
	exit 1
fi
tw_setup

# /etc/alternatives with the iptables names on the legacy tools, for the private mounts.
ALT=$BF_TMP/alternatives
cp -a /etc/alternatives "$ALT"
for t in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
	ln -sfn "$(readlink "$(tw_bindir)/$t")" "$ALT/$t"
done

# A side's datadir: Debian's configuration and its pristine IPv4 rule files.
ufw_conf()
{
	local d=$BF_TMP/ufw-$1 src=/usr/share/ufw/iptables
	mkdir -p "$d/etc/default" "$d/lib/ufw"
	cp -a /etc/ufw "$d/etc/ufw"
	cp -a /etc/default/ufw "$d/etc/default/ufw"
	cp "$src/before.rules" "$src/after.rules" "$src/user.rules" "$d/etc/ufw/"
	sed -i "s|^IPT_SYSCTL=.*|IPT_SYSCTL=$d/etc/ufw/sysctl.conf|" "$d/etc/default/ufw"
	chmod 0640 "$d/etc/ufw/"*.rules
}

# The same ufw command on both sides at once (ufw takes seconds a command), then a check each.
ufw_both()
{
	local side pids=
	for side in bf nf; do
		ufw_cmd "$side" "$@" >"$BF_TMP/ufw-out-$side" 2>&1 &
		pids="$pids $!"
	done
	local what="ufw $*"
	local -A rc=([bf]=0 [nf]=0)
	set -- $pids
	wait "$1" || rc[bf]=$?
	wait "$2" || rc[nf]=$?
	for side in bf nf; do
		BF_N=$((BF_N + 1))
		if [ "${rc[$side]}" = 0 ]; then
			BF_PASSED=$((BF_PASSED + 1))
			echo "ok $BF_N - $side: $what"
		else
			BF_FAILED=$((BF_FAILED + 1))
			echo "not ok $BF_N - $side: $what"
			sed 's/^/#   /' "$BF_TMP/ufw-out-$side" | head -20
		fi
	done
}

ufw_cmd()
{
	local side=$1
	shift
	tw_run "$side" unshare -m --propagation private sh -c \
		'mount --bind "$0" /etc/alternatives && exec "$@"' "$ALT" \
		ufw --rootdir=/ --datadir="$BF_TMP/ufw-$side" "$@"
}

for side in bf nf; do
	ufw_conf "$side"
done
d=$BF_TMP/ufw-bf
check_eq "the rule files are Debian's, unchanged (-m addrtype, -m limit and all)" \
	"$(for f in before after user; do cmp -s "/usr/share/ufw/iptables/$f.rules" "$d/etc/ufw/$f.rules" && echo -n same; done)/$(grep -c '^LOGLEVEL=low$' "$d/etc/ufw/ufw.conf")" "samesamesame/1"
alt_version()
{
	tw_run "$1" unshare -m --propagation private sh -c \
		'mount --bind "$0" /etc/alternatives && exec /usr/sbin/iptables --version' "$ALT"
}
check_eq "in ufw's mount namespace /usr/sbin/iptables is iptables-legacy" "$(alt_version nf)" "iptables v1.8.9 (legacy)"

for side in bf nf; do
	tw_listen "$side" 22 23 24 2222 8080
done
tw_compare_connect "before ufw, port 8080 is open" "connected at once" "$PEER_IP" 8080

ufw_both --force enable
ufw_both allow 22/tcp
ufw_both deny 23/tcp
ufw_both reject 24/tcp
ufw_both limit 2222/tcp
for side in bf nf; do
	ufw_cmd "$side" status verbose >"$BF_TMP/status-$side" 2>&1 || true
	tw_ipt "$side" -S >"$BF_TMP/rules-$side"
done
check "bpfilter: ufw status says active, deny (incoming)" \
	grep -q "^Default: deny (incoming), allow (outgoing)" "$BF_TMP/status-bf"
check_eq "bpfilter: ufw status is netfilter's" "$(cat "$BF_TMP/status-bf")" "$(cat "$BF_TMP/status-nf")"
check_eq "bpfilter: ufw's table is netfilter's, ufw-user-limit and -m recent included" \
	"$(cat "$BF_TMP/rules-bf")" "$(cat "$BF_TMP/rules-nf")"
check "bpfilter: the table has ufw's -m addrtype rules" \
	grep -qx -- "-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN" "$BF_TMP/rules-bf"
check "bpfilter: the table has ufw's user rules" \
	grep -qx -- "-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT" "$BF_TMP/rules-bf"
check "bpfilter: the table has ufw's limit rules" \
	grep -q -- "-A ufw-user-input -p tcp -m tcp --dport 2222 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 --name DEFAULT" "$BF_TMP/rules-bf"
check_eq "bpfilter: the INPUT policy is DROP" "$(tw_ipt bf -S INPUT | head -1)" "-P INPUT DROP"

tw_compare_connect "allow 22/tcp: a peer connects" "connected at once" "$PEER_IP" 22
tw_compare_connect "allow 22/tcp: another peer connects" "connected at once" "$OTHER_IP" 22
tw_compare_connect "deny 23/tcp: dropped" "timeout" "$PEER_IP" 23
tw_compare_connect "reject 24/tcp: refused" "ECONNREFUSED at once" "$PEER_IP" 24
tw_compare_connect "default deny incoming: port 8080 dropped" "timeout" "$PEER_IP" 8080

# ufw limit 2222/tcp: six new connections within 30 s from one address, and the sixth is
# refused (ufw-user-limit: LOG, REJECT); another address still connects.
for k in 1 2 3 4 5; do
	tw_compare_connect "limit 2222/tcp: connection $k of a peer" "connected at once" "$PEER_IP" 2222
done
tw_compare_connect "limit 2222/tcp: the sixth within 30 s is refused" "ECONNREFUSED at once" "$PEER_IP" 2222
tw_compare_connect "limit 2222/tcp: another peer connects" "connected at once" "$OTHER_IP" 2222
# The lists: netfilter's /proc/net/xt_recent/DEFAULT and bpfilter's, but for the jiffies.
recent_list()
{
	if [ "$1" = bf ]; then
		ip netns exec "$HOST" "$BF_UMH" --recent "$BF_SOCK" DEFAULT
	else
		ip netns exec "$NFHOST" cat /proc/net/xt_recent/DEFAULT
	fi | awk '{ print $1, $2, $3, $6, $7, NF - 7 }' | sort
}
check_eq "bpfilter: the list DEFAULT is netfilter's (addresses, ttl, stamps)" \
	"$(recent_list bf)" "$(recent_list nf)"
check_eq "bpfilter: the list holds both peers" "$(recent_list bf | wc -l)" 2

# Outgoing is allowed; the replies come back as ESTABLISHED through the deny policy.
for side in bf nf; do
	ip netns exec "$(tw_peer "$side")" "$PYTHON" -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"hi")
    c.close()
' >/dev/null 2>&1 &
	BF_PIDS="$BF_PIDS $!"
done
out_ok()
{
	ip netns exec "$(tw_host "$1")" "$PYTHON" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 9000), timeout=2)
sys.exit(0 if s.recv(2) == b"hi" else 1)
' "$PEER_IP"
}
for side in nf bf; do
	check "$side: the host connects out (replies pass as ESTABLISHED)" tw_wait 20 out_ok "$side"
done
for side in bf nf; do
	tw_ipt "$side" -L ufw-user-input -v -x -n | awk 'NR > 2 { print $1, $2, $3, $NF }' >"$BF_TMP/cnt-$side"
done
check_eq "bpfilter: ufw-user-input's counters are netfilter's" "$(cat "$BF_TMP/cnt-bf")" "$(cat "$BF_TMP/cnt-nf")"

ufw_both delete deny 23/tcp
ufw_both allow 23/tcp
tw_compare_connect "allow 23/tcp: a peer connects" "connected at once" "$PEER_IP" 23

ufw_both disable
tw_compare_connect "after disable, port 8080 is open again" "connected at once" "$PEER_IP" 8080
check_eq "bpfilter: after disable the table is netfilter's" "$(tw_ipt bf -S)" "$(tw_ipt nf -S)"
check_eq "bpfilter: the helper refused nothing and logged no error" \
	"$(grep -cE '^bpfilter: (error|warn)' "$BF_TMP/umh.log")" 0

bf_summary
