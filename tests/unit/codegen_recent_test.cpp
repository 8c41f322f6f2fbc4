// -m recent through BPF_PROG_TEST_RUN against the reference evaluator's model of xt_recent
// (ir/recent.hpp): the verdict and counters of every packet and the lists it leaves, line
// for line as /proc/net/xt_recent shows them (stamps, ttl, ring index, LRU order).
#include "codegen_harness.hpp"

#include <linux/netfilter/xt_recent.h>
#include <time.h>

#include <algorithm>

#include "ir/eval.hpp"
#include "ir/recent.hpp"

namespace bpfilter::test
{
namespace
{

constexpr uint8_t set = XT_RECENT_SET, rcheck = XT_RECENT_CHECK, update = XT_RECENT_UPDATE,
		  remove_ = XT_RECENT_REMOVE, rttl = XT_RECENT_TTL, reap = XT_RECENT_REAP;

ir::RecentMatch recent(const std::string &name, uint8_t check_set, uint32_t seconds = 0,
		       uint32_t hits = 0, bool inv = false, uint8_t side = XT_RECENT_SOURCE,
		       uint32_t mask_bits = 32)
{
	ir::RecentMatch m;
	m.name = name;
	m.check_set = check_set;
	m.seconds = seconds;
	m.hit_count = hits;
	m.invert = inv;
	m.side = side;
	m.mask = mask_bits ? htonl(~0u << (32 - mask_bits)) : 0;
	return m;
}

// What abi::to_ir() does: number the lists by first use, each with the first rule's mask
// and the largest ring its rules ask for.
ir::Table with_lists(ir::Table t)
{
	for (ir::Rule &r : t.rules)
		for (ir::Match &m : r.matches)
			if (auto *x = std::get_if<ir::RecentMatch>(&m)) {
				auto &lists = t.recent_lists;
				auto it = std::find_if(lists.begin(), lists.end(),
						       [&](auto &l) { return l.name == x->name; });
				const uint32_t want = ir::recent::nstamps_mask(x->hit_count);
				if (it == lists.end()) {
					lists.push_back({x->name, x->mask, want});
					it = lists.end() - 1;
				}
				it->nstamps_mask = std::max(it->nstamps_mask, want);
				x->list = static_cast<uint32_t>(it - lists.begin());
			}
	return t;
}

std::string lines_of(const ir::recent::List &l)
{
	std::vector<std::pair<uint32_t, const ir::recent::Entry *>> v;
	for (const auto &[a, e] : l.entries)
		v.emplace_back(a, &e);
	std::sort(v.begin(), v.end(),
		  [](const auto &x, const auto &y) { return x.second->seq < y.second->seq; });
	std::string s;
	for (const auto &[a, e] : v)
		s += ir::recent::proc_line(a, *e, l.nstamps_mask);
	return s;
}

Packet from(const char *src, uint8_t ttl = 64, const char *dst = "10.0.0.2")
{
	Packet p = tcp_packet(1000, 22, 0x02);
	p.saddr = ip4h(src);
	p.daddr = ip4h(dst);
	p.ttl = ttl;
	return p;
}

// The program and the evaluator side by side. The evaluator runs at the jiffies the
// program read: one of those between the reads before and after the run (a tick may
// pass in between), the one whose answer and lists agree.
struct Twin {
	ir::Table table;
	Xdp x;
	ir::EvalState state;
	Twin(ir::Table t, codegen::Options o, std::shared_ptr<loader::RecentLists> lists = nullptr)
	    : table(with_lists(std::move(t))), x(table, o, std::move(lists))
	{
		state = ir::initial_state(table, x.hz, 0);
	}
	std::string lists() const
	{
		std::string s;
		for (const ir::RecentList &l : table.recent_lists) {
			auto shown = x.recent->show(l.name);
			s += l.name + ":\n" +
			     (shown ? *shown : "(" + shown.error().message + ")\n");
		}
		return s;
	}
	std::string model(const ir::EvalState &st) const
	{
		std::string s;
		for (size_t k = 0; k < table.recent_lists.size(); k++)
			s += table.recent_lists[k].name + ":\n" + lines_of(st.recent[k]);
		return s;
	}
	void send(const Packet &p, const std::string &what)
	{
		auto before = loader::read_jiffies();
		ASSERT_TRUE(before.ok());
		const int got = x.run(p.frame());
		auto after = loader::read_jiffies();
		ASSERT_TRUE(after.ok());
		const std::string have = lists();
		const std::vector<uint8_t> dgram = p.datagram();
		ir::PacketView view{dgram, devname(""), {}, {}};
		std::string tried;
		// Each list's matches may read a clock of their own within [before, after].
		const size_t n = table.recent_lists.size();
		const uint64_t span = *after - *before + 1;
		uint64_t combos = 1;
		for (size_t k = 0; k < n && combos < 4096; k++)
			combos *= span;
		for (uint64_t c = 0; c < combos; c++) {
			ir::EvalState st = state;
			uint64_t rest = c;
			st.recent_jiffies.assign(n, *before);
			for (size_t k = 0; k < n; k++, rest /= span)
				st.recent_jiffies[k] = *before + rest % span;
			const uint64_t now = n ? st.recent_jiffies[0] : *before;
			st.jiffies = now;
			const ir::EvalResult r = ir::evaluate(table, ir::Hook::LocalIn, view, st);
			const std::string want = model(st);
			if (got == (r.accept ? XDP_PASS : XDP_DROP) && have == want) {
				state = std::move(st);
				state.recent_jiffies.clear();
				for (uint32_t rule : r.counted_rules) {
					x.expected.at(rule).packets++;
					x.expected.at(rule).bytes += p.header_tot_len();
				}
				ASSERT_EQ(x.counters(), x.expected) << what;
				return;
			}
			tried += "at " + std::to_string(now) + ": verdict " +
				 (r.accept ? "pass" : "drop") + ", lists\n" + want;
		}
		FAIL() << what << ": the program said " << (got == XDP_PASS ? "pass" : "drop")
		       << " and left\n"
		       << have << "the evaluator:\n"
		       << tried;
	}
};

void sleep_ms(long ms)
{
	const timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
	nanosleep(&ts, nullptr);
}

class Recent : public ::testing::TestWithParam<codegen::Options::Tests>
{
protected:
	codegen::Options opts() const
	{
		codegen::Options o = local_only_off();
		o.tests = GetParam();
		return o;
	}
};

// ufw's limit rules: --set, then --update --seconds 30 --hitcount 6 drops the sixth
// connection attempt within 30 s, and every one after it.
TEST_P(Recent, UfwLimit)
{
	TableBuilder b;
	b.input.push_back(R().proto(6).m(tcp({}, {22, 22})).m(recent("DEFAULT", set)).cont());
	b.input.push_back(
		R().proto(6).m(tcp({}, {22, 22})).m(recent("DEFAULT", update, 30, 6)).drop());
	b.input.push_back(R().proto(6).m(tcp({}, {22, 22})).accept());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 9; i++) {
		t.send(from("10.0.0.1"), "attempt " + std::to_string(i));
		t.send(from("10.0.0.9"), "other " + std::to_string(i));
	}
	const auto c = t.x.counters();
	EXPECT_EQ(c[0].packets, 18u);
	EXPECT_EQ(c[2].packets, 10u); // five of each source passed
}

// More sources than ip_list_tot: the least recently updated are forgotten.
TEST_P(Recent, ListForgetsTheLeastRecentlyUpdated)
{
	TableBuilder b;
	b.input.push_back(R().src("10.1.0.0", 16).m(recent("many", set)).cont());
	b.input.push_back(R().m(recent("many", rcheck)).accept());
	b.input.push_back(R().m(recent("many", update)).cont());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 130; i++) {
		const std::string a =
			"10.1." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
		t.send(from(a.c_str()), a);
		if (i % 17 == 0) // an old one updated again moves to the tail
			t.send(from("10.1.0.1"), "10.1.0.1 again");
	}
	t.send(from("10.1.0.2"), "forgotten");
	t.send(from("10.1.0.1"), "kept");
	t.send(from("10.9.0.1"), "never set");
}

