# A tun device (no Ethernet header), its far end played by tunping: the host's pings leave
# on OUTPUT -o tun0 and their answers come in on INPUT -i tun0; pings injected from the far
# end come in on tun0 and the kernel's echo replies leave on OUTPUT -o tun0.
check "modprobe tun" $MODPROBE tun
tun_setup() {
	$IP tuntap add dev tun0 mode tun && $IP addr add 10.55.0.1/24 dev tun0 &&
		$IP link set tun0 up
}
check "tun0 10.55.0.1" tun_setup
check "fresh table" fresh_table
check "iptables -A on a host with a tun device" add_rules \
	"-A INPUT -i tun0 -p icmp --icmp-type echo-reply" \
	"-A INPUT -i tun0 -p icmp --icmp-type echo-request" \
	"-A INPUT -p icmp" \
	"-A OUTPUT -o tun0 -p icmp --icmp-type echo-request" \
	"-A OUTPUT -o tun0 -p icmp --icmp-type echo-reply" \
	"-A OUTPUT -p icmp"
$TUNPING tun0 echo &
tun_echo=$!
check "tunping answers on tun0" wait_for 3 grep -q up /sys/class/net/tun0/operstate
expect_hooks tun0 "$ON_STACKED"
check "the host pings through tun0" pings "" 10.55.0.2 3
kill "$tun_echo"
wait "$tun_echo" 2>/dev/null
check "pings injected into tun0 are answered" $TUNPING tun0 ping 10.55.0.2 10.55.0.1 3
expect_counts INPUT "3 252" "3 252" "6 504"
expect_counts OUTPUT "3 252" "3 252" "6 504"
check "-I INPUT -i tun0 -j DROP" $IPT -I INPUT -i tun0 -j DROP
check_fails "an injected ping is dropped" $TUNPING tun0 ping 10.55.0.2 10.55.0.1 1
check "the DROP rule counted it" counts_are INPUT 1 "1 84"
check "teardown" sh -c "$IP link del tun0 && $IPT -F"
