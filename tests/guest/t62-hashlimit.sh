# -m hashlimit through bpfilter.ko on Debian's 6.1: a burst per source in an htable whose
# entries the program updates under their bpf_spin_lock, kept across a replace that keeps
# the name, as xt_hashlimit's.
hl_setup() {
	$IP netns add hlpeer &&
	$IP link add vhl0 type veth peer name vhl1 netns hlpeer &&
	$IP addr add 10.96.0.1/24 dev vhl0 && $IP link set vhl0 up &&
	$IP -n hlpeer addr add 10.96.0.2/24 dev vhl1 && $IP -n hlpeer link set vhl1 up &&
	$IP -n hlpeer link set lo up
}
hl_pings() { $IP netns exec hlpeer ping -c "$1" -i 0.2 -W 1 10.96.0.1 >/dev/null 2>&1; true; }
hl_rule() { $IPT -L INPUT -v -x -n --line-numbers | awk -v r="$1" '$1 == r { print $2 }'; }

check "a veth pair for hashlimit" hl_setup
check "-A INPUT -s 10.96.0.2 -p icmp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl-guest -j ACCEPT" \
	$IPT -A INPUT -s 10.96.0.2 -p icmp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl-guest -j ACCEPT
check "-A INPUT -s 10.96.0.2 -p icmp -j DROP" $IPT -A INPUT -s 10.96.0.2 -p icmp -j DROP
check "the hashlimit rule is listed as iptables wrote it" \
	sh -c "$IPT -S INPUT | grep -qx -- '-A INPUT -s 10.96.0.2/32 -p icmp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl-guest -j ACCEPT'"
hl_pings 5
hl_counts() { [ "$(hl_rule 1)/$(hl_rule 2)" = "$1" ]; }
check "of 5 pings, 3 passed the source's burst and 2 were dropped" hl_counts "3/2"
$IPT -L INPUT -v -x -n --line-numbers | sed "s/^/# /"
check "a replace that keeps the name (-A INPUT -p udp -j ACCEPT)" $IPT -A INPUT -p udp -j ACCEPT
check "iptables-legacy -Z INPUT" $IPT -Z INPUT
hl_pings 2
check "the htable kept its entry: both pings dropped" hl_counts "0/2"
check "iptables-legacy -F after hashlimit" $IPT -F
$IP netns del hlpeer
