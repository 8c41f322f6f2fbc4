# Isolation between namespaces served by the one helper (Documentation/security.md):
# bounds for namespaces of non-initial user namespaces (ENOMEM and a log line that names
# the namespace, the caller and the bound), an administrator served within one exchange
# while other user namespaces load tables back to back, events coalesced per namespace.
check "modprobe bpfilter (isolation)" $MODPROBE -a bpfilter veth
iso_param=/sys/module/bpfilter/parameters
iso_max=600
echo "$iso_max" >"$iso_param/unpriv_max_entries"
iso_up() { cut -d' ' -f1 /proc/uptime; }
# A table of N rules in INPUT: N + 4 entries (three policies, the error entry).
iso_rules() {
	awk -v n="$1" 'BEGIN { print "*filter"; for (i = 0; i < n; i++) printf "-A INPUT -s 10.%d.%d.%d/32 -j DROP\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256; print "COMMIT" }'
}
iso_rules $((iso_max - 4)) >/tmp/iso.fit
iso_rules $((iso_max - 3)) >/tmp/iso.over
# "unshare -r -n": root of a new user namespace, in a new network namespace it owns.
t0=$(iso_up)
check "a table of $iso_max entries loads in a namespace of another user namespace" unshare -r -n $IPT_RESTORE /tmp/iso.fit
t1=$(iso_up)
iso_t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
check_fails "one entry more is refused" unshare -r -n $IPT_RESTORE /tmp/iso.over
check "with ENOMEM, and a line naming the namespace, the caller and the bound" sh -c \
	"dmesg | grep -E 'bpfilter: netns [0-9]+ \(owner uid 0\), pid [0-9]+ \(iptables-legac[^)]*\): table filter of $((iso_max + 1)) entries, [0-9]+ bytes refused: .*unpriv_max_entries=$iso_max.*\(ENOMEM\)'"
check "the initial user namespace is not bounded so" sh -c "$IPT_RESTORE /tmp/iso.over && $IPT -F"
dmesg | grep unpriv_max | tail -n 2 | sed 's/^/# /'

# Three namespaces of other user namespaces load tables at the bound back to back; the
# administrator's iptables -S (GET_INFO, GET_ENTRIES: two requests) waits for at most the
# exchange in progress at each request, not for the queue: bound 2 T + 1 s, T the time of
# one such load alone (measured above).
rm -f /tmp/iso.stop
for i in 1 2 3; do
	unshare -r -n sh -c "while [ ! -e /tmp/iso.stop ]; do $IPT_RESTORE /tmp/iso.fit || exit 1; done" &
done
sleep "$iso_t"
iso_worst=0
for i in 1 2 3 4 5 6; do
	t0=$(iso_up)
	$IPT -S INPUT >/dev/null || echo "# iptables -S failed"
	t1=$(iso_up)
	iso_worst=$(awk -v a="$t0" -v b="$t1" -v w="$iso_worst" 'BEGIN { d = b - a; print (d > w ? d : w) }')
	sleep 0.3
done
touch /tmp/iso.stop
wait
iso_bound=$(awk -v t="$iso_t" 'BEGIN { print 2 * t + 1 }')
echo "# one load of $iso_max entries alone: $iso_t s; root's iptables -S beside three loading namespaces: worst $iso_worst s (bound $iso_bound s)"
check "root's iptables -S waits at most the exchanges in progress ($iso_worst s <= $iso_bound s)" \
	awk -v w="$iso_worst" -v b="$iso_bound" 'BEGIN { exit !(w <= b) }'

# 2,000 renames in one namespace of another user namespace, as fast as ip can make them:
# coalesced, the helper rescans that namespace a few times, not 2,000.
awk 'BEGIN { for (i = 0; i < 1000; i++) print "link set iso0 name iso1\nlink set iso1 name iso0" }' >/tmp/iso.batch
iso_cpu() { awk '{ print $14 + $15 }' "/proc/$(helper_pid)/stat"; }
c0=$(iso_cpu)
t0=$(iso_up)
check "2,000 renames in a namespace with a table" unshare -r -n sh -c \
	"$IPT -A INPUT -s 10.9.0.1 -j DROP && $IP link add iso0 type veth peer name iso0p && $IP -batch /tmp/iso.batch"
sleep 1
c1=$(iso_cpu)
iso_ticks=$((c1 - c0))
echo "# the helper's CPU time for them: $iso_ticks ticks (1/100 s)"
check "the helper spent under 2 s of CPU on them" test "$iso_ticks" -lt 200
check "root is served right after" $IPT -S INPUT
echo 5000 >"$iso_param/unpriv_max_entries"
check "rmmod (isolation)" $RMMOD bpfilter
