#!/bin/bash
# The packaging lane: build bpfilter's .debs with dpkg-buildpackage, lintian them, install
# them with apt-get into a throwaway root (an overlay over this machine's root, in a mount
# namespace of its own: this machine's packages and alternatives are left alone), where
# DKMS builds bpfilter.ko for Debian's 6.1 kernel; save a rules.v4 as iptables-persistent
# does; boot the guest on that root (tests/guest/package: modules-load.d, then
# netfilter-persistent, the rule in force through the DKMS-built module); then purge the
# packages and check nothing of them is left. Prints "N passed, N failed" last.
#
# Needs scripts/setup-deps (dkms, debhelper, dh-dkms, lintian; iptables-persistent's .debs) and the
# guest initramfs (make guest-initramfs). The build reuses $BUILD's objects
# (BPFILTER_BUILD, see debian/rules): a package built from a clean tree compiles them.
set -u
cd "$(dirname "$0")/../.."
if [ "${1:-}" != --in-namespace ]; then
	exec unshare -m --propagation private "$0" --in-namespace
fi
top=$PWD
BUILD=${BUILD:-build}
build=$(realpath -m "$BUILD")
out=$build/pkg
KVER=${KVER:-$(ls -d /lib/modules/*-amd64/build 2>/dev/null | sort -V | tail -1 | cut -d/ -f4)}
initrd=$build/guest/initramfs.cpio.gz
passed=0
failed=0
start=$(date +%s)

check() {
	local desc=$1
	shift
	if "$@" >"$out/check.out" 2>&1; then
		passed=$((passed + 1))
		echo "ok - $desc"
	else
		failed=$((failed + 1))
		echo "not ok - $desc"
		tail -n 25 "$out/check.out" | sed 's/^/#   /'
	fi
}
at() { echo "# at $(($(date +%s) - start)) s: $*"; }

rm -rf "$out"
mkdir -p "$out/src"

# --- Build: dpkg-buildpackage in a copy of the tree (it writes the .debs beside it). ---
at "dpkg-buildpackage"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$out/src"
debs() {
	# No -dbgsym package: its 5 MB of DWARF take a minute to compress and lintian.
	(cd "$out/src" && BPFILTER_BUILD=$build DEB_BUILD_OPTIONS=noautodbgsym \
		dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 ||
		{ tail -n 30 "$out/build.log"; return 1; }
	ls "$out"/bpfilter_*_amd64.deb "$out"/bpfilter-dkms_*_all.deb
}
check "dpkg-buildpackage -us -uc -b builds bpfilter and bpfilter-dkms" debs
contents() {
	dpkg-deb -c "$out"/bpfilter_*_amd64.deb >"$out/bpfilter.contents" &&
		dpkg-deb -c "$out"/bpfilter-dkms_*_all.deb >>"$out/bpfilter.contents" || return 1
	local f
	for f in ./usr/sbin/bpfilter_umh ./usr/lib/x86_64-linux-gnu/bpfilter/libbpfilter_preload.so \
		./lib/systemd/system/bpfilter-frontdoor.service ./lib/systemd/system/bpfilter-frontdoor@.service \
		./usr/share/man/man8/bpfilter.8.gz ./usr/share/man/man8/bpfilter_umh.8.gz \
		./usr/lib/modules-load.d/bpfilter.conf ./etc/modprobe.d/bpfilter-dkms.conf \
		./usr/src/bpfilter-0.1.0/dkms.conf ./usr/src/bpfilter-0.1.0/kmod/umh.c; do
		grep -q " $f\$" "$out/bpfilter.contents" || { echo "missing $f"; return 1; }
	done
}
check "the packages hold the helper, preload library, units, man pages, modules-load.d, modprobe.d, DKMS sources" contents
at "lintian"
lint() {
	lintian --fail-on error --display-level '>=warning' "$out"/bpfilter_*_amd64.changes | tee "$out/lintian.log"
	[ "${PIPESTATUS[0]}" -eq 0 ]
}
check "lintian: no error" lint
[ -s "$out/lintian.log" ] && sed 's/^/# /' "$out/lintian.log"

# --- A throwaway root: this machine's root under an overlay whose upper layer is a tmpfs. ---
at "apt-get install into the throwaway root"
root=$out/root
mkdir -p "$root"
mount -t tmpfs tmpfs "$root" && mkdir -p "$root"/{upper,work,merged} &&
	mount -t overlay overlay -o lowerdir=/,upperdir="$root/upper",workdir="$root/work" "$root/merged" || {
	echo "cannot make the throwaway root"
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}
new=$root/merged
mount -t proc proc "$new/proc"
mount --rbind /sys "$new/sys"
mount --rbind /dev "$new/dev"
mount -t tmpfs tmpfs "$new/run"
mount -t tmpfs tmpfs "$new/tmp"
# In a network namespace of its own: nothing run there may touch this machine's firewall.
in_root() { unshare -n chroot "$new" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive "$@"; }
mkdir -p "$new/root/debs"
# As in any chroot: maintainer scripts start no service (netfilter-persistent's would).
printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
chmod 0755 "$new/usr/sbin/policy-rc.d"
cp "$out"/*.deb "$new/root/debs/"
# man-db's index update takes longer than the rest of the install.
echo 'man-db man-db/auto-update boolean false' | in_root debconf-set-selections
host_alt=$(readlink /etc/alternatives/iptables)

# iptables-persistent from scripts/setup-deps' cache: never installed on this machine, where
# it would remove ufw. Told not to save the rules in force when it installs.
persistent=/var/cache/bpfilter-deps
cp "$persistent"/iptables-persistent_*.deb "$persistent"/netfilter-persistent_*.deb "$new/root/debs/" ||
	echo "no iptables-persistent .debs in $persistent: run scripts/setup-deps"
printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' \
	'iptables-persistent iptables-persistent/autosave_v6 boolean false' | in_root debconf-set-selections
install_debs() {
	in_root sh -c 'apt-get install -y -q --no-install-recommends /root/debs/bpfilter_0.1.0_amd64.deb \
		/root/debs/bpfilter-dkms_0.1.0_all.deb /root/debs/*-persistent_*.deb'
}
check "apt-get install ./bpfilter*.deb iptables-persistent (DKMS builds the module)" install_debs
check "dkms status: installed for $KVER" sh -c "chroot $new dkms status | tee /dev/stderr | grep -q '^bpfilter/0.1.0, $KVER, x86_64: installed'"
check "bpfilter.ko in /lib/modules/$KVER/updates/dkms" test -f "$new/lib/modules/$KVER/updates/dkms/bpfilter.ko"
check "the module embeds the installed helper" sh -c "
	h=\$(stat -c %s $new/usr/sbin/bpfilter_umh)
	s=\$((0x\$(objdump -h $new/lib/modules/$KVER/updates/dkms/bpfilter.ko | awk '\$2 == \".init.rodata\" {print \$3}')))
	echo \"helper \$h bytes, .init.rodata \$s bytes\"; [ \"\$s\" -ge \"\$h\" ]"
check "iptables points at iptables-legacy in the throwaway root" \
	sh -c "[ \"\$(readlink $new/etc/alternatives/iptables)\" = /usr/sbin/iptables-legacy ]"
check "this machine's own alternative is untouched ($host_alt)" \
	sh -c "[ \"\$(readlink /etc/alternatives/iptables)\" = '$host_alt' ]"
check "the front door's units are installed, not enabled" sh -c \
	"[ -f $new/lib/systemd/system/bpfilter-frontdoor.service ] && ! ls $new/etc/systemd/system/*.wants/bpfilter* 2>/dev/null"
check "systemd-analyze verify: the units" in_root systemd-analyze verify \
	/lib/systemd/system/bpfilter-frontdoor.service
# A kernel installed later: its postinst.d hook (what Debian's kernel packages run) builds
# the module for it. The same kernel stands for it here: its build is undone first (the
# sources stay added, as for a kernel that never had one).
later_kernel() {
	in_root dkms unbuild bpfilter/0.1.0 -k "$KVER" >/dev/null &&
		[ ! -e "$new/lib/modules/$KVER/updates/dkms/bpfilter.ko" ] &&
		in_root /etc/kernel/postinst.d/dkms "$KVER" &&
		[ -f "$new/lib/modules/$KVER/updates/dkms/bpfilter.ko" ]
}
[ "${PKG_LANE_LATER_KERNEL:-1}" = 0 ] ||
	check "/etc/kernel/postinst.d/dkms builds it for a kernel installed later" later_kernel

# As iptables-persistent saves them, and module options as an administrator sets them.
mkdir -p "$new/etc/iptables"
cat >"$new/etc/iptables/rules.v4" <<'RULES'
# Generated by iptables-save v1.8.9 on Wed Dec  2 12:00:00 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 10.99.0.2/32 -p icmp -j DROP
COMMIT
RULES
echo 'options bpfilter xdp_mode=generic log_level=warning' >"$new/etc/modprobe.d/bpfilter-local.conf"

# --- The guest boots on the throwaway root. ---
at "guest"
umount "$new/tmp" "$new/run" 2>/dev/null
umount -l "$new/dev" "$new/sys" "$new/proc" 2>/dev/null
guest() {
	[ -r "$initrd" ] || { echo "no $initrd: make guest-initramfs"; return 1; }
	GUEST_HOSTROOT=$new GUEST_TIMEOUT=${GUEST_TIMEOUT:-600} \
		scripts/guest-run "$KVER" "$initrd" bpfilter_guest=package >"$out/guest.log" 2>&1
	local st=$?
	tr -d '\r' <"$out/guest.log" | grep -E '^(ok|not ok|#|[0-9]+ passed)' | sed 's/^/  /'
	return $st
}
check "the guest boots on it: the saved rule in force through the DKMS-built bpfilter.ko" guest

# --- Removal leaves nothing behind. ---
at "apt-get purge"
mount -t proc proc "$new/proc"
mount --rbind /sys "$new/sys"
mount --rbind /dev "$new/dev"
mount -t tmpfs tmpfs "$new/run"
mount -t tmpfs tmpfs "$new/tmp"
check "apt-get purge bpfilter bpfilter-dkms" in_root apt-get purge -y -q bpfilter bpfilter-dkms
check "iptables is automatic again ($host_alt)" \
	sh -c "[ \"\$(readlink $new/etc/alternatives/iptables)\" = '$host_alt' ]"
leftovers() {
	local left
	# man-db's cache of formatted pages is man-db's, and its cron job ages it out.
	left=$(cd "$root/upper" && find . -name '*bpfilter*' ! -path ./root/debs ! -path './root/debs/*' \
		! -path ./etc/modprobe.d/bpfilter-local.conf ! -path './var/cache/man/*')
	echo "$left"
	[ -z "$left" ]
}
check "nothing named bpfilter is left (modules, /usr/src, /var/lib/dkms, /etc)" leftovers
umount -l "$new/tmp" "$new/run" "$new/dev" "$new/sys" "$new/proc" "$new" "$root" 2>/dev/null

echo "# packaging lane: $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
