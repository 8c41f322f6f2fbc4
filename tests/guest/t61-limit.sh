# -m limit through bpfilter.ko on Debian's 6.1 (CONFIG_HZ=250): the helper measures HZ, a
# burst of pings passes the bucket and the rest falls to the next rule, as xt_limit counts.
limit_setup() {
	$IP netns add limpeer &&
	$IP link add vlim0 type veth peer name vlim1 netns limpeer &&
	$IP addr add 10.97.0.1/24 dev vlim0 && $IP link set vlim0 up &&
	$IP -n limpeer addr add 10.97.0.2/24 dev vlim1 && $IP -n limpeer link set vlim1 up &&
	$IP -n limpeer link set lo up
}
lim_pings() { $IP netns exec limpeer ping -c "$1" -i 0.2 -W 1 10.97.0.1 >/dev/null 2>&1; true; }
lim_rule() { $IPT -L INPUT -v -x -n --line-numbers | awk -v r="$1" '$1 == r { print $2 }'; }
lim_counts() { [ "$(lim_rule 1)/$(lim_rule 2)" = "$1" ]; }

check "a veth pair for limit" limit_setup
check "-A INPUT -s 10.97.0.2 -p icmp -m limit --limit 1/hour --limit-burst 3 -j ACCEPT" \
	$IPT -A INPUT -s 10.97.0.2 -p icmp -m limit --limit 1/hour --limit-burst 3 -j ACCEPT
check "-A INPUT -s 10.97.0.2 -p icmp -j DROP" $IPT -A INPUT -s 10.97.0.2 -p icmp -j DROP
check "the limit rule is listed as iptables wrote it" \
	sh -c "$IPT -S INPUT | grep -qx -- '-A INPUT -s 10.97.0.2/32 -p icmp -m limit --limit 1/hour --limit-burst 3 -j ACCEPT'"
lim_pings 6
check "of 6 pings, 3 passed the bucket and 3 were dropped" lim_counts "3/3"
$IPT -L INPUT -v -x -n --line-numbers | sed "s/^/# /"
check "the helper measured the kernel's HZ as 250" sh -c "dmesg | grep -q 'jiffies at 250 Hz'"
# Each replace makes every bucket anew (limit_mt_check on every rule), -Z's too.
check "a replace starts a full bucket (-I INPUT 1 -p udp -j ACCEPT)" $IPT -I INPUT 1 -p udp -j ACCEPT
check "iptables-legacy -Z INPUT" $IPT -Z INPUT
lim_pings 4
# In this shell, not sh -c: lim_rule is a function of this file.
lim_new_bucket() { [ "$(lim_rule 2)/$(lim_rule 3)" = 3/1 ]; }
check "3 more passed the new bucket, 1 dropped" lim_new_bucket
check "--limit-burst 0 is refused (ERANGE, as limit_mt_check)" \
	sh -c "$IPT -A INPUT -m limit --limit-burst 0 -j ACCEPT 2>&1 | grep -q 'Numerical result out of range'"
check "iptables-legacy -F after limit" $IPT -F
$IP netns del limpeer
