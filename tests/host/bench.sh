#!/bin/bash
# The bench's scripts, quickly: one size, 0.2 s of traffic, two shapes. Checks that every
# figure was measured and that the counts agree (the last rule dropped every packet in0
# received, the test runs returned the verdict expected), never how fast anything is.
set -eu
. "$(dirname "$0")/lib.sh"
bf_need
BF_TMP=$(mktemp -d)
trap bf_cleanup EXIT

out=$BF_TMP/bench.out
rc=0
BUILD=$BF_BUILD BENCH_SHAPES="blocklist generated" BENCH_SIZES=100 BENCH_SECONDS=0.2 \
	"$BF_ROOT/scripts/bench" >"$out" 2>&1 || rc=$?
sed 's/^/#   /' "$out"
check_eq "scripts/bench exits 0" "$rc" 0

# | shape | rules | nf pps | bf pps | bare pps | ratio | ratio | first / last / none | bare ns |
traffic() { awk -F' *\\| *' -v s="$1" '$2 == s && $3 == 100 && NF == 11' "$out"; }
# | shape | rules | restore nf / bf | ratio | append nf / bf | ratio | rss / rss |
updates() { awk -F' *\\| *' -v s="$1" '$2 == s && $3 == 100 && NF == 9' "$out"; }
for shape in blocklist generated; do
	row=$(traffic $shape)
	check_eq "$shape: one traffic row" "$(wc -l <<<"$row")" 1
	IFS='|' read -r _ _ _ nf bf bare _ _ ns bare_ns _ <<<"$(tr -d ' ' <<<"$row")"
	for x in "netfilter:$nf" "bpfilter:$bf" "bare:$bare"; do
		check "$shape: ${x%%:*} dropped packets (${x#*:} pps)" test "${x#*:}" -gt 0
	done
	check "$shape: ns/packet of the helper's program, verdicts as expected ($ns)" \
		grep -Eqx '[0-9]+/[0-9]+/[0-9]+' <<<"$ns"
	check "$shape: ns/packet of the bare program ($bare_ns)" grep -Eqx '[0-9]+' <<<"$bare_ns"
	row=$(updates $shape)
	check "$shape: restore, append and peak RSS measured ($row)" \
		grep -Eq '\| [0-9.]+ / [0-9.]+ \|.*\| [0-9.]+ / [0-9.]+ \|.*\| [0-9.]+ / [0-9.]+ \|$' <<<"$row"
done
# A note means a counter did not take every packet in0 received, or a table did not load.
check "no notes (every received packet counted by the last rule)" bash -c "! grep '^note:' '$out'"
bf_summary
