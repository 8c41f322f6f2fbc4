// The offload flavor (codegen::Options::offload): what a NIC can take, and its packet path run on
// the host (the same code loaded without prog_ifindex, through BPF_PROG_TEST_RUN) against the
// reference evaluator, since netdevsim runs no packets through an offloaded program.
#include <random>

#include "codegen_harness.hpp"
#include "ir/eval.hpp"

namespace bpfilter::test
{
namespace
{

codegen::Options offload_opts(const std::string &dev = "eth0")
{
	codegen::Options o;
	o.offload = true;
	o.offload_ifname = devname(dev);
	return o;
}

// Instructions that call something: only bpf_map_lookup_elem (a helper every offloading
// driver implements), no kfunc; subprogram calls are BPF_PSEUDO_CALL.
void expect_device_friendly(const codegen::Program &p)
{
	for (const bpf_insn &insn : p.insns) {
		if (insn.code != (BPF_JMP | BPF_CALL) || insn.src_reg == BPF_PSEUDO_CALL)
			continue;
		EXPECT_EQ(insn.src_reg, 0) << "a kfunc call";
		EXPECT_EQ(insn.imm, BPF_FUNC_map_lookup_elem) << "helper " << insn.imm;
	}
	for (const codegen::MapRef &ref : p.map_refs)
		EXPECT_EQ(ref.slot, codegen::MapSlot::Counters);
	EXPECT_TRUE(p.kfunc_refs.empty());
	EXPECT_TRUE(p.offload);
}

TEST(OffloadFlavor, UsesOnlyWhatADeviceTakes)
{
	TableBuilder b;
	b.input = {R().proto(6).m(tcp({}, {22, 22})).drop(), R().src("10.0.0.0", 8).drop(),
		   R().in("eth+").jump(0), R().proto(1).accept()};
	b.chains = {{{R().proto(17).m(ir::UdpMatch{{}, {53, 53}, 0}).drop(), R().ret()}}};
	// OUTPUT is the host's (tc egress): what it holds does not matter to the NIC.
	b.output = {R().proto(6).t(Kind::Reject), R().log(4, 0, "out ")};
	const ir::Table t = b.build();
	ASSERT_TRUE(codegen::check_offload(t).ok()) << codegen::check_offload(t).error().message;
	auto p = codegen::compile(t, offload_opts());
	ASSERT_TRUE(p.ok()) << p.error().message;
	expect_device_friendly(*p);
}

TEST(OffloadFlavor, RefusesWhatANicCannotRun)
{
	const auto refused = [](std::vector<ir::Rule> input, const char *why) {
		TableBuilder b;
		b.input = {R().proto(6).m(tcp({}, {22, 22})).drop()};
		for (auto &r : input)
			b.input.push_back(r);
		const ir::Table t = b.build();
		const Status st = codegen::check_offload(t);
		ASSERT_FALSE(st.ok()) << why;
		EXPECT_EQ(st.error().errnum, EOPNOTSUPP);
		// It names the rule (the second of INPUT) and the reason.
		EXPECT_NE(st.error().message.find("rule 1 (offset 152)"), std::string::npos)
			<< st.error().message;
		EXPECT_NE(st.error().message.find(why), std::string::npos) << st.error().message;
		EXPECT_FALSE(codegen::compile(t, offload_opts()).ok());
	};
	refused({R().proto(6).t(Kind::Reject)}, "-j REJECT");
	refused({R().log(4, 0, "x ")}, "-j LOG");
	ir::TcpMatch opt = tcp();
	opt.option = 8;
	refused({R().proto(6).m(opt).drop()}, "--tcp-option");
	ir::LimitMatch lim;
	lim.avg = 10000;
	lim.burst = 5;
	refused({R().m(lim).accept()}, "-m limit");
	ir::ConntrackMatch ct;
	refused({R().m(ct).accept()}, "connection table");
	ir::AddrtypeMatch at;
	refused({R().m(at).accept()}, "-m addrtype");

	// Reached through a user chain counts too.
	TableBuilder b;
	b.input = {R().jump(0)};
	b.chains = {{{R().log(4, 0, "in ")}}};
	const Status st = codegen::check_offload(b.build());
	EXPECT_FALSE(st.ok());

	TableBuilder big;
	for (uint32_t i = 0; i < codegen::max_offload_rules; i++)
		big.input.push_back(R().drop());
	const Status too_big = codegen::check_offload(big.build());
	ASSERT_FALSE(too_big.ok());
	EXPECT_NE(too_big.error().message.find("more than the"), std::string::npos);
}

// Random tables of what offloads, random packets: the offload flavor's verdicts and counters
// are the evaluator's at INPUT on its device, but for what a NIC cannot know (first
// fragments judged uncounted, later ones passed, martian sources uncounted).
TEST(OffloadFlavor, RandomTablesAgreeWithTheEvaluator)
{
	std::mt19937 rng(20261202);
	const auto n = [&](uint32_t bound) {
		return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng);
	};
	const char *const addrs[] = {"10.0.0.1",  "10.0.0.2",  "10.0.1.7", "192.168.1.1",
				     "127.0.0.1", "224.0.0.5", "0.0.0.0"};
	const uint16_t ports[] = {22, 53, 80, 1000};
	const char *const ifaces[] = {"eth0", "eth+", "eth1", "veth+"};
	const auto rule = [&](uint32_t nchains, bool in_chain) {
		R r;
		if (n(3) == 0)
			r.src(addrs[n(7)], n(2) ? 32 : 8, n(4) == 0);
		if (n(3) == 0)
			r.dst(addrs[n(7)], n(2) ? 32 : 24, n(4) == 0);
		if (n(4) == 0)
			r.in(ifaces[n(4)], n(3) == 0);
		switch (n(4)) {
		case 0:
			r.proto(6).m(tcp({}, {ports[n(4)], ports[n(4)]}, n(4) == 0 ? 2 : 0));
			break;
		case 1:
			r.proto(17).m(ir::UdpMatch{{ports[n(4)], 65535}, {}, 0});
			break;
		case 2:
			r.proto(1);
			break;
		default:
			break;
		}
		const uint32_t t = n(8);
		if (t < 3)
			return r.drop();
		if (t < 5)
			return r.accept();
		if (t == 5 && nchains && !in_chain)
			return r.jump(n(nchains));
		if (t == 6 && in_chain)
			return r.ret();
		return r.cont();
	};
	int compared = 0, dropped = 0, dry = 0;
	for (int ti = 0; ti < 60; ti++) {
		TableBuilder b;
		const uint32_t nchains = n(3);
		for (uint32_t c = 0; c < nchains; c++) {
			b.chains.emplace_back();
			for (uint32_t k = n(4); k > 0; k--)
				b.chains.back().rules.push_back(rule(0, true));
		}
		for (uint32_t k = 1 + n(8); k > 0; k--)
			b.input.push_back(rule(nchains, false));
		b.input_policy = n(2) ? Kind::Accept : Kind::Drop;
		const ir::Table t = b.build();
		ASSERT_TRUE(codegen::check_offload(t).ok()) << "table " << ti;
		Xdp x(t, offload_opts("eth0"));
		ASSERT_TRUE(x.ok()) << "table " << ti << ": " << x.error;
		std::vector<ir::Counter> want(t.rules.size());
		for (int pi = 0; pi < 40; pi++) {
			Packet p;
			p.saddr = ip4h(addrs[n(7)]);
			p.daddr = ip4h(addrs[n(4)]);
			switch (n(3)) {
			case 0:
				p = [&] {
					Packet q = tcp_packet(ports[n(4)], ports[n(4)]);
					q.saddr = p.saddr, q.daddr = p.daddr;
					return q;
				}();
				break;
			case 1:
				p.proto = 17;
				p.l4 = udp_hdr(ports[n(4)], ports[n(4)]);
				break;
			default:
				p.proto = 1;
				p.l4 = icmp_hdr(8, 0);
				break;
			}
			const int frag = n(6);
			if (frag == 0)
				p.frag = 0x2000; // first of several
			else if (frag == 1)
				p.frag = 0x0003; // a later (last) piece
			const std::vector<uint8_t> dgram = p.datagram();
			const int got = x.run(p.frame());
			if (frag == 1) {
				ASSERT_EQ(got, pass) << "table " << ti << " packet " << pi;
				ASSERT_EQ(x.counters(), want);
				continue;
			}
			ir::PacketView view{dgram, devname("eth0"), {}, {}};
			const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
			ASSERT_EQ(got, r.accept ? pass : drop)
				<< "table " << ti << " packet " << pi;
			const uint32_t sh = p.saddr;
			const bool martian = (sh >> 24) == 127 || sh == 0 || sh == ~0u ||
					     (sh >> 28) == 0xe || (p.daddr >> 24) == 127;
			if (frag == 0 || martian) {
				dry++;
			} else {
				for (uint32_t rl : r.counted_rules) {
					want[rl].packets++;
					want[rl].bytes += dgram.size();
				}
			}
			ASSERT_EQ(x.counters(), want) << "table " << ti << " packet " << pi;
			compared++;
			dropped += !r.accept;
		}
	}
	std::printf("offload flavor: %d packets agree with the evaluator (%d dropped, %d judged "
		    "uncounted)\n",
		    compared, dropped, dry);
	EXPECT_GT(dropped, compared / 10);
	EXPECT_LT(dropped, compared - compared / 10);
	EXPECT_GT(dry, 0);
}

// The counters of rules past the first block live block * 32 KiB into the one value.
TEST(OffloadFlavor, CountersPastTheFirstBlock)
{
	TableBuilder b;
	for (uint32_t i = 0; i < 2100; i++)
		b.input.push_back(R().src("10.9.9.9").drop());
	b.input.push_back(R().proto(17).m(ir::UdpMatch{{}, {53, 53}, 0}).drop());
	const ir::Table t = b.build();
	Xdp x(t, offload_opts());
	ASSERT_TRUE(x.ok()) << x.error;
	const Packet p = udp_packet(1000, 53);
	x.expect(p, drop, {b.input_at.back()});
	x.expect(tcp_packet(1, 2), pass, {b.input_policy_at});
}

} // namespace
} // namespace bpfilter::test
