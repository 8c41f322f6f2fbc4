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

// Nanoseconds a run of the program on pkt, as the kernel measures it (best of 5).
double ns_per_packet(int prog_fd, std::vector<uint8_t> &pkt, int repeat)
{
	double best = 1e18;
	for (int i = 0; i < 5; ++i) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(),
			    .data_size_in = static_cast<uint32_t>(pkt.size()), .repeat = repeat);
		if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
			perror("bpf_prog_test_run_opts");
			exit(1);
		}
		if (opts.retval != XDP_PASS) {
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
	return 0;
}
