// The request protocol's framing: whole requests read, malformed ones told apart, replies written.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "loader/bpf_dataplane.hpp"
#include "loader/fd.hpp"
#include "server/server.hpp"
#include "server/wire.hpp"

namespace bpfilter
{
namespace
{

using loader::Fd;

struct Pair {
	Fd a, b;
};

Pair socket_pair()
{
	int fds[2];
	EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	return Pair{Fd(fds[0]), Fd(fds[1])};
}

bpfilter_request header(uint16_t op, uint32_t data_len)
{
	bpfilter_request r = {};
	r.magic = BPFILTER_REQ_MAGIC;
	r.version = BPFILTER_PROTO_VERSION;
	r.op = op;
	r.optname = 64;
	r.optlen = data_len;
	r.data_len = data_len;
	r.netns_fd = -1;
	r.seq = 42;
	return r;
}

void send_bytes(int fd, const void *p, size_t n)
{
	ASSERT_EQ(wire::write_full(fd, p, n), 0);
}

TEST(ServerWire, ReadsAWholeRequest)
{
	auto p = socket_pair();
	auto h = header(BPFILTER_OP_SETSOCKOPT, 5);
	send_bytes(p.a.get(), &h, sizeof(h));
	send_bytes(p.a.get(), "hello", 5);
	auto r = server::read_request(p.b.get());
	ASSERT_EQ(r.kind, server::ReadResult::Kind::Ok);
	EXPECT_EQ(r.req.hdr.seq, 42u);
	EXPECT_EQ(std::string(r.req.data.begin(), r.req.data.end()), "hello");
}

TEST(ServerWire, EndOfStreamBeforeARequestIsEof)
{
	auto p = socket_pair();
	p.a.reset();
	EXPECT_EQ(server::read_request(p.b.get()).kind, server::ReadResult::Kind::Eof);
}

TEST(ServerWire, TruncatedHeaderOrDataIsBad)
{
	auto p = socket_pair();
	auto h = header(BPFILTER_OP_HEALTH, 0);
	send_bytes(p.a.get(), &h, 10);
	p.a.reset();
	auto r = server::read_request(p.b.get());
	EXPECT_EQ(r.kind, server::ReadResult::Kind::Bad);
	EXPECT_FALSE(r.can_reply);

	auto q = socket_pair();
	h = header(BPFILTER_OP_SETSOCKOPT, 100);
	send_bytes(q.a.get(), &h, sizeof(h));
	send_bytes(q.a.get(), "short", 5);
	q.a.reset();
	r = server::read_request(q.b.get());
	EXPECT_EQ(r.kind, server::ReadResult::Kind::Bad);
	EXPECT_EQ(r.error.errnum, EBADMSG);
}

// Found by fuzz_dispatch: a header announcing BPFILTER_MAX_DATA had the whole 256 MB
// allocated (and zeroed) before the stream was found to end.
TEST(ServerWire, TruncatedHugeDataIsRefusedWithoutItsMemory)
{
	auto p = socket_pair();
	auto h = header(BPFILTER_OP_SETSOCKOPT, BPFILTER_MAX_DATA);
	send_bytes(p.a.get(), &h, sizeof(h));
	send_bytes(p.a.get(), "short", 5);
	p.a.reset();
	struct rusage before = {}, after = {};
	ASSERT_EQ(getrusage(RUSAGE_SELF, &before), 0);
	auto r = server::read_request(p.b.get());
	ASSERT_EQ(getrusage(RUSAGE_SELF, &after), 0);
	EXPECT_EQ(r.kind, server::ReadResult::Kind::Bad);
	EXPECT_EQ(r.error.errnum, EBADMSG);
	EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB more at the peak";
}

TEST(ServerWire, BadMagicCannotBeAnswered)
{
	auto h = header(BPFILTER_OP_HEALTH, 0);
	h.magic = 0x12345678;
	auto r = server::check_header(h);
	EXPECT_EQ(r.kind, server::ReadResult::Kind::Bad);
	EXPECT_FALSE(r.can_reply);
}

TEST(ServerWire, OtherVersionAndHugeDataAreAnswered)
{
	auto h = header(BPFILTER_OP_HEALTH, 0);
	h.version = BPFILTER_PROTO_VERSION + 1;
	auto r = server::check_header(h);
	EXPECT_EQ(r.kind, server::ReadResult::Kind::Bad);
	EXPECT_TRUE(r.can_reply);
	EXPECT_EQ(r.error.errnum, EPROTONOSUPPORT);
	EXPECT_EQ(r.req.hdr.seq, 42u);

	h = header(BPFILTER_OP_SETSOCKOPT, BPFILTER_MAX_DATA + 1);
	r = server::check_header(h);
	EXPECT_EQ(r.kind, server::ReadResult::Kind::Bad);
	EXPECT_TRUE(r.can_reply);
	EXPECT_EQ(r.error.errnum, E2BIG);

	h = header(BPFILTER_OP_SETSOCKOPT, BPFILTER_MAX_DATA);
	EXPECT_EQ(server::check_header(h).kind, server::ReadResult::Kind::Ok);
}

TEST(ServerWire, ReplyCarriesStatusSeqAndData)
{
	auto p = socket_pair();
	service::Reply reply{-EAGAIN, {1, 2, 3}};
	ASSERT_TRUE(server::write_reply(p.a.get(), 9, reply).ok());
	bpfilter_reply rep;
	ASSERT_EQ(wire::read_full(p.b.get(), &rep, sizeof(rep)), static_cast<ssize_t>(sizeof(rep)));
	EXPECT_EQ(wire::check_reply_header(rep, 9, 3), 0);
	EXPECT_EQ(wire::check_reply_header(rep, 8, 3), -EBADMSG);
	EXPECT_EQ(wire::check_reply_header(rep, 9, 2), -E2BIG);
	EXPECT_EQ(rep.status, -EAGAIN);
	uint8_t data[3];
	ASSERT_EQ(wire::read_full(p.b.get(), data, 3), 3);
	EXPECT_EQ(data[2], 3);
}

TEST(ServerWire, WriteToAClosedPeerIsAnErrorNotASignal)
{
	auto p = socket_pair();
	p.b.reset();
	EXPECT_EQ(wire::write_full(p.a.get(), "x", 1), -EPIPE);
}

TEST(XdpMode, Names)
{
	EXPECT_EQ(*loader::parse_xdp_mode("auto"), loader::XdpMode::Auto);
	EXPECT_EQ(*loader::parse_xdp_mode("native"), loader::XdpMode::Native);
	EXPECT_EQ(*loader::parse_xdp_mode("generic"), loader::XdpMode::Generic);
	EXPECT_EQ(*loader::parse_xdp_mode("offload"), loader::XdpMode::Offload);
	auto bad = loader::parse_xdp_mode("fast");
	ASSERT_FALSE(bad.ok());
	EXPECT_EQ(bad.error().errnum, EINVAL);
	EXPECT_EQ(loader::to_string(loader::XdpMode::Generic), "generic");
}

// A LOG line for the module: one struct bpfilter_log and its text, in one write.
TEST(ServerWire, LogLineForTheModule)
{
	Pair p = socket_pair();
	const auto sink = server::channel_log_sink(p.a.get());
	sink(service::LogLine{6, "IN=eth0 OUT= SRC=10.0.0.2 "});
	sink(service::LogLine{3, std::string(BPFILTER_LOG_MAX + 10, 'x')});
	std::vector<uint8_t> got(2 * (sizeof(bpfilter_log) + BPFILTER_LOG_MAX));
	size_t have = 0;
	while (have < sizeof(bpfilter_log) * 2 + 26 + BPFILTER_LOG_MAX) {
		const ssize_t n = read(p.b.get(), got.data() + have, got.size() - have);
		ASSERT_GT(n, 0);
		have += static_cast<size_t>(n);
	}
	bpfilter_log h;
	std::memcpy(&h, got.data(), sizeof(h));
	EXPECT_EQ(h.magic, BPFILTER_LOG_MAGIC);
	EXPECT_EQ(h.level, 6);
	ASSERT_EQ(h.len, 26);
	EXPECT_EQ(std::string(reinterpret_cast<char *>(got.data()) + sizeof(h), h.len),
		  "IN=eth0 OUT= SRC=10.0.0.2 ");
	std::memcpy(&h, got.data() + sizeof(h) + 26, sizeof(h));
	EXPECT_EQ(h.level, 3);
	EXPECT_EQ(h.len, BPFILTER_LOG_MAX); // cut to what the module takes
}

} // namespace
} // namespace bpfilter
