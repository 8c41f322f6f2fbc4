// REJECT's replies through BPF_PROG_TEST_RUN: the bytes each flavor sends against what
// nf_send_unreach() / icmp_send() and nf_send_reset() build, as read in the kernel's source.
#include <fcntl.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen_harness.hpp"

namespace bpfilter::test
{
namespace
{

using Bytes = std::vector<uint8_t>;

// In a fresh network namespace with lo up and a veth device d0 (ifindex 2, MTU 1500).
class CodegenReject : public ::testing::Test
{
protected:
	void SetUp() override
	{
		home_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		ASSERT_GE(home_, 0);
		ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno);
		ASSERT_EQ(
			std::system("/usr/sbin/ip link set lo up && /usr/sbin/ip link add d0 type "
				    "veth peer name d1 && /usr/sbin/ip link set d0 up"),
			0);
	}
	void TearDown() override
	{
		if (home_ >= 0) {
			EXPECT_EQ(setns(home_, CLONE_NEWNET), 0) << strerror(errno);
			close(home_);
		}
	}
	int home_ = -1;
};

ir::Rule reject(R r, uint32_t with)
{
	ir::Rule rule = r.t(Kind::Reject);
	rule.target.reject_with = with;
	return rule;
}

// Run one frame; the action (XDP's, or tc's raw) and the frame that comes out.
struct Out {
	int action = -1;
	Bytes frame;
};
Out run(Xdp &x, const Bytes &frame, uint32_t ifindex = 1)
{
	Bytes in(frame), out(frame.size() + 600);
	xdp_md ctx{};
	__sk_buff skb{};
	ctx.data_end = static_cast<uint32_t>(in.size());
	ctx.ingress_ifindex = ifindex;
	skb.ifindex = ifindex;
	const bool tc = x.flavor != codegen::Flavor::Xdp;
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = in.data(), .data_out = out.data(),
		    .data_size_in = static_cast<uint32_t>(in.size()),
		    .data_size_out = static_cast<uint32_t>(out.size()),
		    .ctx_in = tc ? static_cast<void *>(&skb) : static_cast<void *>(&ctx),
		    .ctx_size_in = static_cast<uint32_t>(tc ? sizeof(skb) : sizeof(ctx)),
		    .repeat = 1);
	const int err = bpf_prog_test_run_opts(x.prog->fd(), &topts);
	EXPECT_EQ(err, 0) << strerror(errno);
	out.resize(topts.data_size_out);
	return {err ? -1 : static_cast<int>(topts.retval), out};
}

uint16_t csum(const Bytes &b, size_t from, size_t len, uint32_t sum = 0)
{
	for (size_t k = 0; k < len; k += 2)
		sum += b[from + k] << 8 | (k + 1 < len ? b[from + k + 1] : 0);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return static_cast<uint16_t>(~sum);
}

void put16(Bytes &b, size_t at, uint16_t v)
{
	b[at] = v >> 8;
	b[at + 1] = v & 0xff;
}

// The frame the packet `p` arrives in: to `dst_mac`, from 02:00:00:00:00:01.
Bytes frame_to(const Packet &p, const Bytes &dst_mac)
{
	Bytes f = p.frame();
	std::copy(dst_mac.begin(), dst_mac.end(), f.begin());
	return f;
}

// The reply's IP header as nf_reject_iphdr_put() (TCP) or icmp_send() (ICMP) writes it;
// `id` is taken from what came out (ICMP: ip_select_ident(), unpredictable).
Bytes ip_header(uint8_t tos, uint16_t tot_len, uint16_t id, uint16_t frag, uint8_t proto,
		uint32_t saddr, uint32_t daddr)
{
	Bytes h(20);
	h[0] = 0x45;
	h[1] = tos;
	put16(h, 2, tot_len);
	put16(h, 4, id);
	put16(h, 6, frag);
	h[8] = 64; // ip_default_ttl
	h[9] = proto;
	for (int k = 0; k < 4; k++) {
		h[12 + k] = static_cast<uint8_t>(saddr >> (24 - 8 * k));
		h[16 + k] = static_cast<uint8_t>(daddr >> (24 - 8 * k));
	}
	put16(h, 10, csum(h, 0, 20));
	return h;
}

