#!/bin/bash
# Large tables: one the verifier takes with a jump per test, one it refuses in that
# form, which the helper compiles again with a jump per rule, one whose INPUT goes in
# chunks verified one by one, and a service list past what loads one by one, which is one
# lookup (a tuple set). All filter and count.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

# n rules that the peer's traffic never matches, with `per` tests each (-s -d -i -p and
# the port ranges), then a DROP for the peer's ICMP. Light rules alternate -s and -d, so
# that no two neighbours test the same fields and classification leaves them to be tested
# one by one; service (heavy=3) rules are all -s -p tcp --dport, a tuple set.
table()
{
	local n=$1 heavy=$2 i
	echo '*filter'
	echo ':INPUT ACCEPT [0:0]'
	echo ':FORWARD ACCEPT [0:0]'
	echo ':OUTPUT ACCEPT [0:0]'
	for ((i = 1; i <= n; i++)); do
		if [ "$heavy" = 1 ]; then
			# Every fourth with -m u32 as well, so that no eight neighbours make a
			# block for protocol lanes, which would keep the verifier's pending
			# branches to a block's and let it take the table with a jump per test.
			printf -- '-A INPUT -s 192.168.%d.%d/32 -d 10.%d.%d.1/32 -i veth+ -p tcp -m tcp --sport %d:%d --dport %d%s -j DROP\n' \
				$((i / 250)) $((i % 250 + 1)) $((i / 250)) $((i % 250)) $((2000 + i)) $((3000 + i)) $((1000 + i)) \
				"$([ $((i % 4)) = 0 ] && echo ' -m u32 --u32 6&0xff=6')"
		elif [ "$heavy" = 3 ] || [ $((i % 2)) = 0 ]; then
			printf -- '-A INPUT -s 192.168.%d.%d/32 -p tcp -m tcp --dport %d -j DROP\n' \
				$((i / 250 % 250)) $((i % 250 + 1)) $((1000 + i % 50000))
		else
			printf -- '-A INPUT -d 192.168.%d.%d/32 -p tcp -m tcp --dport %d -j DROP\n' \
				$((i / 250)) $((i % 250 + 1)) $((1000 + i))
		fi
	done
	echo "-A INPUT -s $PEER_IP/32 -p icmp -j DROP"
	echo 'COMMIT'
}

restore_file() { ipt_restore <"$1"; }

for heavy in 0 1 2 3; do
	# The first two under Auto's estimate for a jump per test; the heavy rules have
	# twice the tests the estimate counts, more than any verifier takes in that form.
	# The third (light again) is past it: INPUT goes in chunks.
	case $heavy in 0) n=2500 ;; 1) n=3500 ;; 2) n=8000 heavy=0 ;; 3) n=50000 ;; esac
	case $heavy in
	1) kind="heavy rules (refused with a jump per test)" ;;
	3) kind="service rules (E2BIG one by one)" ;;
	*) kind="light rules" ;;
	esac
	fallbacks=$(grep -c "compiling it with a jump per rule" "$BF_TMP/umh.log" || true)
	table $n "$heavy" >"$BF_TMP/table"
	check "a table of $n $kind applies" restore_file "$BF_TMP/table"
	check_eq "iptables lists them all" "$(ipt -S INPUT | grep -c '^-A INPUT')" $((n + 1))
	now=$(grep -c "compiling it with a jump per rule" "$BF_TMP/umh.log" || true)
	form=$(grep "rules in force" "$BF_TMP/umh.log" | tail -n 1 | sed 's/.*instructions, \([a-z ]*\)).*/\1/')
	if [ "$heavy" = 3 ]; then
		check "the helper judges them with one lookup" \
			grep -q "$n rules classified in 1 lookups" <(grep "rules in force" "$BF_TMP/umh.log" | tail -n 1)
	elif [ "$heavy" = 1 ]; then
		check "the helper compiled it again with a jump per rule" test "$now" -gt "$fallbacks"
		check_eq "and says so for the table in force" "$form" "a jump per rule"
	elif [ "$n" = 8000 ]; then
		check_eq "the verifier took INPUT in chunks with a jump per test" "$now" "$fallbacks"
		check "as the helper says for the table in force" \
			grep -q "a jump per test, chains in [0-9]* chunks)" <(grep "rules in force" "$BF_TMP/umh.log" | tail -n 1)
	else
		check_eq "the verifier took it with a jump per test" "$now" "$fallbacks"
		check_eq "as the helper says for the table in force" "$form" "a jump per test"
	fi
	check_eq "the last rule drops the peer's pings: none of 5 answered" "$(ping_count 5)" 0
	check_eq "and counts them" "$(rule_counters INPUT $((n + 1)))" "5 420"
	ipt -F INPUT
	check "after a flush the peer pings" ping_ok
done

bf_summary
