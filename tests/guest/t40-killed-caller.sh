# A caller killed while the helper works on its table: the module is not wedged and the
# table is all or nothing.
awk 'BEGIN { print "*filter"; for (i = 0; i < 3000; i++) printf "-A INPUT -s 10.%d.%d.%d/32 -j DROP\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256; print "COMMIT" }' >/tmp/big.v4
uptime_s() { cut -d' ' -f1 /proc/uptime; }
t0=$(uptime_s)
check "a table of 3000 rules applies" sh -c "$IPT_RESTORE </tmp/big.v4 && [ \$($IPT -S INPUT | grep -c -- '-A INPUT') -eq 3000 ]"
t1=$(uptime_s)
check "flush" $IPT -F
# Kill the next restore half way through, while the module waits for the helper.
half=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 2 }')
echo "# full restore took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s, killing after $half s"
$IPT_RESTORE </tmp/big.v4 &
restore_pid=$!
sleep "$half"
kill -9 "$restore_pid" 2>/dev/null
wait "$restore_pid" 2>/dev/null
check "iptables answers after the killed caller" $IPT -S INPUT
n=$($IPT -S INPUT | grep -c -- '-A INPUT')
echo "# rules after the killed restore: $n"
dmesg | grep "killed during a request" | sed "s/^/# /"
check "the table is all or nothing" test "$n" -eq 0 -o "$n" -eq 3000
check "flush again" $IPT -F
# Kill the helper half way through a restore: the caller gets an error or its table, never
# half of it, and the next request restores the last table the module saw accepted.
$IPT_RESTORE </tmp/big.v4 &
restore_pid=$!
sleep "$half"
kill -9 "$(helper_pid)"
wait "$restore_pid"
restore_status=$?
check "iptables answers after the helper died mid-request" $IPT -S INPUT
n=$($IPT -S INPUT | grep -c -- '-A INPUT')
echo "# restore exit status $restore_status, rules after: $n"
if [ "$restore_status" -eq 0 ]; then
	check "the accepted table is in force" test "$n" -eq 3000
else
	check "the refused table left the previous one" test "$n" -eq 0
fi
check "flush once more" $IPT -F
