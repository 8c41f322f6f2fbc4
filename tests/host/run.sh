#!/bin/bash
# Runs every host end-to-end test (or those named) and prints the combined "N passed, N failed".
#
# Tests run HOST_JOBS at a time (default 3): each has its own namespaces, socket and temp dir
# (lib.sh), and most of a test's time is spent waiting for packets, timeouts and tools, not
# on the CPU (the whole lane, run one at a time: about 145 s of CPU in 310 s). The longest
# start first; their output is printed whole, in the order the tests are named.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
jobs=${HOST_JOBS:-3}
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
for i in "${!tests[@]}"; do
	[ -e "${tests[$i]}" ] || tests[i]=$dir/${tests[$i]}
done

# The tests that take longest (measured one at a time) go first, the rest in order.
slow=(ufw.sh abi_bytes.sh reject.sh frontdoor_trust.sh devices.sh fail2ban.sh memory.sh)
order=()
for s in "${slow[@]}"; do
	for i in "${!tests[@]}"; do
		[ "$(basename "${tests[$i]}")" = "$s" ] && order+=("$i")
	done
done
for i in "${!tests[@]}"; do
	[[ " ${slow[*]} " == *" $(basename "${tests[$i]}") "* ]] || order+=("$i")
done

out_dir=$(mktemp -d /tmp/bf-host-run.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT
running=0
for i in "${order[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	(
		start=$(date +%s)
		bash "${tests[$i]}" >"$out_dir/$i.out" 2>&1 && rc=0 || rc=$?
		echo "$rc $(($(date +%s) - start))" >"$out_dir/$i.tmp" && mv "$out_dir/$i.tmp" "$out_dir/$i.rc"
	) &
	running=$((running + 1))
done

for i in "${!tests[@]}"; do
	name=$(basename "${tests[$i]}")
	while [ ! -e "$out_dir/$i.rc" ]; do
		wait -n 2>/dev/null || sleep 0.2
	done
	read -r rc secs <"$out_dir/$i.rc"
	echo "# $name"
	out=$(cat "$out_dir/$i.out")
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
	echo "# $name: $secs s"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