// --rttl, --rdest, a /24 mask, --remove and ! --rcheck.
TEST_P(Recent, TtlDestMaskRemoveInvert)
{
	TableBuilder b;
	b.input.push_back(R().proto(6)
				  .m(tcp({}, {22, 22}))
				  .m(recent("d", set, 0, 0, false, XT_RECENT_DEST, 24))
				  .cont());
	b.input.push_back(R().m(recent("s", set)).cont());
	b.input.push_back(R().m(recent("s", rcheck | rttl))
				  .m(recent("d", rcheck, 0, 0, false, XT_RECENT_DEST))
				  .accept());
	b.input.push_back(R().src("10.0.0.7").m(recent("s", remove_)).cont());
	b.input.push_back(R().m(recent("s", rcheck, 0, 0, true)).drop());
	b.input.push_back(R().m(recent("s", rcheck | rttl)).accept());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	t.send(from("10.0.0.1", 64, "192.168.5.1"), "first");
	t.send(from("10.0.0.1", 63, "192.168.5.200"), "other ttl, same /24");
	t.send(from("10.0.0.1", 64, "192.168.5.9"), "same ttl");
	t.send(from("10.0.0.7", 64, "192.168.6.1"), "removed");
	t.send(from("10.0.0.7", 64, "192.168.6.1"), "removed again");
	Packet u = udp_packet(5, 6);
	u.saddr = ip4h("10.0.0.1");
	u.ttl = 5;
	t.send(u, "udp, ttl 5");
}

