# The helper's privileges (Documentation/security.md): its name, its capabilities,
# no_new_privs, seccomp; and refusal lines that name the namespace and the caller.
check "modprobe bpfilter (privileges)" $MODPROBE bpfilter
check "iptables works under the sandbox" $IPT -A INPUT -s 10.94.0.1 -j DROP
pv_pid=$(helper_pid)
check "ps shows the helper as bpfilter_umh" sh -c "[ \"\$(cat /proc/$pv_pid/comm)\" = bpfilter_umh ]"
grep -E '^(Cap|NoNewPrivs|Seccomp)' "/proc/$pv_pid/status" | sed 's/^/# /'
# CAP_NET_ADMIN (12), CAP_SYS_ADMIN (21), CAP_SYS_RESOURCE (24), CAP_PERFMON (38), CAP_BPF (39).
check "it keeps five capabilities" grep -q '^CapEff:	000000c001201000$' "/proc/$pv_pid/status"
check "and may never get others" grep -q '^CapBnd:	000000c001201000$' "/proc/$pv_pid/status"
check "no_new_privs" grep -q '^NoNewPrivs:	1$' "/proc/$pv_pid/status"
check "a seccomp filter" grep -q '^Seccomp:	2$' "/proc/$pv_pid/status"
# A refused table: the line says which namespace, which process, and why.
check_fails "a table with a match the helper lacks is refused" $IPT -A INPUT -m cpu --cpu 0 -j DROP
check "its line names the namespace, the caller and the reason" sh -c \
	"dmesg | grep -E 'bpfilter: netns [0-9]+, pid [0-9]+ \(iptables-legac[^)]*\): .*cpu'"
dmesg | grep -E 'bpfilter: netns [0-9]+, pid' | tail -n 3 | sed 's/^/# /'
check "flush (privileges)" $IPT -F
check "rmmod (privileges)" $RMMOD bpfilter
