// The reference evaluator against ipt_do_table's semantics, on tables parsed from blobs.
#include <arpa/inet.h>
#include <linux/netfilter/xt_connlimit.h>

#include <gtest/gtest.h>

#include "abi/table.hpp"
#include "abi_builder.hpp"
#include "ir/eval.hpp"

namespace bpfilter
{
namespace
{

using test::Builder;
using test::Bytes;
using test::Ip;
using test::Rule;
using test::Target;
using K = ir::Target::Kind;

// An IPv4 datagram: 20-byte header, then `l4` as the payload.
Bytes datagram(uint8_t proto, Bytes l4, uint32_t src = 0x0a000002, uint32_t dst = 0x0a000001,
	       uint16_t frag = 0)
{
	Bytes p(20, 0);
	p[0] = 0x45;
	const uint16_t len = static_cast<uint16_t>(20 + l4.size());
	p[2] = len >> 8, p[3] = len & 0xff;
	p[6] = frag >> 8, p[7] = frag & 0xff;
	p[8] = 64;
	p[9] = proto;
	for (int i = 0; i < 4; i++) {
		p[12 + i] = static_cast<uint8_t>(src >> (24 - 8 * i));
		p[16 + i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
	}
	p.insert(p.end(), l4.begin(), l4.end());
	return p;
}

Bytes tcp_seg(uint16_t sport, uint16_t dport, uint8_t flags = 0x02, Bytes options = {})
{
	Bytes t(20, 0);
	t[0] = sport >> 8, t[1] = sport & 0xff, t[2] = dport >> 8, t[3] = dport & 0xff;
	t[12] = static_cast<uint8_t>(((20 + options.size()) / 4) << 4);
	t[13] = flags;
	t.insert(t.end(), options.begin(), options.end());
	return t;
}

Bytes udp_dgram(uint16_t sport, uint16_t dport)
{
	return Bytes{static_cast<uint8_t>(sport >> 8),
		     static_cast<uint8_t>(sport),
		     static_cast<uint8_t>(dport >> 8),
		     static_cast<uint8_t>(dport),
		     0,
		     8,
		     0,
		     0};
}

Bytes icmp_msg(uint8_t type, uint8_t code)
{
	return Bytes{type, code, 0, 0, 0, 0, 0, 0};
}

ir::Table table_of(const Builder &b)
{
	auto r = abi::parse_replace(b.replace());
	EXPECT_TRUE(r.ok()) << r.error().message;
	auto t = abi::to_ir(r->table);
	EXPECT_TRUE(t.ok());
	return *t;
}

std::array<uint8_t, 16> dev(const std::string &n)
{
	std::array<uint8_t, 16> d{};
	std::memcpy(d.data(), n.data(), n.size());
	return d;
}

ir::EvalResult run(const ir::Table &t, const Bytes &pkt, ir::Hook hook = ir::Hook::LocalIn,
		   const std::string &in = "eth0", const std::string &out = "")
{
	ir::PacketView v{pkt, dev(in), dev(out), {}};
	return ir::evaluate(t, hook, v);
}

// Index of the rule at a chain's start, per the builder's layout.
uint32_t index_at(const Builder &b, uint32_t off)
{
	const auto l = b.layout();
	return static_cast<uint32_t>(std::find(l.offsets.begin(), l.offsets.end(), off) -
				     l.offsets.begin());
}

using V = std::vector<uint32_t>;

TEST(Eval, InitialTableAcceptsAndCountsThePolicy)
{
	auto t = abi::to_ir(abi::initial_filter_table());
	ASSERT_TRUE(t.ok());
	const Bytes p = datagram(IPPROTO_UDP, udp_dgram(1, 2));
	auto r = run(*t, p);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{0});
	EXPECT_EQ(run(*t, p, ir::Hook::Forward).counted_rules, V{1});
	EXPECT_EQ(run(*t, p, ir::Hook::LocalOut).counted_rules, V{2});
}

TEST(Eval, FirstMatchingRuleDecides)
{
	Builder b;
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_TCP), {test::tcp(0, 0xffff, 22, 22)}, Target::accept()});
	b.rule("INPUT", Rule{Ip().src(0x0a000000, 24), {}, Target::drop()});
	b.policy("INPUT", abi::verdict_accept);
	const auto t = table_of(b);
	auto r = run(t, datagram(IPPROTO_TCP, tcp_seg(1000, 22)));
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{0});
	r = run(t, datagram(IPPROTO_TCP, tcp_seg(1000, 23)));
	EXPECT_FALSE(r.accept);
	EXPECT_EQ(r.counted_rules, V{1});
	r = run(t, datagram(IPPROTO_TCP, tcp_seg(1000, 23), 0x0b000002));
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{2});
}

