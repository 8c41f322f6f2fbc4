// Generated XDP programs against the reference evaluator: random tables and packets, same verdicts
// and counters.
#include <random>

#include "codegen_harness.hpp"
#include "ir/eval.hpp"

#include <linux/netfilter/xt_iprange.h> // after <netinet/in.h>, which the harness brings

namespace bpfilter::test
{
namespace
{

// Small pools so that rules and packets meet often.
const char *const addrs[] = {"10.0.0.1",    "10.0.0.2",	     "10.0.1.7",
			     "192.168.1.1", "192.168.1.200", "8.8.8.8"};
const uint16_t ports[] = {22, 53, 80, 443, 1000, 8080, 65535, 0};
const char *const ifnames[] = {"", "eth0", "eth1", "lo", "veth-a"};
const char *const rule_ifaces[] = {"eth0", "eth+", "lo", "veth-a", "+", "eth1"};

struct Gen {
	std::mt19937 rng;
	explicit Gen(uint32_t seed) : rng(seed) {}

	uint32_t n(uint32_t bound)
	{
		return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng);
	}
	bool coin(uint32_t one_in = 2) { return n(one_in) == 0; }
	template <typename T, size_t N> T pick(const T (&a)[N]) { return a[n(N)]; }

	uint16_t port() { return coin(4) ? static_cast<uint16_t>(n(65536)) : pick(ports); }
	ir::PortRange range()
	{
		if (coin(3))
			return {};
		uint16_t a = port(), b = coin() ? a : port();
		if (a > b && !coin(8))
			std::swap(a, b);
		return {a, b};
	}

	ir::Rule rule(uint32_t chain, uint32_t nchains)
	{
		R r;
		if (coin(3))
			r.src(pick(addrs), pick<uint32_t, 5>({0, 8, 16, 24, 32}), coin(4));
		if (coin(3))
			r.dst(pick(addrs), pick<uint32_t, 5>({0, 8, 16, 24, 32}), coin(4));
		if (coin(4))
			r.in(pick(rule_ifaces), coin(3));
		if (coin(10))
			r.out(pick(rule_ifaces), coin(2));
		if (coin(12))
			r.frag(coin(2));
		const uint16_t protos[] = {0, 1, 6, 17, 6, 17};
		const uint16_t proto = pick(protos);
		if (proto || coin(4)) {
			const bool inv = coin(5);
			r.proto(proto ? proto : 47, inv);
			if (!inv)
				add_matches(r, proto);
		}
		if (coin(6)) {
			ir::IprangeMatch m;
			m.flags = static_cast<uint8_t>(n(4)) | (coin() ? IPRANGE_SRC_INV : 0) |
				  (coin() ? IPRANGE_DST_INV : 0);
			m.src_min = ip4h(pick(addrs));
			m.src_max = coin() ? m.src_min : ip4h(pick(addrs));
			m.dst_min = ip4h(pick(addrs));
			m.dst_max = coin() ? m.dst_min : ip4h(pick(addrs));
			r.m(m);
		}
		// Targets: jumps only to later chains, so there are no loops.
		const uint32_t k = n(10);
		if (k < 2 && chain + 1 < nchains)
			return r.jump(chain + 1 + n(nchains - chain - 1));
		if (k == 2 && chain + 1 < nchains)
			return r.go(chain + 1 + n(nchains - chain - 1));
		if (k == 3)
			return r.ret();
		if (k == 4)
			return r.cont();
		if (k == 5 && coin(4))
			return r.t(Kind::Error);
		return coin() ? r.accept() : r.drop();
	}

