# The module's life cycle with requests in flight: rmmod, the helper's death, the caller's
# death and a namespace's teardown, in several orders. Each order must leave no helper, no
# BPF program or map, rmmod must finish (retried while a caller still holds the module,
# as rmmod says "in use" then), and the kernel log must stay clean (t95 and the check at
# the end). Debian's kernel has neither lockdep nor KASAN: what is checked is the log
# (WARNING, BUG, Oops, hung task, refcount), the objects left, and that nothing hangs.
lc_rules=2000
# The table names a -m recent list and a -m hashlimit htable: their /proc files must go
# with it in every order.
awk -v n=$lc_rules 'BEGIN { print "*filter"; print "-A INPUT -m recent --name lc --set"; print "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name lc"; for (i = 0; i < n; i++) printf "-A INPUT -s 10.%d.%d.%d/32 -j DROP\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256; print "COMMIT" }' >/tmp/lc.v4
lc_uptime() { cut -d' ' -f1 /proc/uptime; }
# netfilter's own xt_recent and xt_hashlimit, where an earlier test's tools loaded them
# (ufw's and fail2ban's run in the whole lane), own those /proc directories and bpfilter
# makes no files there (module.md): unload them first, as a fresh boot would have it.
for lc_m in xt_recent xt_hashlimit; do
	if grep -q "^$lc_m " /proc/modules; then
		echo "# $lc_m was loaded by an earlier test: rmmod"
		$RMMOD $lc_m
	fi
done

# rmmod, retried for up to 90 s while callers still hold the module ("in use").
lc_rmmod() {
	local i=0
	while [ $i -lt 450 ]; do
		$RMMOD bpfilter 2>/dev/null && return 0
		sleep 0.2
		i=$((i + 1))
	done
	$RMMOD bpfilter
}

# Nothing of bpfilter is left: module, helper, programs, maps.
lc_clean() {
	if grep -q '^bpfilter ' /proc/modules; then echo "module still loaded"; return 1; fi
	if helper_pid >/dev/null; then echo "helper still running"; return 1; fi
	if [ -n "$($BPFTOOL prog show 2>&1)" ]; then $BPFTOOL prog show; return 1; fi
	if [ -n "$($BPFTOOL map show 2>&1)" ]; then $BPFTOOL map show; return 1; fi
	if [ -e /proc/net/xt_recent ] || [ -e /proc/net/ipt_hashlimit ]; then
		ls -R /proc/net/xt_recent /proc/net/ipt_hashlimit; return 1
	fi
	return 0
}

lc_log_clean() {
	! dmesg | grep -E 'WARNING:|BUG:|Oops|blocked for more than|refcount_t|general protection'
}

check "modprobe bpfilter (life cycle)" $MODPROBE bpfilter
t0=$(lc_uptime)
check "a table of $lc_rules rules applies" $IPT_RESTORE /tmp/lc.v4
check "its list and htable have their /proc files" test -e /proc/net/xt_recent/lc -a -e /proc/net/ipt_hashlimit/lc
t1=$(lc_uptime)
lc_half=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 2 }')
echo "# a restore of $lc_rules rules took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s; requests are cut after $lc_half s"
check "flush" $IPT -F

# 1. rmmod while a restore is in flight.
$IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out 2>&1 &
lc_pid=$!
sleep "$lc_half"
check "1. rmmod with a restore in flight finishes" lc_rmmod
wait "$lc_pid"
echo "# 1. the restore exited $?"
check "1. nothing is left" lc_clean

# 2. The helper killed with a restore in flight, then rmmod at once.
check "modprobe bpfilter (2)" $MODPROBE bpfilter
$IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out 2>&1 &
lc_pid=$!
sleep "$lc_half"
check "2. kill -9 the helper" kill -9 "$(helper_pid)"
check "2. rmmod right after finishes" lc_rmmod
wait "$lc_pid"
echo "# 2. the restore exited $?"
check "2. nothing is left" lc_clean

# 3. The caller killed with its restore in flight, then rmmod at once.
check "modprobe bpfilter (3)" $MODPROBE bpfilter
$IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out 2>&1 &
lc_pid=$!
sleep "$lc_half"
kill -9 "$lc_pid"
check "3. rmmod after the caller's death finishes" lc_rmmod
wait "$lc_pid" 2>/dev/null
check "3. nothing is left" lc_clean

# 4. A namespace torn down while its own restore is in flight, then rmmod.
check "modprobe bpfilter (4)" $MODPROBE bpfilter
check "4. a namespace" $IP netns add lc4
$IP netns exec lc4 $IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out 2>&1 &
lc_pid=$!
sleep "$lc_half"
$IP netns del lc4
kill -9 "$lc_pid"
wait "$lc_pid" 2>/dev/null
check "4. the initial namespace is served meanwhile" $IPT -S INPUT
check "4. rmmod finishes" lc_rmmod
check "4. nothing is left" lc_clean

# 5. rmmod first, then the namespaces whose tables it removed go.
check "modprobe bpfilter (5)" $MODPROBE bpfilter
check "5. two namespaces with a table each" sh -c "$IP netns add lc5a && $IP netns add lc5b &&
	$IP netns exec lc5a $IPT -A INPUT -s 10.5.0.1 -m recent --name lc5 --set -j DROP && $IP netns exec lc5b $IPT -A OUTPUT -d 10.5.0.2 -j DROP"