TEST(Eval, JumpReturnAndPolicy)
{
	Builder b;
	b.chain("web");
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP), {}, Target::jump("web")});
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_TCP), {test::tcp(0, 0xffff, 443, 443)}, Target::accept()});
	b.rule("web",
	       Rule{Ip().proto(IPPROTO_TCP), {test::tcp(0, 0xffff, 80, 80)}, Target::accept()});
	b.policy("INPUT", abi::verdict_drop);
	const auto t = table_of(b);
	const uint32_t web = index_at(b, b.layout().chain_start.at("web"));
	auto r = run(t, datagram(IPPROTO_TCP, tcp_seg(1, 80)));
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{0, web}));
	// Not in web: its RETURN goes back to the rule after the jump.
	r = run(t, datagram(IPPROTO_TCP, tcp_seg(1, 443)));
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{0, web + 1, 1}));
	r = run(t, datagram(IPPROTO_TCP, tcp_seg(1, 25)));
	EXPECT_FALSE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{0, web + 1, 2}));
}

TEST(Eval, GotoThenReturnAtTheBottomGoesToTheUnderflow)
{
	Builder b;
	b.chain("a").chain("log");
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP), {}, Target::jump("a")});
	b.rule("INPUT", Rule{Ip(), {}, Target::accept()});
	b.rule("a", Rule{Ip().proto(IPPROTO_TCP), {}, Target::go_to("log")});
	b.rule("a", Rule{Ip(), {}, Target::accept()});
	b.rule("log", Rule{Ip().proto(IPPROTO_UDP), {}, Target::drop()});
	b.rule("OUTPUT", Rule{Ip(), {}, Target::go_to("log")});
	b.rule("OUTPUT", Rule{Ip(), {}, Target::accept()});
	b.policy("OUTPUT", abi::verdict_drop);
	const auto l = b.layout();
	const auto t = table_of(b);
	const uint32_t a = index_at(b, l.chain_start.at("a"));
	const uint32_t log = index_at(b, l.chain_start.at("log"));
	// INPUT jumps to a, a goes to log; log's RETURN pops back to INPUT (not to a).
	auto r = run(t, datagram(IPPROTO_TCP, tcp_seg(1, 2)));
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{0, a, log + 1, 1}));
	// OUTPUT goes to log with an empty stack: its RETURN lands on OUTPUT's policy.
	const uint32_t output_policy = *t.underflow[3];
	r = run(t, datagram(IPPROTO_TCP, tcp_seg(1, 2)), ir::Hook::LocalOut, "", "eth0");
	EXPECT_FALSE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{output_policy - 2, log + 1, output_policy}));
}

TEST(Eval, JumpToTheChainHeadHitsTheErrorTarget)
{
	Builder b;
	b.chain("a");
	b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
	auto l = b.layout();
	test::poke<int32_t>(l.entries, abi::entry_size + abi::ext_header_size,
			    static_cast<int32_t>(l.chain_head.at("a")));
	auto r = abi::parse_replace(Builder::replace_of(l, 4));
	ASSERT_TRUE(r.ok());
	const auto t = abi::to_ir(r->table);
	ASSERT_TRUE(t.ok());
	const uint32_t head = index_at(b, l.chain_head.at("a"));
	EXPECT_EQ(t->rules[head].target.kind, K::Error);
	auto e = run(*t, datagram(IPPROTO_UDP, udp_dgram(1, 2)));
	EXPECT_FALSE(e.accept);
	EXPECT_EQ(e.counted_rules, (V{0, head}));
}

