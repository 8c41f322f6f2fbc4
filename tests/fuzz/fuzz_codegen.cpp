// Fuzz target: generated XDP programs against the reference evaluator.
//
// The input's bytes choose, one decision at a time, a small filter table (INPUT and OUTPUT
// rules with addresses, interfaces, fragments, protocols, tcp/udp/icmp/multiport/iprange matches,
// LOG, user chains reached by jump and goto, RETURN, policies), how codegen tests rules, and a few
// packets; structure comes from the harness, so nearly every input is a valid table. The
// table is compiled, loaded and run with BPF_PROG_TEST_RUN on each packet (the unit tests'
// harness, tests/unit/codegen_harness.hpp) of a flavor the bytes choose; verdict, per-rule counters
// and LOG lines must be what ir::evaluate says netfilter would do: INPUT at XDP and tc ingress,
// OUTPUT at tc egress. Any difference is a finding.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/resource.h>

#include "codegen_harness.hpp"
#include "fuzz_common.hpp"
#include "ir/eval.hpp"

#include <linux/netfilter/xt_iprange.h> // after <netinet/in.h>, which the harness brings

namespace bpfilter::fuzz
{
namespace
{

using test::Kind;
using test::Packet;
using test::R;

// Small pools so that rules and packets meet often; a raw value now and then.
const char *const addrs[] = {"10.0.0.1",    "10.0.0.2",	     "10.0.1.7",
			     "192.168.1.1", "192.168.1.200", "8.8.8.8"};
const uint16_t ports[] = {22, 53, 80, 443, 1000, 8080, 65535, 0};
const char *const devnames[] = {"", "eth0", "eth1", "lo", "veth-a"};
const char *const tc_devnames[] = {"eth0", "eth1", "lo", "veth-a"}; // tc passes unknown ones
const char *const rule_ifaces[] = {"eth0", "eth+", "lo", "veth-a", "+", "eth1"};

// Each decision takes bytes from the input; once they run out, every decision is 0.
struct Gen {
	FuzzedDataProvider &in;

	uint32_t n(uint32_t bound)
	{
		return bound <= 1 ? 0 : in.ConsumeIntegralInRange<uint32_t>(0, bound - 1);
	}
	bool coin(uint32_t one_in = 2) { return n(one_in) == 1 % one_in; }
	template <typename T, size_t N> T pick(const T (&a)[N]) { return a[n(N)]; }
	uint8_t byte() { return in.ConsumeIntegral<uint8_t>(); }
	uint16_t port() { return coin(4) ? in.ConsumeIntegral<uint16_t>() : pick(ports); }
	uint32_t addr()
	{
		return coin(8) ? in.ConsumeIntegral<uint32_t>() : test::ip4h(pick(addrs));
	}

	ir::PortRange range()
	{
		if (coin(3))
			return {};
		uint16_t a = port(), b = coin() ? a : port();
		if (a > b && !coin(8))
			std::swap(a, b);
		return {a, b};
	}

	void cidr(uint32_t &a, uint32_t &m, uint8_t &invflags, uint8_t inv)
	{
		const uint32_t bits = n(33);
		m = bits ? htonl(~0u << (32 - bits)) : 0;
		a = htonl(addr()) & m;
		if (coin(4))
			invflags |= inv;
	}

	void add_matches(R &r, uint16_t proto)
	{
		if (proto == 6 && coin(2)) {
			ir::TcpMatch m = test::tcp(range(), range(), static_cast<uint8_t>(n(16)));
			if (coin(2)) {
				m.flg_mask = byte();
				m.flg_cmp =
					coin() ? static_cast<uint8_t>(m.flg_mask & byte()) : byte();
			}
			if (coin(3))
				m.option = static_cast<uint8_t>(1 + n(255));
			r.m(m);
		}
		if (proto == 17 && coin(2)) {
			ir::UdpMatch m;
			m.sport = range();
			m.dport = range();
			m.invflags = static_cast<uint8_t>(n(4));
			r.m(m);
		}
		if (proto == 1 && coin(2)) {
			ir::IcmpMatch m;
			const uint8_t types[] = {0, 3, 8, 11, 0xff};
			m.type = coin(4) ? byte() : pick(types);
			m.code_min = coin() ? 0 : byte();
			m.code_max = coin() ? 0xff : byte();
			m.invert = coin(3);
			r.m(m);
		}
		if ((proto == 6 || proto == 17) && coin(4)) {
			ir::MultiportMatch m;
			m.dir = static_cast<ir::MultiportMatch::Dir>(1 + n(3));
			for (uint32_t i = 0, c = 1 + n(7); i < c; i++) {
				ir::PortRange pr = range();
				if (pr.lo > pr.hi)
					std::swap(pr.lo, pr.hi);
				m.ports.push_back(pr);
			}
			m.invert = coin(3);
			r.m(m);
		}
	}

