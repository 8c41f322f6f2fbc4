// Benchmark: per-packet cost of generated programs (BPF_PROG_TEST_RUN) and table load time, by rule
// count.
//
// Worst case as the 2021 reviewers asked: no rule matches the packet, so every rule is
// traversed before the policy decides. Each figure is printed next to a baseline measured
// in the same run: an XDP program that only returns XDP_PASS, run on the same packet.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "codegen/codegen.hpp"
#include "codegen/insn.hpp"
#include "ir/ir.hpp"
#include "loader/conntrack.hpp"
#include "loader/program.hpp"

namespace
{

using namespace bpfilter;
using Clock = std::chrono::steady_clock;

uint32_t blocklist_addr(uint32_t i) // host order
{
	return 0x0b000000u + i;
}

ir::Rule policy(ir::Target::Kind kind)
{
	ir::Rule r;
	r.target.kind = kind;
	return r;
}

// n rules "-s 192.168.X.Y/32 -p udp --dport P -j DROP" that the packet never hits, then
// the INPUT policy ACCEPT; FORWARD and OUTPUT empty with ACCEPT; the closing ERROR rule.
ir::Table worst_case_table(uint32_t n)
{
	ir::Table t;
	for (uint32_t i = 0; i < n; ++i) {
		ir::Rule r;
		r.ip.src = htonl(0xc0a80000u | (i & 0xffff));
		r.ip.src_mask = 0xffffffffu;
		r.ip.proto = IPPROTO_UDP;
		ir::UdpMatch udp;
		udp.dport = {static_cast<uint16_t>(1000 + i % 50000),
			     static_cast<uint16_t>(1000 + i % 50000)};
		r.matches.emplace_back(udp);
		r.target.kind = ir::Target::Kind::Drop;
		t.rules.push_back(r);
	}
	auto hook = [&](ir::Hook h) {
		uint32_t at = static_cast<uint32_t>(t.rules.size());
		t.rules.push_back(policy(ir::Target::Kind::Accept));
		t.hook_entry[static_cast<unsigned>(h)] = h == ir::Hook::LocalIn ? 0 : at;
		t.underflow[static_cast<unsigned>(h)] = at;
		t.valid_hooks |= 1u << static_cast<unsigned>(h);
	};
	hook(ir::Hook::LocalIn);
	hook(ir::Hook::Forward);
	hook(ir::Hook::LocalOut);
	t.rules.push_back(policy(ir::Target::Kind::Error));
	return t;
}

std::vector<uint8_t> udp_packet()
{
	std::vector<uint8_t> pkt(sizeof(ethhdr) + sizeof(iphdr) + sizeof(udphdr) + 18, 0);
	auto *eth = reinterpret_cast<ethhdr *>(pkt.data());
	eth->h_proto = htons(ETH_P_IP);
	auto *ip = reinterpret_cast<iphdr *>(pkt.data() + sizeof(ethhdr));
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons(static_cast<uint16_t>(pkt.size() - sizeof(ethhdr)));
	ip->saddr = htonl(0x0a000002);
	ip->daddr = htonl(0x0a000001);
	auto *udp = reinterpret_cast<udphdr *>(pkt.data() + sizeof(ethhdr) + sizeof(iphdr));
	udp->source = htons(40000);
	udp->dest = htons(53);
	udp->len = htons(static_cast<uint16_t>(sizeof(udphdr) + 18));
	return pkt;
}

// n rules "-s 11.X.Y.Z/32 -j DROP" (11.0.0.0 + i), then the INPUT policy ACCEPT: the
// blocklist shape that classification judges with one lookup (codegen/classify.hpp).
// lpm: the last rule a /31, so that the set is an LPM trie rather than a hash.
ir::Table blocklist_table(uint32_t n, bool lpm = false)
{
	ir::Table t = worst_case_table(n);
	for (uint32_t i = 0; i < n; ++i) {
		ir::Rule &r = t.rules[i];
		r = ir::Rule{};
		r.ip.src = htonl(blocklist_addr(i));
		r.ip.src_mask = 0xffffffffu;
		r.target.kind = ir::Target::Kind::Drop;
	}
	if (lpm && n) {
		t.rules[n - 1].ip.src_mask = htonl(0xfffffffeu);
		t.rules[n - 1].ip.src &= t.rules[n - 1].ip.src_mask;
	}
	return t;
}

// Nanoseconds a run of the program on pkt, as the kernel measures it (best of 5).
double ns_per_packet(int prog_fd, std::vector<uint8_t> &pkt, int repeat,
		     uint32_t verdict = XDP_PASS)
{
	double best = 1e18;
	for (int i = 0; i < 5; ++i) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(),
			    .data_size_in = static_cast<uint32_t>(pkt.size()), .repeat = repeat);
		if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
			perror("bpf_prog_test_run_opts");
			exit(1);
		}
		if (opts.retval != verdict) {
			fprintf(stderr, "unexpected verdict %u\n", opts.retval);
			exit(1);
		}
		best = std::min(best, static_cast<double>(opts.duration));
	}
	return best;
}

