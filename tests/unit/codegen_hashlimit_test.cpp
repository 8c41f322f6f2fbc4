// -m hashlimit through BPF_PROG_TEST_RUN against the reference evaluator's model of
// xt_hashlimit: the verdict of every packet and every htable entry it leaves (key, expires,
// prev and the four words of rateinfo, to the credit), for each revision, mode and the
// rate-match and bytes variants, over bursts within a tick.
#include "codegen_harness.hpp"

#include "ir/eval.hpp"
#include "ir/hashlimit.hpp"

namespace bpfilter::test
{
namespace
{

namespace hl = ir::hashlimit;

// libxt_hashlimit's encoding of "N per hour": avg in 1/10000 s (revision 1) or 1/1000000 s.
hl::Cfg per_hour(uint8_t rev, uint64_t n, uint64_t burst, uint32_t mode)
{
	hl::Cfg c;
	c.avg = (rev == 1 ? 10000ull : 1000000ull) * 3600 / n;
	c.burst = burst;
	c.mode = mode;
	c.gc_interval = 1000;
	c.expire = 10000;
	c.srcmask = c.dstmask = 32;
	return c;
}

ir::HashlimitMatch hm(uint8_t rev, const hl::Cfg &c, uint32_t table = 0)
{
	ir::HashlimitMatch m;
	m.revision = rev;
	m.cfg = c;
	m.table = table;
	return m;
}

ir::UdpMatch udp_match(uint16_t dport)
{
	ir::UdpMatch m;
	m.dport = {dport, dport};
	return m;
}

Packet from(const char *src, uint16_t sport = 1000, uint16_t dport = 53)
{
	Packet p = udp_packet(sport, dport);
	p.saddr = ip4h(src);
	return p;
}

// Runs packets through the program and the evaluator side by side. The evaluator's clock
// is the one the program read: every entry a packet touches gets expires = now + expire.
struct Twin {
	ir::Table table;
	Xdp x;
	ir::EvalState state;
	Twin(ir::Table t, codegen::Options o) : table(std::move(t)), x(table, o)
	{
		state = ir::initial_state(table, x.hz ? x.hz : 250, 0);
		state.ram = loader::total_ram();
		for (size_t k = 0; k < table.hashlimits.size(); k++)
			state.hashlimits[k].max = hl::table_max(table.hashlimits[k].cfg, state.ram);
	}

