# -j LOG through bpfilter.ko: the helper's lines reach the kernel log through the module,
# facility kern at the rule's level, as netfilter's nf_log prints them.
log_setup() {
	$IP netns add logpeer &&
	$IP link add vlog0 type veth peer name vlog1 netns logpeer &&
	$IP addr add 10.98.0.1/24 dev vlog0 && $IP link set vlog0 up &&
	$IP -n logpeer addr add 10.98.0.2/24 dev vlog1 && $IP -n logpeer link set vlog1 up &&
	$IP -n logpeer link set lo up
}
# The kernel log as /dev/kmsg gives it: "priority,seq,time,flags;text", priority being
# facility * 8 + level.
kmsg() { timeout 1 cat /dev/kmsg; }
log_line() { kmsg | grep -E -q "$1"; }

check "a veth pair for LOG" log_setup
check "-A INPUT -s 10.98.0.2 -j LOG --log-level 6" \
	$IPT -A INPUT -s 10.98.0.2 -j LOG --log-prefix "bflog-in: " --log-level 6 --log-macdecode
check "-A OUTPUT -d 10.98.0.2 -p icmp -j LOG" \
	$IPT -A OUTPUT -d 10.98.0.2 -p icmp -j LOG --log-prefix "bflog-out: " --log-ip-options
check "the LOG rules are listed as iptables wrote them" \
	sh -c "$IPT -S | grep -q -- '--log-prefix \"bflog-in: \" --log-level 6 --log-macdecode'"
check "the peer's ping passes the LOG rules" $IP netns exec logpeer ping -c 1 -W 2 10.98.0.1
sleep 1
check "INPUT's line: facility kern, level 6, nf_log's format" log_line \
	"^6,[0-9]+,[0-9]+,-;bflog-in: IN=vlog0 OUT= MACSRC=([0-9a-f]{2}:){5}[0-9a-f]{2} MACDST=([0-9a-f]{2}:){5}[0-9a-f]{2} MACPROTO=0800 SRC=10.98.0.2 DST=10.98.0.1 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=[0-9]+ (DF )?PROTO=ICMP TYPE=8 CODE=0 ID=[0-9]+ SEQ=[0-9]+ $"
check "OUTPUT's line: level 4 (the default), no MAC" log_line \
	"^4,[0-9]+,[0-9]+,-;bflog-out: IN= OUT=vlog0 SRC=10.98.0.1 DST=10.98.0.2 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=[0-9]+ PROTO=ICMP TYPE=0 CODE=0 ID=[0-9]+ SEQ=[0-9]+ $"
check "each rule counted the packet it logged" \
	sh -c "[ \"\$($IPT -L INPUT -v -x -n | awk '/LOG/ {print \$1}')\" = 1 ]"
kmsg | grep bflog | sed "s/^/# /"
$IPT -F
$IP netns del logpeer
