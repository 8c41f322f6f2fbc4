# Codegen's own test binary: the codegen_* unit tests alone, for the guest (codegen-guest).
# `make BUILD=build-h2 codegen-tests && build-h2/codegen_tests`
CODEGEN_TEST_SRCS := $(sort $(wildcard tests/unit/codegen_*.cpp))
CODEGEN_TEST_OBJS := $(CODEGEN_TEST_SRCS:%.cpp=$(BUILD)/%.o)
# All of the core: the codegen tests reach the loader (maps, BTF, conntrack, recent,
# owner) through the programs they load, and a list of parts went stale with each new one.
CODEGEN_DEPS      := $(CORE_OBJS)

$(BUILD)/codegen_tests: $(CODEGEN_TEST_OBJS) $(CODEGEN_DEPS)
	$(CXX) -o $@ $^ -lgtest -lgtest_main -pthread $(LDLIBS_BPF)

.PHONY: codegen-tests
codegen-tests: $(BUILD)/codegen_tests

# The same tests on Debian's 6.1 kernel (the target) under qemu: the guest lane's
# initramfs (mk/kmod.mk) plus codegen_tests and the libraries it loads.
# `make BUILD=build-h2 codegen-guest [CODEGEN_GTEST=--gtest_filter=...]`
CODEGEN_GUEST := $(BUILD)/codegen-guest
define CODEGEN_GUEST_INIT
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
/usr/sbin/modprobe veth
/usr/sbin/ip link set lo up
cd / && /codegen_tests $$(tr ' ' '\n' </proc/cmdline | sed -n 's/^gtest=//p')
echo "BPFILTER-GUEST-STATUS: $$?"
sync
poweroff -f
endef
export CODEGEN_GUEST_INIT

# (the initramfs by path: mk/kmod.mk, which defines it, is read after this file)
codegen-guest: $(BUILD)/codegen_tests $(BUILD)/guest/initramfs.cpio.gz
	rm -rf $(CODEGEN_GUEST) && mkdir -p $(CODEGEN_GUEST)
	cp -a $(BUILD)/guest/root $(CODEGEN_GUEST)/root
	cp $(BUILD)/codegen_tests $(CODEGEN_GUEST)/root/codegen_tests
	ldd $(BUILD)/codegen_tests | awk '/=> \//{print $$3} /^\t\/.*ld-linux/{print $$1}' | \
		while read -r lib; do mkdir -p $(CODEGEN_GUEST)/root$$(dirname $$lib); \
		cp -L $$lib $(CODEGEN_GUEST)/root$$lib; done
	mkdir -p $(CODEGEN_GUEST)/root/tests/unit && cp -a tests/unit/data $(CODEGEN_GUEST)/root/tests/unit/
	printf '%s\n' "$$CODEGEN_GUEST_INIT" >$(CODEGEN_GUEST)/root/init
	chmod +x $(CODEGEN_GUEST)/root/init
	cd $(CODEGEN_GUEST)/root && find . | cpio -o -H newc 2>/dev/null | gzip -1 >../initramfs.cpio.gz
	GUEST_TIMEOUT=$${GUEST_TIMEOUT:-500} scripts/guest-run $(KVER) \
		$(CODEGEN_GUEST)/initramfs.cpio.gz "gtest=$(CODEGEN_GTEST)"

.PHONY: codegen-guest