	// A rule of chain `chain` (~0u: INPUT) among `nchains` user chains. Jumps go only to
	// later chains: the ABI refuses loops before codegen sees a table.
	ir::Rule rule(uint32_t chain, uint32_t nchains)
	{
		R r;
		if (coin(3))
			cidr(r.r.ip.src, r.r.ip.src_mask, r.r.ip.invflags, IPT_INV_SRCIP);
		if (coin(3))
			cidr(r.r.ip.dst, r.r.ip.dst_mask, r.r.ip.invflags, IPT_INV_DSTIP);
		if (coin(4))
			r.in(pick(rule_ifaces), coin(3));
		if (coin(10))
			r.out(pick(rule_ifaces), coin(2));
		if (coin(12))
			r.frag(coin(2));
		const uint16_t protos[] = {0, 1, 6, 17, 6, 17, 47};
		const uint16_t proto = pick(protos);
		if (proto) {
			const bool inv = coin(5);
			r.proto(proto, inv);
			if (!inv)
				add_matches(r, proto);
		}
		if (coin(6)) {
			ir::IprangeMatch m;
			m.flags = static_cast<uint8_t>(n(4)) | (coin() ? IPRANGE_SRC_INV : 0) |
				  (coin() ? IPRANGE_DST_INV : 0);
			m.src_min = addr();
			m.src_max = coin() ? m.src_min : addr();
			m.dst_min = addr();
			m.dst_max = coin() ? m.dst_min : addr();
			r.m(m);
		}
		const uint32_t first = chain == ~0u ? 0 : chain + 1;
		const uint32_t k = n(12);
		if (k < 2 && first < nchains)
			return r.jump(first + n(nchains - first));
		if (k == 2 && first < nchains)
			return r.go(first + n(nchains - first));
		if (k == 3)
			return r.ret();
		if (k == 4)
			return r.cont();
		if (k == 5 && coin(4))
			return r.t(Kind::Error);
		if (k == 6)
			return r.log(static_cast<uint8_t>(n(8)), static_cast<uint8_t>(n(32)),
				     "fz ");
		return coin() ? r.accept() : r.drop();
	}

	test::TableBuilder table()
	{
		test::TableBuilder b;
		const uint32_t nchains = n(5);
		b.chains.resize(nchains);
		for (uint32_t c = 0; c < nchains; c++)
			for (uint32_t i = 0, k = n(6); i < k; i++)
				b.chains[c].rules.push_back(rule(c, nchains));
		for (uint32_t i = 0, k = 1 + n(12); i < k; i++)
			b.input.push_back(rule(~0u, nchains));
		b.input_policy = coin() ? Kind::Accept : Kind::Drop;
		for (uint32_t i = 0, k = n(6); i < k; i++)
			b.output.push_back(rule(~0u, nchains));
		b.output_policy = coin() ? Kind::Accept : Kind::Drop;
		return b;
	}

	std::vector<uint8_t> tcp_options()
	{
		std::vector<uint8_t> o;
		for (uint32_t i = 0, k = n(6); i < k; i++) {
			switch (n(6)) {
			case 0:
				o.insert(o.end(), {2, 4, 5, 0xb4});
				break;
			case 1:
				o.push_back(1);
				break;
			case 2:
				o.insert(o.end(), {8, 10, 2, 3, 4, 5, 6, 7, 8, 9});
				break;
			case 3:
				o.insert(o.end(), {4, 2});
				break;
			case 4:
				o.push_back(0);
				break;
			default:
				o.push_back(byte()); // garbage: any kind, any length
				break;
			}
		}
		if (o.size() > 40)
			o.resize(40);
		return o;
	}

