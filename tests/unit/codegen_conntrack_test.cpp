// -m state and -m conntrack through BPF_PROG_TEST_RUN: the state the prologue computes for
// packets the kernel's connection table has no entry for (addresses from TEST-NET-2, which
// nothing here talks to), and for flows in bpfilter's own table (ICMP queries, other
// protocols), made by the packets the program lets through.
#include "codegen_harness.hpp"

#include <linux/netfilter/xt_conntrack.h>
#include <unistd.h>

#include <fstream>

namespace bpfilter::test
{
namespace
{

constexpr uint16_t st_invalid = XT_CONNTRACK_STATE_INVALID;
constexpr uint16_t st_new = XT_CONNTRACK_STATE_BIT(IP_CT_NEW);
constexpr uint16_t st_est = XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED);
constexpr uint16_t st_rel = XT_CONNTRACK_STATE_BIT(IP_CT_RELATED);

ir::ConntrackMatch state(uint16_t mask, bool inv = false)
{
	ir::ConntrackMatch m;
	m.match_flags = XT_CONNTRACK_STATE;
	m.state_mask = mask;
	if (inv)
		m.invert_flags = XT_CONNTRACK_STATE;
	return m;
}

// The rules: one counting rule per state, then two that read the entry's tuple and
// direction; every packet is let through.
struct Fixture {
	TableBuilder b;
	std::optional<Xdp> x;
	Fixture()
	{
		ir::ConntrackMatch tuple = state(st_new);
		tuple.match_flags |= XT_CONNTRACK_ORIGSRC | XT_CONNTRACK_REPLDST |
				     XT_CONNTRACK_PROTO | XT_CONNTRACK_ORIGDST_PORT;
		tuple.origsrc = {ip4("198.51.100.7"), 0xffffffffu};
		tuple.repldst = {ip4("198.51.100.0"), htonl(0xffffff00u)};
		tuple.l4proto = 6;
		tuple.origdst_port = {80, 80};
		ir::ConntrackMatch orig = state(st_invalid, true);
		orig.match_flags |= XT_CONNTRACK_DIRECTION; // --ctdir ORIGINAL
		b.input = {R().m(state(st_invalid)).cont(),
			   R().m(state(st_new)).cont(),
			   R().m(state(st_est)).cont(),
			   R().m(state(st_rel)).cont(),
			   R().m(tuple).cont(),
			   R().m(orig).cont()};
		x.emplace(b.build());
	}
};

// Every packet goes on to INPUT's policy, which lets it through.
std::vector<uint32_t> with_policy(const Fixture &f, std::vector<uint32_t> rules)
{
	rules.push_back(f.b.input_policy_at);
	return rules;
}

Packet from(Packet p, const char *src, const char *dst)
{
	p.saddr = ip4h(src);
	p.daddr = ip4h(dst);
	return p;
}

Packet icmp_query(uint8_t type, uint16_t id)
{
	Packet p = icmp_packet(type, 0);
	p.l4[4] = static_cast<uint8_t>(id >> 8);
	p.l4[5] = static_cast<uint8_t>(id);
	return p;
}

bool tcp_loose()
{
	std::ifstream in("/proc/sys/net/netfilter/nf_conntrack_tcp_loose");
	int v = 1;
	in >> v;
	return v != 0;
}

constexpr const char *a = "198.51.100.7", *z = "198.51.100.9";

TEST(CodegenConntrack, TcpAndUdpWithoutAnEntry)
{
	Fixture f;
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	const auto &at = f.b.input_at;
	// A SYN makes an entry: NEW, its tuple the packet's.
	x.expect(from(tcp_packet(40000, 80, 0x02), a, z), pass,
		 with_policy(f, {at[1], at[4], at[5]}));
	// An ACK is picked up mid-stream (nf_conntrack_tcp_loose), else INVALID.
	if (tcp_loose())
		x.expect(from(tcp_packet(40000, 81, 0x10), a, z), pass,
			 with_policy(f, {at[1], at[5]}));
	else
		x.expect(from(tcp_packet(40000, 81, 0x10), a, z), pass, with_policy(f, {at[0]}));
	// tcp_new()'s first column refuses SYN/ACK, FIN/ACK, RST; tcp_valid_flags FIN alone
	// and SYN/FIN; a data offset below 5 is a malformed header.
	for (uint8_t flags : {0x12, 0x11, 0x04, 0x14, 0x01, 0x03, 0x00})
		x.expect(from(tcp_packet(40000, 80, flags), a, z), pass, with_policy(f, {at[0]}));
	Packet short_doff = from(tcp_packet(40000, 80, 0x02), a, z);
	short_doff.l4[12] = 4 << 4;
	x.expect(short_doff, pass, with_policy(f, {at[0]}));
	// ECE, CWR and PSH do not count: a SYN with ECE and CWR is a SYN.
	x.expect(from(tcp_packet(40001, 80, 0xc2), a, z), pass,
		 with_policy(f, {at[1], at[4], at[5]}));
	// UDP: NEW, unless its length field runs past the datagram or is below 8.
	x.expect(from(udp_packet(5000, 53), a, z), pass, with_policy(f, {at[1], at[5]}));
	Packet long_len = from(udp_packet(5000, 53), a, z);
	long_len.l4[5] = 200;
	x.expect(long_len, pass, with_policy(f, {at[0]}));
	Packet short_len = from(udp_packet(5000, 53), a, z);
	short_len.l4[5] = 7;
	x.expect(short_len, pass, with_policy(f, {at[0]}));
}

// A UDP datagram in pieces: netfilter's conntrack sees it reassembled, and udp_error()
// checks the length field against the whole datagram (skb->len - dataoff), not the first
// piece. The first piece, judged before the datagram is whole, cannot know its length and
// passes that bound; the whole datagram is judged by it.
Packet udp_piece(uint16_t id, uint16_t offset, size_t payload, bool more, uint16_t udp_len)
{
	Packet p = from(udp_packet(5002, 53), a, z);
	p.id = id;
	p.frag = static_cast<uint16_t>((more ? 0x2000 : 0) | offset / 8);
	if (offset != 0) {
		p.l4.assign(payload, 0xab);
	} else {
		p.l4.resize(payload, 0xcd);
		p.l4[4] = static_cast<uint8_t>(udp_len >> 8);
		p.l4[5] = static_cast<uint8_t>(udp_len);
	}
	return p;
}

TEST(CodegenConntrack, UdpLengthAgainstTheReassembledDatagram)
{
	TableBuilder b;
	b.input = {R().m(state(st_invalid)).drop(), R().m(state(st_new)).cont()};
	Xdp x(b.build());
	ASSERT_TRUE(x.ok()) << x.error;
	// 64 + 40 bytes of UDP, its length field 104: NEW once whole, never INVALID.
	x.expect(udp_piece(21, 0, 64, true, 104), pass, {});
	EXPECT_EQ(x.run(udp_piece(21, 64, 40, false, 0).frame()), pass);
	for (uint32_t r : {b.input_at[1], b.input_policy_at}) {
		x.expected.at(r).packets++;
		x.expected.at(r).bytes += 20 + 104;
	}
	x.expect(from(udp_packet(5003, 53), a, z), pass, {b.input_at[1], b.input_policy_at});
	// The last piece arriving first, the first piece completing the datagram: the same.
	x.expect(udp_piece(22, 64, 40, false, 0), pass, {});
	EXPECT_EQ(x.run(udp_piece(22, 0, 64, true, 104).frame()), pass);
	for (uint32_t r : {b.input_at[1], b.input_policy_at}) {
		x.expected.at(r).packets++;
		x.expected.at(r).bytes += 20 + 104;
	}
	x.expect(from(udp_packet(5004, 53), a, z), pass, {b.input_at[1], b.input_policy_at});
	// A length field past the whole datagram (105 of 104): INVALID, dropped and counted
	// when whole; its first piece passes. One below 8: INVALID from the first piece on.
	x.expect(udp_piece(23, 0, 64, true, 105), pass, {});
	EXPECT_EQ(x.run(udp_piece(23, 64, 40, false, 0).frame()), drop);
	x.expected.at(b.input_at[0]).packets++;
	x.expected.at(b.input_at[0]).bytes += 20 + 104;
	x.expect(udp_piece(24, 0, 64, true, 7), drop, {});
}

TEST(CodegenConntrack, IcmpQueriesAndErrors)
{
	Fixture f;
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	const auto &at = f.b.input_at;
	const uint16_t id = static_cast<uint16_t>(getpid());
	// A reply to nothing, a type that cannot start a flow, a type above 18.
	x.expect(from(icmp_query(0, id), z, a), pass, with_policy(f, {at[0]}));
	x.expect(from(icmp_packet(9, 0), a, z), pass, with_policy(f, {at[0]}));
	x.expect(from(icmp_packet(40, 0), a, z), pass, with_policy(f, {at[0]}));
	// The request is NEW until its reply passed; the reply is ESTABLISHED (a reply).
	x.expect(from(icmp_query(8, id), a, z), pass, with_policy(f, {at[1], at[5]}));
	x.expect(from(icmp_query(8, id), a, z), pass, with_policy(f, {at[1], at[5]}));
	x.expect(from(icmp_query(0, id), z, a), pass, with_policy(f, {at[2]}));
	x.expect(from(icmp_query(8, id), a, z), pass, with_policy(f, {at[2], at[5]}));
	// Another id is another flow.
	x.expect(from(icmp_query(0, static_cast<uint16_t>(id + 1)), z, a), pass,
		 with_policy(f, {at[0]}));
	// An error quoting the request, sent back to its source: RELATED (in the reply
	// direction). To another destination, or quoting an unknown flow: INVALID.
	Packet err = from(icmp_packet(3, 1), z, a);
	std::vector<uint8_t> quoted = from(icmp_query(8, id), a, z).datagram();
	err.l4.insert(err.l4.end(), quoted.begin(), quoted.end());
	x.expect(err, pass, with_policy(f, {at[3]}));
	x.expect(from(err, z, "198.51.100.10"), pass, with_policy(f, {at[0]}));
	Packet unknown = from(icmp_packet(3, 3), z, a);
	quoted = from(udp_packet(5001, 53), a, z).datagram();
	unknown.l4.insert(unknown.l4.end(), quoted.begin(), quoted.end());
	x.expect(unknown, pass, with_policy(f, {at[0]}));
}

TEST(CodegenConntrack, OtherProtocolsByAddresses)
{
	Fixture f;
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	const auto &at = f.b.input_at;
	Packet gre = from(Packet{}, a, "198.51.100.11");
	gre.proto = 47;
	gre.l4 = std::vector<uint8_t>(8, 0);
	x.expect(gre, pass, with_policy(f, {at[1], at[5]}));
	x.expect(from(gre, "198.51.100.11", a), pass, with_policy(f, {at[2]}));
	x.expect(gre, pass, with_policy(f, {at[2], at[5]}));
	// UDP-Lite: udplite_error() calls INVALID a header cut short, a checksum coverage
	// below 8 or past the datagram, and a checksum of 0; a coverage of 0 is the whole
	// datagram. Otherwise a flow by addresses.
	auto udplite = [](uint16_t cscov, uint16_t check, size_t len) {
		Packet p = from(Packet{}, a, "198.51.100.12");
		p.proto = 136;
		p.l4 = std::vector<uint8_t>(len, 0);
		if (len >= 8) {
			p.l4[4] = static_cast<uint8_t>(cscov >> 8);
			p.l4[5] = static_cast<uint8_t>(cscov);
			p.l4[6] = static_cast<uint8_t>(check >> 8);
			p.l4[7] = static_cast<uint8_t>(check);
		}
		return p;
	};
	x.expect(udplite(0, 0, 4), pass, with_policy(f, {at[0]}));
	x.expect(udplite(7, 0x1234, 16), pass, with_policy(f, {at[0]}));
	x.expect(udplite(17, 0x1234, 16), pass, with_policy(f, {at[0]}));
	x.expect(udplite(16, 0, 16), pass, with_policy(f, {at[0]}));
	x.expect(udplite(16, 0x1234, 16), pass, with_policy(f, {at[1], at[5]}));
	x.expect(udplite(0, 0x1234, 16), pass, with_policy(f, {at[1], at[5]}));
}

TEST(CodegenConntrack, RefusedWithoutTheKernelsLayoutAndForCtexpire)
{
	TableBuilder b;
	b.input = {R().m(state(st_new)).accept()};
	auto code = codegen::compile(b.build(), local_only_off());
	ASSERT_FALSE(code.ok());
	EXPECT_EQ(code.error().errnum, EOPNOTSUPP);
	ir::ConntrackMatch expire = state(st_new);
	expire.match_flags |= XT_CONNTRACK_EXPIRES;
	b.input = {R().m(expire).accept()};
	auto st = codegen::check(b.build());
	ASSERT_FALSE(st.ok());
	EXPECT_NE(st.error().message.find("--ctexpire"), std::string::npos);
}

} // namespace
} // namespace bpfilter::test
