# Shared by the real-tool tests (t70-ufw, t71-fail2ban): Debian 12's ufw, fail2ban and
# python3 in the guest, run as a user runs them, through bpfilter.ko.
#
# The initramfs holds none of them. scripts/guest-run shares the host's root read-only
# (virtio-9p, tag hostroot); tools_up mounts it under an overlay with a tmpfs on top at
# $TOOLS, so the tools run from the host's packages in a chroot whose /etc and /var are the
# guest's own: update-alternatives points iptables at iptables-legacy there, as a user would,
# and the host's alternatives stay as they are. The tools' iptables-legacy is the host's,
# talking to the guest's kernel, where bpfilter.ko has the sockopts.
#
# While $TOOLS is up, /sbin/modprobe (the kernel's module loader) loads modules from the
# host's tree for the guest's kernel (the initramfs holds only what the other tests load):
# ufw's IPv6 rules go to the kernel's ip6_tables, whose matches the kernel loads on demand.
#
# The tools' side is namespace twhost (tw0, 10.97.0.1/24), their peer twpeer (tw1,
# 10.97.0.2 and 10.97.0.3) over veth, with native XDP on tw0.
TOOLS=/tools
TW_HOST=10.97.0.1
TW_PEER=10.97.0.2
TW_OTHER=10.97.0.3

# tools_run NS COMMAND...: COMMAND in the tools' chroot, in namespace NS (empty: here), with
# a clean environment.
tools_run() {
	local ns=$1
	shift
	in_ns "$ns" chroot "$TOOLS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 "$@"
}

# The mounts' sources (hostroot, overlay, proc, sysfs, tmpfs) are names, not paths, but
# busybox's mount takes a file of that name in the working directory (/tests) for an image to
# loop-mount: no runner in tests/guest may be named after one (a runner named `proc` broke
# every later tools_up).
tools_up() {
	local m
	for m in virtio_pci 9pnet_virtio 9p overlay; do
		$MODPROBE "$m" || return 1
	done
	mkdir -p /hostroot /tools.rw "$TOOLS"
	# One 9p mount for the boot: each test gets a fresh overlay on it.
	grep -q '^hostroot /hostroot ' /proc/mounts ||
		mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /hostroot || {
		echo "no host root to mount: scripts/guest-run shares it (-virtfs ...,mount_tag=hostroot)"
		return 1
	}
	mount -t tmpfs tmpfs /tools.rw || return 1
	mkdir -p /tools.rw/upper /tools.rw/work
	mount -t overlay overlay -o lowerdir=/hostroot,upperdir=/tools.rw/upper,workdir=/tools.rw/work \
		"$TOOLS" || return 1
	mount -t proc proc "$TOOLS/proc" || return 1
	mount -t sysfs sysfs "$TOOLS/sys" || return 1
	mount -o bind /dev "$TOOLS/dev" || return 1
	mount -t tmpfs tmpfs "$TOOLS/run" || return 1
	mount -t tmpfs tmpfs "$TOOLS/tmp" || return 1
	printf '#!/bin/sh\nexec /bin/chroot %s /sbin/modprobe "$@"\n' "$TOOLS" >/sbin/modprobe
	chmod 0755 /sbin/modprobe
	# The host's own ufw state must not leak in: ufw starts disabled, as after installing.
	[ ! -e "$TOOLS/etc/ufw/ufw.conf" ] || sed -i 's/^ENABLED=.*/ENABLED=no/' "$TOOLS/etc/ufw/ufw.conf"
}

# tools_present: the packages the tests run, from the host (scripts/setup-deps installs them).
tools_present() {
	local f
	for f in /usr/bin/python3 /usr/sbin/ufw /usr/bin/fail2ban-server /usr/bin/fail2ban-client \
		/usr/sbin/iptables-legacy /usr/bin/update-alternatives /usr/share/ufw/iptables/before.rules; do
		[ -e "$TOOLS$f" ] || { echo "missing $f on the host: run scripts/setup-deps"; return 1; }
	done
}

# iptables and ip6tables pointed at the legacy tools in the chroot, as a user would.
tools_legacy() {
	tools_run "" update-alternatives --set iptables /usr/sbin/iptables-legacy &&
		tools_run "" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy &&
		[ "$(tools_run "" iptables --version)" = "iptables v1.8.9 (legacy)" ]
}

tools_down() {
	local d
	rm -f /sbin/modprobe
	for d in tmp run dev sys proc; do
		umount "$TOOLS/$d" 2>/dev/null
	done
	umount "$TOOLS" 2>/dev/null
	umount /tools.rw 2>/dev/null
	return 0
}

tw_setup() {
	$IP netns add twhost || return 1
	$IP netns add twpeer || return 1
	$IP -n twhost link add tw0 type veth peer name tw1 netns twpeer || return 1
	$IP -n twhost addr add $TW_HOST/24 dev tw0 && $IP -n twhost link set tw0 up || return 1
	$IP -n twpeer addr add $TW_PEER/24 dev tw1 && $IP -n twpeer addr add $TW_OTHER/24 dev tw1 || return 1
	$IP -n twpeer link set tw1 up && $IP -n twhost link set lo up && $IP -n twpeer link set lo up
}

tw_teardown() {
	local p
	for p in $TW_PIDS; do
		kill "$p" 2>/dev/null
	done
	TW_PIDS=
	$IP netns del twhost 2>/dev/null
	$IP netns del twpeer 2>/dev/null
	return 0
}

# tw_listen PORT...: TCP listeners in twhost (busybox nc: accept, close).
tw_listen() {
	local port
	for port in "$@"; do
		$IP netns exec twhost nc -ll -p "$port" -e /bin/true >/dev/null 2>&1 &
		TW_PIDS="$TW_PIDS $!"
	done
	sleep 0.5
}

# tw_connect SRC PORT: a connect from twpeer (source address SRC) to twhost's PORT within
# 3 s, as the peer sees it: "connected", "ECONNREFUSED", ... (the errno's name) or
# "timeout", followed by " at once" when the answer came within 1 s (TCG is slow; a lost
# SYN is retried after 1 s).
tw_connect() {
	tools_run twpeer python3 -c '
import errno, socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(3)
t = time.monotonic()
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    r = "connected"
except socket.timeout:
    r = "timeout"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
if r != "timeout" and time.monotonic() - t < 1:
    r += " at once"
print(r)
' "$1" "$TW_HOST" "$2"
}

# connect_is SRC PORT EXPECTED: tw_connect said EXPECTED.
connect_is() {
	local got
	got=$(tw_connect "$1" "$2" 2>&1)
	echo "connect from $1 to port $2: $got"
	[ "$got" = "$3" ]
}

# The ICMP destination unreachables twpeer has received.
peer_unreachs() {
	$IP netns exec twpeer cat /proc/net/snmp | awk '
		$1 == "Icmp:" && !n { for (i = 2; i <= NF; i++) if ($i == "InDestUnreachs") n = i; next }
		$1 == "Icmp:" { print $n; exit }'
}

# tw_at WHAT: the guest's clock in the log, to see where the time goes.
tw_at() { echo "# at $(cut -d' ' -f1 /proc/uptime) s: $*"; }
