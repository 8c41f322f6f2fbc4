# WireGuard between this host (wg0 10.56.0.1) and namespace wgp (wg1 10.56.0.2) over a veth
# (wgu0 10.57.0.1). A ping is seen twice on each side, as netfilter sees it: the clear
# packet on wg0 and the encrypted UDP datagram on wgu0 (decrypted after INPUT, encrypted
# after OUTPUT: WireGuard's UDP leaves through OUTPUT too). Handshake: one initiation
# (176 bytes) in, one response (120 bytes) out; each 84-byte ping travels as 156 bytes.
check "modprobe wireguard" $MODPROBE wireguard
wg_setup() {
	umask 077
	$WG genkey >/tmp/wg0.key && $WG genkey >/tmp/wg1.key || return 1
	pub0=$($WG pubkey </tmp/wg0.key) && pub1=$($WG pubkey </tmp/wg1.key) || return 1
	$IP netns add wgp && $IP link add wgu0 type veth peer name wgu1 netns wgp &&
		$IP addr add 10.57.0.1/24 dev wgu0 && $IP link set wgu0 up &&
		$IP -n wgp addr add 10.57.0.2/24 dev wgu1 && $IP -n wgp link set wgu1 up &&
		$IP -n wgp link set lo up || return 1
	$IP link add wg0 type wireguard &&
		$WG set wg0 listen-port 51820 private-key /tmp/wg0.key \
			peer "$pub1" allowed-ips 10.56.0.2/32 endpoint 10.57.0.2:51821 &&
		$IP addr add 10.56.0.1/24 dev wg0 && $IP link set wg0 up || return 1
	$IP -n wgp link add wg1 type wireguard &&
		$IP netns exec wgp $WG set wg1 listen-port 51821 private-key /tmp/wg1.key \
			peer "$pub0" allowed-ips 10.56.0.1/32 endpoint 10.57.0.1:51820 &&
		$IP -n wgp addr add 10.56.0.2/24 dev wg1 && $IP -n wgp link set wg1 up
}
check "wg0 to namespace wgp over veth wgu0" wg_setup
check "fresh table" fresh_table
check "iptables -A on a host with WireGuard" add_rules \
	"-A INPUT -i wg0 -p icmp" \
	"-A INPUT -i wgu0 -p udp --dport 51820" \
	"-A INPUT -i wgu0 -p icmp" \
	"-A OUTPUT -o wg0 -p icmp" \
	"-A OUTPUT -o wgu0 -p udp --sport 51820" \
	"-A OUTPUT -o wgu0 -p icmp"
expect_hooks wg0 "$ON_STACKED"
expect_hooks wgu0 "$ON_ETH"
check "wgp pings the host through WireGuard" pings wgp 10.56.0.1 3
expect_counts INPUT "3 252" "4 644" "0 0"
expect_counts OUTPUT "3 252" "4 588" "0 0"
$IP netns exec wgp $WG show wg1 | sed "s/^/# /"
check "-I INPUT -i wg0 -j DROP" $IPT -I INPUT -i wg0 -j DROP
check "the ping through the tunnel is dropped" ping_lost wgp 10.56.0.1
check "the DROP rule counted one ping" counts_are INPUT 1 "1 84"
check "the veth still carried it, encrypted" counts_are INPUT 3 "5 800"
wg_teardown() {
	$IP netns del wgp
	$IP link del wg0 && $IP link del wgu0 2>/dev/null
	fresh_table
}
check "teardown" wg_teardown