TEST(Eval, JumpStackHasOneSlotPerErrorEntry)
{
	// Hand-made IR with no ERROR rule: stacksize 0, so any push drops (NF_DROP).
	ir::Table t;
	t.valid_hooks = 1u << 1;
	t.hook_entry[1] = 0;
	t.underflow[1] = 1;
	t.rules.resize(4);
	t.rules[0].target = {K::Jump, 2};
	t.rules[1].target = {K::Accept, 0};
	t.rules[2].target = {K::Return, 0};
	const Bytes p = datagram(IPPROTO_UDP, udp_dgram(1, 2));
	auto r = run(t, p);
	EXPECT_FALSE(r.accept);
	EXPECT_EQ(r.counted_rules, V{0});
	t.rules[3].target = {K::Error, 0}; // one slot now
	r = run(t, p);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{0, 2, 1}));
	// A goto and a Continue push nothing.
	t.rules[3].target = {K::Drop, 0};
	t.rules[0].target = {K::Goto, 2};
	r = run(t, p);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, (V{0, 2, 1}));
	t.rules[0].target = {K::Continue, 0};
	EXPECT_EQ(run(t, p).counted_rules, (V{0, 1}));
}

TEST(Eval, HeaderFields)
{
	Builder b;
	b.rule("INPUT", Rule{Ip().in("eth+").inv(IPT_INV_VIA_IN), {}, Target::drop()});
	b.rule("INPUT", Rule{Ip().dst(0x0a000001, 32).inv(IPT_INV_DSTIP), {}, Target::drop()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP).inv(IPT_INV_PROTO), {}, Target::drop()});
	b.rule("INPUT", Rule{Ip().in("eth1"), {}, Target::drop()});
	b.rule("INPUT",
	       Rule{Ip().out("lo").inv(IPT_INV_VIA_OUT), {}, Target::drop()}); // no out dev
	const auto t = table_of(b);
	const Bytes tcp = datagram(IPPROTO_TCP, tcp_seg(1, 2));
	EXPECT_EQ(run(t, tcp, ir::Hook::LocalIn, "veth0").counted_rules, V{0});
	EXPECT_EQ(run(t, tcp, ir::Hook::LocalIn, "eth7").counted_rules, V{4}); // eth+ wildcard
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 2), 1, 0x0a000009)).counted_rules, V{1});
	EXPECT_EQ(run(t, datagram(IPPROTO_UDP, udp_dgram(1, 2))).counted_rules, V{2});
	EXPECT_EQ(run(t, tcp, ir::Hook::LocalIn, "eth1").counted_rules, V{3});
	EXPECT_EQ(run(t, tcp, ir::Hook::LocalIn, "eth10").counted_rules,
		  V{4}); // eth1 needs its NUL
}

TEST(Eval, Fragments)
{
	Builder b;
	b.rule("INPUT", Rule{Ip().flags(IPT_F_FRAG).src(0x0a000003, 32), {}, Target::drop()});
	b.rule("INPUT", Rule{Ip().flags(IPT_F_FRAG).inv(IPT_INV_FRAG).src(0x0a000004, 32),
			     {},
			     Target::drop()});
	b.rule("INPUT", Rule{Ip().inv(IPT_INV_FRAG), {}, Target::drop()}); // never matches
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_TCP), {test::tcp(0, 0xffff, 80, 80)}, Target::drop()});
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_UDP), {test::udp(0, 0xffff, 53, 53)}, Target::drop()});
	const auto t = table_of(b);
	// A later fragment (offset 185 * 8): -f matches, port matches cannot.
	const Bytes frag = datagram(IPPROTO_TCP, Bytes(16, 0), 0x0a000003, 0x0a000001, 185);
	EXPECT_EQ(run(t, frag).counted_rules, V{0});
	const Bytes frag4 = datagram(IPPROTO_TCP, Bytes(16, 0), 0x0a000004, 0x0a000001, 185);
	EXPECT_EQ(run(t, frag4).counted_rules, V{5}); // ! -f: not for fragments; tcp: no
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 80), 0x0a000004)).counted_rules, V{1});
	// The first fragment (offset 0, MF set) is judged like a whole packet.
	EXPECT_EQ(
		run(t, datagram(IPPROTO_TCP, tcp_seg(1, 80), 0x0a000005, 1, 0x2000)).counted_rules,
		V{3});
	// A TCP fragment at offset 1 is an attack: hotdrop.
	auto r = run(t, datagram(IPPROTO_TCP, Bytes(16, 0), 0x0a000005, 1, 1));
	EXPECT_TRUE(r.hotdrop);
	EXPECT_FALSE(r.accept);
	EXPECT_TRUE(r.counted_rules.empty());
	// UDP fragments at offset 1 just do not match.
	EXPECT_EQ(run(t, datagram(IPPROTO_UDP, Bytes(16, 0), 0x0a000005, 1, 1)).counted_rules,
		  V{5});
}