check "5. rmmod" lc_rmmod
$IP netns del lc5a
$IP netns del lc5b
check "5. nothing is left" lc_clean

# 6. A namespace goes, the helper dies before it hears of it, a request comes, then rmmod.
check "modprobe bpfilter (6)" $MODPROBE bpfilter
check "6. a namespace with a table" sh -c "$IP netns add lc6 && $IP netns exec lc6 $IPT -A INPUT -s 10.6.0.1 -m recent --name lc6 --set -j DROP"
$IP netns del lc6
kill -9 "$(helper_pid)"
check "6. the next request is served by a new helper" $IPT -S INPUT
check "6. rmmod" lc_rmmod
check "6. nothing is left" lc_clean

# 7. Another process holds a copy of the helper's channel (pidfd_getfd) across rmmod:
#    rmmod stops the helper, then waits for that descriptor's release before the module's
#    code goes; the copy reads nothing (EPERM).
check "modprobe bpfilter (7)" $MODPROBE bpfilter
check "7. a rule" $IPT -A INPUT -s 10.7.0.1 -j DROP
lc_umh=$(helper_pid)
lc_fd=$(tr '\0' '\n' <"/proc/$lc_umh/cmdline" | sed -n 3p)
chanhold "$lc_umh" "$lc_fd" 4 >/tmp/lc.hold 2>&1 &
lc_pid=$!
sleep 1
cat /tmp/lc.hold
t0=$(lc_uptime)
check "7. rmmod while another process holds the channel finishes" lc_rmmod
t1=$(lc_uptime)
echo "# 7. rmmod took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
wait "$lc_pid"
lc_rc=$?
cat /tmp/lc.hold
check "7. the copy was refused reads, then closed" sh -c "[ $lc_rc -eq 0 ] && grep -q closed /tmp/lc.hold"
check "7. nothing is left" lc_clean
check "7. rmmod waited for the copy's release" awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 2) }'

# 8. A reader holds /proc/net/xt_recent/NAME open across rmmod: rmmod removes the file
#    (closing the reader's open file, proc_entry_rundown()), the reader's next read fails.
check "modprobe bpfilter (8)" $MODPROBE bpfilter
check "8. a list" $IPT -A INPUT -s 10.8.0.1 -m recent --name lc8 --set
sh -c 'exec 3</proc/net/xt_recent/lc8 && echo opened && sleep 3 && cat <&3 && echo read' >/tmp/lc.read 2>&1 &
lc_pid=$!
sleep 1
check "8. rmmod with the file open finishes" lc_rmmod
wait "$lc_pid"
lc_rc=$?
cat /tmp/lc.read
check "8. the reader opened the file, and its read after rmmod failed" sh -c "[ $lc_rc -ne 0 ] && grep -q opened /tmp/lc.read && ! grep -q '^read' /tmp/lc.read"
check "8. nothing is left" lc_clean

# 9. Two namespaces' restores in flight at once (the channel carries both, the helper
#    works on both), the helper killed under them: both callers return, each namespace is
#    served again by a new helper with its last table; then both in flight again and rmmod.
lc_ns_table() { $IP netns exec "$1" $IPT -S INPUT | grep -c -- '-j DROP'; }
check "modprobe bpfilter (9)" $MODPROBE bpfilter
check "9. two namespaces with a table each" sh -c "$IP netns add lc9a && $IP netns add lc9b &&
	$IP netns exec lc9a $IPT -A INPUT -s 10.9.0.1 -j DROP && $IP netns exec lc9b $IPT -A INPUT -s 10.9.0.2 -j DROP"
$IP netns exec lc9a $IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out 2>&1 &
lc_pid=$!
$IP netns exec lc9b $IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out2 2>&1 &
lc_pid2=$!
sleep "$lc_half"
check "9. kill -9 the helper with both in flight" kill -9 "$(helper_pid)"
wait "$lc_pid"
lc_rc=$?
wait "$lc_pid2"
echo "# 9. the restores exited $lc_rc and $?"
# Either table, the one before the restore or the restore's, never none or a mix.
lc_n=$(lc_ns_table lc9a)
check "9. a new helper serves the first namespace its last table ($lc_n rules)" sh -c "[ '$lc_n' = 1 ] || [ '$lc_n' = $lc_rules ]"
lc_n=$(lc_ns_table lc9b)
check "9. and the second ($lc_n rules)" sh -c "[ '$lc_n' = 1 ] || [ '$lc_n' = $lc_rules ]"
$IP netns exec lc9a $IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out 2>&1 &
lc_pid=$!
$IP netns exec lc9b $IPT_RESTORE /tmp/lc.v4 >/tmp/lc.out2 2>&1 &
lc_pid2=$!
sleep "$lc_half"
check "9. rmmod with restores in flight in two namespaces finishes" lc_rmmod
wait "$lc_pid" "$lc_pid2"
$IP netns del lc9a
$IP netns del lc9b
check "9. nothing is left" lc_clean

check "life cycle: no warning, oops or hung task in the kernel log" lc_log_clean