int baseline_prog()
{
	const struct bpf_insn insns[] = {
		codegen::insn::mov64(codegen::R0, XDP_PASS),
		codegen::insn::exit(),
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bench_baseline", "GPL", insns, 2, nullptr);
	if (fd < 0) {
		perror("load baseline");
		exit(1);
	}
	return fd;
}

// What a state rule costs: one rule "-m state --state ESTABLISHED -j ACCEPT" against
// one plain rule, on the same UDP packet (no entry in the kernel's table: one lookup).
void bench_conntrack(std::vector<uint8_t> &pkt, double base)
{
	auto ct = loader::open_conntrack();
	if (!ct) {
		printf("conntrack: not measured (%s)\n", ct.error().message.c_str());
		return;
	}
	ir::Table plain = worst_case_table(1);
	ir::Table state = plain;
	ir::ConntrackMatch m;
	m.match_flags = 1; // XT_CONNTRACK_STATE
	m.state_mask = 2;  // ESTABLISHED
	state.rules[0] = ir::Rule{};
	state.rules[0].matches.emplace_back(m);
	state.rules[0].target.kind = ir::Target::Kind::Accept;
	double ns[2] = {};
	for (int k = 0; k < 2; k++) {
		codegen::Options options;
		options.local_only = false;
		options.ct = (*ct)->layout;
		auto prog = codegen::compile(k ? state : plain, options);
		auto ifnames = loader::create_devices_map();
		auto local = loader::create_local_addrs_map();
		if (!prog || !ifnames || !local) {
			printf("conntrack: compile failed\n");
			return;
		}
		loader::LoadOptions lo;
		lo.conntrack = ct->get();
		auto loaded = loader::load_program(*prog, ifnames->get(), local->get(), lo);
		if (!loaded) {
			printf("conntrack: load failed: %.200s\n", loaded.error().message.c_str());
			return;
		}
		ns[k] = ns_per_packet(loaded->fd(), pkt, 200000);
	}
	printf("conntrack: 1 plain rule %.1f ns/packet, 1 state rule %.1f ns/packet (+%.1f ns "
	       "for the lookup, %.2f x baseline)\n",
	       ns[0], ns[1], ns[1] - ns[0], ns[1] / base);
}

// Bytes the kernel charges for the program's address-set and tuple-set maps (memlock in their
// fdinfo).
uint64_t addr_set_bytes(int prog_fd)
{
	bpf_prog_info info{};
	uint32_t len = sizeof(info);
	std::vector<uint32_t> ids(64);
	info.nr_map_ids = static_cast<uint32_t>(ids.size());
	info.map_ids = reinterpret_cast<uint64_t>(ids.data());
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
		return 0;
	uint64_t total = 0;
	for (uint32_t k = 0; k < std::min<uint32_t>(info.nr_map_ids, 64); k++) {
		const int fd = bpf_map_get_fd_by_id(ids[k]);
		if (fd < 0)
			continue;
		bpf_map_info mi{};
		uint32_t mlen = sizeof(mi);
		if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0 &&
		    (std::string(mi.name) == "bpfilter_aset" ||
		     std::string(mi.name) == "bpfilter_tset")) {
			const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
			if (FILE *f = fopen(path.c_str(), "r")) {
				char line[256];
				unsigned long long v = 0;
				while (fgets(line, sizeof(line), f))
					if (sscanf(line, "memlock: %llu", &v) == 1)
						total += v;
				fclose(f);
			}
		}
		close(fd);
	}
	return total;
}