// icmp_send(skb, ICMP_DEST_UNREACH, code): the datagram quoted up to 548 bytes.
Bytes unreach(const Packet &p, uint8_t code, const Bytes &eth, uint16_t id, uint32_t saddr)
{
	const Bytes d = p.datagram();
	const size_t q = std::min<size_t>(d.size(), 548);
	Bytes r(eth);
	const Bytes ip = ip_header(static_cast<uint8_t>((p.tos & 0x1e) | 0xc0),
				   static_cast<uint16_t>(28 + q), id, 0, 1, saddr, p.saddr);
	r.insert(r.end(), ip.begin(), ip.end());
	Bytes icmp = {3, code, 0, 0, 0, 0, 0, 0};
	icmp.insert(icmp.end(), d.begin(), d.begin() + static_cast<long>(q));
	put16(icmp, 2, csum(icmp, 0, icmp.size()));
	r.insert(r.end(), icmp.begin(), icmp.end());
	return r;
}

// nf_send_reset(): nf_reject_iphdr_put() and nf_reject_ip_tcphdr_put().
Bytes reset(const Packet &p, const Bytes &eth)
{
	const Bytes &o = p.l4;
	Bytes r(eth);
	const Bytes ip = ip_header(0, 40, 0, 0x4000, 6, p.daddr, p.saddr);
	r.insert(r.end(), ip.begin(), ip.end());
	Bytes t(20);
	t[0] = o[2];
	t[1] = o[3];
	t[2] = o[0];
	t[3] = o[1];
	t[12] = 0x50;
	if (o[13] & 0x10) {
		std::copy(o.begin() + 8, o.begin() + 12, t.begin() + 4);
		t[13] = 0x04;
	} else {
		uint32_t seq = static_cast<uint32_t>(o[4] << 24 | o[5] << 16 | o[6] << 8 | o[7]);
		const uint32_t doff = (o[12] >> 4) * 4u;
		seq += (o[13] & 2 ? 1 : 0) + (o[13] & 1 ? 1 : 0) + static_cast<uint32_t>(o.size()) -
		       doff;
		for (int k = 0; k < 4; k++)
			t[8 + k] = static_cast<uint8_t>(seq >> (24 - 8 * k));
		t[13] = 0x14;
	}
	uint32_t pseudo = (p.daddr >> 16) + (p.daddr & 0xffff) + (p.saddr >> 16) +
			  (p.saddr & 0xffff) + 6 + 20;
	put16(t, 16, csum(t, 0, 20, pseudo));
	r.insert(r.end(), t.begin(), t.end());
	return r;
}

const Bytes zero_mac(6, 0);
// Ethernet header of a reply to the harness's frames, from an all-zero device address.
const Bytes reply_eth = {2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 8, 0};
const Bytes lo_eth = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0};

uint16_t id_of(const Bytes &f)
{
	return f.size() >= 20 ? static_cast<uint16_t>(f[18] << 8 | f[19]) : 0;
}

Packet udp_with(size_t payload)
{
	Packet p;
	p.proto = 17;
	p.l4 = udp_hdr(40000, 53, payload);
	for (size_t k = 8; k < p.l4.size(); k++)
		p.l4[k] = static_cast<uint8_t>(k * 7);
	put16(p.l4, 6, 0x1234);
	return p;
}

