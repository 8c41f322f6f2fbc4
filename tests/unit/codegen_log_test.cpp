// -j LOG in the data plane: the records the programs write, printed, against the kernel's lines.
#include <linux/netfilter/xt_LOG.h>
#include <net/if.h>

#include <cstdlib>
#include <cstring>

#include "codegen/maps.hpp"
#include "codegen_harness.hpp"
#include "nf_log_capture.hpp"
#include "service/nf_log.hpp"

namespace bpfilter::test
{
namespace
{

namespace maps = codegen::maps;
constexpr uint8_t all_flags = XT_LOG_TCPSEQ | XT_LOG_TCPOPT | XT_LOG_IPOPT | XT_LOG_UID;

// A device of this namespace other than lo, for the runs' ifindex: BPF_PROG_TEST_RUN looks it
// up, and the program takes ifindex 1 for lo (no --log-macdecode there). Any there is (its
// name in the Devices map is the test's), else a veth pair made for the tests.
uint32_t test_ifindex()
{
	static const uint32_t found = [] {
		uint32_t idx = 0;
		if (struct if_nameindex *all = if_nameindex()) {
			for (struct if_nameindex *i = all; i->if_index && !idx; i++)
				if (i->if_index != 1)
					idx = i->if_index;
			if_freenameindex(all);
		}
		if (!idx && std::system("ip link add bflogt0 type veth peer name bflogt1") == 0)
			idx = if_nametoindex("bflogt0");
		return idx;
	}();
	return found;
}

// The capture's INPUT rules p0, p1, p2 (tests/unit/data/capture_nf_log.sh), then
// -p udp --dport 5353 -j DROP.
ir::Table input_table(TableBuilder &b)
{
	b.input = {R().log(4, 0, "p0 "), R().log(6, all_flags, "p1 "),
		   R().log(7, XT_LOG_MACDECODE, "p2 "),
		   R().proto(17).m(ir::UdpMatch{{}, {5353, 5353}, 0}).drop()};
	return b.build();
}

std::vector<std::string> lines_of(Xdp &x, const service::LogDialect &dialect)
{
	std::vector<std::string> out;
	for (const auto &rec : x.log_records()) {
		auto line = service::format_log(rec, dialect);
		EXPECT_TRUE(line.ok());
		if (line.ok())
			out.push_back(line->text);
	}
	return out;
}

// Every frame at INPUT (XDP on veth0, ifindex 2): the lines the kernel printed for it.
TEST(CodegenLog, InputLinesAreTheKernels)
{
	const Capture c = read_capture();
	ASSERT_FALSE(c.lines.empty()) << "tests/unit/data/nf_log_kernel.txt";
	TableBuilder b;
	const ir::Table t = input_table(b);
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	const uint32_t dev = test_ifindex();
	ASSERT_NE(dev, 0u);
	ASSERT_TRUE(x.name_device(dev, "veth0"));
	size_t compared = 0;
	for (const auto &[name, frame] : c.frames) {
		if (name.rfind("fwd_", 0) == 0 || name.rfind("frag_", 0) == 0)
			continue;
		std::vector<std::string> want;
		for (const auto &l : c.lines)
			if (l.frame == name)
				want.push_back(l.rule + " " + l.text);
		x.run(frame, dev);
		EXPECT_EQ(lines_of(x, capture_dialect(c)), want) << name;
		compared += want.size();
	}
	EXPECT_GE(compared, 40u);
	// LOG counts as a matched rule and the next rule runs.
	const auto counted = x.counters();
	EXPECT_EQ(counted[b.input_at[0]].packets, counted[b.input_at[2]].packets);
	EXPECT_EQ(counted[b.input_at[3]].packets, 1u); // the udp frame, dropped after its lines
}

// A datagram in pieces is logged once, whole, when its last piece comes.
TEST(CodegenLog, FragmentsAreLoggedOnceReassembled)
{
	const Capture c = read_capture();
	TableBuilder b;
	const ir::Table t = input_table(b);
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	const uint32_t dev = test_ifindex();
	ASSERT_NE(dev, 0u);
	ASSERT_TRUE(x.name_device(dev, "veth0"));
	x.run(c.frames.at("frag_1"), dev);
	x.run(c.frames.at("frag_2"), dev);
	EXPECT_TRUE(x.log_records().empty());
	x.run(c.frames.at("frag_3"), dev);
	std::vector<std::string> want;
	for (const auto &l : c.lines)
		if (l.frame == "frag_3")
			want.push_back(l.rule + " " + l.text);
	ASSERT_EQ(want.size(), 3u);
	EXPECT_EQ(lines_of(x, capture_dialect(c)), want);
}

// OUTPUT (tc egress): no input device, no MAC; the output device's name.
TEST(CodegenLog, OutputLine)
{
	const Capture c = read_capture();
	TableBuilder b;
	b.output = {R().log(5, XT_LOG_MACDECODE, "out ")};
	const ir::Table t = b.build();
	Xdp x(t, {.flavor = codegen::Flavor::TcEgress, .local_only = false});
	ASSERT_TRUE(x.ok()) << x.error;
	const uint32_t dev = test_ifindex();
	ASSERT_NE(dev, 0u);
	ASSERT_TRUE(x.name_device(dev, "veth0"));
	x.run(c.frames.at("udp"), dev);
	const auto recs = x.log_records();
	ASSERT_EQ(recs.size(), 1u);
	auto line = service::format_log(recs[0]);
	ASSERT_TRUE(line.ok());
	EXPECT_EQ(line->level, 5);
	// The kernel's INPUT line for this datagram, with OUTPUT's devices.
	std::string want;
	for (const auto &l : c.lines)
		if (l.frame == "udp" && l.rule == "p0")
			want = l.text.substr(l.text.find("SRC="));
	EXPECT_EQ(line->text, "out IN= OUT=veth0 " + want);
}

// LOG in a user chain, under every form of generated code: the same lines.
TEST(CodegenLog, InAUserChainUnderEveryForm)
{
	const Capture c = read_capture();
	std::vector<std::string> want;
	for (const auto &l : c.lines)
		if (l.frame == "tcp_syn")
			want.push_back(l.rule + " " + l.text);
	ASSERT_EQ(want.size(), 3u);
	using Tests = codegen::Options::Tests;
	for (Tests form : {Tests::Branch, Tests::FirstBranch, Tests::Accumulate, Tests::Chunked}) {
		TableBuilder b;
		b.chains = {{{R().log(4, 0, "p0 "), R().log(6, all_flags, "p1 "),
			      R().log(7, XT_LOG_MACDECODE, "p2 ")}}};
		b.input = {R().proto(6).jump(0), R().proto(6).drop()};
		const ir::Table t = b.build();
		Xdp x(t, {.local_only = false, .tests = form});
		ASSERT_TRUE(x.ok()) << x.error;
		const uint32_t dev = test_ifindex();
		ASSERT_TRUE(x.name_device(dev, "veth0"));
		EXPECT_EQ(x.run(c.frames.at("tcp_syn"), dev), drop);
		EXPECT_EQ(lines_of(x, capture_dialect(c)), want) << static_cast<int>(form);
	}
}

// A ring that is full loses records and counts them; what fits stays whole.
TEST(CodegenLog, AFullRingCountsWhatItLoses)
{
	const Capture c = read_capture();
	TableBuilder b;
	b.input = {R().log(4, 0, "flood ")};
	const ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	const size_t fits = maps::log_ring_bytes / (sizeof(maps::LogRecord) + 8);
	const size_t sent = fits + 100;
	for (size_t i = 0; i < sent; i++)
		x.run(c.frames.at("udp"), test_ifindex());
	auto lost = x.log->newly_lost();
	ASSERT_TRUE(lost.ok());
	const auto recs = x.log_records();
	EXPECT_GT(*lost, 0u);
	EXPECT_EQ(recs.size() + *lost, sent);
	for (const auto &r : recs)
		ASSERT_TRUE(service::format_log(r).ok());
	EXPECT_EQ(x.counters()[b.input_at[0]].packets, sent); // every packet still counted
}

} // namespace
} // namespace bpfilter::test