// A blocklist of each size, sequential (classification off) and classified (a hash of the
// /32s; an LPM trie when one rule is a /31): ns/packet for a packet its first rule drops,
// one its last rule drops, and one no rule matches.
void bench_blocklist(const std::vector<uint32_t> &sizes, std::vector<uint8_t> &pkt, double base)
{
	printf("blocklist (-s a.b.c.d/32 -j DROP): ns/packet\n");
	printf("%8s %12s %10s %10s %10s %10s %10s %10s\n", "rules", "code", "insns", "load_ms",
	       "first", "last", "none", "map_KiB");
	auto *ip = reinterpret_cast<iphdr *>(pkt.data() + sizeof(ethhdr));
	const uint32_t saddr = ip->saddr;
	for (uint32_t n : sizes) {
		for (int mode : {0, 1, 2}) {
			const bool classify = mode > 0;
			ir::Table table = blocklist_table(n, mode == 2);
			codegen::Options options;
			options.local_only = false;
			options.classify_min =
				classify ? codegen::Options::default_classify_min : 0;
			const char *name = mode == 0 ? "sequential" : mode == 1 ? "hash" : "lpm";
			auto t0 = Clock::now();
			auto prog = codegen::compile(table, options);
			if (!prog) {
				printf("%8u %12s compile failed: %s\n", n, name,
				       prog.error().message.c_str());
				continue;
			}
			auto ifnames = loader::create_devices_map();
			auto local = loader::create_local_addrs_map();
			if (!ifnames || !local) {
				fprintf(stderr, "cannot create maps\n");
				exit(1);
			}
			loader::LoadOptions lo;
			lo.explain = false;
			auto loaded = loader::load_program(*prog, ifnames->get(), local->get(), lo);
			auto t1 = Clock::now();
			if (!loaded) {
				printf("%8u %12s %10zu load failed: %.120s\n", n, name,
				       prog->insns.size(), loaded.error().message.c_str());
				continue;
			}
			const int repeat = classify || n < 1000 ? 200000
					   : n >= 10000		? 2000
								: 20000;
			double ns[3];
			ip->saddr = htonl(blocklist_addr(0));
			ns[0] = ns_per_packet(loaded->fd(), pkt, repeat, XDP_DROP);
			ip->saddr = htonl(blocklist_addr(n - 1));
			ns[1] = ns_per_packet(loaded->fd(), pkt, repeat, XDP_DROP);
			ip->saddr = saddr;
			ns[2] = ns_per_packet(loaded->fd(), pkt, repeat, XDP_PASS);
			printf("%8u %12s %10zu %10.1f %10.1f %10.1f %10.1f %10.0f\n", n, name,
			       prog->insns.size(),
			       std::chrono::duration<double, std::milli>(t1 - t0).count(), ns[0],
			       ns[1], ns[2],
			       static_cast<double>(addr_set_bytes(loaded->fd())) / 1024);
			fflush(stdout);
		}
	}
	printf("(baseline %.1f ns/packet)\n", base);
}

// n rules "-s 11.X.Y.Z/32 -p udp --dport P -j DROP" (P = 1000 + i % 50000, the shape of
// scripts/bench-updates), then the INPUT policy ACCEPT: a service list, which classification
// judges with one tuple-set lookup.
ir::Table service_table(uint32_t n)
{
	ir::Table t = blocklist_table(n);
	for (uint32_t i = 0; i < n; ++i) {
		ir::Rule &r = t.rules[i];
		r.ip.proto = IPPROTO_UDP;
		ir::UdpMatch m;
		m.dport.lo = m.dport.hi = static_cast<uint16_t>(1000 + i % 50000);
		r.matches = {m};
	}
	return t;
}