Packet tcp_with(uint8_t flags, size_t payload)
{
	Packet p = tcp_packet(40000, 80, flags);
	const uint8_t seq[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	std::copy(seq, seq + 8, p.l4.begin() + 4);
	p.l4.resize(20 + payload, 0xab);
	return p;
}

TEST_F(CodegenReject, XdpAnswersEveryIcmpTypeWithItsCode)
{
	const std::pair<uint32_t, uint8_t> types[] = {
		{IPT_ICMP_NET_UNREACHABLE, 0},	{IPT_ICMP_HOST_UNREACHABLE, 1},
		{IPT_ICMP_PROT_UNREACHABLE, 2}, {IPT_ICMP_PORT_UNREACHABLE, 3},
		{IPT_ICMP_NET_PROHIBITED, 9},	{IPT_ICMP_HOST_PROHIBITED, 10},
		{IPT_ICMP_ADMIN_PROHIBITED, 13}};
	for (auto [with, code] : types) {
		TableBuilder tb;
		tb.input = {reject(R().proto(17), with)};
		Xdp x(tb.build());
		ASSERT_TRUE(x.ok()) << x.error;
		ASSERT_TRUE(x.name_device(1, "lo"));
		Packet p = udp_with(20);
		p.tos = 0x3c;
		const Out o = run(x, frame_to(p, zero_mac));
		EXPECT_EQ(o.action, XDP_TX) << "with " << with;
		EXPECT_EQ(o.frame, unreach(p, code, reply_eth, id_of(o.frame), p.daddr))
			<< "with " << with;
	}
}

TEST_F(CodegenReject, QuotesAtMost548BytesAndOddLengths)
{
	TableBuilder tb;
	tb.input = {reject(R(), IPT_ICMP_PORT_UNREACHABLE)};
	Xdp x(tb.build());
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "lo"));
	for (size_t payload : {0, 1, 2, 3, 5, 519, 520, 521, 1000}) {
		Packet p = udp_with(payload);
		p.pad = 6; // Ethernet padding is not the datagram's
		const Out o = run(x, frame_to(p, zero_mac));
		EXPECT_EQ(o.action, XDP_TX) << payload;
		EXPECT_EQ(o.frame, unreach(p, 3, reply_eth, id_of(o.frame), p.daddr)) << payload;
	}
	// On d0 (MTU 1500): the same 576-byte bound.
	ASSERT_TRUE(x.name_device(2, "d0"));
	Packet p = udp_with(1000);
	const Out o = run(x, frame_to(p, zero_mac), 2);
	EXPECT_EQ(o.action, XDP_TX);
	EXPECT_EQ(o.frame, unreach(p, 3, reply_eth, id_of(o.frame), p.daddr));
}

TEST_F(CodegenReject, TcpResetAcksASynAndTakesTheAckOfASegment)
{
	TableBuilder tb;
	tb.input = {reject(R().proto(6), IPT_TCP_RESET)};
	Xdp x(tb.build());
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "lo"));
	for (auto [flags, payload] : {std::pair{0x02, 0}, std::pair{0x18, 100}, std::pair{0x01, 10},
				      std::pair{0x03, 7}, std::pair{0x00, 0}}) {
		const Packet p =
			tcp_with(static_cast<uint8_t>(flags), static_cast<size_t>(payload));
		// A reset needs no PACKET_HOST: a frame to another MAC address gets one too.
		const Out o = run(x, p.frame());
		EXPECT_EQ(o.action, XDP_TX) << flags;
		EXPECT_EQ(o.frame, reset(p, reply_eth)) << flags;
	}
	// No RST for a RST.
	EXPECT_EQ(run(x, tcp_with(0x04, 0).frame()).action, XDP_DROP);
	EXPECT_EQ(run(x, tcp_with(0x14, 0).frame()).action, XDP_DROP);
}

TEST_F(CodegenReject, NoReplyWhereTheKernelSendsNone)
{
	TableBuilder tb;
	tb.input = {reject(R().proto(1), IPT_ICMP_PORT_UNREACHABLE),
		    reject(R().proto(17), IPT_ICMP_PORT_UNREACHABLE),
		    reject(R().proto(6), IPT_TCP_RESET)};
	Xdp x(tb.build());
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(1, "lo"));
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.255"), 32,
					   codegen::maps::local_delivered |
						   codegen::maps::broadcast_addr)
			    .ok());
	// ICMP errors (and types the kernel does not know) get none; queries do.
	for (uint8_t type : {3, 4, 5, 11, 12, 1, 19, 200})
		EXPECT_EQ(run(x, frame_to(icmp_packet(type, 0), zero_mac)).action, XDP_DROP)
			<< int{type};
	for (uint8_t type : {0, 8, 13, 17})
		EXPECT_EQ(run(x, frame_to(icmp_packet(type, 0), zero_mac)).action, XDP_TX)
			<< int{type};
	// Not sent to this host's MAC address (pkt_type): no ICMP.
	EXPECT_EQ(run(x, udp_with(4).frame()).action, XDP_DROP);
	// Broadcast and multicast destinations.
	for (const char *dst : {"255.255.255.255", "10.0.0.255", "224.0.0.1", "239.1.1.1"}) {
		Packet u = udp_with(4), t = tcp_with(0x02, 0);
		u.daddr = t.daddr = ip4h(dst);
		EXPECT_EQ(run(x, frame_to(u, zero_mac)).action, XDP_DROP) << dst;
		EXPECT_EQ(run(x, frame_to(t, zero_mac)).action, XDP_DROP) << dst;
	}
	// A datagram in pieces: netfilter's INPUT answers the reassembled one, not a piece.
	Packet first = udp_with(40);
	first.frag = 0x2000;
	first.id = 7;
	EXPECT_EQ(run(x, frame_to(first, zero_mac)).action, XDP_DROP);
	// A truncated TCP header gets no reset.
	Packet cut = tcp_with(0x02, 0);
	cut.l4.resize(16);
	EXPECT_EQ(run(x, frame_to(cut, zero_mac)).action, XDP_DROP);
}

