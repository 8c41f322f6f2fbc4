# modprobe bpfilter: the module takes the iptables sockopts and starts a healthy helper.
check "modprobe bpfilter" $MODPROBE bpfilter
check "bpfilter is loaded" sh -c "$LSMOD | grep -q '^bpfilter '"
check "the helper runs" helper_pid
check "the helper passed its health check" sh -c "dmesg | grep -q 'bpfilter: helper started'"
check "iptables-legacy -L answers through bpfilter" $IPT -L -n
$LSMOD | sed "s/^/# /"
pid=$(helper_pid)
echo "# helper $pid: exe $(readlink /proc/$pid/exe), fds: $(ls -l /proc/$pid/fd | awk 'NR > 1 {printf "%s -> %s; ", $9, $11}')"
check "no helper file on disk: it runs from an unlinked shmem file" sh -c "readlink /proc/$pid/exe | grep -q 'deleted'"
check "the helper's channel is the module's anonymous inode" sh -c "readlink /proc/$pid/fd/3 | grep -q 'anon_inode:\[bpfilter\]'"
check_fails "no other process can open the channel" sh -c "exec 9<>/proc/$pid/fd/3"
