# /proc/net/xt_recent/NAME and /proc/net/ipt_hashlimit/NAME through bpfilter.ko on
# Debian's 6.1: the same rules, packets and writes on netfilter (ip_tables, xt_recent,
# xt_hashlimit) and then on bpfilter, the files' texts compared (jiffies and the seconds
# an htable entry has left masked); then the files' life: a flush, a namespace's
# teardown, the helper's death, netfilter's own xt_recent loading beside bpfilter, rmmod.
pr_bpfilter_was=0
grep -q '^bpfilter ' /proc/modules && pr_bpfilter_was=1

pr_setup() {
	$MODPROBE veth &&
	$IP netns add prpeer &&
	$IP link add vpr0 type veth peer name vpr1 netns prpeer &&
	$IP addr add 10.95.0.1/24 dev vpr0 && $IP link set vpr0 up &&
	$IP -n prpeer addr add 10.95.0.2/24 dev vpr1 && $IP -n prpeer link set vpr1 up &&
	$IP -n prpeer link set lo up
}
pr_pings() { $IP netns exec prpeer ping -c "$1" -i 0.2 -W 1 10.95.0.1 >/dev/null 2>&1; true; }

# The rules, two pings, then the files and writes to the list; prints a transcript.
pr_run() {
	$IPT -A INPUT -s 10.95.0.2 -p icmp -m recent --name prguest --set || return 1
	$IPT -A INPUT -s 10.95.0.2 -p icmp -m hashlimit --hashlimit-upto 1000/sec \
		--hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name prguest \
		--hashlimit-htable-expire 60000 -j ACCEPT || return 1
	pr_pings 2
	# The htable's credit is back to its cap after a second at 1000/sec.
	sleep 1.2
	echo "recent:"
	cat /proc/net/xt_recent/prguest
	echo "hashlimit:"
	cat /proc/net/ipt_hashlimit/prguest
	echo "+10.95.0.77: $(echo +10.95.0.77 >/proc/net/xt_recent/prguest 2>&1; echo $?)"
	echo "-10.95.0.2: $(echo -10.95.0.2 >/proc/net/xt_recent/prguest 2>&1; echo $?)"
	echo "xyz: $(echo xyz >/proc/net/xt_recent/prguest 2>/dev/null; echo $?)"
	echo "+300.1.1.1: $(echo +300.1.1.1 >/proc/net/xt_recent/prguest 2>/dev/null; echo $?)"
	cat /proc/net/xt_recent/prguest
	echo "/: $(echo / >/proc/net/xt_recent/prguest 2>&1; echo $?)"
	cat /proc/net/xt_recent/prguest
	echo "hashlimit write: $(echo x >/proc/net/ipt_hashlimit/prguest 2>/dev/null; echo $?)"
	$IPT -F || return 1
	echo "after -F: $(ls /proc/net/xt_recent /proc/net/ipt_hashlimit 2>/dev/null | grep -c prguest)"
}

# Jiffies and the seconds an htable entry has left vary between runs: masked (a list's
# last_seen and stamps, an htable line's first field).
pr_mask() {
	awk '/^src=/ { $5 = "J"; for (i = 8; i <= NF; i++) sub(/^[0-9]+/, "J", $i) }
	     /^[0-9]+ 10\.95\.0\.2:/ { $1 = "S" } { print }'
}

check "a veth pair for the /proc files" pr_setup
if [ "$pr_bpfilter_was" = 1 ]; then
	check "rmmod bpfilter (for netfilter's run)" $RMMOD bpfilter
fi
check "modprobe ip_tables iptable_filter xt_recent xt_hashlimit" \
	$MODPROBE -a ip_tables iptable_filter xt_recent xt_hashlimit
pr_run >/tmp/pr.nf 2>&1
sed "s/^/# netfilter: /" /tmp/pr.nf
check "rmmod netfilter's modules" $RMMOD iptable_filter ip_tables xt_recent xt_hashlimit

check "modprobe bpfilter (proc)" $MODPROBE bpfilter
pr_run >/tmp/pr.bf 2>&1
sed "s/^/# bpfilter:  /" /tmp/pr.bf
pr_same() {
	pr_mask </tmp/pr.nf >/tmp/pr.nf.m && pr_mask </tmp/pr.bf >/tmp/pr.bf.m &&
	diff /tmp/pr.nf.m /tmp/pr.bf.m
}
check "the files read and take writes as netfilter's (texts equal, jiffies masked)" pr_same
pr_has_lines() { [ "$(grep -c "src=" /tmp/pr.bf)" -eq 2 ] && grep -q "10.95.0.2:0->0.0.0.0:0" /tmp/pr.bf; }
check "the transcript has the list's entries and the htable's" pr_has_lines