TEST_F(CodegenReject, CountedOnceAsADropThroughUserChains)
{
	TableBuilder tb;
	tb.chains = {{{R().proto(17).jump(1)}}, {{reject(R(), IPT_ICMP_HOST_PROHIBITED)}}};
	tb.input = {R().jump(0)};
	for (auto tests : {codegen::Options::Tests::Branch, codegen::Options::Tests::Accumulate}) {
		Xdp x(tb.build(), {.local_only = false, .tests = tests});
		ASSERT_TRUE(x.ok()) << x.error;
		ASSERT_TRUE(x.name_device(1, "lo"));
		const Packet p = udp_with(8);
		const Out o = run(x, frame_to(p, zero_mac));
		EXPECT_EQ(o.action, XDP_TX);
		EXPECT_EQ(o.frame, unreach(p, 10, reply_eth, id_of(o.frame), p.daddr));
		const auto c = x.counters();
		ASSERT_EQ(c.size(), tb.build().rules.size());
		EXPECT_EQ(c[tb.input_at[0]].packets, 1u);
		EXPECT_EQ(c[tb.chain_start[1]].packets, 1u);
		EXPECT_EQ(c[tb.chain_start[1]].bytes, p.datagram().size());
		EXPECT_EQ(c[tb.input_policy_at].packets, 0u);
	}
}

TEST_F(CodegenReject, UnknownWithOnlyDrops)
{
	TableBuilder tb;
	tb.input = {reject(R(), 42)};
	Xdp x(tb.build());
	ASSERT_TRUE(x.ok()) << x.error;
	EXPECT_EQ(run(x, frame_to(udp_with(4), zero_mac)).action, XDP_DROP);
}

TEST_F(CodegenReject, TcIngressRedirectsTheReplyOut)
{
	TableBuilder tb;
	tb.input = {reject(R().proto(17), IPT_ICMP_ADMIN_PROHIBITED),
		    reject(R().proto(6), IPT_TCP_RESET)};
	Xdp x(tb.build(), {.flavor = codegen::Flavor::TcIngress, .local_only = false});
	ASSERT_TRUE(x.ok()) << x.error;
	const Packet u = udp_with(33);
	Out o = run(x, frame_to(u, zero_mac));
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, unreach(u, 13, reply_eth, id_of(o.frame), u.daddr));
	const Packet t = tcp_with(0x02, 0);
	o = run(x, frame_to(t, zero_mac));
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, reset(t, reply_eth));
}

// Native XDP (the device's entry says its XDP judges) builds nothing: the verdict goes to
// tc ingress in the metadata, hook << 8 | with after the magic, and the frame is untouched.
TEST_F(CodegenReject, NativeXdpLeavesTheVerdictToTcIngress)
{
	TableBuilder tb;
	tb.input = {reject(R().proto(17), IPT_ICMP_HOST_PROHIBITED)};
	Xdp x(tb.build());
	ASSERT_TRUE(x.ok()) << x.error;
	loader::DeviceInfo info;
	std::copy_n("d0", 2, info.name.begin());
	info.l2len = 14;
	info.flags = codegen::maps::device_xdp_judges;
	ASSERT_TRUE(loader::set_device(x.ifnames.get(), 2, info).ok());
	const Bytes f = frame_to(udp_with(8), zero_mac);
	const Out o = run(x, f, 2);
	EXPECT_EQ(o.action, XDP_PASS);
	ASSERT_EQ(o.frame.size(), f.size() + 8);
	uint32_t magic, mark;
	std::memcpy(&magic, o.frame.data(), 4);
	std::memcpy(&mark, o.frame.data() + 4, 4);
	EXPECT_EQ(magic, codegen::layout::xdp_mark_magic);
	EXPECT_EQ(mark, 1u << 8 | IPT_ICMP_HOST_PROHIBITED); // NF_INET_LOCAL_IN
	EXPECT_EQ(Bytes(o.frame.begin() + 8, o.frame.end()), f);
	// Counted there, once.
	EXPECT_EQ(x.counters()[tb.input_at[0]].packets, 1u);
	// Generic XDP (no such flag) answers itself, as before.
	info.flags = 0;
	ASSERT_TRUE(loader::set_device(x.ifnames.get(), 2, info).ok());
	EXPECT_EQ(run(x, f, 2).action, XDP_TX);
}