	// tc: no fragments and no padding (tc egress sees what the stack sends, before
	// fragmentation; XDP is where reassembly and trimming are judged).
	Packet packet(bool tc)
	{
		Packet p;
		p.saddr = addr();
		p.daddr = addr();
		const uint8_t protos[] = {6, 17, 1, 47, 6, 17};
		p.proto = coin(16) ? byte() : pick(protos);
		p.tos = coin(8) ? byte() : 0;
		switch (p.proto) {
		case 6: {
			std::optional<uint8_t> doff;
			if (coin(10))
				doff = static_cast<uint8_t>(n(16));
			p.l4 = test::tcp_hdr(port(), port(), byte(), tcp_options(), doff);
			break;
		}
		case 17:
			p.l4 = test::udp_hdr(port(), port(), n(8));
			break;
		case 1:
			p.l4 = test::icmp_hdr(coin() ? static_cast<uint8_t>(n(16)) : byte(),
					      static_cast<uint8_t>(n(5)));
			break;
		default:
			p.l4.assign(n(24), 0xab);
			break;
		}
		if (coin(6)) // a transport header cut short
			p.l4.resize(n(static_cast<uint32_t>(p.l4.size()) + 1));
		if (coin(8))
			p.ip_options.assign(4 * (1 + n(10)), 1);
		if (!tc && coin(10)) {
			// A first fragment, whose payload ends on a fragment boundary.
			p.frag = 0x2000;
			p.l4.resize((p.l4.size() + 7) / 8 * 8);
			if (p.l4.empty())
				p.l4.resize(8);
		}
		if (!tc && coin(10))
			p.pad = n(30);
		return p;
	}
};

std::string where(int packet, const std::string &what)
{
	return "packet " + std::to_string(packet) + ": " + what;
}

} // namespace
} // namespace bpfilter::fuzz

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	// Maps and programs are locked memory on older kernels.
	struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_MEMLOCK, &r);
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	using namespace bpfilter;
	using Tests = codegen::Options::Tests;
	FuzzedDataProvider in(data, size);
	fuzz::Gen g{in};
	const Tests modes[] = {Tests::Auto, Tests::Branch, Tests::FirstBranch, Tests::Accumulate,
			       Tests::Chunked};
	const Tests mode = g.pick(modes);
	// INPUT at XDP and at tc ingress, OUTPUT at tc egress.
	const codegen::Flavor flavors[] = {codegen::Flavor::Xdp, codegen::Flavor::Xdp,
					   codegen::Flavor::TcIngress, codegen::Flavor::TcEgress};
	const codegen::Flavor flavor = g.pick(flavors);
	const bool tc = flavor != codegen::Flavor::Xdp;
	const bool output = flavor == codegen::Flavor::TcEgress;
	const ir::Table t = g.table().build();
	fuzz::require(codegen::check(t).ok(), "codegen refuses a table the generator built");
	test::Xdp x(t, {.flavor = flavor, .local_only = false, .tests = mode});
	if (!x.ok())
		fuzz::finding("compiling or loading failed: " + x.error);

	std::vector<ir::Counter> want(t.rules.size());
	size_t logged = 0;
	for (int pi = 0, np = 1 + static_cast<int>(g.n(8)); pi < np; pi++) {
		const test::Packet p = g.packet(tc);
		const std::string dev = tc ? g.pick(fuzz::tc_devnames) : g.pick(fuzz::devnames);
		if (dev.empty())
			(void)loader::delete_device(x.ifnames.get(), 1);
		else
			fuzz::require(x.name_device(1, dev), "naming device 1");

		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view{dgram, {}, {}, {}};
		(output ? view.out_ifname : view.in_ifname) = test::devname(dev);
		const ir::EvalResult r =
			ir::evaluate(t, output ? ir::Hook::LocalOut : ir::Hook::LocalIn, view);
		const int got = x.run(p.frame());
		fuzz::require(got == (r.accept ? test::pass : test::drop),
			      fuzz::where(pi, "verdict " + std::to_string(got) +
						      ", the evaluator says " +
						      (r.accept ? "accept" : "drop") +
						      (r.hotdrop ? " (hotdrop)" : "")));
		size_t len = dgram.size();
		if (p.frag == 0x2000 && p.header_tot_len() == p.true_len() && !p.cut) {
			// Nothing counted until a last piece of 8 bytes comes; then the
			// datagram is, with the first fragment's verdict.
			fuzz::require(x.counters() == want,
				      fuzz::where(pi, "a first fragment was counted"));
			test::Packet last = p;
			last.frag = static_cast<uint16_t>(p.l4.size() / 8);
			last.l4.assign(8, 0xcd);
			last.ip_options.clear();
			last.pad = 0;
			fuzz::require(x.run(last.frame()) == got,
				      fuzz::where(pi, "the last piece got another verdict"));
			len += 8;
		}
		for (uint32_t rule : r.counted_rules) {
			want[rule].packets++;
			want[rule].bytes += len;
		}
		const auto c = x.counters();
		for (size_t k = 0; k < want.size(); k++)
			fuzz::require(
				k < c.size() && c[k] == want[k],
				fuzz::where(pi, "rule " + std::to_string(k) + " counted " +
							(k < c.size() ? std::to_string(c[k].packets)
								      : "nothing") +
							" packets, the evaluator " +
							std::to_string(want[k].packets)));
		logged += r.logged_by.size();
		const size_t lines = x.log_records().size();
		fuzz::require(lines == r.logged_by.size(),
			      fuzz::where(pi, std::to_string(lines) +
						      " LOG records, the evaluator " +
						      std::to_string(r.logged_by.size())));
	}
	return 0;
}