TEST(Eval, TruncatedHeadersHotdrop)
{
	Builder b;
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP), {test::tcp()}, Target::accept()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_UDP), {test::udp()}, Target::accept()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_ICMP), {test::icmp(0xff)}, Target::accept()});
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_SCTP), {test::multiport(0, {{1, 1}})}, Target::accept()});
	const auto t = table_of(b);
	for (auto [proto, len] :
	     {std::pair{IPPROTO_TCP, 19}, {IPPROTO_UDP, 7}, {IPPROTO_ICMP, 7}, {IPPROTO_SCTP, 3}}) {
		auto r = run(t, datagram(static_cast<uint8_t>(proto), Bytes(len, 0)));
		EXPECT_TRUE(r.hotdrop) << proto;
		EXPECT_FALSE(r.accept);
		EXPECT_TRUE(r.counted_rules.empty());
	}
	EXPECT_TRUE(run(t, datagram(IPPROTO_SCTP, Bytes(4, 0))).counted_rules ==
		    V{4}); // port 0 != 1
}

TEST(Eval, TcpFlagsAndOptions)
{
	Builder b;
	// --syn: SYN set, RST/ACK/FIN clear.
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP),
			     {test::tcp(0, 0xffff, 0, 0xffff, 0x17, 0x02)},
			     Target::accept()});
	// --tcp-option 8 (timestamps), and ! --tcp-option 2 on port 7.
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP),
			     {test::tcp(0, 0xffff, 0, 0xffff, 0, 0, 0, 8)},
			     Target::drop()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP),
			     {test::tcp(0, 0xffff, 7, 7, 0, 0, XT_TCP_INV_OPTION, 2)},
			     Target::drop()});
	const auto t = table_of(b);
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 2, 0x02))).counted_rules, V{0});
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 2, 0x12))).counted_rules,
		  V{3}); // SYN+ACK: policy
	// NOP, NOP, timestamps (kind 8, len 10): found.
	const Bytes ts{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 2, 0x10, ts))).counted_rules, V{1});
	// MSS (kind 2, len 4) on port 7: ! --tcp-option 2 fails.
	const Bytes mss{2, 4, 5, 0xb4};
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 7, 0x10, mss))).counted_rules, V{3});
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(1, 7, 0x10))).counted_rules, V{2});
	// doff says options the datagram does not carry: hotdrop.
	Bytes cut = datagram(IPPROTO_TCP, tcp_seg(1, 2, 0x10, ts));
	cut.resize(cut.size() - 4);
	EXPECT_TRUE(run(t, cut).hotdrop);
	// doff below 5 with an option test: hotdrop.
	Bytes tiny = tcp_seg(1, 2, 0x10);
	tiny[12] = 0x40;
	EXPECT_TRUE(run(t, datagram(IPPROTO_TCP, tiny)).hotdrop);
}