// tc ingress routes the reply back to the sender (10.0.0.1) as netfilter does, with the
// lookup from the input device: the FIB's next hop and MAC addresses, the kernel's
// neighbour resolution when unresolved, nothing without a route.
TEST_F(CodegenReject, TcIngressRoutesTheReply)
{
	ASSERT_EQ(std::system("/usr/sbin/sysctl -qw net.ipv4.ip_forward=1 && "
			      "/usr/sbin/ip link set d0 address 02:00:00:00:00:d0 && "
			      "/usr/sbin/ip addr add 10.9.0.1/24 dev d0 && "
			      "/usr/sbin/ip neigh add 10.9.0.2 lladdr 02:aa:bb:cc:dd:ee dev d0 && "
			      "/usr/sbin/ip route add 10.0.0.0/24 via 10.9.0.2"),
		  0);
	TableBuilder tb;
	tb.input = {reject(R().proto(6), IPT_TCP_RESET)};
	Xdp x(tb.build(), {.flavor = codegen::Flavor::TcIngress, .local_only = false});
	ASSERT_TRUE(x.ok()) << x.error;
	const Packet t = tcp_with(0x02, 0);
	const Bytes routed_eth = {2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 2, 0, 0, 0, 0, 0xd0, 8, 0};
	Out o = run(x, frame_to(t, zero_mac));
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, reset(t, routed_eth));
	// An unresolved next hop: bpf_redirect_neigh() writes the link-layer header later.
	ASSERT_EQ(std::system("/usr/sbin/ip route replace 10.0.0.0/24 via 10.9.0.3"), 0);
	o = run(x, frame_to(t, zero_mac));
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, reset(t, reply_eth));
	// The lookup is the kernel's output lookup's, from lo: a rule for `iif lo` applies.
	ASSERT_EQ(std::system("/usr/sbin/ip rule add pref 10 iif lo prohibit"), 0);
	EXPECT_EQ(run(x, frame_to(t, zero_mac)).action, TC_ACT_SHOT);
	ASSERT_EQ(std::system("/usr/sbin/ip rule del pref 10"), 0);
	// No route back: ip_route_me_harder() fails, nothing is sent.
	ASSERT_EQ(std::system("/usr/sbin/ip route replace unreachable 10.0.0.0/24"), 0);
	EXPECT_EQ(run(x, frame_to(t, zero_mac)).action, TC_ACT_SHOT);
	// Forwarding off: the FIB answers nothing; back out of the input device.
	ASSERT_EQ(std::system("/usr/sbin/sysctl -qw net.ipv4.ip_forward=0"), 0);
	o = run(x, frame_to(t, zero_mac));
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, reset(t, reply_eth));
}

int run_tc(Xdp &x, const Bytes &frame, __sk_buff &skb);

