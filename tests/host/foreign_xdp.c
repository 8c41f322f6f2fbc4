// SPDX-License-Identifier: GPL-2.0
// A foreign XDP program for the host tests: passes every packet. atomic.sh puts it on a
// device so that bpfilter cannot attach there. Built with clang -O2 -target bpf -c.
__attribute__((section("xdp"), used)) int foreign(void *ctx)
{
	return 2; /* XDP_PASS */
}

char _license[] __attribute__((section("license"), used)) = "GPL";
