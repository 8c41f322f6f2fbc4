// Byte-for-byte check of our GET_INFO / GET_ENTRIES against real netfilter in this netns.
//
// Reads the filter table from the kernel (IPT_SO_GET_INFO + IPT_SO_GET_ENTRIES on a raw
// socket), then builds the same table in a TableService backed by an in-memory data plane
// and compares both answers byte for byte. The table reaches the service either by
// replaying the exact setsockopt calls iptables made (--replay STRACE_LOG, from
// `strace -f -xx -s 100000000 -e trace=setsockopt`), or, without a log, by rebuilding an
// ipt_replace from the kernel's own GET_ENTRIES reply. GET_ENTRIES is read from the kernel
// twice, into a buffer of 0x00 and one of 0xff, to tell the bytes the kernel writes from
// those it leaves alone; we must equal the kernel on every byte of the 0x00 read.
//
// Usage: ipt_snapshot [--replay STRACE_LOG] [--dump PREFIX]
// Exit status: 0 identical, 1 a difference, 2 a setup error.
#include <linux/netfilter_ipv4/ip_tables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "abi/table.hpp"
#include "service/table_service.hpp"

namespace
{

using namespace bpfilter;
using Bytes = std::vector<uint8_t>;

// The data plane of this check: it keeps the counters GET_ENTRIES reads (none counted
// here: every count comes through ADD_COUNTERS, as the kernel's do in a netns with no
// traffic) and runs nothing.
class CountingOnlyDataplane : public service::Dataplane
{
public:
	Status check(const ir::Table &) const override { return {}; }
	Result<std::vector<ir::Counter>> replace(ir::Table table,
						 service::IrSource /*source*/) override
	{
		std::vector<ir::Counter> old = std::move(counters_);
		counters_.assign(table.rules.size(), ir::Counter{});
		return old;
	}
	Result<std::vector<ir::Counter>> counters() const override { return counters_; }

private:
	std::vector<ir::Counter> counters_;
};

struct Fd {
	int fd = -1;
	~Fd()
	{
		if (fd >= 0)
			close(fd);
	}
};

bool kernel_get(int fd, int opt, Bytes &buf, const char *what)
{
	socklen_t len = static_cast<socklen_t>(buf.size());
	if (getsockopt(fd, IPPROTO_IP, opt, buf.data(), &len) != 0) {
		std::perror(what);
		return false;
	}
	if (len != buf.size()) {
		std::cerr << what << ": kernel returned " << len << " bytes, expected "
			  << buf.size() << "\n";
		return false;
	}
	return true;
}

// One setsockopt call from an strace log: optname and optval.
struct Call {
	uint32_t optname;
	Bytes optval;
};

// Lines look like: PID setsockopt(4, SOL_IP, IPT_SO_SET_REPLACE, "\x66...", 840) = 0
bool read_strace(const std::string &path, std::vector<Call> &calls)
{
	std::ifstream in(path);
	if (!in) {
		std::cerr << "cannot read " << path << "\n";
		return false;
	}
	std::string line;
	while (std::getline(in, line)) {
		uint32_t optname;
		if (line.find("IPT_SO_SET_REPLACE") != std::string::npos)
			optname = IPT_SO_SET_REPLACE;
		else if (line.find("IPT_SO_SET_ADD_COUNTERS") != std::string::npos)
			optname = IPT_SO_SET_ADD_COUNTERS;
		else
			continue;
		if (line.size() < 4 || line.compare(line.size() - 4, 4, " = 0") != 0)
			continue; // the kernel refused it: nothing to replay
		const size_t q1 = line.find('"');
		const size_t q2 = line.find('"', q1 + 1);
		if (q1 == std::string::npos || q2 == std::string::npos ||
		    line.compare(q2 + 1, 1, ",") != 0) {
			std::cerr << "unparsable (truncated?) strace line in " << path << "\n";
			return false;
		}
		Call c{optname, {}};
		for (size_t i = q1 + 1; i + 3 < q2 + 1; i += 4) {
			if (line[i] != '\\' || line[i + 1] != 'x') {
				std::cerr << "strace was not run with -xx\n";
				return false;
			}
			c.optval.push_back(static_cast<uint8_t>(
				std::stoul(line.substr(i + 2, 2), nullptr, 16)));
		}
		const unsigned long optlen = std::stoul(line.substr(q2 + 2));
		if (optlen != c.optval.size()) {
			std::cerr << "strace cut an optval short (" << c.optval.size() << " of "
				  << optlen << " bytes): raise -s\n";
			return false;
		}
		calls.push_back(std::move(c));
	}
	return true;
}

void dump(const std::string &path, const Bytes &b)
{
	std::ofstream(path, std::ios::binary)
		.write(reinterpret_cast<const char *>(b.data()),
		       static_cast<std::streamsize>(b.size()));
}

size_t report(const char *what, const Bytes &ours, const Bytes &kernel)
{
	if (ours.size() != kernel.size()) {
		std::cout << what << ": size differs: ours " << ours.size() << ", kernel "
			  << kernel.size() << "\n";
		return 1;
	}
	size_t diffs = 0;
	for (size_t i = 0; i < ours.size(); i++) {
		if (ours[i] == kernel[i])
			continue;
		if (diffs++ < 20)
			std::printf("%s: byte %zu differs: ours 0x%02x, kernel 0x%02x\n", what, i,
				    ours[i], kernel[i]);
	}
	std::cout << what << ": " << ours.size() << " bytes, " << diffs << " differ\n";
	return diffs;
}

} // namespace

