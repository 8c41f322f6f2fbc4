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

TEST(CodegenPrologue, FragmentsFirstJudgedOthersPass)
{
	Xdp x(drop_all());
	ASSERT_TRUE(x.ok()) << x.error;
	Packet first = tcp_packet(1, 2);
	first.frag = 0x2000; // MF, offset 0
	x.expect(first, drop, {0});
	Packet middle = udp_packet(1, 2);
	middle.frag = 0x2000 | 185;
	x.expect(middle, pass, {});
	Packet last = udp_packet(1, 2);
	last.frag = 1; // offset 8 bytes, no MF
	x.expect(last, pass, {});
	Packet df = tcp_packet(1, 2);
	df.frag = 0x4000; // DF alone is not a fragment
	x.expect(df, drop, {0});
}

TEST(CodegenPrologue, FragmentFlagNeverMatchesAtInput)
{
	TableBuilder b;
	b.input = {R().frag().drop(), R().frag(true).accept()};
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	Packet first = tcp_packet(1, 2);
	first.frag = 0x2000;
	x.expect(first, pass, {b.input_at[1]});
	x.expect(tcp_packet(1, 2), pass, {b.input_at[1]});
}

} // namespace
} // namespace bpfilter::test
