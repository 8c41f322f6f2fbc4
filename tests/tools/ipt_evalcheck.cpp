// Differential check of the reference evaluator against real netfilter.
//
// Runs in the namespace whose filter table is loaded (by iptables-legacy); sends crafted
// IPv4 packets from a peer namespace over a veth pair, one at a time, and after each
// compares the kernel's per-rule counter increments (GET_ENTRIES) with the rules
// ir::evaluate says a packet counts at LOCAL_IN, given the same table (the kernel's
// GET_ENTRIES reply put through abi::parse_replace and abi::to_ir). Only entries reached
// from INPUT alone (comefrom) are compared, since replies the host sends pass OUTPUT.
//
// Usage: ipt_evalcheck PEER_NETNS_PATH IN_DEV SEED COUNT DST[,DST...]
// Exit status: 0 all agree, 1 a difference, 2 a setup error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "abi/table.hpp"
#include "ir/eval.hpp"

namespace
{

using namespace bpfilter;
using Bytes = std::vector<uint8_t>;

struct Fd {
	int fd = -1;
	~Fd()
	{
		if (fd >= 0)
			close(fd);
	}
};

// The kernel's filter table: GET_INFO, then GET_ENTRIES.
bool read_table(int fd, Bytes &info, Bytes &entries)
{
	info.assign(sizeof(struct ipt_getinfo), 0);
	std::memcpy(info.data(), "filter", 6);
	socklen_t len = static_cast<socklen_t>(info.size());
	if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_INFO, info.data(), &len) != 0)
		return false;
	const uint32_t size = abi::load<uint32_t>(info, abi::getinfo_size_field);
	Bytes buf(sizeof(struct ipt_get_entries) + size, 0);
	std::memcpy(buf.data(), "filter", 6);
	abi::store<uint32_t>(buf, abi::get_entries_size_field, size);
	len = static_cast<socklen_t>(buf.size());
	if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_ENTRIES, buf.data(), &len) != 0)
		return false;
	entries.assign(buf.begin() + sizeof(struct ipt_get_entries), buf.end());
	return true;
}

std::vector<ir::Counter> counters_of(const Bytes &entries)
{
	std::vector<ir::Counter> out;
	for (uint32_t off = 0; off < entries.size();
	     off += abi::load<uint16_t>(entries, off + abi::entry_next_offset))
		out.push_back({abi::load<uint64_t>(entries, off + abi::entry_counters),
			       abi::load<uint64_t>(entries, off + abi::entry_counters + 8)});
	return out;
}