	void send(const Packet &p, const std::string &what)
	{
		auto before = loader::read_jiffies();
		ASSERT_TRUE(before.ok());
		const int got = x.run(p.frame());
		const auto entries = x.hashlimit_entries();
		uint64_t now = *before;
		for (size_t t = 0; t < entries.size(); t++)
			for (const auto &[k, e] : entries[t])
				now = std::max(
					now,
					e.expires - hl::msecs_to_jiffies(
							    table.hashlimits[t].cfg.expire, x.hz));
		state.jiffies = now;
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view{dgram, devname(""), {}, {}};
		const ir::EvalResult r = ir::evaluate(table, ir::Hook::LocalIn, view, state);
		ASSERT_EQ(got, r.accept ? XDP_PASS : XDP_DROP) << what;
		ASSERT_EQ(entries.size(), state.hashlimits.size());
		for (size_t t = 0; t < entries.size(); t++)
			ASSERT_EQ(entries[t], state.hashlimits[t].entries)
				<< what << ", htable " << t;
		for (uint32_t rule : r.counted_rules) {
			x.expected.at(rule).packets++;
			x.expected.at(rule).bytes += p.header_tot_len();
		}
		ASSERT_EQ(x.counters(), x.expected) << what;
	}
};

class Hashlimit : public ::testing::TestWithParam<codegen::Options::Tests>
{
protected:
	codegen::Options opts() const
	{
		codegen::Options o = local_only_off();
		o.tests = GetParam();
		return o;
	}
	// INPUT: the hashlimit rule accepts, the policy drops.
	ir::Table one(uint8_t rev, const hl::Cfg &c)
	{
		TableBuilder b;
		b.input.push_back(R().m(hm(rev, c)).accept());
		b.input_policy = Kind::Drop;
		ir::Table t = b.build();
		t.hashlimits.push_back({"t", c, rev});
		return t;
	}
};

// A burst per source address, for each revision's arithmetic.
TEST_P(Hashlimit, BurstPerSource)
{
	for (uint8_t rev : {1, 2, 3}) {
		Twin t(one(rev, per_hour(rev, 1, 3, hl::hash_sip)), opts());
		ASSERT_TRUE(t.x.ok()) << t.x.error;
		for (int i = 0; i < 5; i++)
			for (const char *src : {"192.0.2.1", "192.0.2.2", "198.51.100.7"})
				t.send(from(src), "rev " + std::to_string(rev) + " " + src + " #" +
							  std::to_string(i));
		EXPECT_EQ(t.x.counters()[0].packets, 9u) << "rev " << +rev;
	}
}

// --hashlimit-above: the match is the packets over the limit.
TEST_P(Hashlimit, Above)
{
	hl::Cfg c = per_hour(3, 2, 2, hl::hash_dip | hl::invert);
	Twin t(one(3, c), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 5; i++)
		t.send(from("192.0.2.1"), "#" + std::to_string(i));
	EXPECT_EQ(t.x.counters()[0].packets, 3u);
}

// Ports and masks: srcip/24 with dstport, and srcport alone; ICMP has no ports (zeroes).
TEST_P(Hashlimit, PortsAndMasks)
{
	hl::Cfg c = per_hour(3, 1, 2, hl::hash_sip | hl::hash_dpt);
	c.srcmask = 24;
	Twin t(one(3, c), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 3; i++) {
		t.send(from("192.0.2.1", 1000, 53), "a");
		t.send(from("192.0.2.200", 1001, 53), "b, same /24");
		t.send(from("192.0.2.1", 1000, 54), "c, another port");
		Packet ic = icmp_packet(8, 0);
		ic.saddr = ip4h("192.0.2.9");
		t.send(ic, "icmp");
	}
	hl::Cfg s = per_hour(2, 1, 1, hl::hash_spt);
	Twin u(one(2, s), opts());
	ASSERT_TRUE(u.x.ok()) << u.x.error;
	for (int i = 0; i < 2; i++)
		for (uint16_t sp : {1000, 1001})
			u.send(from("192.0.2.1", sp, 9), "sport " + std::to_string(sp));
}

// A UDP header cut short: the kernel cannot read the ports and drops the packet.
TEST_P(Hashlimit, PortsCutShortHotdrop)
{
	Twin t(one(3, per_hour(3, 1, 2, hl::hash_dpt)), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	Packet p = from("192.0.2.1");
	p.l4.resize(2);
	t.send(p, "2 bytes of UDP");
	EXPECT_EQ(t.x.counters()[0].packets, 0u);
}

// Bytes mode: the credit of a second, a cost per 16-byte chunk, burst refills.
TEST_P(Hashlimit, Bytes)
{
	for (uint64_t burst : {0, 2}) {
		hl::Cfg c = per_hour(3, 1, burst, hl::hash_sip | hl::bytes);
		c.avg = 20000; // bytes a second
		Twin t(one(3, c), opts());
		ASSERT_TRUE(t.x.ok()) << t.x.error;
		for (int i = 0; i < 40; i++) {
			Packet p = from("192.0.2.1");
			p.l4.resize(8 + 1400);
			t.send(p, "burst " + std::to_string(burst) + " #" + std::to_string(i));
		}
	}
}

// Revision 3's rate match: packets within the interval's allowance, in packets and bytes.
TEST_P(Hashlimit, RateMatch)
{
	for (uint32_t extra : {0u, hl::bytes}) {
		hl::Cfg c = per_hour(3, 1, 4, hl::hash_sip | hl::rate_match | extra);
		c.avg = extra ? 5000 : 100000; // 5000 B/s, or 10/s
		c.interval = 1;
		Twin t(one(3, c), opts());
		ASSERT_TRUE(t.x.ok()) << t.x.error;
		for (int i = 0; i < 20; i++)
			t.send(from(i % 2 ? "192.0.2.1" : "192.0.2.2"),
			       "mode " + std::to_string(c.mode) + " #" + std::to_string(i));
	}
}

// htable-max: an entry beyond it cannot be made, and the kernel drops the packet.
TEST_P(Hashlimit, FullTableHotdrops)
{
	hl::Cfg c = per_hour(3, 1, 5, hl::hash_sip);
	c.size = 2;
	c.max = 2;
	Twin t(one(3, c), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (const char *src : {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"})
		t.send(from(src), src);
	EXPECT_EQ(t.x.counters()[0].packets, 3u);
}

// Two rules of one name share the htable, made by the first: the second's own rate does
// not make its entries, its mode decides (here: above).
TEST_P(Hashlimit, SharedByName)
{
	TableBuilder b;
	hl::Cfg first = per_hour(3, 1, 2, hl::hash_sip);
	hl::Cfg second = per_hour(3, 1, 50, hl::hash_sip | hl::invert);
	b.input.push_back(R().proto(17).m(udp_match(53)).m(hm(3, first)).accept());
	b.input.push_back(R().m(hm(3, second)).t(Kind::Drop));
	b.input.push_back(R().accept());
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	t.hashlimits.push_back({"shared", first, 3});
	Twin w(t, opts());
	ASSERT_TRUE(w.x.ok()) << w.x.error;
	for (int i = 0; i < 4; i++) {
		w.send(from("192.0.2.1", 1000, 53), "53 #" + std::to_string(i));
		w.send(from("192.0.2.1", 1000, 80), "80 #" + std::to_string(i));
	}
}

// Rules after a failed test take nothing; the match after a hashlimit runs only if it passed.
TEST_P(Hashlimit, OnlyPacketsThatReachItTake)
{
	TableBuilder b;
	hl::Cfg c = per_hour(3, 1, 2, 0); // one entry for everything
	b.input.push_back(R().proto(17).m(udp_match(53)).m(hm(3, c)).accept());
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	t.hashlimits.push_back({"all", c, 3});
	Twin w(t, opts());
	ASSERT_TRUE(w.x.ok()) << w.x.error;
	for (int i = 0; i < 3; i++) {
		w.send(from("192.0.2.1", 1000, 54), "54");
		w.send(from("192.0.2.1", 1000, 53), "53");
	}
	EXPECT_EQ(w.x.counters()[0].packets, 2u);
}

// Each htable counts its own entries against its own max, though all of them are in the
// namespace's one map: a full htable leaves the others room.
TEST_P(Hashlimit, MaxPerHtable)
{
	TableBuilder b;
	hl::Cfg a = per_hour(3, 1, 5, hl::hash_sip);
	a.size = a.max = 2;
	hl::Cfg c = per_hour(3, 1, 5, hl::hash_sip);
	c.size = c.max = 3;
	b.input.push_back(R().proto(17).m(udp_match(53)).m(hm(3, a, 0)).accept());
	b.input.push_back(R().proto(17).m(udp_match(54)).m(hm(3, c, 1)).accept());
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	t.hashlimits.push_back({"a", a, 3});
	t.hashlimits.push_back({"b", c, 3});
	Twin w(t, opts());
	ASSERT_TRUE(w.x.ok()) << w.x.error;
	for (const char *src : {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}) {
		w.send(from(src, 1000, 53), std::string("a ") + src);
		w.send(from(src, 1000, 54), std::string("b ") + src);
	}
	EXPECT_EQ(w.x.counters()[0].packets, 2u);
	EXPECT_EQ(w.x.counters()[1].packets, 3u);
	EXPECT_EQ(w.x.htables->count("a"), 2u);
	EXPECT_EQ(w.x.htables->count("b"), 3u);
}

// 500 names in one table (a program may use 64 maps): each htable is its own, with its own
// burst, and the program loads.
TEST_P(Hashlimit, ManyNames)
{
	constexpr uint32_t names = 500;
	TableBuilder b;
	std::vector<ir::HashlimitTable> hts;
	for (uint32_t i = 0; i < names; i++) {
		const hl::Cfg c = per_hour(3, 1, 1 + i % 3, hl::hash_sip);
		b.input.push_back(R().proto(17)
					  .m(udp_match(static_cast<uint16_t>(1000 + i)))
					  .m(hm(3, c, i))
					  .accept());
		hts.push_back({"h" + std::to_string(i), c, 3});
	}
	b.input_policy = Kind::Drop;
	ir::Table t = b.build();
	t.hashlimits = hts;
	Twin w(t, opts());
	ASSERT_TRUE(w.x.ok()) << w.x.error;
	for (uint32_t i = 0; i < names; i += 7)
		for (int k = 0; k < 4; k++)
			w.send(from(k % 2 ? "192.0.2.1" : "192.0.2.2", 1000,
				    static_cast<uint16_t>(1000 + i)),
			       "h" + std::to_string(i) + " #" + std::to_string(k));
	for (uint32_t i = 0; i < names; i += 7) {
		EXPECT_EQ(w.x.counters()[i].packets, 2 * std::min(2u, 1 + i % 3)) << "h" << i;
		EXPECT_EQ(w.x.htables->count("h" + std::to_string(i)), 2u) << "h" << i;
	}
	EXPECT_EQ(w.x.htables->count("h1"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Forms, Hashlimit,
			 ::testing::Values(codegen::Options::Tests::Branch,
					   codegen::Options::Tests::Accumulate,
					   codegen::Options::Tests::FirstBranch));

} // namespace
} // namespace bpfilter::test
