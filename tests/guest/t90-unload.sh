# rmmod stops the helper and leaves no program behind; ip_tables and bpfilter exclude each other.
check "a rule before the unload" $IPT -A INPUT -s 10.99.0.3 -j DROP
check "bpftool prog show lists a program" sh -c "[ -n \"\$($BPFTOOL prog show 2>&1)\" ]"
$BPFTOOL prog show
# With the helper dead, its programs are still attached: rmmod must still remove them.
check "kill -9 the helper" kill -9 "$(helper_pid)"
sleep 1
check "rmmod bpfilter" $RMMOD bpfilter
check_fails "the helper is gone" helper_pid
check "no BPF program is left" sh -c "[ -z \"\$($BPFTOOL prog show 2>&1)\" ]"
check "modprobe ip_tables" $MODPROBE ip_tables
check_fails "bpfilter refuses to load beside ip_tables" $MODPROBE bpfilter
check "and says what to do" sh -c "dmesg | grep -q 'ip_tables is loaded'"
check "rmmod ip_tables" $RMMOD ip_tables
check "modprobe bpfilter again" $MODPROBE bpfilter
check "served again" $IPT -L -n
check "rmmod bpfilter again" $RMMOD bpfilter
check "no BPF program is left again" sh -c "[ -z \"\$($BPFTOOL prog show 2>&1)\" ]"