TEST(Eval, IcmpMultiportIprange)
{
	Builder b;
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_ICMP), {test::icmp(8, 0, 0)}, Target::accept()});
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_ICMP), {test::icmp(3, 1, 3, IPT_ICMP_INV)}, Target::drop()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_UDP),
			     {test::multiport(XT_MULTIPORT_SOURCE, {{100, 200}, {53, 53}})},
			     Target::accept()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_UDP),
			     {test::multiport(XT_MULTIPORT_EITHER, {{7, 7}}, true)},
			     Target::drop()});
	b.rule("INPUT", Rule{Ip(),
			     {test::iprange(IPRANGE_SRC | IPRANGE_SRC_INV, 0x0a000000, 0x0a0000ff)},
			     Target::drop()});
	b.rule("INPUT", Rule{Ip(),
			     {test::iprange(IPRANGE_DST, 0, 0, 0x0a000001, 0x0a000001)},
			     Target::accept()});
	const auto t = table_of(b);
	EXPECT_EQ(run(t, datagram(IPPROTO_ICMP, icmp_msg(8, 0))).counted_rules, V{0});
	EXPECT_EQ(run(t, datagram(IPPROTO_ICMP, icmp_msg(3, 2))).counted_rules, V{5});
	EXPECT_EQ(run(t, datagram(IPPROTO_ICMP, icmp_msg(8, 1))).counted_rules, V{1}); // ! 3/1-3
	EXPECT_EQ(run(t, datagram(IPPROTO_UDP, udp_dgram(150, 7))).counted_rules, V{2});
	EXPECT_EQ(run(t, datagram(IPPROTO_UDP, udp_dgram(53, 7))).counted_rules, V{2});
	EXPECT_EQ(run(t, datagram(IPPROTO_UDP, udp_dgram(7, 9))).counted_rules,
		  V{5}); // either 7, inverted
	EXPECT_EQ(run(t, datagram(IPPROTO_UDP, udp_dgram(8, 9))).counted_rules, V{3});
	EXPECT_EQ(run(t, datagram(IPPROTO_TCP, tcp_seg(8, 9), 0x0b000001)).counted_rules, V{4});
	EXPECT_EQ(
		run(t, datagram(IPPROTO_TCP, tcp_seg(8, 9), 0x0a000001, 0x0a000002)).counted_rules,
		V{6});
	auto r = run(t, datagram(IPPROTO_TCP, tcp_seg(8, 9), 0x0a000001, 0x0a000001));
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{5});
}

TEST(Eval, MalformedPacketsNeverReachTheTable)
{
	auto t = abi::to_ir(abi::initial_filter_table());
	ASSERT_TRUE(t.ok());
	auto r = run(*t, Bytes(19, 0x45));
	EXPECT_FALSE(r.accept);
	EXPECT_TRUE(r.counted_rules.empty());
}

} // namespace
} // namespace bpfilter

