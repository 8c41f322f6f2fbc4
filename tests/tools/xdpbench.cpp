// xdpbench: the bench's traffic (XDP_TX live frames into a veth), bare XDP_DROP, ns/packet.
//
//   xdpbench gro IFNAME      GRO on (veth then takes frames redirected into it on NAPI)
//   xdpbench drop IFNAME     attach a bare XDP_DROP program (driver mode, no link)
//   xdpbench detach IFNAME   detach whatever XDP program IFNAME has
//   xdpbench query IFNAME    print the id of IFNAME's XDP program (0: none)
//   xdpbench flood IFNAME SECONDS SRCMAC DSTMAC PACKET
//       BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on an XDP_TX program, ingress
//       IFNAME: every frame leaves IFNAME (a veth: it enters the peer); calls of ~0.2 s
//   xdpbench cost IFNAME drop|pass SRCMAC DSTMAC PACKET
//       BPF_PROG_TEST_RUN of IFNAME's XDP program on PACKET arriving on IFNAME: ns/packet
//       (best of 5) and whether it returned the verdict named
//
// PACKET is SRC:SPORT-DST:DPORT: a UDP datagram, 18 bytes of payload, in a 60-byte frame.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/sockios.h>
#include <linux/udp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace
{

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const char *what)
{
	perror(what);
	exit(1);
}

unsigned ifindex_of(const char *name)
{
	const unsigned i = if_nametoindex(name);
	if (!i)
		die(name);
	return i;
}