// --hitcount beyond the default ring (mask 63), and --update's stamps in the ring.
TEST_P(Recent, LargeHitcountRing)
{
	TableBuilder b;
	b.input.push_back(R().m(recent("big", update, 0, 40)).drop());
	b.input.push_back(R().m(recent("big", set)).accept());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	for (int i = 0; i < 80; i++)
		t.send(from("10.0.0.3"), "packet " + std::to_string(i));
}

// --seconds and --reap: stamps older than the window do not count, and the list's head
// goes when its last stamp is.
TEST_P(Recent, SecondsAndReap)
{
	TableBuilder b;
	b.input.push_back(R().proto(17).m(recent("r", set)).accept());
	b.input.push_back(R().m(recent("r", update | reap, 1, 2)).drop());
	b.input.push_back(R().m(recent("r", rcheck, 1)).accept());
	b.input_policy = Kind::Drop;
	Twin t(b.build(), opts());
	ASSERT_TRUE(t.x.ok()) << t.x.error;
	Packet u1 = udp_packet(5, 6);
	u1.saddr = ip4h("10.0.0.1");
	Packet u2 = udp_packet(5, 6);
	u2.saddr = ip4h("10.0.0.2");
	t.send(u1, "set 1");
	t.send(u1, "set 1 again");
	t.send(u2, "set 2");
	t.send(from("10.0.0.1"), "two hits");
	t.send(from("10.0.0.2"), "one hit");
	sleep_ms(1100);
	t.send(from("10.0.0.2"), "window past: reaps 10.0.0.1");
	t.send(from("10.0.0.1"), "reaped");
}

INSTANTIATE_TEST_SUITE_P(Tests, Recent,
			 ::testing::Values(codegen::Options::Tests::Branch,
					   codegen::Options::Tests::Accumulate,
					   codegen::Options::Tests::FirstBranch));

// A list outlives a table that a new one replaces while naming it; a table that no longer
// names it takes it away (recent_mt_check() before recent_mt_destroy()).
TEST(RecentLists, OutliveAReplaceThatKeepsTheName)
{
	TableBuilder a;
	a.input.push_back(R().m(recent("keep", set)).accept());
	a.input.push_back(R().m(recent("gone", set)).accept());
	Twin first(a.build(), local_only_off());
	ASSERT_TRUE(first.x.ok()) << first.x.error;
	first.send(from("10.0.0.5"), "set");
	TableBuilder b;
	b.input.push_back(R().m(recent("keep", rcheck)).drop());
	Twin second(b.build(), local_only_off(), first.x.recent);
	ASSERT_TRUE(second.x.ok()) << second.x.error;
	second.x.recent->retain(second.table.recent_lists);
	EXPECT_EQ(second.x.run(from("10.0.0.5").frame()), XDP_DROP);
	EXPECT_EQ(second.x.run(from("10.0.0.6").frame()), XDP_PASS);
	EXPECT_FALSE(second.x.recent->show("gone").ok());
	auto kept = second.x.recent->show("keep");
	ASSERT_TRUE(kept.ok());
	EXPECT_EQ(kept->rfind("src=10.0.0.5 ttl: 64 last_seen: ", 0), 0u) << *kept;
	// The proc file's writes.
	EXPECT_TRUE(second.x.recent->write("keep", "-10.0.0.5\n", 1).ok());
	EXPECT_EQ(second.x.run(from("10.0.0.5").frame()), XDP_PASS);
	EXPECT_TRUE(second.x.recent->write("keep", "+10.0.0.6", 77).ok());
	EXPECT_EQ(*second.x.recent->show("keep"),
		  "src=10.0.0.6 ttl: 0 last_seen: 77 oldest_pkt: 1 77\n");
	EXPECT_EQ(second.x.run(from("10.0.0.6").frame()), XDP_DROP);
	EXPECT_EQ(second.x.recent->write("keep", "x", 1).error().errnum, EINVAL);
	EXPECT_TRUE(second.x.recent->write("keep", "/", 1).ok());
	EXPECT_EQ(*second.x.recent->show("keep"), "");
}

} // namespace
} // namespace bpfilter::test