TEST_F(CodegenReject, OutputAnswersThroughLo)
{
	TableBuilder tb;
	tb.output = {reject(R().proto(17), IPT_ICMP_PORT_UNREACHABLE),
		     reject(R().proto(6), IPT_TCP_RESET)};
	Xdp x(tb.build(), {.flavor = codegen::Flavor::TcEgress, .local_only = false});
	ASSERT_TRUE(x.ok()) << x.error;
	const Packet u = udp_with(600), t = tcp_with(0x02, 0);
	// The sender is not this host: the reply would be routed away, which is not done.
	EXPECT_EQ(run(x, u.frame()).action, TC_ACT_SHOT);
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.1"), 32).ok());
	// From our own address, the sender's: icmp_send() routes back to it with no source,
	// and the output route to a local address takes the address itself.
	Out o = run(x, u.frame());
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, unreach(u, 3, lo_eth, id_of(o.frame), u.saddr));
	o = run(x, t.frame());
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, reset(t, lo_eth));
	// Marked as a reply (layout::reply_mark_magic, no conntrack: no entry bits), so that
	// lo's OUTPUT judges it, as netfilter's passes OUTPUT.
	__sk_buff skb{};
	skb.ifindex = 1;
	EXPECT_EQ(run_tc(x, u.frame(), skb), TC_ACT_REDIRECT);
	EXPECT_EQ(skb.mark, codegen::layout::reply_mark_magic);
	// A sender's address in a local route with a preferred source (an address of lo's
	// with a prefix, 127/8): the route's preferred source.
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.0"), 31, 1, ip4("10.0.0.7"))
			    .ok());
	ASSERT_TRUE(loader::delete_local_addr(x.local.get(), ip4("10.0.0.1"), 32).ok());
	o = run(x, u.frame());
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, unreach(u, 3, lo_eth, id_of(o.frame), ip4h("10.0.0.7")));
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.1"), 32).ok());
	// To a local address (RTCF_LOCAL): from the packet's destination; a reset swaps the
	// addresses as always.
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.2"), 32).ok());
	o = run(x, u.frame());
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, unreach(u, 3, lo_eth, id_of(o.frame), u.daddr));
	o = run(x, t.frame());
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, reset(t, lo_eth));
	// Not to a local broadcast address.
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.2"), 32,
					   codegen::maps::local_delivered |
						   codegen::maps::broadcast_addr)
			    .ok());
	EXPECT_EQ(run(x, u.frame()).action, TC_ACT_SHOT);
	EXPECT_EQ(run(x, t.frame()).action, TC_ACT_SHOT);
}

// A tc run with the context given; the mark the program left is read back into it.
int run_tc(Xdp &x, const Bytes &frame, __sk_buff &skb)
{
	Bytes in(frame), out(frame.size() + 600);
	__sk_buff ctx_out{};
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = in.data(), .data_out = out.data(),
		    .data_size_in = static_cast<uint32_t>(in.size()),
		    .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &skb,
		    .ctx_out = &ctx_out, .ctx_size_in = sizeof(skb),
		    .ctx_size_out = sizeof(ctx_out), .repeat = 1);
	const int err = bpf_prog_test_run_opts(x.prog->fd(), &topts);
	EXPECT_EQ(err, 0) << strerror(errno);
	skb.mark = ctx_out.mark;
	skb.priority = ctx_out.priority;
	return err ? -100 : static_cast<int>(topts.retval);
}

