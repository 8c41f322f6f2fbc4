#!/bin/bash
# Runs every host end-to-end test (or those named) and prints the combined "N passed, N failed".
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
if [ $# -gt 0 ]; then
	tests=("$@")
else
	tests=()
	for t in "$dir"/*.sh; do
		case $(basename "$t") in
		lib.sh | run.sh) ;;
		*) tests+=("$t") ;;
		esac
	done
fi
for t in "${tests[@]}"; do
	[ -e "$t" ] || t=$dir/$t
	name=$(basename "$t")
	echo "# $name"
	start=$(date +%s)
	out=$(bash "$t" 2>&1) && rc=0 || rc=$?
	echo "$out"
	last=$(tail -n 1 <<<"$out")
	if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
			echo "not ok - $name exited with status $rc"
			failed=$((failed + 1))
		fi
	else
		echo "not ok - $name ended without a summary (exit status $rc)"
		failed=$((failed + 1))
	fi
	echo "# $name: $(($(date +%s) - start)) s"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
