# -m owner through bpfilter.ko on Debian's 6.1: OUTPUT reads the sending socket's file
# credentials through the offsets the helper found in this kernel's BTF, as owner_mt()
# reads f_cred->fsuid: root's and nobody's connection attempts are told apart.
ow_setup() {
	$IP netns add owpeer &&
	$IP link add vow0 type veth peer name vow1 netns owpeer &&
	$IP addr add 10.97.0.1/24 dev vow0 && $IP link set vow0 up &&
	$IP -n owpeer addr add 10.97.0.2/24 dev vow1 && $IP -n owpeer link set vow1 up
}
# One connection attempt to the peer's closed port 9 (it answers with a reset).
ow_connect() { nc -w 1 10.97.0.2 9 </dev/null >/dev/null 2>&1; true; }
ow_connect_nobody() { su -s /bin/sh nobody -c "nc -w 1 10.97.0.2 9 </dev/null >/dev/null 2>&1"; true; }
ow_rule() { $IPT -L OUTPUT -v -x -n --line-numbers | awk -v r="$1" '$1 == r { print $2 }'; }
ow_counts() { [ "$(ow_rule 1)/$(ow_rule 2)/$(ow_rule 3)" = "$1" ]; }

check "a veth pair for owner" ow_setup
check "-A OUTPUT -d 10.97.0.2 -p tcp --dport 9 -m owner --uid-owner 65534 -j DROP" \
	$IPT -A OUTPUT -d 10.97.0.2 -p tcp --dport 9 -m owner --uid-owner 65534 -j DROP
check "-A OUTPUT -d 10.97.0.2 -p tcp --dport 9 -m owner --uid-owner 0 --gid-owner 0" \
	$IPT -A OUTPUT -d 10.97.0.2 -p tcp --dport 9 -m owner --uid-owner 0 --gid-owner 0
check "-A OUTPUT -d 10.97.0.2 -p tcp --dport 9 -m owner ! --socket-exists" \
	$IPT -A OUTPUT -d 10.97.0.2 -p tcp --dport 9 -m owner ! --socket-exists
check "the owner rules are listed as iptables wrote them" \
	sh -c "$IPT -S OUTPUT | grep -qx -- '-A OUTPUT -d 10.97.0.2/32 -p tcp -m tcp --dport 9 -m owner --uid-owner 65534 -j DROP'"
ow_connect
check "root's SYN: counted by the uid 0 / gid 0 rule, not by nobody's" ow_counts "0/1/0"
ow_connect_nobody
# (a dropped SYN may be sent again before nc gives up: one or two)
ow_nobody_counted() { [ "$(ow_rule 1)" -ge 1 ] && [ "$(ow_rule 2)/$(ow_rule 3)" = "1/0" ]; }
check "nobody's SYN: dropped by the uid 65534 rule" ow_nobody_counted
$IPT -L OUTPUT -v -x -n --line-numbers | sed "s/^/# /"
check "iptables-legacy -F after owner" $IPT -F
$IP netns del owpeer
