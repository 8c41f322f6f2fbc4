# bpfilter.ko and the guest lane. `make kmod` builds the module against
# Debian's 6.1 headers, `make guest` boots it under qemu and runs the guest
# suite, `make install` installs it for the running kernel.

# The target kernel: the running one when its headers are installed (a
# Debian 12 machine), else the newest Debian kernel with headers here.
KVER ?= $(shell if [ -d /lib/modules/$$(uname -r)/build ]; then uname -r; else \
	ls -d /lib/modules/*-amd64/build 2>/dev/null | sort -V | tail -1 | cut -d/ -f4; fi)
KDIR ?= /lib/modules/$(KVER)/build
KMOD_DIR := $(BUILD)/kmod
KMOD := $(KMOD_DIR)/bpfilter.ko
KMOD_SRCS := Kbuild $(wildcard kmod/*.c kmod/*.h kmod/*.S) include/uapi/bpfilter/msg.h
KHDR_DIR := $(BUILD)/kselftest

kmod: $(KMOD)

# The module carries the helper without its debug information.
KMOD_BLOB := $(KMOD_DIR)/bpfilter_umh.stripped
$(KMOD_BLOB): $(UMH)
	@mkdir -p $(@D)
	strip -o $@ $<

# Kbuild writes its objects beside the sources: build in a mirror of
# symlinks under $(BUILD) so that the tree stays clean.
$(KMOD): $(KMOD_SRCS) $(KMOD_BLOB)
	@mkdir -p $(KMOD_DIR)/kmod
	ln -sf $(CURDIR)/Kbuild $(KMOD_DIR)/Kbuild
	for f in $(filter kmod/%,$(KMOD_SRCS)); do ln -sf $(CURDIR)/$$f $(KMOD_DIR)/$$f; done
	$(MAKE) -C $(KDIR) M=$(abspath $(KMOD_DIR)) BPFILTER_SRC=$(CURDIR) \
		BPFILTER_UMH=$(abspath $(KMOD_BLOB)) modules

install: $(KMOD)
	install -d $(DESTDIR)/lib/modules/$(KVER)/updates
	strip --strip-debug -o $(DESTDIR)/lib/modules/$(KVER)/updates/bpfilter.ko $(KMOD)
	depmod -a $(if $(DESTDIR),-b $(DESTDIR)) $(KVER)

# kselftest_harness.h and kselftest.h from Debian's linux-source-6.1.
KSFT_SRC ?= $(firstword $(wildcard /usr/src/linux-source-6.1.tar.xz))
$(KHDR_DIR)/kselftest_harness.h:
	@mkdir -p $(@D)
	xz -T0 -dc $(KSFT_SRC) | tar -x -C $(@D) --strip-components=4 \
		linux-source-6.1/tools/testing/selftests/kselftest_harness.h \
		linux-source-6.1/tools/testing/selftests/kselftest.h

SELFTEST_SRCS := $(sort $(wildcard selftests/*.c))
SELFTESTS := $(SELFTEST_SRCS:selftests/%.c=$(BUILD)/selftests/%)
$(BUILD)/selftests/%: selftests/%.c $(KHDR_DIR)/kselftest_harness.h
	@mkdir -p $(@D)
	$(CC) -static -O2 -g -Wall -I$(KHDR_DIR) -Iinclude/uapi -o $@ $< -lpthread

selftests: $(SELFTESTS)

# netdevsim, the kernel's test device for BPF offload (not in Debian's build): its
# drivers/net/netdevsim from linux-source-6.1, built out of tree against the same headers,
# once (the build directory keeps it; about 2 minutes). The guest lane's offload tests
# load it after psample.ko.
NSIM_DIR := $(BUILD)/netdevsim
NETDEVSIM := $(NSIM_DIR)/netdevsim.ko
$(NETDEVSIM): $(KSFT_SRC)
	@mkdir -p $(NSIM_DIR)
	xz -T0 -dc $(KSFT_SRC) | tar -x -C $(NSIM_DIR) --strip-components=4 \
		linux-source-6.1/drivers/net/netdevsim
	$(MAKE) -C $(KDIR) M=$(abspath $(NSIM_DIR)) CONFIG_NETDEVSIM=m modules

netdevsim: $(NETDEVSIM)

GUEST_INITRD := $(BUILD)/guest/initramfs.cpio.gz
$(GUEST_INITRD): $(KMOD) $(SELFTESTS) $(NETDEVSIM) scripts/initramfs-build $(wildcard tests/guest/*)
	scripts/initramfs-build $(KVER) $(KMOD) $(BUILD)/selftests $@ $(NETDEVSIM)

guest-initramfs: $(GUEST_INITRD)

guest: $(GUEST_INITRD)
	scripts/guest-run $(KVER) $(GUEST_INITRD)

# The demonstration instead of the suite: a stock DROP rule at work, bpftool, counters.
guest-demo: $(GUEST_INITRD)
	scripts/guest-run $(KVER) $(GUEST_INITRD) bpfilter_guest=demo

.PHONY: kmod install selftests guest guest-demo guest-initramfs netdevsim