namespace bpfilter
{
namespace
{

// -m connlimit revision 1, as libxt_connlimit sends it.
Bytes connlimit(uint32_t limit, uint32_t prefix, uint32_t flags)
{
	struct xt_connlimit_info i {
	};
	i.mask.ip = htonl(prefix ? ~0u << (32 - prefix) : 0);
	i.limit = limit;
	i.flags = flags;
	return test::match("connlimit", 1, &i, sizeof(i));
}

// A SYN from src:sport to 10.0.0.1:22 and what conntrack attaches to it: a new entry, not
// yet confirmed.
ir::PacketView syn_view(const Bytes &pkt, uint32_t src, uint16_t sport)
{
	ir::PacketView v{pkt, dev("eth0"), {}, {}};
	v.ct.has_ct = true;
	v.ct.l4proto = IPPROTO_TCP;
	v.ct.orig_src = htonl(src);
	v.ct.orig_dst = htonl(0x0a000001);
	v.ct.orig_sport = sport;
	v.ct.orig_dport = 22;
	return v;
}

TEST(EvalConnlimit, SshRuleRejectsTheThirdConnectionOfAnAddress)
{
	Builder b;
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP),
			     {test::tcp(0, 0xffff, 22, 22), connlimit(2, 32, 0)},
			     Target::drop()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP),
			     {connlimit(1, 24, XT_CONNLIMIT_INVERT | XT_CONNLIMIT_DADDR)},
			     Target::accept()});
	const ir::Table t = table_of(b);
	ASSERT_EQ(t.connlimit_slots, 2u);
	const auto &m = std::get<ir::ConnlimitMatch>(t.rules[0].matches[1]);
	EXPECT_EQ(m.limit, 2u);
	EXPECT_EQ(m.mask, 0xffffffffu);
	EXPECT_EQ(m.slot, 0u);
	const auto &up = std::get<ir::ConnlimitMatch>(t.rules[1].matches[0]);
	EXPECT_EQ(up.mask, htonl(0xffffff00));
	EXPECT_EQ(up.flags, uint32_t{XT_CONNLIMIT_INVERT | XT_CONNLIMIT_DADDR});
	EXPECT_EQ(up.slot, 1u);

	ir::EvalState st = ir::initial_state(t, 250, 100);
	auto send = [&](uint32_t src, uint16_t sport) {
		const Bytes p = datagram(IPPROTO_TCP, tcp_seg(sport, 22), src);
		st.jiffies += 10;
		return ir::evaluate(t, ir::Hook::LocalIn, syn_view(p, src, sport), st);
	};
	auto established = [&](uint32_t src, uint16_t sport) {
		st.conntrack[{htonl(src), htonl(0x0a000001), sport, 22, IPPROTO_TCP}] = {3, true};
	};
	// Rule 1 counts, by destination /24, the SYNs that rule 0 lets through: upto 1.
	auto r = send(0x0a000002, 1000);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{1});
	established(0x0a000002, 1000);
	r = send(0x0a000002, 1001);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{2}); // the policy: rule 1 counts two
	established(0x0a000002, 1001);
	r = send(0x0a000002, 1002); // three from .2: above 2
	EXPECT_FALSE(r.accept);
	EXPECT_EQ(r.counted_rules, V{0});
	r = send(0x0a000003, 1003); // another address: one for rule 0, three for rule 1
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{2});
	// The first connection closes (TIME_WAIT) and the dropped third never was: a new one
	// from .2 is the second again, for both rules (1003 never got an entry either).
	st.conntrack[{htonl(0x0a000002), htonl(0x0a000001), 1000, 22, IPPROTO_TCP}].tcp_state = 7;
	r = send(0x0a000002, 1004);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{2});
	EXPECT_EQ(st.connlimits[0].at(htonl(0x0a000002)).conns.size(), 2u);
	EXPECT_EQ(st.connlimits[1].at(htonl(0x0a000000)).conns.size(), 2u);
}

TEST(EvalConnlimit, NoTupleIsAHotdrop)
{
	Builder b;
	b.rule("INPUT", Rule{Ip(), {connlimit(5, 32, 0)}, Target::accept()});
	const ir::Table t = table_of(b);
	ir::EvalState st = ir::initial_state(t, 250, 1);
	// A TCP packet without an entry (INVALID) and with two bytes of header: no ports.
	const Bytes p = datagram(IPPROTO_TCP, Bytes{0, 1});
	ir::PacketView v{p, dev("eth0"), {}, {}};
	auto r = ir::evaluate(t, ir::Hook::LocalIn, v, st);
	EXPECT_TRUE(r.hotdrop);
	EXPECT_FALSE(r.accept);
	EXPECT_TRUE(r.counted_rules.empty());
	EXPECT_TRUE(st.connlimits[0].empty());
	// Another protocol (ESP) has a tuple of its addresses alone: one, not above 5.
	const Bytes esp = datagram(IPPROTO_ESP, Bytes{0, 0, 0, 0});
	ir::PacketView g{esp, dev("eth0"), {}, {}};
	r = ir::evaluate(t, ir::Hook::LocalIn, g, st);
	EXPECT_FALSE(r.hotdrop);
	EXPECT_TRUE(r.accept);
	EXPECT_EQ(r.counted_rules, V{1});
	ASSERT_EQ(st.connlimits[0].size(), 1u);
	EXPECT_EQ(st.connlimits[0].begin()->second.conns.size(), 1u);
}

} // namespace
} // namespace bpfilter