// netfilter sends the reply with ip_local_out(): OUTPUT judges it. tc ingress marks the
// reply it redirects (layout::reply_mark_magic); the output device's egress program takes a
// packet so marked as this host's own though it came in on a device (ingress_ifindex, which
// makes any other packet a forwarded one, not OUTPUT's), judges it by OUTPUT, and leaves it
// the mark netfilter's reply has: 0.
TEST_F(CodegenReject, RedirectedRepliesAreJudgedByOutput)
{
	TableBuilder tb;
	tb.input = {reject(R().proto(17), IPT_ICMP_PORT_UNREACHABLE)};
	Xdp in(tb.build(), {.flavor = codegen::Flavor::TcIngress, .local_only = false});
	ASSERT_TRUE(in.ok()) << in.error;
	__sk_buff skb{};
	skb.ifindex = 1;
	ASSERT_EQ(run_tc(in, frame_to(udp_with(8), zero_mac), skb), TC_ACT_REDIRECT);
	EXPECT_EQ(skb.mark, codegen::layout::reply_mark_magic); // no conntrack: no entry bits
	EXPECT_EQ(skb.priority, codegen::layout::reply_priority_magic);

	TableBuilder te;
	te.output = {R().proto(1).accept()};
	te.output_policy = Kind::Drop;
	Xdp out(te.build(), {.flavor = codegen::Flavor::TcEgress, .local_only = true});
	ASSERT_TRUE(out.ok()) << out.error;
	Packet icmp;
	icmp.proto = 1;
	icmp.l4 = {3, 3, 0, 0, 0, 0, 0, 0};
	const Packet t = tcp_with(0x14, 0);
	// From the device's own MAC address (lo's, all zero), as a reply leaves it.
	Bytes icmp_f = icmp.frame(), t_f = t.frame();
	std::fill_n(icmp_f.begin() + 6, 6, 0);
	std::fill_n(t_f.begin() + 6, 6, 0);
	// Forwarded (it came in on some device): not OUTPUT's, passed untouched and not counted.
	skb = {};
	skb.ifindex = skb.ingress_ifindex = 1;
	EXPECT_EQ(run_tc(out, icmp_f, skb), codegen::layout::tc_accept);
	EXPECT_EQ(run_tc(out, t_f, skb), codegen::layout::tc_accept);
	EXPECT_EQ(out.counters()[te.output_at[0]].packets, 0u);
	EXPECT_EQ(out.counters()[te.output_policy_at].packets, 0u);
	// A reply (mark and priority): judged, counted, both cleared; OUTPUT's DROP policy drops
	// the reset.
	skb.mark = codegen::layout::reply_mark_magic;
	skb.priority = codegen::layout::reply_priority_magic;
	EXPECT_EQ(run_tc(out, icmp_f, skb), codegen::layout::tc_accept);
	EXPECT_EQ(skb.mark, 0u);
	EXPECT_EQ(skb.priority, 0u);
	skb.mark = codegen::layout::reply_mark_magic | codegen::layout::reply_ct;
	skb.priority = codegen::layout::reply_priority_magic;
	EXPECT_EQ(run_tc(out, t_f, skb), TC_ACT_SHOT);
	EXPECT_EQ(skb.mark, 0u);
	EXPECT_EQ(out.counters()[te.output_at[0]].packets, 1u);
	EXPECT_EQ(out.counters()[te.output_policy_at].packets, 1u);
	// Another mark is another packet's: forwarded, as before; so is the reply's mark
	// without the reply's priority (a user's -j MARK can give the mark).
	skb.mark = 0xbf4d0000;
	skb.priority = codegen::layout::reply_priority_magic;
	EXPECT_EQ(run_tc(out, t_f, skb), codegen::layout::tc_accept);
	EXPECT_EQ(skb.mark, 0xbf4d0000u);
	skb.mark = codegen::layout::reply_mark_magic;
	skb.priority = 0;
	EXPECT_EQ(run_tc(out, t_f, skb), codegen::layout::tc_accept);
	EXPECT_EQ(skb.mark, codegen::layout::reply_mark_magic);
	EXPECT_EQ(out.counters()[te.output_policy_at].packets, 1u);
}

TEST_F(CodegenReject, PerPeerTokensAllowABurstOfSix)
{
	TableBuilder tb;
	tb.input = {reject(R(), IPT_ICMP_PORT_UNREACHABLE)};
	Xdp x(tb.build());
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(x.name_device(2, "d0"));
	Packet p = udp_with(4);
	int sent = 0;
	for (int k = 0; k < 10; k++)
		sent += run(x, frame_to(p, zero_mac), 2).action == XDP_TX;
	EXPECT_EQ(sent, 6);	    // XRLIM_BURST_FACTOR: 6 s of tokens, 1 s apiece
	p.saddr = ip4h("10.0.0.9"); // another peer has its own
	EXPECT_EQ(run(x, frame_to(p, zero_mac), 2).action, XDP_TX);
	// lo is not limited.
	ASSERT_TRUE(x.name_device(1, "lo"));
	for (int k = 0; k < 10; k++)
		EXPECT_EQ(run(x, frame_to(p, zero_mac), 1).action, XDP_TX);
}

TEST_F(CodegenReject, GlobalBucketRunsDry)
{
	TableBuilder tb;
	tb.output = {reject(R(), IPT_ICMP_PORT_UNREACHABLE)};
	codegen::Options opts{.flavor = codegen::Flavor::TcEgress, .local_only = false};
	opts.replies.icmp_msgs_per_sec = 1;
	opts.replies.icmp_msgs_burst = 1;
	Xdp x(tb.build(), opts);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_TRUE(loader::add_local_addr(x.local.get(), ip4("10.0.0.1"), 32).ok());
	int sent = 0;
	for (int k = 0; k < 30; k++)
		sent += run(x, udp_with(4).frame()).action == TC_ACT_REDIRECT;
	// One credit, then 0-2 taken per reply and none back within the second.
	EXPECT_GE(sent, 1);
	EXPECT_LT(sent, 30);
	// With ICMP_DEST_UNREACH out of icmp_ratemask, nothing limits.
	opts.replies.icmp_ratemask = 0;
	Xdp y(tb.build(), opts);
	ASSERT_TRUE(y.ok()) << y.error;
	ASSERT_TRUE(loader::add_local_addr(y.local.get(), ip4("10.0.0.1"), 32).ok());
	for (int k = 0; k < 30; k++)
		EXPECT_EQ(run(y, udp_with(4).frame()).action, TC_ACT_REDIRECT);
}