	void add_matches(R &r, uint16_t proto)
	{
		if (proto == 6 && coin(2)) {
			ir::TcpMatch m = tcp(range(), range(), static_cast<uint8_t>(n(16)));
			if (coin(2)) {
				m.flg_mask = static_cast<uint8_t>(n(256));
				m.flg_cmp = coin() ? static_cast<uint8_t>(m.flg_mask & n(256))
						   : static_cast<uint8_t>(n(256));
			}
			if (coin(3)) {
				const uint8_t kinds[] = {2, 3, 4, 8, 1, 0, 30, 253};
				m.option = pick(kinds);
				if (m.option == 0)
					m.option = 5;
			}
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
			m.type = pick(types);
			m.code_min = static_cast<uint8_t>(coin() ? 0 : n(4));
			m.code_max = static_cast<uint8_t>(coin() ? 0xff : n(6));
			m.invert = coin(3);
			r.m(m);
		}
		if ((proto == 6 || proto == 17) && coin(4)) {
			ir::MultiportMatch m;
			m.dir = static_cast<ir::MultiportMatch::Dir>(1 + n(3));
			for (uint32_t i = 0, c = 1 + n(5); i < c; i++) {
				ir::PortRange pr = range();
				if (pr.lo == 0 && pr.hi == 0xffff)
					pr = {port(), port()};
				if (pr.lo > pr.hi)
					std::swap(pr.lo, pr.hi);
				m.ports.push_back(pr);
			}
			m.invert = coin(3);
			r.m(m);
		}
	}

	TableBuilder table()
	{
		TableBuilder b;
		const uint32_t nchains = n(5);
		b.chains.resize(nchains);
		for (uint32_t c = 0; c < nchains; c++)
			for (uint32_t i = 0, k = n(6); i < k; i++)
				b.chains[c].rules.push_back(rule(c, nchains));
		for (uint32_t i = 0, k = 1 + n(12); i < k; i++)
			b.input.push_back(nchains ? rule(~0u, nchains) : rule(0, 0));
		b.input_policy = coin() ? Kind::Accept : Kind::Drop;
		return b;
	}

	std::vector<uint8_t> tcp_options()
	{
		std::vector<uint8_t> o;
		for (uint32_t i = 0, k = n(5); i < k; i++) {
			switch (n(6)) {
			case 0:
				o.insert(o.end(), {2, 4, 5, 0xb4});
				break;
			case 1:
				o.insert(o.end(), {1});
				break;
			case 2:
				o.insert(o.end(), {8, 10, 2, 3, 4, 5, 6, 7, 8, 9});
				break;
			case 3:
				o.insert(o.end(), {4, 2});
				break;
			case 4:
				o.insert(o.end(), {0});
				break;
			default:
				o.push_back(static_cast<uint8_t>(
					n(256))); // garbage: any kind, any length
				break;
			}
		}
		if (o.size() > 40)
			o.resize(40);
		return o;
	}

