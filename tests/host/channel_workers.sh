#!/bin/bash
# The helper on the module's channel works on two namespaces at once: a GET_INFO about one is answered while a large replace about another is still being compiled (its own worker thread), not after it.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup_netns

# channel_workers.py plays bpfilter.ko: it sends A's replace of 40,000 rules, then B's
# GET_INFO while the helper works on A. Bound for B: 2 B1 + 0.25 s, B1 its time alone. A
# helper that serves one request at a time answers A first.
cw_rules=40000
# SO_NETNS_COOKIE (71): the cookie the module sends with each request.
cw_cookie() { ip netns exec "$1" "$PYTHON" -c 'import socket, struct; print(struct.unpack("Q", socket.socket().getsockopt(socket.SOL_SOCKET, 71, 8))[0])'; }
read -r cw_a cw_b1 cw_first cw_b cw_a2 cw_entries < <("$PYTHON" "$BF_ROOT/tests/host/channel_workers.py" \
	"$BF_UMH" "$HOST" "$(cw_cookie "$HOST")" "$PEER" "$(cw_cookie "$PEER")" "$cw_rules" \
	"$BF_TMP/umh.log") || true
echo "# A's replace of $cw_rules rules alone: $cw_a s; B's GET_INFO alone: $cw_b1 s; beside A's replace: B answered after $cw_b s, A after $cw_a2 s; first: $cw_first"
check "both namespaces' requests were answered" test -n "$cw_a2"
check "A's replace is long enough to tell (over 0.1 s)" awk -v a="$cw_a" 'BEGIN { exit !(a > 0.1) }'
check_eq "B's reply came first" "$cw_first" B
cw_bound=$(awk -v b="$cw_b1" 'BEGIN { print 2 * b + 0.25 }')
check "B was answered within 2 B1 + 0.25 s ($cw_b s <= $cw_bound s)" awk -v w="$cw_b" -v b="$cw_bound" 'BEGIN { exit !(w <= b) }'
check "and A's replace still went on after it" awk -v a="$cw_a2" -v b="$cw_b" 'BEGIN { exit !(a > b + 0.05) }'
check_eq "A's table of $cw_rules rules is in force" "$cw_entries" $((cw_rules + 4))

bf_summary
