#!/bin/bash
# Interfaces created after the rules were loaded are filtered too, by name (-i, wildcards) and address; renames follow.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

ipt -A INPUT -s 10.1.0.2 -p icmp -j DROP
ipt -A INPUT -i late+ -p udp -j DROP
ipt -A INPUT -i renamed -p icmp -j DROP

# A second link, created after the table was loaded.
ip -n "$HOST" link add late0 type veth peer name peer0 netns "$PEER"
ip -n "$HOST" addr add 10.1.0.1/24 dev late0
ip -n "$PEER" addr add 10.1.0.2/24 dev peer0
ip -n "$HOST" link set late0 up
ip -n "$PEER" link set peer0 up
for i in $(seq 40); do
	[ "$(xdp_mode_of late0)" != none ] && break
	sleep 0.05
done
check "the new interface got the program" test "$(xdp_mode_of late0)" != none
check_fails "a -s rule filters traffic arriving on the new interface" ping_ok 10.1.0.1
check_eq "and counts it" "$(rule_counters INPUT 1 | cut -d' ' -f1)" 1
udp_listen 5000
check_fails "-i late+ matches the new interface's name" udp_ok 5000 10.1.0.1
check "-i late+ does not match veth0" udp_ok 5000 "$HOST_IP"
check "the old interface is still filtered as before" ping_ok

# Renamed: the name the program sees follows.
ip -n "$HOST" link set veth0 down
ip -n "$HOST" link set veth0 name renamed
ip -n "$HOST" link set renamed up
sleep 0.3
ping_ok || true # neighbour entries after the flap
check_fails "after a rename, -i renamed matches" ping_ok
ip -n "$HOST" link set renamed down
ip -n "$HOST" link set renamed name veth0
ip -n "$HOST" link set veth0 up
sleep 0.3
ping_ok || true
check "renamed back, -i renamed no longer matches" ping_ok

# A new address on an existing interface: traffic to it is INPUT traffic at once.
ipt -A INPUT -d 10.0.0.77 -p icmp -j DROP
in_host ip addr add 10.0.0.77/24 dev veth0
sleep 0.2
check "the first address still answers" ping_ok
check_fails "a rule for a freshly added address applies" ping_ok 10.0.0.77
n=$(rule_counters INPUT 4 | cut -d' ' -f1)
check "and counts" test "$n" -ge 1

# A device that leaves and comes back carries a program along (the kernel keeps XDP
# programs across namespace moves); the helper replaces it with the current one.
OTHER=bf-other-$$
BF_EXTRA_NETNS="$BF_EXTRA_NETNS $OTHER"
ip netns add "$OTHER"
ip -n "$HOST" link add mover0 type veth peer name mover1 netns "$PEER"
for i in $(seq 40); do
	[ "$(xdp_mode_of mover0)" != none ] && break
	sleep 0.05
done
ip -n "$HOST" link set mover0 netns "$OTHER"
ipt -A INPUT -s 10.2.0.2 -j DROP # a new program meanwhile
ip -n "$OTHER" link set mover0 netns "$HOST"
prog_id() { in_host ip -d link show dev "$1" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
for i in $(seq 40); do
	[ "$(prog_id mover0)" = "$(prog_id veth0)" ] && break
	sleep 0.05
done
check_eq "a device back from another namespace runs the current program" \
	"$(prog_id mover0)" "$(prog_id veth0)"
check "the helper says it replaced the program the device brought" \
	grep -q "replaced bpfilter's program id .* that mover0 brought" "$BF_TMP/umh.log"

bf_summary