# A table in another namespace has its files there, and they go with the namespace.
pr_ns_files() {
	$IP netns add prns &&
	$IP netns exec prns $IPT -A INPUT -m recent --name prns --set &&
	$IP netns exec prns $IPT -A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name prns &&
	$IP netns exec prns sh -c 'cat /proc/net/xt_recent/prns && cat /proc/net/ipt_hashlimit/prns' &&
	[ ! -e /proc/net/xt_recent/prns ]
}
check "netns prns: a table there has its own files" pr_ns_files
check "netns prns deleted" $IP netns del prns
sleep 1
pr_ns_gone() { $IP netns add prns && $IP netns exec prns sh -c '! ls /proc/net/xt_recent/prns /proc/net/ipt_hashlimit/prns' && $IP netns del prns; }
check "a new namespace of that name has no file of the old one" pr_ns_gone

# The helper's death: the files stay; a read starts a new helper, which replays the table
# (its lists and htables start empty) and serves them.
$IPT -A INPUT -s 10.95.0.2 -p icmp -m recent --name prguest --set
$IPT -A INPUT -s 10.95.0.2 -p icmp -m hashlimit --hashlimit-upto 5/sec --hashlimit-name prguest
check "kill -9 the helper" kill -9 "$(helper_pid)"
sleep 0.5
check "the files outlive the helper" test -e /proc/net/xt_recent/prguest -a -e /proc/net/ipt_hashlimit/prguest
check "a read starts a new helper, and the list reads (empty)" sh -c '[ -z "$(cat /proc/net/xt_recent/prguest)" ]'
check "the htable reads" cat /proc/net/ipt_hashlimit/prguest
check "the list takes a write" sh -c 'echo +10.95.0.9 >/proc/net/xt_recent/prguest'
check "which reads back" sh -c 'grep -q "^src=10.95.0.9 ttl: 0 " /proc/net/xt_recent/prguest'
check "-F removes the files the new helper served" sh -c "$IPT -F && [ ! -e /proc/net/xt_recent/prguest ] && [ ! -e /proc/net/ipt_hashlimit/prguest ]"
$IPT -A INPUT -s 10.95.0.2 -p icmp -m recent --name prguest --set
$IPT -A INPUT -s 10.95.0.2 -p icmp -m hashlimit --hashlimit-upto 5/sec --hashlimit-name prguest

# netfilter's xt_recent loading beside bpfilter owns /proc/net/xt_recent: ours go first
# (module notifier), and come back when it unloads.
check "modprobe xt_recent beside bpfilter" $MODPROBE xt_recent
pr_nf_owns() { [ -d /proc/net/xt_recent ] && [ ! -e /proc/net/xt_recent/prguest ] && [ -e /proc/net/ipt_hashlimit/prguest ]; }
check "xt_recent's directory, without bpfilter's file" pr_nf_owns
check "rmmod xt_recent" $RMMOD xt_recent
check "bpfilter's file is back" test -e /proc/net/xt_recent/prguest
# Loaded before bpfilter: bpfilter makes no file there, and says why.
check "rmmod bpfilter, modprobe xt_recent, modprobe bpfilter" \
	sh -c "$RMMOD bpfilter && $MODPROBE xt_recent && $MODPROBE bpfilter"
check "-m recent under bpfilter beside xt_recent" $IPT -A INPUT -m recent --name prguest --set
check "no bpfilter file in xt_recent's directory" sh -c '[ -d /proc/net/xt_recent ] && [ ! -e /proc/net/xt_recent/prguest ]'
check "the log says why" sh -c 'dmesg | grep -q "xt_recent/prguest not made: netfilter.s xt_recent is loaded"'
check "flush, rmmod bpfilter and xt_recent" sh -c "$IPT -F && $RMMOD bpfilter && $RMMOD xt_recent"

# rmmod with files in place removes them.
check "modprobe bpfilter (proc, last)" $MODPROBE bpfilter
$IPT -A INPUT -m recent --name prguest --set
$IPT -A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name prguest
check "the files are there before rmmod" test -e /proc/net/xt_recent/prguest -a -e /proc/net/ipt_hashlimit/prguest
check "rmmod bpfilter with the files in place" $RMMOD bpfilter
check "no directory is left" sh -c '[ ! -e /proc/net/xt_recent ] && [ ! -e /proc/net/ipt_hashlimit ]'
pr_log_clean() { ! dmesg | grep -E 'WARNING:|BUG:|Oops|already registered|non-empty directory|refcount_t'; }
check "the kernel log is clean (no proc WARN)" pr_log_clean

$IP netns del prpeer 2>/dev/null
if [ "$pr_bpfilter_was" = 1 ]; then
	check "modprobe bpfilter (as before t63)" $MODPROBE bpfilter
fi