// A random packet biased towards the values the test rulesets name.
Bytes make_packet(std::mt19937 &rng, const std::vector<uint32_t> &dsts, std::string &desc)
{
	auto pick = [&](const auto &v) { return v[rng() % v.size()]; };
	static const std::vector<uint32_t> srcs = {0x0a000001, 0x0a000032, 0x0a000033, 0x01010101,
						   0x01010102, 0x01020304, 0xac100505, 0xc0000207,
						   0xc6336409, 0x08080808};
	static const std::vector<uint16_t> ports = {0,	  7,	22,   23,   25,	  53,	67,
						    68,	  80,	123,  443,  1000, 1024, 1500,
						    2000, 2222, 2500, 8000, 8080, 65535};
	static const std::vector<uint8_t> protos = {6, 6, 6, 17, 17, 1, 1, 47, 132};
	const uint8_t proto = pick(protos);
	Bytes l4;
	if (proto == 6) {
		l4.assign(20, 0);
		const uint16_t sp = rng() % 4 ? pick(ports) : static_cast<uint16_t>(rng());
		const uint16_t dp = rng() % 4 ? pick(ports) : static_cast<uint16_t>(rng());
		l4[0] = sp >> 8, l4[1] = sp & 0xff, l4[2] = dp >> 8, l4[3] = dp & 0xff;
		l4[13] = static_cast<uint8_t>(
			rng() % 3 ? pick(std::vector<uint8_t>{0x02, 0x10, 0x12, 0x04, 0x01, 0x11,
							      0x00, 0x3f})
				  : rng());
		switch (rng() % 4) {
		case 0:
			l4.insert(l4.end(), {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2});
			break;
		case 1:
			l4.insert(l4.end(), {2, 4, 5, 0xb4});
			break;
		case 2:
			for (int i = 0; i < 4 * static_cast<int>(rng() % 3); i++)
				l4.push_back(static_cast<uint8_t>(rng()));
			break;
		default:
			break;
		}
		l4[12] = static_cast<uint8_t>((l4.size() / 4) << 4);
		desc = "tcp " + std::to_string(sp) + ">" + std::to_string(dp) + " flags " +
		       std::to_string(l4[13]);
	} else if (proto == 17 || proto == 132) {
		l4.assign(8, 0);
		const uint16_t sp = pick(ports), dp = pick(ports);
		l4[0] = sp >> 8, l4[1] = sp & 0xff, l4[2] = dp >> 8, l4[3] = dp & 0xff;
		desc = (proto == 17 ? "udp " : "sctp ") + std::to_string(sp) + ">" +
		       std::to_string(dp);
	} else if (proto == 1) {
		l4.assign(8, 0);
		l4[0] = pick(std::vector<uint8_t>{0, 3, 8, 11, 255});
		l4[1] = pick(std::vector<uint8_t>{0, 1, 3, 4, 255});
		desc = "icmp " + std::to_string(l4[0]) + "/" + std::to_string(l4[1]);
	} else {
		l4.assign(8, 0x5a);
		desc = "proto " + std::to_string(proto);
	}
	if (rng() % 10 == 0) { // a truncated transport header: hotdrop territory
		l4.resize(rng() % l4.size());
		desc += " cut to " + std::to_string(l4.size());
	}
	Bytes p(20, 0);
	p[0] = 0x45;
	p[6] = 0x40; // DF: no fragments here (INPUT only sees reassembled datagrams)
	p[8] = 64;
	p[9] = proto;
	const uint32_t src = pick(srcs), dst = pick(dsts);
	for (int i = 0; i < 4; i++) {
		p[12 + i] = static_cast<uint8_t>(src >> (24 - 8 * i));
		p[16 + i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
	}
	const uint16_t len = static_cast<uint16_t>(20 + l4.size());
	p[2] = len >> 8, p[3] = len & 0xff;
	p.insert(p.end(), l4.begin(), l4.end());
	char a[32], b[32];
	in_addr s{htonl(src)}, d{htonl(dst)};
	inet_ntop(AF_INET, &s, a, sizeof(a));
	inet_ntop(AF_INET, &d, b, sizeof(b));
	desc = std::string(a) + " > " + b + " " + desc;
	return p;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 6) {
		std::cerr
			<< "usage: ipt_evalcheck PEER_NETNS_PATH IN_DEV SEED COUNT DST[,DST...]\n";
		return 2;
	}
	const std::string in_dev = argv[2];
	std::mt19937 rng(static_cast<uint32_t>(std::stoul(argv[3])));
	const int count = std::stoi(argv[4]);
	std::vector<uint32_t> dsts;
	std::stringstream ds(argv[5]);
	for (std::string d; std::getline(ds, d, ',');) {
		in_addr a{};
		if (inet_pton(AF_INET, d.c_str(), &a) != 1)
			return 2;
		dsts.push_back(ntohl(a.s_addr));
	}

	Fd self{open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)};
	Fd peer{open(argv[1], O_RDONLY | O_CLOEXEC)};
	if (self.fd < 0 || peer.fd < 0) {
		std::perror("open netns");
		return 2;
	}
	Fd ctl{socket(AF_INET, SOCK_RAW, IPPROTO_RAW)};
	if (setns(peer.fd, CLONE_NEWNET) != 0) {
		std::perror("setns peer");
		return 2;
	}
	Fd tx{socket(AF_INET, SOCK_RAW, IPPROTO_RAW)}; // lives in the peer namespace
	if (setns(self.fd, CLONE_NEWNET) != 0 || ctl.fd < 0 || tx.fd < 0) {
		std::perror("sockets");
		return 2;
	}

	Bytes info, entries;
	if (!read_table(ctl.fd, info, entries)) {
		std::perror("reading the kernel's table");
		return 2;
	}
	// The same table as our IR.
	Bytes repl(sizeof(struct ipt_replace), 0);
	std::memcpy(repl.data(), "filter", 6);
	std::memcpy(repl.data() + abi::replace_valid_hooks, info.data() + abi::getinfo_valid_hooks,
		    4);
	std::memcpy(repl.data() + abi::replace_num_entries, info.data() + abi::getinfo_num_entries,
		    4);
	std::memcpy(repl.data() + abi::replace_size_field, info.data() + abi::getinfo_size_field,
		    4);
	std::memcpy(repl.data() + abi::replace_hook_entry, info.data() + abi::getinfo_hook_entry,
		    20);
	std::memcpy(repl.data() + abi::replace_underflow, info.data() + abi::getinfo_underflow, 20);
	abi::store<uint32_t>(repl, abi::replace_num_counters, 1);
	repl.insert(repl.end(), entries.begin(), entries.end());
	auto parsed = abi::parse_replace(repl);
	if (!parsed.ok()) {
		std::cerr << "parse: " << parsed.error().message << "\n";
		return 2;
	}
	auto table = abi::to_ir(parsed->table);
	if (!table.ok()) {
		std::cerr << "to_ir: " << table.error().message << "\n";
		return 2;
	}
	// Entries we compare: reached from LOCAL_IN and from no other hook.
	std::vector<bool> compared;
	for (uint32_t off : parsed->table.offsets)
		compared.push_back((abi::load<uint32_t>(entries, off + abi::entry_comefrom) &
				    0x1f) == (1u << 1));

	std::array<uint8_t, 16> dev{};
	std::memcpy(dev.data(), in_dev.data(), std::min<size_t>(in_dev.size(), 15));
	int diffs = 0, counted_packets = 0, hotdrops = 0;
	std::vector<bool> hit(table->rules.size(), false);
	for (int n = 0; n < count; n++) {
		std::string desc;
		const Bytes pkt = make_packet(rng, dsts, desc);
		const ir::EvalResult want =
			ir::evaluate(*table, ir::Hook::LocalIn, ir::PacketView{pkt, dev, {}, {}});
		std::vector<ir::Counter> expect(table->rules.size());
		for (uint32_t r : want.counted_rules) {
			expect[r].packets++;
			expect[r].bytes += pkt.size();
		}
		if (!read_table(ctl.fd, info, entries))
			return 2;
		const auto before = counters_of(entries);
		sockaddr_in to{};
		to.sin_family = AF_INET;
		std::memcpy(&to.sin_addr, pkt.data() + 16, 4);
		if (sendto(tx.fd, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr *>(&to),
			   sizeof(to)) < 0) {
			std::perror("sendto");
			return 2;
		}
		// Wait until INPUT has seen it (something counted), or a while when nothing should.
		std::vector<ir::Counter> got;
		const auto deadline =
			std::chrono::steady_clock::now() +
			std::chrono::milliseconds(want.counted_rules.empty() ? 40 : 1000);
		for (;;) {
			if (!read_table(ctl.fd, info, entries))
				return 2;
			const auto now = counters_of(entries);
			got.assign(now.size(), {});
			bool any = false;
			for (size_t k = 0; k < now.size(); k++) {
				got[k] = {now[k].packets - before[k].packets,
					  now[k].bytes - before[k].bytes};
				any |= compared[k] && got[k].packets;
			}
			if ((any && !want.counted_rules.empty()) ||
			    std::chrono::steady_clock::now() > deadline)
				break;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
		bool same = true;
		for (size_t k = 0; k < got.size(); k++)
			same &= !compared[k] || got[k] == expect[k];
		counted_packets += !want.counted_rules.empty();
		for (uint32_t r : want.counted_rules)
			hit[r] = compared[r];
		hotdrops += want.hotdrop;
		if (!same) {
			diffs++;
			std::cout << "DIFF packet " << n << ": " << desc << "\n  evaluator counts:";
			for (uint32_t r : want.counted_rules)
				std::cout << " " << r;
			std::cout << (want.hotdrop ? " (hotdrop)" : "") << "\n  kernel counts:   ";
			for (size_t k = 0; k < got.size(); k++)
				if (compared[k] && got[k].packets)
					std::cout << " " << k << "x" << got[k].packets;
			std::cout << "\n";
		}
	}
	std::cout << count << " packets (" << hotdrops << " hotdropped by the evaluator), "
		  << std::count(hit.begin(), hit.end(), true) << " of "
		  << std::count(compared.begin(), compared.end(), true) << " INPUT rules hit, "
		  << diffs << " judged differently\n";
	return diffs ? 1 : 0;
}
