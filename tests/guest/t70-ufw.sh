# ufw (Debian 12's 0.36.2, the host's package) through bpfilter.ko, as a user runs it: in
# the tools' chroot (tools.sh) with iptables pointed at iptables-legacy by
# update-alternatives, in namespace twhost: `ufw --force enable`, `allow`, `deny`,
# `disable`; a peer's real TCP connects over veth decide whether ufw's rules hold;
# `iptables-legacy -L -v` shows their counts. ufw's IPv6 rules go to the kernel's
# ip6_tables (bpfilter serves IPv4 only). Each ufw command replaces the table several
# times, each replace takes seconds under TCG: the commands are the few that show ufw at
# work (tests/host/ufw.sh runs more, beside netfilter).
. /tests/tools.sh

# ufw_pristine: Debian's rule files as ufw ships them (/usr/share/ufw/iptables), -m addrtype
# and -m limit rules and all, and Debian's LOGLEVEL=low, in the chroot's /etc/ufw.
ufw_pristine() {
	tools_run "" sh -c 'for f in before after user; do
		cp /usr/share/ufw/iptables/$f.rules /etc/ufw/$f.rules || exit 1
	done
	grep -qx LOGLEVEL=low /etc/ufw/ufw.conf'
}

ufw_run() { tools_run twhost ufw "$@"; }
ufw_list() { in_ns twhost $IPT -L ufw-user-input -v -x -n; }

check "the host's root, shared read-only, under an overlay at $TOOLS" tools_up
check "python3, ufw, fail2ban and iptables-legacy are there (the host's packages)" tools_present
host_alt=$(readlink /hostroot/etc/alternatives/iptables)
check "update-alternatives points iptables at iptables-legacy (the chroot's /etc)" tools_legacy
check "the host's own alternative is untouched ($host_alt)" \
	sh -c "[ \"\$(readlink /hostroot/etc/alternatives/iptables)\" = '$host_alt' ]"
check "veth pair twhost/twpeer" tw_setup
check "ufw's configuration is Debian's (rule files, LOGLEVEL=low)" ufw_pristine
tw_listen 22 23 8080
check "before ufw, the peer connects to 8080" connect_is $TW_PEER 8080 "connected at once"

tw_at "ufw starts"
check "ufw --force enable" ufw_run --force enable
check "ufw allow 22/tcp" ufw_run allow 22/tcp
check "ufw deny 23/tcp" ufw_run deny 23/tcp
tw_at "ufw's rules set"
ufw_run status verbose >/tmp/ufw.status 2>&1
sed 's/^/# /' /tmp/ufw.status
check "ufw status: active, default deny (incoming)" sh -c \
	"grep -q '^Status: active' /tmp/ufw.status && grep -q '^Default: deny (incoming), allow (outgoing)' /tmp/ufw.status"
check "the table is bpfilter's: INPUT's policy is DROP" sh -c \
	"[ \"\$($IP netns exec twhost $IPT -S INPUT | head -1)\" = '-P INPUT DROP' ]"
check "ufw's user rules are in the table" sh -c \
	"$IP netns exec twhost $IPT -S ufw-user-input | grep -qx -- '-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT'"
expect_hooks tw0 "$ON_ETH" twhost

# The timeouts take 3 s each: run them beside the others.
connect_is $TW_PEER 23 timeout >/tmp/tw23 2>&1 &
p23=$!
connect_is $TW_PEER 8080 timeout >/tmp/tw8080 2>&1 &
p8080=$!
check "allow 22/tcp: the peer connects" connect_is $TW_PEER 22 "connected at once"
check "allow 22/tcp: another peer address connects" connect_is $TW_OTHER 22 "connected at once"
wait $p23 $p8080 2>/dev/null
check "deny 23/tcp: dropped (the connect times out)" grep -q ': timeout$' /tmp/tw23
check "default deny incoming: 8080 dropped" grep -q ': timeout$' /tmp/tw8080
cat /tmp/tw23 /tmp/tw8080 | sed 's/^/# /'

# ufw-user-input's counters: two SYNs accepted on 22 (60 bytes each: IP, TCP and its
# options), at least one SYN dropped on 23 (retransmits within the 3 s).
ufw_list >/tmp/ufw.list 2>&1
sed 's/^/# /' /tmp/ufw.list
rule_count() { awk -v p="dpt:$1" '{ for (i = 3; i <= NF; i++) if ($i == p) print $1, $2 }' /tmp/ufw.list; }
check "iptables-legacy -L -v: allow 22/tcp counted 2 SYNs, 120 bytes" \
	sh -c "[ \"$(rule_count 22)\" = '2 120' ]"
n23=$(rule_count 23)
check "iptables-legacy -L -v: deny 23/tcp counted the SYNs it dropped" \
	sh -c "set -- $n23; [ \"\${1:-0}\" -ge 1 ] && [ \"\$2\" -eq \$((\$1 * 60)) ]"

# ufw's -m recent probe passes (the helper translates recent), so ufw writes its limit
# chains, and `ufw limit` makes its -m recent rules.
rules_have() { in_ns twhost $IPT -S | grep -q -- "$1"; }
check "ufw's -m recent probe passed: the table has ufw-user-limit" rules_have '^-N ufw-user-limit$'
check "ufw limit 2222/tcp" ufw_run limit 2222/tcp
check "the table has ufw's -m recent --update rule" \
	rules_have '-m recent --update --seconds 30 --hitcount 6 --name DEFAULT'
check "the helper refused no -m recent rule" sh -c "! dmesg | grep -q 'no such match \"recent\"'"

check "ufw disable" ufw_run disable
check "after disable, the peer connects to 8080 again" connect_is $TW_PEER 8080 "connected at once"
tw_teardown
tools_down