	Packet packet()
	{
		Packet p;
		p.saddr = ip4h(pick(addrs));
		p.daddr = ip4h(pick(addrs));
		const uint8_t protos[] = {6, 17, 1, 47, 6, 17};
		p.proto = pick(protos);
		switch (p.proto) {
		case 6: {
			std::optional<uint8_t> doff;
			if (coin(10))
				doff = static_cast<uint8_t>(n(16));
			p.l4 = tcp_hdr(port(), port(), static_cast<uint8_t>(n(256)), tcp_options(),
				       doff);
			break;
		}
		case 17:
			p.l4 = udp_hdr(port(), port(), n(8));
			break;
		case 1:
			p.l4 = icmp_hdr(static_cast<uint8_t>(coin() ? n(16) : 8),
					static_cast<uint8_t>(n(5)));
			break;
		default:
			p.l4 = std::vector<uint8_t>(n(24), 0xab);
			break;
		}
		if (coin(6)) // a transport header cut short
			p.l4.resize(n(static_cast<uint32_t>(p.l4.size()) + 1));
		if (coin(8))
			p.ip_options.assign(4 * (1 + n(10)), 1);
		if (coin(10)) {
			// A first fragment: judged as its datagram, counted when a last piece
			// makes it whole. Its payload ends on a fragment boundary.
			p.frag = 0x2000;
			p.l4.resize((p.l4.size() + 7) / 8 * 8);
			if (p.l4.empty())
				p.l4.resize(8);
		}
		if (coin(10))
			p.pad = n(30);
		return p;
	}
};

uint32_t seed_from_env()
{
	const char *s = getenv("BPFILTER_SEED");
	return s ? static_cast<uint32_t>(strtoul(s, nullptr, 0)) : 20261128;
}

using Tests = codegen::Options::Tests;

// The form of tests, and whether every block of two or more rules gets protocol lanes
// (chain.cpp, emit_lanes()) or none does.
class CodegenDiff : public ::testing::TestWithParam<std::tuple<Tests, bool>>
{
};

TEST_P(CodegenDiff, RandomTablesAgreeWithTheEvaluator)
{
	const uint32_t seed = seed_from_env();
	Gen g(seed);
	constexpr int tables = 300, packets = 60;
	int compared = 0, accepted = 0, hotdrops = 0, counted = 0, deep = 0;
	for (int ti = 0; ti < tables; ti++) {
		TableBuilder b = g.table();
		const ir::Table t = b.build();
		ASSERT_TRUE(codegen::check(t).ok()) << "seed " << seed << " table " << ti;
		const auto [tests, lanes] = GetParam();
		Xdp x(t, {.local_only = false,
			  .tests = tests,
			  .lane_max_rules = lanes ? ~0u : 0,
			  .lane_min_block = 2});
		ASSERT_TRUE(x.ok()) << "seed " << seed << " table " << ti << ": " << x.error;
		std::vector<ir::Counter> want(t.rules.size());
		for (int pi = 0; pi < packets; pi++) {
			const Packet p = g.packet();
			const std::string dev = g.pick(ifnames);
			if (dev.empty())
				(void)loader::delete_device(x.ifnames.get(), 1);
			else
				ASSERT_TRUE(x.name_device(1, dev));

			const std::vector<uint8_t> dgram = p.datagram();
			ir::PacketView view{dgram, devname(dev), {}, {}};
			const ir::EvalResult r = ir::evaluate(t, ir::Hook::LocalIn, view);
			const int got = x.run(p.frame());
			ASSERT_EQ(got, r.accept ? pass : drop)
				<< "seed " << seed << " table " << ti << " packet " << pi
				<< (r.hotdrop ? " (hotdrop)" : "");
			size_t len = dgram.size();
			if (p.frag == 0x2000 && p.header_tot_len() == p.true_len() && !p.cut) {
				// Nothing counted until a last piece of 8 bytes comes; then the
				// datagram is, with the first fragment's verdict.
				ASSERT_EQ(x.counters(), want)
					<< "seed " << seed << " table " << ti << " packet " << pi
					<< " (first fragment)";
				Packet last = p;
				last.frag = static_cast<uint16_t>(p.l4.size() / 8);
				last.l4.assign(8, 0xcd);
				last.ip_options.clear();
				last.pad = 0;
				ASSERT_EQ(x.run(last.frame()), got)
					<< "seed " << seed << " table " << ti << " packet " << pi
					<< " (last piece)";
				len += 8;
			}
			for (uint32_t rule : r.counted_rules) {
				want[rule].packets++;
				want[rule].bytes += len;
			}
			const auto c = x.counters();
			ASSERT_EQ(c, want)
				<< "seed " << seed << " table " << ti << " packet " << pi;
			compared++;
			accepted += r.accept;
			hotdrops += r.hotdrop;
			counted += static_cast<int>(r.counted_rules.size());
			deep += r.counted_rules.size() > 2;
		}
	}
	std::printf("seed %u: %d packets through %d tables agree (%d accepted, %d hotdrops, "
		    "%d rule counts, %d packets counted by 3+ rules)\n",
		    seed, compared, tables, accepted, hotdrops, counted, deep);
	// The generator must exercise what it claims to.
	EXPECT_GT(accepted, compared / 10);
	EXPECT_LT(accepted, compared - compared / 10);
	EXPECT_GT(hotdrops, 0);
	EXPECT_GT(deep, compared / 20);
}

INSTANTIATE_TEST_SUITE_P(Modes, CodegenDiff,
			 ::testing::Combine(::testing::Values(Tests::Branch, Tests::FirstBranch,
							      Tests::Accumulate, Tests::Chunked),
					    ::testing::Bool()),
			 [](const auto &info) {
				 const Tests tests = std::get<0>(info.param);
				 return std::string(tests == Tests::Branch	  ? "Branch"
						    : tests == Tests::FirstBranch ? "FirstBranch"
						    : tests == Tests::Chunked	  ? "Chunked"
										  : "Accumulate") +
					(std::get<1>(info.param) ? "Lanes" : "");
			 });

} // namespace
} // namespace bpfilter::test