int main(int argc, char **argv)
{
	std::string replay, prefix;
	for (int i = 1; i < argc; i++) {
		const std::string a = argv[i];
		if (a == "--replay" && i + 1 < argc)
			replay = argv[++i];
		else if (a == "--dump" && i + 1 < argc)
			prefix = argv[++i];
		else {
			std::cerr << "usage: ipt_snapshot [--replay STRACE_LOG] [--dump PREFIX]\n";
			return 2;
		}
	}

	// The kernel's answers.
	Fd sock{socket(AF_INET, SOCK_RAW, IPPROTO_RAW)};
	if (sock.fd < 0) {
		std::perror("socket");
		return 2;
	}
	Bytes kinfo(sizeof(struct ipt_getinfo), 0);
	std::memcpy(kinfo.data(), "filter", 6);
	if (!kernel_get(sock.fd, IPT_SO_GET_INFO, kinfo, "IPT_SO_GET_INFO"))
		return 2;
	const uint32_t size = abi::load<uint32_t>(kinfo, abi::getinfo_size_field);
	Bytes kentries[2];
	for (int fill = 0; fill < 2; fill++) {
		kentries[fill].assign(sizeof(struct ipt_get_entries) + size, fill ? 0xff : 0x00);
		std::memcpy(kentries[fill].data(), "filter", 6);
		abi::store<uint32_t>(kentries[fill], abi::get_entries_size_field, size);
		std::fill(kentries[fill].begin() + 6, kentries[fill].begin() + 32, 0);
		if (!kernel_get(sock.fd, IPT_SO_GET_ENTRIES, kentries[fill], "IPT_SO_GET_ENTRIES"))
			return 2;
	}
	size_t untouched = 0;
	for (size_t i = 0; i < kentries[0].size(); i++)
		untouched += kentries[0][i] != kentries[1][i];

	// The same table through our service.
	service::TableService svc(std::make_unique<CountingOnlyDataplane>());
	if (auto s = svc.init(); !s.ok()) {
		std::cerr << "init: " << s.error().message << "\n";
		return 2;
	}
	std::vector<Call> calls;
	if (!replay.empty()) {
		if (!read_strace(replay, calls))
			return 2;
	} else {
		// Rebuild an ipt_replace from the kernel's reply, and hand its counters back
		// through ADD_COUNTERS.
		Bytes repl(sizeof(struct ipt_replace), 0);
		std::memcpy(repl.data(), "filter", 6);
		std::memcpy(repl.data() + abi::replace_valid_hooks,
			    kinfo.data() + abi::getinfo_valid_hooks, 4);
		std::memcpy(repl.data() + abi::replace_num_entries,
			    kinfo.data() + abi::getinfo_num_entries, 4);
		std::memcpy(repl.data() + abi::replace_size_field,
			    kinfo.data() + abi::getinfo_size_field, 4);
		std::memcpy(repl.data() + abi::replace_hook_entry,
			    kinfo.data() + abi::getinfo_hook_entry, 20);
		std::memcpy(repl.data() + abi::replace_underflow,
			    kinfo.data() + abi::getinfo_underflow, 20);
		abi::store<uint32_t>(repl, abi::replace_num_counters, 4); // the initial table's
		repl.insert(repl.end(), kentries[0].begin() + sizeof(struct ipt_get_entries),
			    kentries[0].end());
		calls.push_back({IPT_SO_SET_REPLACE, repl});
		const uint32_t num = abi::load<uint32_t>(kinfo, abi::getinfo_num_entries);
		Bytes add(sizeof(struct xt_counters_info), 0);
		std::memcpy(add.data(), "filter", 6);
		abi::store<uint32_t>(add, abi::counters_info_num, num);
		const std::span<const uint8_t> ke(
			kentries[0].data() + sizeof(struct ipt_get_entries), size);
		for (uint32_t off = 0; off < size;
		     off += abi::load<uint16_t>(ke, off + abi::entry_next_offset))
			add.insert(add.end(), ke.begin() + off + abi::entry_counters,
				   ke.begin() + off + abi::entry_counters + abi::counters_size);
		calls.push_back({IPT_SO_SET_ADD_COUNTERS, add});
	}
	for (const Call &c : calls) {
		auto r = svc.setsockopt(c.optname, c.optval);
		if (r.status != 0) {
			std::cerr << (c.optname == IPT_SO_SET_REPLACE ? "SET_REPLACE"
								      : "SET_ADD_COUNTERS")
				  << " accepted by the kernel was refused by us: " << r.status
				  << "\n";
			return 1;
		}
	}
	Bytes name(sizeof(struct ipt_getinfo), 0);
	std::memcpy(name.data(), "filter", 6);
	auto oinfo = svc.getsockopt(IPT_SO_GET_INFO, sizeof(struct ipt_getinfo), name);
	Bytes req(kentries[0].begin(), kentries[0].begin() + sizeof(struct ipt_get_entries));
	auto oentries =
		svc.getsockopt(IPT_SO_GET_ENTRIES, static_cast<uint32_t>(kentries[0].size()), req);
	if (oinfo.status != 0 || oentries.status != 0) {
		std::cerr << "our GET_INFO/GET_ENTRIES failed: " << oinfo.status << " "
			  << oentries.status << "\n";
		return 1;
	}
	if (!prefix.empty()) {
		dump(prefix + ".kernel.info", kinfo);
		dump(prefix + ".kernel.entries", kentries[0]);
		dump(prefix + ".ours.info", oinfo.data);
		dump(prefix + ".ours.entries", oentries.data);
	}
	std::cout << (replay.empty()
			      ? "rebuilt from GET_ENTRIES"
			      : "replayed " + std::to_string(calls.size()) + " setsockopt calls")
		  << "; " << abi::load<uint32_t>(kinfo, abi::getinfo_num_entries) << " entries, "
		  << untouched << " bytes of the reply the kernel does not write\n";
	const size_t diffs = report("GET_INFO", oinfo.data, kinfo) +
			     report("GET_ENTRIES", oentries.data, kentries[0]);
	return diffs ? 1 : 0;
}