// A service list of each size, sequential (classification off) and classified (a tuple
// set): ns/packet for a packet its first rule drops, one its last rule drops, and one no
// rule matches (a listed source, another port).
void bench_services(const std::vector<uint32_t> &sizes, std::vector<uint8_t> &pkt, double base)
{
	printf("services (-s a.b.c.d/32 -p udp --dport P -j DROP): ns/packet\n");
	printf("%8s %12s %10s %10s %10s %10s %10s %10s\n", "rules", "code", "insns", "load_ms",
	       "first", "last", "none", "map_KiB");
	auto *ip = reinterpret_cast<iphdr *>(pkt.data() + sizeof(ethhdr));
	auto *udp = reinterpret_cast<udphdr *>(pkt.data() + sizeof(ethhdr) + sizeof(iphdr));
	const uint32_t saddr = ip->saddr;
	const uint16_t dport = udp->dest;
	for (uint32_t n : sizes) {
		for (bool classify : {false, true}) {
			ir::Table table = service_table(n);
			codegen::Options options;
			options.local_only = false;
			options.classify_min =
				classify ? codegen::Options::default_classify_min : 0;
			const char *name = classify ? "tuple hash" : "sequential";
			auto t0 = Clock::now();
			auto prog = codegen::compile(table, options);
			if (!prog) {
				printf("%8u %12s compile failed: %s\n", n, name,
				       prog.error().message.c_str());
				continue;
			}
			auto ifnames = loader::create_devices_map();
			auto local = loader::create_local_addrs_map();
			if (!ifnames || !local) {
				fprintf(stderr, "cannot create maps\n");
				exit(1);
			}
			loader::LoadOptions lo;
			lo.explain = false;
			auto loaded = loader::load_program(*prog, ifnames->get(), local->get(), lo);
			auto t1 = Clock::now();
			if (!loaded) {
				printf("%8u %12s %10zu load failed: %.120s\n", n, name,
				       prog->insns.size(), loaded.error().message.c_str());
				continue;
			}
			const int repeat = classify || n < 1000 ? 200000
					   : n >= 10000		? 2000
								: 20000;
			double ns[3];
			for (int k = 0; k < 2; k++) {
				const uint32_t i = k == 0 ? 0 : n - 1;
				ip->saddr = htonl(blocklist_addr(i));
				udp->dest = htons(static_cast<uint16_t>(1000 + i % 50000));
				ns[k] = ns_per_packet(loaded->fd(), pkt, repeat, XDP_DROP);
			}
			ip->saddr = htonl(blocklist_addr(0));
			udp->dest = htons(999);
			ns[2] = ns_per_packet(loaded->fd(), pkt, repeat, XDP_PASS);
			ip->saddr = saddr;
			udp->dest = dport;
			printf("%8u %12s %10zu %10.1f %10.1f %10.1f %10.1f %10.0f\n", n, name,
			       prog->insns.size(),
			       std::chrono::duration<double, std::milli>(t1 - t0).count(), ns[0],
			       ns[1], ns[2],
			       static_cast<double>(addr_set_bytes(loaded->fd())) / 1024);
			fflush(stdout);
		}
	}
	printf("(baseline %.1f ns/packet)\n", base);
}

} // namespace

int main(int argc, char **argv)
{
	std::vector<uint32_t> sizes = {1, 10, 100, 1000, 10000};
	if (argc > 1) {
		sizes.clear();
		for (int i = 1; i < argc; ++i)
			sizes.push_back(static_cast<uint32_t>(strtoul(argv[i], nullptr, 0)));
	}
	auto pkt = udp_packet();
	int base_fd = baseline_prog();
	double base = ns_per_packet(base_fd, pkt, 1000000);
	printf("baseline (XDP_PASS only): %.1f ns/packet\n", base);
	printf("%8s %10s %10s %12s %12s %10s %10s\n", "rules", "insns", "compile_ms", "load_ms",
	       "ns/packet", "x_baseline", "ns/rule");
	for (uint32_t n : sizes) {
		ir::Table table = worst_case_table(n);
		codegen::Options options;
		options.local_only = false; // the packet's locality is not what is measured
		auto t0 = Clock::now();
		auto prog = codegen::compile(table, options);
		auto t1 = Clock::now();
		if (!prog) {
			printf("%8u compile failed: %s\n", n, prog.error().message.c_str());
			continue;
		}
		auto ifnames = loader::create_devices_map();
		auto local = loader::create_local_addrs_map();
		if (!ifnames || !local) {
			fprintf(stderr, "cannot create maps\n");
			return 1;
		}
		auto loaded = loader::load_program(*prog, ifnames->get(), local->get(), {});
		auto t2 = Clock::now();
		if (!loaded) {
			printf("%8u load failed: %.200s\n", n, loaded.error().message.c_str());
			continue;
		}
		const int repeat = n >= 10000 ? 2000 : n >= 1000 ? 20000 : 200000;
		double ns = ns_per_packet(loaded->fd(), pkt, repeat);
		auto ms = [](auto a, auto b) {
			return std::chrono::duration<double, std::milli>(b - a).count();
		};
		printf("%8u %10zu %10.2f %12.2f %12.1f %10.2f %10.2f\n", n, prog->insns.size(),
		       ms(t0, t1), ms(t1, t2), ns, ns / base, (ns - base) / n);
		fflush(stdout);
	}
	bench_conntrack(pkt, base);
	std::vector<uint32_t> blocklist = {1000, 10000, 100000};
	if (const char *env = getenv("BENCH_BLOCKLIST_SIZES")) {
		blocklist.clear();
		for (char *p = const_cast<char *>(env); *p;) {
			char *end = nullptr;
			blocklist.push_back(static_cast<uint32_t>(strtoul(p, &end, 0)));
			if (end == p)
				break;
			p = end;
		}
	}
	bench_blocklist(blocklist, pkt, base);
	bench_services(blocklist, pkt, base);
	return 0;
}