// FORWARD's ICMP errors are sent, from the route's preferred source; with
// icmp_errors_use_inbound_ifaddr (an address of the input device) they are refused.
TEST_F(CodegenReject, ForwardIcmpRefusedOnlyWithInboundIfaddr)
{
	TableBuilder tb;
	tb.forward = {reject(R().proto(6), IPT_TCP_RESET)};
	EXPECT_TRUE(codegen::check(tb.build()).ok());
	tb.forward = {reject(R().proto(17), IPT_ICMP_PORT_UNREACHABLE)};
	EXPECT_TRUE(codegen::check(tb.build()).ok());
	codegen::Options opts;
	opts.replies.icmp_errors_use_inbound_ifaddr = 1;
	auto code = codegen::compile(tb.build(), opts);
	ASSERT_FALSE(code.ok());
	EXPECT_EQ(code.error().errnum, EOPNOTSUPP);
	// The same rule in a chain FORWARD reaches.
	tb.forward = {R().jump(0)};
	tb.chains = {{{reject(R(), IPT_ICMP_HOST_UNREACHABLE)}}};
	EXPECT_FALSE(codegen::compile(tb.build(), opts).ok());
	tb.forward = {};
	tb.input = {R().jump(0)};
	EXPECT_TRUE(codegen::compile(tb.build(), opts).ok());
}

// FORWARD's ICMP error from tc ingress: routed back, from fib_result_prefsrc() of that
// route (the output device's address on the sender's side), not the packet's destination.
TEST_F(CodegenReject, ForwardIcmpComesFromTheRoutesSource)
{
	ASSERT_EQ(std::system("/usr/sbin/sysctl -qw net.ipv4.ip_forward=1 && "
			      "/usr/sbin/ip link set d0 address 02:00:00:00:00:d0 && "
			      "/usr/sbin/ip addr add 10.9.0.1/24 dev d0 && "
			      "/usr/sbin/ip neigh add 10.9.0.2 lladdr 02:aa:bb:cc:dd:ee dev d0 && "
			      "/usr/sbin/ip route add 10.0.0.0/24 via 10.9.0.2"),
		  0);
	TableBuilder tb;
	tb.forward = {reject(R().proto(17), IPT_ICMP_NET_PROHIBITED)};
	Xdp x(tb.build(), {.flavor = codegen::Flavor::TcIngress});
	ASSERT_TRUE(x.ok()) << x.error;
	const Packet u = udp_with(20);
	const Bytes routed_eth = {2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 2, 0, 0, 0, 0, 0xd0, 8, 0};
	// The quote is of the datagram ip_forward() passed to FORWARD: one hop less.
	Packet forwarded = u;
	forwarded.ttl = 63;
	const Out o = run(x, frame_to(u, zero_mac));
	EXPECT_EQ(o.action, TC_ACT_REDIRECT);
	EXPECT_EQ(o.frame, unreach(forwarded, 9, routed_eth, id_of(o.frame), ip4h("10.9.0.1")));
	// A route with its own preferred source.
	ASSERT_EQ(std::system("/usr/sbin/ip addr add 10.9.0.7/24 dev d0 && /usr/sbin/ip route "
			      "replace 10.0.0.0/24 via 10.9.0.2 src 10.9.0.7"),
		  0);
	const Out p = run(x, frame_to(u, zero_mac));
	EXPECT_EQ(p.action, TC_ACT_REDIRECT);
	EXPECT_EQ(p.frame, unreach(forwarded, 9, routed_eth, id_of(p.frame), ip4h("10.9.0.7")));
}

} // namespace
} // namespace bpfilter::test
