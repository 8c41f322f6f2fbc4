// Generated XDP programs: what reaches the rules (ethertype, malformed IPv4, fragments) and byte
// counting.
#include "codegen_harness.hpp"

namespace bpfilter::test
{
namespace
{

// INPUT: -j DROP for everything, so "judged" shows as XDP_DROP and a count on rule 0.
ir::Table drop_all()
{
	TableBuilder b;
	b.input = {R().drop()};
	return b.build();
}

TEST(CodegenPrologue, EmptyTableAcceptsAndCountsThePolicy)
{
	TableBuilder b;
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1000, 80), pass, {b.input_policy_at});
	x.expect(udp_packet(53, 53), pass, {b.input_policy_at});
}

TEST(CodegenPrologue, DropPolicy)
{
	TableBuilder b;
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(tcp_packet(1000, 80), drop, {b.input_policy_at});
}

TEST(CodegenPrologue, NotIpv4PassesUncounted)
{
	Xdp x(drop_all());
	ASSERT_TRUE(x.ok()) << x.error;
	Packet arp = tcp_packet(1, 2);
	arp.ethertype = 0x0806;
	x.expect(arp, pass, {});
	Packet v6 = tcp_packet(1, 2);
	v6.ethertype = 0x86dd;
	x.expect(v6, pass, {});
	// Shorter than Ethernet + an IPv4 header.
	EXPECT_EQ(x.run(std::vector<uint8_t>(14 + 19, 0)), pass);
	Packet ok = tcp_packet(1, 2);
	x.expect(ok, drop, {0});
}

TEST(CodegenPrologue, MalformedIpv4PassesUncounted)
{
	Xdp x(drop_all());
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = tcp_packet(1, 2);
	p.ver_ihl = 0x65; // version 6
	x.expect(p, pass, {});
	p.ver_ihl = 0x44; // ihl 4
	x.expect(p, pass, {});
	p = tcp_packet(1, 2);
	p.tot_len = 19; // shorter than its header
	x.expect(p, pass, {});
	p.tot_len = p.true_len() + 1; // longer than the frame
	x.expect(p, pass, {});
	p = tcp_packet(1, 2);
	p.cut = 1;
	x.expect(p, pass, {});
}

TEST(CodegenPrologue, BytesAreTheDatagramNotTheFrame)
{
	Xdp x(drop_all());
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = tcp_packet(1, 2);
	p.pad = 18; // Ethernet padding after the datagram
	x.expect(p, drop, {0});
	p = tcp_packet(1, 2);
	p.tot_len = 30; // the datagram ends inside the TCP header: ip_rcv trims the rest
	x.expect(p, drop, {0});
	ASSERT_EQ(x.counters()[0].bytes, 40u + 30u);
}

TEST(CodegenPrologue, IpOptionsMoveTheTransportHeader)
{
	TableBuilder b;
	b.input = {R().proto(6).m(tcp({}, {80, 80})).drop()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet p = tcp_packet(1000, 80);
	p.ip_options = {1, 1, 1, 0}; // NOP NOP NOP EOL
	x.expect(p, drop, {0});
	p = tcp_packet(1000, 81);
	p.ip_options = std::vector<uint8_t>(40, 1);
	x.expect(p, pass, {b.input_policy_at});
}

// A fragment of a datagram: `offset` in bytes (a multiple of 8), `payload` bytes after the
// IP header, MF unless it is the last piece.
Packet piece(uint16_t id, uint16_t offset, size_t payload, bool more)
{
	Packet p = tcp_packet(1000, 80);
	p.id = id;
	p.frag = static_cast<uint16_t>((more ? 0x2000 : 0) | offset / 8);
	if (offset != 0)
		p.l4.assign(payload, 0xab);
	else
		p.l4.resize(payload);
	return p;
}

TEST(CodegenPrologue, FragmentsJudgedFirstCountedWhole)
{
	Xdp x(drop_all());
	ASSERT_TRUE(x.ok()) << x.error;
	// The first fragment is judged (dropped) but not counted: netfilter has seen nothing yet.
	x.expect(piece(1, 0, 24, true), drop, {});
	x.expect(piece(1, 24, 16, true), pass, {}); // a middle piece passes untouched
	// The last piece makes it whole: judged on the first fragment's headers, and the
	// datagram counted once with its length, 20 + 24 + 16 + 8.
	Packet last = piece(1, 40, 8, false);
	EXPECT_EQ(x.run(last.frame()), drop);
	x.expected.at(0).packets++;
	x.expected.at(0).bytes += 68;
	x.expect(tcp_packet(1, 2), drop, {0}); // and an unfragmented packet as always

	// Out of order: the first fragment completes it.
	x.expect(piece(2, 16, 8, false), pass, {});
	EXPECT_EQ(x.run(piece(2, 0, 16, true).frame()), drop);
	x.expected.at(0).packets++;
	x.expected.at(0).bytes += 44;
	x.expect(tcp_packet(1, 2), drop, {0});

	// Never whole (a piece missing, or no first fragment): never counted.
	x.expect(piece(3, 0, 24, true), drop, {});
	x.expect(piece(3, 32, 8, false), pass, {});
	x.expect(piece(4, 8, 8, false), pass, {});
	x.expect(piece(4, 16, 8, false), pass, {});
	Packet df = tcp_packet(1, 2);
	df.frag = 0x4000; // DF alone is not a fragment
	x.expect(df, drop, {0});
}

TEST(CodegenPrologue, FragmentsAcceptedAndCountedOnTheirRule)
{
	TableBuilder b;
	ir::TcpMatch http;
	http.dport = {80, 80};
	b.input = {R().proto(6).m(http).accept(), R().drop()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(piece(7, 0, 24, true), pass, {});
	EXPECT_EQ(x.run(piece(7, 24, 100, false).frame()), pass);
	x.expected.at(b.input_at[0]).packets++;
	x.expected.at(b.input_at[0]).bytes += 144;
	x.expect(tcp_packet(1, 81), drop, {b.input_at[1]});
}

// RFC 1858's tiny fragment: the first piece cuts the TCP header. Judged on what it holds,
// the tcp match drops it and the datagram (Documentation/supported.md says so).
TEST(CodegenPrologue, TinyFirstFragmentDroppedByTheTransportMatch)
{
	TableBuilder b;
	ir::TcpMatch http;
	http.dport = {80, 80};
	b.input = {R().proto(6).m(http).accept()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(piece(5, 0, 8, true), drop, {});
	x.expect(piece(5, 8, 40, false), drop, {});
	// Whole in its first piece: judged and counted as usual.
	x.expect(piece(6, 0, 24, true), pass, {});
	EXPECT_EQ(x.run(piece(6, 24, 40, false).frame()), pass);
	x.expected.at(b.input_at[0]).packets++;
	x.expected.at(b.input_at[0]).bytes += 84;
	x.expect(tcp_packet(1, 80), pass, {b.input_at[0]});
}

TEST(CodegenPrologue, FragmentFlagNeverMatchesAtInput)
{
	TableBuilder b;
	b.input = {R().frag().drop(), R().frag(true).accept()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	x.expect(piece(1, 0, 24, true), pass, {});
	EXPECT_EQ(x.run(piece(1, 24, 8, false).frame()), pass);
	x.expected.at(b.input_at[1]).packets++;
	x.expected.at(b.input_at[1]).bytes += 52;
	x.expect(tcp_packet(1, 2), pass, {b.input_at[1]});
}

} // namespace
} // namespace bpfilter::test