// A program of two instructions: r0 = verdict; exit.
int verdict_prog(uint32_t verdict, const char *name)
{
	const bpf_insn insns[] = {
		{BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, static_cast<int32_t>(verdict)},
		{BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
	};
	const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", insns, 2, nullptr);
	if (fd < 0)
		die("bpf_prog_load");
	return fd;
}

uint16_t csum(const void *p, size_t n)
{
	const auto *b = static_cast<const uint8_t *>(p);
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += static_cast<uint32_t>(b[i] << 8 | b[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons(static_cast<uint16_t>(~s));
}

bool parse_mac(const char *text, uint8_t mac[ETH_ALEN])
{
	unsigned v[ETH_ALEN];
	if (sscanf(text, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return false;
	for (int i = 0; i < ETH_ALEN; i++)
		mac[i] = static_cast<uint8_t>(v[i]);
	return true;
}

// SRC:SPORT-DST:DPORT as a 60-byte Ethernet frame (UDP checksum 0: none).
std::vector<uint8_t> frame(const char *spec, const char *src_mac, const char *dst_mac)
{
	char src[32], dst[32];
	unsigned sport, dport;
	if (sscanf(spec, "%31[0-9.]:%u-%31[0-9.]:%u", src, &sport, dst, &dport) != 4 ||
	    sport > 65535 || dport > 65535) {
		fprintf(stderr, "xdpbench: bad packet %s (SRC:SPORT-DST:DPORT)\n", spec);
		exit(2);
	}
	std::vector<uint8_t> pkt(sizeof(ethhdr) + sizeof(iphdr) + sizeof(udphdr) + 18, 0);
	auto *eth = reinterpret_cast<ethhdr *>(pkt.data());
	if (!parse_mac(src_mac, eth->h_source) || !parse_mac(dst_mac, eth->h_dest)) {
		fprintf(stderr, "xdpbench: bad MAC %s or %s\n", src_mac, dst_mac);
		exit(2);
	}
	eth->h_proto = htons(ETH_P_IP);
	auto *ip = reinterpret_cast<iphdr *>(pkt.data() + sizeof(ethhdr));
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons(static_cast<uint16_t>(pkt.size() - sizeof(ethhdr)));
	if (inet_pton(AF_INET, src, &ip->saddr) != 1 || inet_pton(AF_INET, dst, &ip->daddr) != 1) {
		fprintf(stderr, "xdpbench: bad address in %s\n", spec);
		exit(2);
	}
	ip->check = csum(ip, sizeof(*ip));
	auto *udp = reinterpret_cast<udphdr *>(pkt.data() + sizeof(ethhdr) + sizeof(iphdr));
	udp->source = htons(static_cast<uint16_t>(sport));
	udp->dest = htons(static_cast<uint16_t>(dport));
	udp->len = htons(static_cast<uint16_t>(sizeof(udphdr) + 18));
	return pkt;
}

int gro(const char *ifname)
{
	const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	ethtool_value v{ETHTOOL_SGRO, 1};
	ifreq ifr{};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = reinterpret_cast<char *>(&v);
	if (ioctl(fd, SIOCETHTOOL, &ifr) != 0)
		die("ETHTOOL_SGRO");
	close(fd);
	return 0;
}

// Frames offered in calls of about 0.2 s each (each call sets up a page pool) for
// `seconds`. Prints "frames F seconds S calls C": F frames went through the program,
// each XDP_TX (the kernel turns it into a redirect to the same device).
int flood(const char *ifname, double seconds, const char *src_mac, const char *dst_mac,
	  const char *spec)
{
	auto pkt = frame(spec, src_mac, dst_mac);
	const int prog = verdict_prog(XDP_TX, "bench_xdp_tx");
	xdp_md ctx{};
	ctx.data_end = static_cast<uint32_t>(pkt.size());
	ctx.ingress_ifindex = ifindex_of(ifname);
	uint64_t frames = 0;
	unsigned calls = 0;
	uint32_t repeat = 256; // grown or shrunk toward 0.2 s a call
	const auto t0 = Clock::now();
	double elapsed = 0;
	while (elapsed < seconds) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(),
			    .data_size_in = static_cast<uint32_t>(pkt.size()), .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat),
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
		const auto c0 = Clock::now();
		if (bpf_prog_test_run_opts(prog, &opts) != 0)
			die("bpf_prog_test_run_opts (live frames)");
		const double took = std::chrono::duration<double>(Clock::now() - c0).count();
		frames += repeat;
		calls++;
		elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
		const double want = std::min(0.2, seconds - elapsed);
		if (want > 0.001 && took > 0)
			repeat = static_cast<uint32_t>(std::clamp(repeat * want / took, 64.0, 1e8));
	}
	printf("frames %llu seconds %.6f calls %u\n", static_cast<unsigned long long>(frames),
	       elapsed, calls);
	return 0;
}

int attach_drop(const char *ifname)
{
	const int prog = verdict_prog(XDP_DROP, "bench_xdp_drop");
	if (bpf_xdp_attach(static_cast<int>(ifindex_of(ifname)), prog, XDP_FLAGS_DRV_MODE, nullptr))
		die("bpf_xdp_attach");
	return 0;
}

uint32_t attached(const char *ifname)
{
	uint32_t id = 0;
	if (bpf_xdp_query_id(static_cast<int>(ifindex_of(ifname)), 0, &id))
		die("bpf_xdp_query_id");
	return id;
}

int detach(const char *ifname)
{
	if (bpf_xdp_detach(static_cast<int>(ifindex_of(ifname)), 0, nullptr))
		die("bpf_xdp_detach");
	return 0;
}

// ns/packet of the program on IFNAME's XDP hook, as the kernel times BPF_PROG_TEST_RUN
// (best of 5 runs of a repeat sized to about 20 ms), on PACKET arriving on IFNAME.
// Prints "ns N verdict V ok|unexpected".
int cost(const char *ifname, const char *verdict, const char *src_mac, const char *dst_mac,
	 const char *spec)
{
	const uint32_t want = !strcmp(verdict, "drop") ? XDP_DROP : XDP_PASS;
	const uint32_t id = attached(ifname);
	if (!id) {
		fprintf(stderr, "xdpbench: no XDP program on %s\n", ifname);
		return 1;
	}
	const int prog = bpf_prog_get_fd_by_id(id);
	if (prog < 0)
		die("bpf_prog_get_fd_by_id");
	auto pkt = frame(spec, src_mac, dst_mac);
	xdp_md ctx{};
	ctx.data_end = static_cast<uint32_t>(pkt.size());
	ctx.ingress_ifindex = ifindex_of(ifname);
	double best = 1e18;
	uint32_t retval = 0;
	int repeat = 100;
	for (int i = 0; i < 6; ++i) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(),
			    .data_size_in = static_cast<uint32_t>(pkt.size()), .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = repeat);
		if (bpf_prog_test_run_opts(prog, &opts) != 0)
			die("bpf_prog_test_run_opts");
		retval = opts.retval;
		if (i == 0) // a first run sizes the others to ~20 ms
			repeat = static_cast<int>(
				std::clamp(2e7 / std::max(1u, opts.duration), 10.0, 1e7));
		else
			best = std::min(best, static_cast<double>(opts.duration));
	}
	printf("ns %.1f verdict %s %s\n", best,
	       retval == XDP_DROP   ? "drop"
	       : retval == XDP_PASS ? "pass"
				    : std::to_string(retval).c_str(),
	       retval == want ? "ok" : "unexpected");
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	const std::string cmd = argc > 1 ? argv[1] : "";
	if (cmd == "gro" && argc == 3)
		return gro(argv[2]);
	if (cmd == "flood" && argc == 7)
		return flood(argv[2], atof(argv[3]), argv[4], argv[5], argv[6]);
	if (cmd == "drop" && argc == 3)
		return attach_drop(argv[2]);
	if (cmd == "detach" && argc == 3)
		return detach(argv[2]);
	if (cmd == "query" && argc == 3) {
		printf("%u\n", attached(argv[2]));
		return 0;
	}
	if (cmd == "cost" && argc == 7)
		return cost(argv[2], argv[3], argv[4], argv[5], argv[6]);
	fprintf(stderr,
		"usage: xdpbench gro|drop|detach|query IFNAME\n"
		"       xdpbench flood IFNAME SECONDS SRCMAC DSTMAC SRC:SPORT-DST:DPORT\n"
		"       xdpbench cost IFNAME drop|pass SRCMAC DSTMAC SRC:SPORT-DST:DPORT\n");
	return 2;
}
