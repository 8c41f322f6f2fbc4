// The LOG line formatter against the lines the kernel itself printed for the same frames.
#include <gtest/gtest.h>
#include <linux/netfilter/xt_LOG.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/maps.hpp"
#include "nf_log_capture.hpp"
#include "service/nf_log.hpp"

namespace bpfilter
{
namespace
{

namespace maps = codegen::maps;
using test::Capture;
using test::read_capture;

void set_name(char (&dst)[16], const char *name)
{
	std::memset(dst, 0, sizeof(dst));
	std::memcpy(dst, name, std::min(std::strlen(name), sizeof(dst) - 1));
}

// The record a LOG rule writes for a frame received on veth0 (02:00:00:00:00:01, an
// Ethernet device): what the prologue copies and the rule adds.
std::vector<uint8_t> record(const std::vector<uint8_t> &frame, uint8_t level, uint8_t flags,
			    const char *out = "", bool forward = false)
{
	maps::LogRecord r{};
	r.level = level;
	r.flags = flags;
	const uint32_t tot = static_cast<uint32_t>(frame[14 + 2] << 8 | frame[14 + 3]);
	r.len = tot;
	set_name(r.in, "veth0");
	set_name(r.out, out);
	r.snap.l2len = 14;
	r.snap.hh_len = 14;
	r.snap.flags = maps::log_snap_ingress | maps::log_snap_ether |
		       (forward ? maps::log_snap_forward : 0);
	const size_t n = std::min<size_t>(14 + tot, maps::log_snap_bytes);
	std::memcpy(r.snap.bytes, frame.data(), std::min(n, frame.size()));
	r.snap.caplen = static_cast<uint16_t>(std::min(n, frame.size()));
	std::vector<uint8_t> out_bytes(sizeof(r));
	std::memcpy(out_bytes.data(), &r, sizeof(r));
	return out_bytes;
}

TEST(NfLog, LinesAsTheKernelPrintsThem)
{
	const Capture c = read_capture();
	ASSERT_GE(c.lines.size(), 50u) << "tests/unit/data/nf_log_kernel.txt not found or short";
	const service::LogDialect dialect = test::capture_dialect(c);
	for (const Capture::Line &l : c.lines) {
		std::vector<uint8_t> rec;
		const auto &frame = c.frames.at(l.frame);
		if (l.rule == "p0") {
			rec = record(frame, 4, 0);
		} else if (l.rule == "p1") {
			rec = record(frame, 6,
				     XT_LOG_TCPSEQ | XT_LOG_TCPOPT | XT_LOG_IPOPT | XT_LOG_UID);
		} else if (l.rule == "p2") {
			rec = record(frame, 7, XT_LOG_MACDECODE);
		} else {
			ASSERT_EQ(l.rule, "f1");
			rec = record(frame, 4, XT_LOG_TCPSEQ | XT_LOG_TCPOPT | XT_LOG_IPOPT,
				     "veth2", true);
		}
		if (l.frame == "frag_3") {
			// INPUT logs the datagram its three pieces make: the first piece's
			// headers, the whole length (the prologue keeps the first piece's copy).
			rec = record(c.frames.at("frag_1"), 4, 0);
			auto *r = reinterpret_cast<maps::LogRecord *>(rec.data());
			if (l.rule == "p1") {
				r->level = 6;
				r->flags =
					XT_LOG_TCPSEQ | XT_LOG_TCPOPT | XT_LOG_IPOPT | XT_LOG_UID;
			}
			if (l.rule == "p2") {
				r->level = 7;
				r->flags = XT_LOG_MACDECODE;
			}
			r->len = 52;
			r->snap.reassembled = 1;
		}
		auto got = service::format_log(rec, dialect);
		ASSERT_TRUE(got.ok()) << got.error().message;
		EXPECT_EQ(got->text, l.text) << l.frame << " " << l.rule;
		EXPECT_EQ(got->level, l.rule == "p1" ? 6 : l.rule == "p2" ? 7 : 4);
	}
}

TEST(NfLog, PrefixLevelAndMark)
{
	const Capture c = read_capture();
	ASSERT_TRUE(c.frames.count("udp"));
	auto rec = record(c.frames.at("udp"), 3, 0);
	auto *r = reinterpret_cast<maps::LogRecord *>(rec.data());
	std::memcpy(r->prefix, "DROP: ", 7);
	r->snap.mark = 0x2a;
	auto got = service::format_log(rec);
	ASSERT_TRUE(got.ok());
	EXPECT_EQ(got->level, 3);
	EXPECT_EQ(got->text.rfind("DROP: IN=veth0 OUT= MAC=", 0), 0u) << got->text;
	EXPECT_NE(got->text.find(" LEN=13 MARK=0x2a "), std::string::npos) << got->text;
}

// --log-uid: UID= GID= after the transport header, before MARK=, when OUTPUT's program read
// the socket's credentials (has_uid); nothing without the flag or without credentials.
TEST(NfLog, UidAndGidOfTheSocket)
{
	const Capture c = read_capture();
	auto rec = record(c.frames.at("udp"), 4, XT_LOG_UID);
	auto *r = reinterpret_cast<maps::LogRecord *>(rec.data());
	r->snap.mark = 0x2a;
	r->has_uid = 1;
	r->uid = 1234;
	r->gid = 4321;
	auto got = service::format_log(rec);
	ASSERT_TRUE(got.ok());
	EXPECT_NE(got->text.find(" LEN=13 UID=1234 GID=4321 MARK=0x2a "), std::string::npos)
		<< got->text;
	r->has_uid = 0;
	got = service::format_log(rec);
	ASSERT_TRUE(got.ok());
	EXPECT_EQ(got->text.find("UID="), std::string::npos) << got->text;
	r->has_uid = 1;
	r->flags = 0;
	got = service::format_log(rec);
	ASSERT_TRUE(got.ok());
	EXPECT_EQ(got->text.find("UID="), std::string::npos) << got->text;
}

TEST(NfLog, OutputHasNoMac)
{
	const Capture c = read_capture();
	auto rec = record(c.frames.at("udp"), 4, XT_LOG_MACDECODE);
	auto *r = reinterpret_cast<maps::LogRecord *>(rec.data());
	// tc egress copies from the IP header and has no input device.
	std::memmove(r->snap.bytes, r->snap.bytes + 14, sizeof(r->snap.bytes) - 14);
	r->snap.caplen = static_cast<uint16_t>(r->snap.caplen - 14);
	r->snap.l2len = 0;
	r->snap.flags = 0;
	std::memset(r->in, 0, sizeof(r->in));
	set_name(r->out, "veth0");
	auto got = service::format_log(rec);
	ASSERT_TRUE(got.ok());
	EXPECT_EQ(got->text, "IN= OUT=veth0 SRC=10.0.0.2 DST=10.0.0.1 LEN=33 TOS=0x00 PREC=0x00 "
			     "TTL=64 ID=2989 DF PROTO=UDP SPT=5000 DPT=5353 LEN=13 ");
}

TEST(NfLog, HeadersPastTheCopyAreSaidToBe)
{
	// A datagram whose headers run past the bytes copied: not printed as the kernel
	// would print a datagram that short.
	const Capture c = read_capture();
	auto rec = record(c.frames.at("tcp_syn"), 4, XT_LOG_TCPOPT);
	auto *r = reinterpret_cast<maps::LogRecord *>(rec.data());
	r->snap.caplen = 14 + 20 + 24; // the options cut
	auto got = service::format_log(rec);
	ASSERT_TRUE(got.ok());
	EXPECT_EQ(got->text.find("OPT (TRUNCATED)"), std::string::npos) << got->text;
	EXPECT_NE(got->text.find("[bpfilter: the rest is past the 168 bytes"), std::string::npos)
		<< got->text;
}

TEST(NfLog, RefusesAShortRecord)
{
	std::vector<uint8_t> rec(sizeof(maps::LogRecord) - 1);
	EXPECT_EQ(service::format_log(rec).error().errnum, EINVAL);
}

} // namespace
} // namespace bpfilter
