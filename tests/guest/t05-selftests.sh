# The kselftests of the sockopt ABI (TAP): each test case counts once.
before_pid=$(helper_pid)
for st in /selftests/*; do
	[ -x "$st" ] || continue
	"$st" >/tmp/selftest.out 2>&1
	cat /tmp/selftest.out
	p=$(grep -c '^ok ' /tmp/selftest.out)
	f=$(grep -c '^not ok ' /tmp/selftest.out)
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$((p + f))" -eq 0 ]; then
		failed=$((failed + 1))
		echo "not ok - ${st##*/} ran no test"
	fi
done
check "the helper survived the namespaces coming and going" test "$(helper_pid)" = "$before_pid"
