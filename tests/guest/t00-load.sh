# modprobe bpfilter: the module takes the iptables sockopts and starts a healthy helper.
check "modprobe bpfilter" $MODPROBE bpfilter
check "bpfilter is loaded" sh -c "$LSMOD | grep -q '^bpfilter '"
check "the helper runs" helper_pid
check "the helper passed its health check" sh -c "dmesg | grep -q 'bpfilter: helper started'"
check "iptables-legacy -L answers through bpfilter" $IPT -L -n
$LSMOD | sed "s/^/# /"
