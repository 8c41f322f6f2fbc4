// Generated XDP programs: every match and its inversions, and hotdrop, against explicit verdicts
// and counters.
#include "codegen_harness.hpp"

#include <linux/netfilter/xt_iprange.h> // after <netinet/in.h>, which the harness brings

namespace bpfilter::test
{
namespace
{

using Tests = codegen::Options::Tests;

// Every test runs with both ways of testing (Cond::Mode), set here by the fixture.
Tests mode = Tests::Branch;

class CodegenMatch : public ::testing::TestWithParam<Tests>
{
protected:
	void SetUp() override { mode = GetParam(); }
};

// A table of INPUT rules with an ACCEPT policy, loaded.
struct Fixture {
	TableBuilder b;
	ir::Table t;
	std::optional<Xdp> x;
	explicit Fixture(std::vector<ir::Rule> rules, Kind policy = Kind::Accept)
	{
		b.input = std::move(rules);
		b.input_policy = policy;
		t = b.build();
		x.emplace(t, codegen::Options{.local_only = false, .tests = mode});
	}
	uint32_t rule(size_t i) const { return b.input_at.at(i); }
	uint32_t policy() const { return b.input_policy_at; }
};

Packet from(const char *src, const char *dst)
{
	Packet p = tcp_packet(1000, 80);
	p.saddr = ip4h(src);
	p.daddr = ip4h(dst);
	return p;
}

TEST_P(CodegenMatch, SourceAndDestinationWithMasks)
{
	Fixture f({R().src("192.168.1.0", 24).drop(), R().dst("10.9.0.0", 16).drop(),
		   R().src("172.16.0.5").dst("172.16.0.6").drop()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(from("192.168.1.77", "10.0.0.2"), drop, {f.rule(0)});
	f.x->expect(from("192.168.2.77", "10.0.0.2"), pass, {f.policy()});
	f.x->expect(from("1.2.3.4", "10.9.255.1"), drop, {f.rule(1)});
	f.x->expect(from("172.16.0.5", "172.16.0.6"), drop, {f.rule(2)});
	f.x->expect(from("172.16.0.5", "172.16.0.7"), pass, {f.policy()});
}

TEST_P(CodegenMatch, InvertedAddresses)
{
	Fixture f({R().src("10.0.0.0", 8, true).drop(), R().dst("10.0.0.2", 32, true).drop()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(from("11.0.0.1", "10.0.0.2"), drop, {f.rule(0)});
	f.x->expect(from("10.0.0.1", "10.0.0.3"), drop, {f.rule(1)});
	f.x->expect(from("10.0.0.1", "10.0.0.2"), pass, {f.policy()});
}

TEST_P(CodegenMatch, AddressBitsOutsideTheMaskNeverMatch)
{
	// The kernel does not mask the rule's address: (saddr & smsk) != src always.
	ir::Rule r = R().drop();
	r.ip.src = ip4("10.0.0.1");
	r.ip.src_mask = ip4("255.0.0.0");
	ir::Rule inv = r;
	inv.ip.invflags = IPT_INV_SRCIP;
	inv.target.kind = Kind::Accept;
	Fixture f({r, inv});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(from("10.0.0.1", "10.0.0.2"), pass, {f.rule(1)});
}

TEST_P(CodegenMatch, Protocol)
{
	Fixture f({R().proto(17).drop(), R().proto(6, true).t(Kind::Continue),
		   R().proto(300).drop(), R().proto(300, true).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(udp_packet(1, 2), drop, {f.rule(0)});
	f.x->expect(icmp_packet(8, 0), pass, {f.rule(1), f.rule(3)});
	f.x->expect(tcp_packet(1, 2), pass, {f.rule(3)});
}

TEST_P(CodegenMatch, InputInterface)
{
	Fixture f({R().in("eth0").drop(), R().in("veth+").drop(), R().in("lo", true).drop(),
		   R().in("lo").accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	// ifindex 1 is a real device (lo); its name is whatever the Ifnames map says.
	ASSERT_TRUE(x.name_device(1, "eth0"));
	x.expect(tcp_packet(1, 2), drop, {f.rule(0)});
	ASSERT_TRUE(x.name_device(1, "eth00"));
	x.expect(tcp_packet(1, 2), drop, {f.rule(2)});
	ASSERT_TRUE(x.name_device(1, "veth-long-name1"));
	x.expect(tcp_packet(1, 2), drop, {f.rule(1)});
	ASSERT_TRUE(x.name_device(1, "lo"));
	x.expect(tcp_packet(1, 2), pass, {f.rule(3)});
	// A device the loader has not named: the all-zero name.
	ASSERT_TRUE(loader::delete_device(x.ifnames.get(), 1).ok());
	x.expect(tcp_packet(1, 2), drop, {f.rule(2)});
}

TEST_P(CodegenMatch, OutputInterfaceIsKnownAtInput)
{
	// No output device at LOCAL_IN: -o eth0 never matches, ! -o eth0 always does.
	Fixture f({R().out("eth0").drop(), R().out("eth0", true).t(Kind::Continue),
		   R().out("+").t(Kind::Continue), R().out("+", true).drop()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(tcp_packet(1, 2), pass, {f.rule(1), f.rule(2), f.policy()});
}

TEST_P(CodegenMatch, TcpPorts)
{
	Fixture f({R().proto(6).m(tcp({}, {22, 22})).drop(),
		   R().proto(6).m(tcp({1024, 65535}, {8000, 8080})).drop(),
		   R().proto(6).m(tcp({}, {0, 1023}, XT_TCP_INV_DSTPT)).drop(),
		   R().proto(6).m(tcp({7, 7}, {}, XT_TCP_INV_SRCPT)).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(tcp_packet(40000, 22), drop, {f.rule(0)});
	f.x->expect(tcp_packet(40000, 8080), drop, {f.rule(1)});
	f.x->expect(tcp_packet(1023, 8080), drop, {f.rule(2)});
	f.x->expect(tcp_packet(1023, 80), pass, {f.rule(3)});
	f.x->expect(tcp_packet(7, 80), pass, {f.policy()});
	// -m tcp on UDP never reaches its match: the rule's -p tcp fails first.
	f.x->expect(udp_packet(40000, 22), pass, {f.policy()});
}

TEST_P(CodegenMatch, TcpFlags)
{
	ir::TcpMatch syn = tcp();
	syn.flg_mask = 0x17; // --syn: SYN,RST,ACK,FIN / SYN
	syn.flg_cmp = 0x02;
	ir::TcpMatch not_syn = syn;
	not_syn.invflags = XT_TCP_INV_FLAGS;
	ir::TcpMatch none = tcp(); // mask 0, cmp 0: always true
	none.flg_mask = 0;
	Fixture f({R().proto(6).m(syn).drop(), R().proto(6).m(not_syn).t(Kind::Continue),
		   R().proto(6).m(none).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(tcp_packet(1, 2, 0x02), drop, {f.rule(0)});
	f.x->expect(tcp_packet(1, 2, 0x12), pass, {f.rule(1), f.rule(2)});
	f.x->expect(tcp_packet(1, 2, 0x02 | 0x08 | 0x20), drop, {f.rule(0)}); // PSH, URG ignored
}

TEST_P(CodegenMatch, TcpOption)
{
	ir::TcpMatch mss = tcp();
	mss.option = 2;
	ir::TcpMatch no_ts = tcp();
	no_ts.option = 8;
	no_ts.invflags = XT_TCP_INV_OPTION;
	ir::TcpMatch high = tcp();
	high.option = 253;
	Fixture f({R().proto(6).m(mss).drop(), R().proto(6).m(no_ts).t(Kind::Continue),
		   R().proto(6).m(high).drop()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	Packet p = tcp_packet(1, 2);
	x.expect(p, pass, {f.rule(1), f.policy()});
	p.l4 = tcp_hdr(1, 2, 0x02, {2, 4, 5, 0xb4}); // MSS
	x.expect(p, drop, {f.rule(0)});
	p.l4 = tcp_hdr(1, 2, 0x02, {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}); // NOP NOP TS
	x.expect(p, pass, {f.policy()});
	p.l4 = tcp_hdr(1, 2, 0x02, {1, 253, 4, 0, 0}); // NOP, experimental kind 253
	x.expect(p, drop, {f.rule(1), f.rule(2)});
	// The kernel's walk jumps by each option's length: the 2 inside TS's value is
	// skipped, and a length of 0 moves one byte.
	p.l4 = tcp_hdr(1, 2, 0x02, {8, 10, 2, 2, 2, 2, 2, 2, 2, 2});
	x.expect(p, pass, {f.policy()});
	p.l4 = tcp_hdr(1, 2, 0x02, {30, 0, 2, 4});
	x.expect(p, drop, {f.rule(0)});
	// EOL does not stop the walk.
	p.l4 = tcp_hdr(1, 2, 0x02, {0, 2, 4, 0});
	x.expect(p, drop, {f.rule(0)});
	// An option kind that is the last byte is still seen.
	p.l4 = tcp_hdr(1, 2, 0x02, {1, 1, 1, 2});
	x.expect(p, drop, {f.rule(0)});
}

TEST_P(CodegenMatch, TcpHotdrop)
{
	ir::TcpMatch mss = tcp();
	mss.option = 2;
	Fixture f({R().proto(6).m(tcp({}, {80, 80})).t(Kind::Continue),
		   R().proto(6).m(mss).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	Packet p = tcp_packet(1, 80);
	p.l4.resize(19); // no whole TCP header: dropped, nothing counted
	x.expect(p, drop, {});
	// doff < 5 with --tcp-option: the second rule drops the packet without counting.
	p.l4 = tcp_hdr(1, 80, 0x02, {}, 4);
	x.expect(p, drop, {f.rule(0)});
	// Options past the end of the datagram.
	p.l4 = tcp_hdr(1, 80, 0x02, {}, 6);
	x.expect(p, drop, {f.rule(0)});
	// ... but a rule without --tcp-option is happy with it.
	p.l4 = tcp_hdr(1, 81, 0x02, {}, 15);
	x.expect(p, drop, {});
	Fixture g({R().proto(6).m(tcp({}, {80, 80})).accept()});
	ASSERT_TRUE(g.x->ok()) << g.x->error;
	g.x->expect(p, pass, {g.policy()});
}

TEST_P(CodegenMatch, Udp)
{
	ir::UdpMatch dns;
	dns.dport = {53, 53};
	ir::UdpMatch high;
	high.sport = {0, 1023};
	high.invflags = XT_UDP_INV_SRCPT;
	Fixture f({R().proto(17).m(dns).drop(), R().proto(17).m(high).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	x.expect(udp_packet(5000, 53), drop, {f.rule(0)});
	x.expect(udp_packet(5000, 54), pass, {f.rule(1)});
	x.expect(udp_packet(500, 54), pass, {f.policy()});
	Packet p = udp_packet(5000, 53);
	p.l4.resize(7);
	x.expect(p, drop, {});
}

TEST_P(CodegenMatch, Icmp)
{
	ir::IcmpMatch echo;
	echo.type = 8;
	ir::IcmpMatch unreach;
	unreach.type = 3;
	unreach.code_min = 1;
	unreach.code_max = 3;
	ir::IcmpMatch not_reply;
	not_reply.type = 0;
	not_reply.invert = true;
	ir::IcmpMatch any;
	any.type = 0xff;
	Fixture f({R().proto(1).m(echo).drop(), R().proto(1).m(unreach).drop(),
		   R().proto(1).m(not_reply).t(Kind::Continue), R().proto(1).m(any).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	x.expect(icmp_packet(8, 0), drop, {f.rule(0)});
	x.expect(icmp_packet(8, 5), drop, {f.rule(0)});
	x.expect(icmp_packet(3, 2), drop, {f.rule(1)});
	x.expect(icmp_packet(3, 4), pass, {f.rule(2), f.rule(3)});
	x.expect(icmp_packet(0, 0), pass, {f.rule(3)});
	Packet p = icmp_packet(0, 0);
	p.l4.resize(7); // icmphdr is 8 bytes, even for `any`
	x.expect(p, drop, {});
}

TEST_P(CodegenMatch, IcmpAnyInvertedNeverMatchesButStillNeedsItsHeader)
{
	ir::IcmpMatch none;
	none.type = 0xff;
	none.invert = true;
	Fixture f({R().proto(1).m(none).drop()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	f.x->expect(icmp_packet(8, 0), pass, {f.policy()});
	Packet p = icmp_packet(8, 0);
	p.l4.resize(4);
	f.x->expect(p, drop, {});
}

TEST_P(CodegenMatch, Multiport)
{
	using Dir = ir::MultiportMatch::Dir;
	ir::MultiportMatch web{Dir::Destination, {{80, 80}, {443, 443}, {8000, 8999}}, false};
	ir::MultiportMatch src{Dir::Source, {{53, 53}, {123, 123}}, false};
	ir::MultiportMatch either{Dir::Either, {{22, 22}}, false};
	ir::MultiportMatch not_low{Dir::Destination, {{0, 1023}}, true};
	Fixture f({R().proto(6).m(web).drop(), R().proto(17).m(src).drop(),
		   R().proto(6).m(either).drop(), R().proto(17).m(not_low).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	x.expect(tcp_packet(1, 443), drop, {f.rule(0)});
	x.expect(tcp_packet(1, 8500), drop, {f.rule(0)});
	x.expect(tcp_packet(80, 9000), pass, {f.policy()});
	x.expect(udp_packet(123, 9), drop, {f.rule(1)});
	x.expect(tcp_packet(22, 9000), drop, {f.rule(2)});
	x.expect(tcp_packet(9000, 22), drop, {f.rule(2)});
	x.expect(udp_packet(9, 5000), pass, {f.rule(3)});
	x.expect(udp_packet(9, 500), pass, {f.policy()});
	Packet p = tcp_packet(1, 443);
	p.l4.resize(3);
	x.expect(p, drop, {});
}

TEST_P(CodegenMatch, Iprange)
{
	ir::IprangeMatch s;
	s.flags = IPRANGE_SRC;
	s.src_min = ip4h("10.0.0.10");
	s.src_max = ip4h("10.0.0.20");
	ir::IprangeMatch d;
	d.flags = IPRANGE_DST | IPRANGE_DST_INV;
	d.dst_min = ip4h("10.0.0.0");
	d.dst_max = ip4h("10.255.255.255");
	ir::IprangeMatch both;
	both.flags = IPRANGE_SRC | IPRANGE_SRC_INV | IPRANGE_DST;
	both.src_min = ip4h("128.0.0.0");
	both.src_max = ip4h("255.255.255.255");
	both.dst_min = ip4h("10.0.0.2");
	both.dst_max = ip4h("10.0.0.2");
	Fixture f({R().m(s).drop(), R().m(d).drop(), R().m(both).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	auto &x = *f.x;
	x.expect(from("10.0.0.15", "10.0.0.2"), drop, {f.rule(0)});
	x.expect(from("10.0.0.21", "11.0.0.2"), drop, {f.rule(1)});
	x.expect(from("10.0.0.21", "10.0.0.2"), pass, {f.rule(2)});
	x.expect(from("200.0.0.1", "10.0.0.2"), pass, {f.policy()});
}

TEST_P(CodegenMatch, MatchesInOrderDecideHotdrop)
{
	// The first match fails on the ports, so the second never looks at the options
	// and never hotdrops; the other way round it would.
	ir::TcpMatch mss = tcp();
	mss.option = 2;
	Fixture f({R().proto(6).m(tcp({}, {80, 80})).m(mss).accept(),
		   R().proto(6).m(mss).m(tcp({}, {80, 80})).accept()});
	ASSERT_TRUE(f.x->ok()) << f.x->error;
	Packet p = tcp_packet(1, 81);
	p.l4 = tcp_hdr(1, 81, 0x02, {}, 4);
	f.x->expect(p, drop, {});
	Fixture g({R().proto(6).m(tcp({}, {80, 80})).m(mss).accept()});
	ASSERT_TRUE(g.x->ok()) << g.x->error;
	g.x->expect(p, pass, {g.policy()});
}

INSTANTIATE_TEST_SUITE_P(Modes, CodegenMatch,
			 ::testing::Values(Tests::Branch, Tests::FirstBranch, Tests::Accumulate),
			 [](const auto &info) {
				 return info.param == Tests::Branch	   ? "Branch"
					: info.param == Tests::FirstBranch ? "FirstBranch"
									   : "Accumulate";
			 });

} // namespace
} // namespace bpfilter::test
