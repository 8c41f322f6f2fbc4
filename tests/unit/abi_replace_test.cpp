// ipt_replace parsing: good tables as iptables-legacy builds them, and every kind of
// malformed one refused with the errno Linux 6.1's translate_table gives.
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>

#include <gtest/gtest.h>

#include "abi/extensions.hpp"
#include "abi/table.hpp"
#include "abi_builder.hpp"

namespace bpfilter
{
namespace
{

using test::Builder;
using test::Bytes;
using test::Ip;
using test::peek;
using test::poke;
using test::Rule;
using test::Target;

constexpr uint32_t H = abi::replace_size; // entries start here in a replace blob

int parse_errno(const Bytes &b)
{
	auto r = abi::parse_replace(b);
	return r.ok() ? 0 : r.error().errnum;
}

// INPUT: tcp dport 22 accept, jump to "web", goto "log"; web: multiport + iprange + comment.
Builder rich()
{
	Builder b;
	b.chain("log").chain("web");
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP).src(0x0a000000, 8),
			     {test::tcp(0, 0xffff, 22, 22)},
			     Target::accept()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP), {}, Target::jump("web")});
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_ICMP), {test::icmp(8, 0, 0xff)}, Target::go_to("log")});
	b.rule("INPUT", Rule{Ip().in("eth+").inv(IPT_INV_VIA_IN),
			     {test::comment("not eth")},
			     Target::drop()});
	b.rule("web", Rule{Ip().proto(IPPROTO_TCP),
			   {test::multiport(XT_MULTIPORT_DESTINATION, {{80, 80}, {8000, 8080}})},
			   Target::accept()});
	b.rule("web",
	       Rule{Ip(), {test::iprange(IPRANGE_SRC, 0x0a000001, 0x0a0000ff)}, Target::ret()});
	b.rule("web", Rule{Ip().proto(IPPROTO_UDP), {test::udp(53, 53)}, Target::drop()});
	b.rule("log", Rule{Ip(), {}, Target::drop()});
	b.policy("INPUT", abi::verdict_drop);
	return b;
}

TEST(AbiReplace, InitialTableIsIptableFilters)
{
	const abi::StoredTable t = abi::initial_filter_table();
	EXPECT_EQ(t.name, "filter");
	EXPECT_EQ(t.valid_hooks, 0x0eu);
	EXPECT_EQ(t.entries.size(), 632u);
	EXPECT_EQ(t.offsets, (std::vector<uint32_t>{0, 152, 304, 456}));
	EXPECT_EQ(t.hook_entry, (std::array<uint32_t, 5>{0xffffffff, 0, 152, 304, 0xffffffff}));
	EXPECT_EQ(t.underflow, (std::array<uint32_t, 5>{0xffffffff, 0, 152, 304, 0xffffffff}));
	// mark_source_chains leaves each policy marked with its own hook, the ERROR entry with
	// none.
	const Bytes e = t.entries;
	EXPECT_EQ(peek<uint32_t>(e, 0 + abi::entry_comefrom), 1u << 1);
	EXPECT_EQ(peek<uint32_t>(e, 152 + abi::entry_comefrom), 1u << 2);
	EXPECT_EQ(peek<uint32_t>(e, 304 + abi::entry_comefrom), 1u << 3);
	EXPECT_EQ(peek<uint32_t>(e, 456 + abi::entry_comefrom), 0u);
	auto ir = abi::to_ir(t);
	ASSERT_TRUE(ir.ok());
	ASSERT_EQ(ir->rules.size(), 4u);
	EXPECT_EQ(ir->rules[0].target.kind, ir::Target::Kind::Accept);
	EXPECT_EQ(ir->rules[3].target.kind, ir::Target::Kind::Error);
	EXPECT_EQ(ir->hook_entry[1], 0u);
	EXPECT_EQ(ir->underflow[3], 2u);
	EXPECT_FALSE(ir->hook_entry[0].has_value());
}

TEST(AbiReplace, DefaultBuilderTableEqualsInitialEntries)
{
	// The builder lays tables out as libiptc does; the empty one is the kernel's initial table.
	EXPECT_EQ(Builder().layout().entries, abi::initial_filter_entries());
}

TEST(AbiReplace, RichTableTranslates)
{
	const Builder b = rich();
	const auto l = b.layout();
	auto r = abi::parse_replace(b.replace(7));
	ASSERT_TRUE(r.ok()) << r.error().message;
	EXPECT_EQ(r->num_counters, 7u);
	EXPECT_EQ(r->table.offsets, l.offsets);
	auto ir = abi::to_ir(r->table);
	ASSERT_TRUE(ir.ok()) << ir.error().message;
	const auto &rules = ir->rules;
	ASSERT_EQ(rules.size(), l.offsets.size());
	// INPUT: 4 rules + policy; log: head, 1 rule, return; web: head, 3 rules, return; ERROR.
	ASSERT_EQ(rules.size(), 5u + 2 + 3 + 5 + 1);
	auto index_of = [&](uint32_t off) {
		return static_cast<uint32_t>(std::find(l.offsets.begin(), l.offsets.end(), off) -
					     l.offsets.begin());
	};
	const uint32_t web = index_of(l.chain_start.at("web"));
	const uint32_t log = index_of(l.chain_start.at("log"));
	EXPECT_EQ(rules[0].ip.proto, IPPROTO_TCP);
	EXPECT_EQ(rules[0].ip.src, htobe32(0x0a000000));
	EXPECT_EQ(rules[0].ip.src_mask, htobe32(0xff000000));
	ASSERT_EQ(rules[0].matches.size(), 1u);
	EXPECT_EQ(std::get<ir::TcpMatch>(rules[0].matches[0]).dport, (ir::PortRange{22, 22}));
	EXPECT_EQ(rules[1].target, (ir::Target{ir::Target::Kind::Jump, web}));
	EXPECT_EQ(rules[2].target, (ir::Target{ir::Target::Kind::Goto, log}));
	EXPECT_EQ(rules[2].ip.flags, 0); // IPT_F_GOTO lifted into the target
	EXPECT_EQ(std::get<ir::IcmpMatch>(rules[2].matches[0]), (ir::IcmpMatch{8, 0, 0xff, false}));
	EXPECT_TRUE(rules[3].matches.empty()); // -m comment dropped
	EXPECT_EQ(rules[3].ip.invflags, IPT_INV_VIA_IN);
	EXPECT_EQ(rules[3].ip.in.mask[2], 0xff);
	EXPECT_EQ(rules[3].ip.in.mask[3], 0);
	EXPECT_EQ(rules[4].target.kind, ir::Target::Kind::Drop); // INPUT policy
	EXPECT_EQ(ir->underflow[1], 4u);
	EXPECT_EQ(rules[log - 1].target.kind, ir::Target::Kind::Error); // chain head
	const auto &mp = std::get<ir::MultiportMatch>(rules[web].matches[0]);
	EXPECT_EQ(mp.dir, ir::MultiportMatch::Dir::Destination);
	EXPECT_EQ(mp.ports, (std::vector<ir::PortRange>{{80, 80}, {8000, 8080}}));
	const auto &ipr = std::get<ir::IprangeMatch>(rules[web + 1].matches[0]);
	EXPECT_EQ(ipr.src_min, 0x0a000001u);
	EXPECT_EQ(ipr.src_max, 0x0a0000ffu);
	EXPECT_EQ(rules[web + 1].target.kind, ir::Target::Kind::Return);
	EXPECT_EQ(std::get<ir::UdpMatch>(rules[web + 2].matches[0]).sport, (ir::PortRange{53, 53}));
	EXPECT_EQ(rules[web + 3].target.kind, ir::Target::Kind::Return); // chain end
	EXPECT_EQ(rules.back().target.kind, ir::Target::Kind::Error);
	for (uint32_t k = 0; k < rules.size(); k++)
		EXPECT_EQ(rules[k].offset, l.offsets[k]);
}

TEST(AbiReplace, JumpToNextEntryIsContinue)
{
	Builder b;
	b.chain("next");
	b.rule("INPUT",
	       Rule{Ip(), {}, Target::jump("next")}); // lands right after, past the ERROR head? no:
	auto l = b.layout();
	// Point the jump at the entry right after it (the INPUT policy).
	const uint32_t t = l.offsets[0] + abi::entry_size + abi::ext_header_size;
	test::poke<int32_t>(l.entries, t, static_cast<int32_t>(l.offsets[1]));
	auto r = abi::parse_replace(Builder::replace_of(l, 4));
	ASSERT_TRUE(r.ok()) << r.error().message;
	auto ir = abi::to_ir(r->table);
	ASSERT_TRUE(ir.ok());
	EXPECT_EQ(ir->rules[0].target.kind, ir::Target::Kind::Continue);
}

// Malformed headers.
TEST(AbiReplace, HeaderChecks)
{
	const Bytes good = Builder().replace();
	EXPECT_EQ(parse_errno(good), 0);
	EXPECT_EQ(parse_errno(Bytes(good.begin(), good.begin() + 95)), EINVAL);
	Bytes b = good;
	poke<uint32_t>(b, abi::replace_num_counters, 0);
	EXPECT_EQ(parse_errno(b), EINVAL);
	poke<uint32_t>(b, abi::replace_num_counters, INT_MAX / 16);
	EXPECT_EQ(parse_errno(b), ENOMEM);
	b = good;
	b.pop_back(); // shorter than size says
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint32_t>(b, abi::replace_size_field, 512u << 20);
	EXPECT_EQ(parse_errno(b), EINVAL); // len check comes before the allocation
	b = good;
	poke<uint32_t>(b, abi::replace_num_entries, 5);
	EXPECT_EQ(parse_errno(b), EINVAL);
	poke<uint32_t>(b, abi::replace_num_entries, 3);
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint32_t>(b, abi::replace_num_entries, (512u << 20) / 4 + 1);
	EXPECT_EQ(parse_errno(b), ENOMEM);
	// A name of 32 bytes is cut to 31, as tmp.name[31] = 0 does.
	b = good;
	std::memset(b.data(), 'x', 32);
	auto r = abi::parse_replace(b);
	ASSERT_TRUE(r.ok());
	EXPECT_EQ(r->table.name, std::string(31, 'x'));
}

TEST(AbiReplace, HookChecks)
{
	const Bytes good = Builder().replace();
	Bytes b = good;
	poke<uint32_t>(b, abi::replace_hook_entry + 4 * 1, 8); // not an entry start
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint32_t>(b, abi::replace_underflow + 4 * 2, 456); // the ERROR entry: not a policy
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint32_t>(b, abi::replace_hook_entry + 4 * 2, 0); // FORWARD entry == INPUT entry
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint32_t>(b, abi::replace_underflow + 4 * 3, 152); // duplicate underflow
	poke<uint32_t>(b, abi::replace_hook_entry + 4 * 3, 304);
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint32_t>(b, abi::replace_valid_hooks,
		       0x1f); // PREROUTING entry 0 == INPUT's: unsorted
	EXPECT_EQ(parse_errno(b), EINVAL);
	// valid_hooks 0x06 parses (translate_table checks only the hooks it names) but is not
	// the filter table's: __do_replace's "You lied!" EINVAL.
	b = good;
	poke<uint32_t>(b, abi::replace_valid_hooks, 0x06);
	auto r = abi::parse_replace(b);
	ASSERT_TRUE(r.ok()) << r.error().message;
	auto s = abi::check_replace(*r, abi::initial_filter_table());
	ASSERT_FALSE(s.ok());
	EXPECT_EQ(s.error().errnum, EINVAL);
	// A policy that is conditional, or RETURN, is not an underflow.
	Builder c;
	c.policy("OUTPUT", abi::verdict_return);
	EXPECT_EQ(parse_errno(c.replace()), EINVAL);
	b = good;
	b[H + 304 + abi::ip_proto] = IPPROTO_TCP;
	EXPECT_EQ(parse_errno(b), EINVAL);
}

TEST(AbiReplace, CheckReplaceAgainstCurrent)
{
	const abi::StoredTable cur = abi::initial_filter_table();
	auto r = abi::parse_replace(Builder().replace(4));
	ASSERT_TRUE(r.ok());
	EXPECT_TRUE(abi::check_replace(*r, cur).ok());
	auto stale = abi::parse_replace(Builder().replace(5));
	ASSERT_TRUE(stale.ok());
	EXPECT_EQ(abi::check_replace(*stale, cur).error().errnum, EAGAIN);
	auto huge = abi::parse_replace(Builder().replace((32u << 20) + 1));
	ASSERT_TRUE(huge.ok());
	EXPECT_EQ(abi::check_replace(*huge, cur).error().errnum, ENOMEM);
	auto nat = abi::parse_replace(Builder::replace_of(Builder().layout(), 4, "nat"));
	ASSERT_TRUE(nat.ok());
	EXPECT_EQ(abi::check_replace(*nat, cur).error().errnum, ENOENT);
}

TEST(AbiReplace, EntryOffsetChecks)
{
	const Bytes good = Builder().replace();
	Bytes b = good;
	poke<uint16_t>(b, H + 0 + abi::entry_target_offset, 104); // inside the header
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, H + 0 + abi::entry_next_offset, 136); // no room for a target
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, H + 456 + abi::entry_next_offset, 184); // past the end
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, H + 0 + abi::entry_next_offset, 160); // standard: not XT_ALIGN(to + 40)
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, H + 0 + abi::entry_size, 24); // target_size below its header
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, H + 0 + abi::entry_size, 48); // target runs past next_offset
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	b[H + 0 + abi::ip_flags] = 0x04; // unknown flag
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	b[H + 0 + abi::ip_invflags] = 0x80; // unknown invflag
	EXPECT_EQ(parse_errno(b), EINVAL);
	// Standard verdicts: 0, NF_STOLEN and -6 are not verdict_ok.
	for (int32_t v : {0, -3, -6, INT32_MIN}) {
		b = good;
		poke<int32_t>(b, H + 152 + abi::entry_size + abi::ext_header_size, v);
		EXPECT_EQ(parse_errno(b), EINVAL) << v;
	}
	// ERROR target: wrong size, or an errorname without its NUL.
	b = good;
	std::memset(b.data() + H + 456 + abi::entry_size + abi::ext_header_size, 'E', 30);
	EXPECT_EQ(parse_errno(b), EINVAL);
	// An entry header that reaches the end of the table.
	Bytes shortb = good;
	shortb.resize(shortb.size() - 176 + 112);
	poke<uint32_t>(shortb, abi::replace_size_field, 632 - 176 + 112);
	EXPECT_EQ(parse_errno(shortb), EINVAL);
	// A misaligned entry: the ERROR entry's next_offset may be odd (no alignment rule for
	// ERROR), which leaves the following entry misaligned.
	Bytes mis = good;
	poke<uint16_t>(mis, H + 456 + abi::entry_next_offset, 180);
	Bytes extra = Builder().layout().entries;
	mis.insert(mis.end(), 4, 0);
	mis.insert(mis.end(), extra.begin() + 456, extra.end());
	poke<uint32_t>(mis, abi::replace_size_field, 632 + 4 + 176);
	poke<uint32_t>(mis, abi::replace_num_entries, 5);
	EXPECT_EQ(parse_errno(mis), EINVAL);
}

TEST(AbiReplace, MatchLayoutChecks)
{
	Builder bl;
	bl.rule("INPUT",
		Rule{Ip().proto(IPPROTO_TCP), {test::tcp(), test::comment("x")}, Target::accept()});
	const Bytes good = bl.replace();
	ASSERT_EQ(parse_errno(good), 0);
	const uint32_t m0 = H + abi::entry_size;
	Bytes b = good;
	poke<uint16_t>(b, m0, 24); // match_size below its header
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, m0, 48 + 288 + 8); // past target_offset
	EXPECT_EQ(parse_errno(b), EINVAL);
	b = good;
	poke<uint16_t>(b, m0, 44); // next match misaligned
	EXPECT_EQ(parse_errno(b), EINVAL);
}

TEST(AbiReplace, MatchLookupAndChecks)
{
	auto with = [](Ip ip, Bytes m) {
		Builder b;
		b.rule("INPUT", Rule{ip, {std::move(m)}, Target::accept()});
		return parse_errno(b.replace());
	};
	const Ip tcp = Ip().proto(IPPROTO_TCP);
	EXPECT_EQ(with(tcp, test::tcp(1, 2, 3, 4, 0x3f, 0x02, 0x0f, 2)), 0);
	EXPECT_EQ(with(Ip(), test::tcp()), EINVAL); // -m tcp needs -p tcp
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP).inv(IPT_INV_PROTO), test::tcp()), EINVAL);
	EXPECT_EQ(with(Ip().proto(IPPROTO_UDP), test::tcp()), EINVAL);
	EXPECT_EQ(with(tcp, test::tcp(0, 0xffff, 0, 0xffff, 0, 0, 0x10)), EINVAL); // tcp_mt_check
	EXPECT_EQ(with(Ip().proto(IPPROTO_UDP), test::udp(0, 0xffff, 0, 0xffff, 0x04)), EINVAL);
	EXPECT_EQ(with(Ip().proto(IPPROTO_ICMP), test::icmp(8, 0, 0xff, 0x02)), EINVAL);
	EXPECT_EQ(with(Ip().proto(IPPROTO_ICMP), test::icmp(0xff)), 0);
	EXPECT_EQ(with(Ip(), test::icmp(8)), EINVAL);
	// Unknown names and revisions, as a kernel without the extension answers.
	uint8_t data[8] = {};
	EXPECT_EQ(with(Ip(), test::match("cpu", 0, data, 8)), ENOENT);
	EXPECT_EQ(with(Ip(), test::match("conntrack", 4, data, 8)), EPROTOTYPE);
	struct xt_tcp t = {};
	t.spts[1] = t.dpts[1] = 0xffff;
	EXPECT_EQ(with(tcp, test::match("tcp", 1, &t, sizeof(t))),
		  ENOENT); // IPv4 EPROTOTYPE is lost
	char c[256] = {};
	EXPECT_EQ(with(Ip(), test::match("comment", 1, c, sizeof(c))),
		  EPROTOTYPE); // NFPROTO_UNSPEC
	Bytes unterminated = test::comment("x");
	std::memset(unterminated.data() + abi::ext_name, 'a', abi::ext_name_len);
	EXPECT_EQ(with(Ip(), unterminated), EINVAL);
	EXPECT_EQ(with(tcp, test::match("tcp", 0, &t, 8)), EINVAL); // matchsize 8 != 16
	// multiport_mt_check
	const Ip mp = Ip().proto(IPPROTO_UDP);
	EXPECT_EQ(with(mp, test::multiport(XT_MULTIPORT_EITHER, {{1, 1}, {5, 9}}, true)), 0);
	EXPECT_EQ(with(Ip().proto(IPPROTO_ICMP), test::multiport(0, {{1, 1}})), EINVAL);
	EXPECT_EQ(with(Ip(), test::multiport(0, {{1, 1}})), EINVAL);
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP).inv(IPT_INV_PROTO), test::multiport(0, {{1, 1}})),
		  EINVAL);
	EXPECT_EQ(with(mp, test::multiport(3, {{1, 1}})), EINVAL);
	Bytes m = test::multiport(0, {{9, 5}});
	EXPECT_EQ(with(mp, m), EINVAL); // range upside down
	m = test::multiport(0, {{1, 1}});
	m[abi::ext_header_size + offsetof(struct xt_multiport_v1, count)] = 16;
	EXPECT_EQ(with(mp, m), EINVAL);
	m = test::multiport(0, {{1, 1}});
	m[abi::ext_header_size + offsetof(struct xt_multiport_v1, pflags)] = 1; // range without end
	EXPECT_EQ(with(mp, m), EINVAL);
	// iprange has no checkentry: any flags pass.
	EXPECT_EQ(with(Ip(), test::iprange(0xff, 5, 1)), 0);
}

TEST(AbiReplace, TargetLookup)
{
	Builder b;
	b.rule("INPUT", Rule{Ip(), {}, Target{0, "", false, test::named_target("TPROXY", 0, 4)}});
	EXPECT_EQ(parse_errno(b.replace()), ENOENT);
	Bytes r = Builder().replace();
	r[H + abi::entry_size + abi::ext_revision] = 1; // standard target revision 1
	EXPECT_EQ(parse_errno(r), ENOENT);
	// A standard target whose target_size is not XT_ALIGN(sizeof(int)) + 32.
	Builder c;
	Bytes big = test::standard_target(abi::verdict_drop);
	c.rule("INPUT", Rule{Ip(), {}, Target{0, "", false, big}});
	auto l = c.layout();
	poke<uint16_t>(l.entries, abi::entry_size, 36);
	EXPECT_EQ(parse_errno(Builder::replace_of(l, 4)), EINVAL);
}

// log_tg_check(): a level above 7 or a prefix without its NUL is EINVAL.
TEST(AbiReplace, LogTarget)
{
	const auto with = [](Bytes target) {
		Builder b;
		b.rule("INPUT", Rule{Ip(), {}, Target{0, "", false, std::move(target)}});
		return parse_errno(b.replace());
	};
	EXPECT_EQ(with(test::log_target(7, XT_LOG_MASK, "DROP: ")), 0);
	EXPECT_EQ(with(test::log_target(8, 0, "")), EINVAL);
	EXPECT_EQ(with(test::log_target(0, 0, std::string(30, 'x'))), EINVAL);
	EXPECT_EQ(with(test::log_target(0, 0, std::string(29, 'x'))), 0);

	Builder b;
	b.rule("INPUT",
	       Rule{Ip(), {}, Target{0, "", false, test::log_target(6, XT_LOG_TCPSEQ, "in: ")}});
	auto r = abi::parse_replace(b.replace());
	ASSERT_TRUE(r.ok()) << r.error().message;
	auto t = abi::to_ir(r->table);
	ASSERT_TRUE(t.ok()) << t.error().message;
	const ir::Target &tg = t->rules[0].target;
	EXPECT_EQ(tg.kind, ir::Target::Kind::Log);
	EXPECT_EQ(tg.log.level, 6);
	EXPECT_EQ(tg.log.flags, XT_LOG_TCPSEQ);
	EXPECT_STREQ(tg.log.prefix.data(), "in: ");
}

TEST(AbiReplace, FirstFailingEntryDecides)
{
	// An unknown match in entry 0 is reported before a bad match size in entry 1.
	Builder b;
	uint8_t data[8] = {};
	b.rule("INPUT", Rule{Ip(), {test::match("cpu", 0, data, 8)}, Target::accept()});
	b.rule("INPUT",
	       Rule{Ip().proto(IPPROTO_TCP), {test::match("tcp", 0, data, 8)}, Target::accept()});
	auto r = abi::parse_replace(b.replace());
	ASSERT_FALSE(r.ok());
	EXPECT_EQ(r.error().errnum, ENOENT);
	EXPECT_NE(r.error().message.find("entry 0 at offset 0"), std::string::npos)
		<< r.error().message;
}

TEST(AbiReplace, Loops)
{
	// a -> b -> a
	Builder b;
	b.chain("a").chain("b");
	b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
	b.rule("a", Rule{Ip(), {}, Target::jump("b")});
	b.rule("b", Rule{Ip().proto(IPPROTO_TCP), {}, Target::jump("a")});
	EXPECT_EQ(parse_errno(b.replace()), ELOOP);
	// A goto loop is a loop too.
	Builder g;
	g.chain("a");
	g.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
	g.rule("a", Rule{Ip().proto(IPPROTO_UDP), {}, Target::go_to("a")});
	EXPECT_EQ(parse_errno(g.replace()), ELOOP);
	// The same chain called twice is not a loop.
	Builder ok;
	ok.chain("a");
	ok.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP), {}, Target::jump("a")});
	ok.rule("INPUT", Rule{Ip().proto(IPPROTO_UDP), {}, Target::jump("a")});
	ok.rule("OUTPUT", Rule{Ip(), {}, Target::jump("a")});
	EXPECT_EQ(parse_errno(ok.replace()), 0);
}

TEST(AbiReplace, JumpTargets)
{
	Builder b;
	b.chain("a");
	b.rule("INPUT", Rule{Ip(), {}, Target::jump("a")});
	auto l = b.layout();
	const uint32_t v = l.offsets[0] + abi::entry_size + abi::ext_header_size;
	poke<int32_t>(l.entries, v, static_cast<int32_t>(l.chain_start.at("a") + 8)); // mid-entry
	EXPECT_EQ(parse_errno(Builder::replace_of(l, 4)), ELOOP);
	poke<int32_t>(l.entries, v, 1 << 30); // past the end
	EXPECT_EQ(parse_errno(Builder::replace_of(l, 4)), ELOOP);
	// The chain head itself (an ERROR entry) is a valid jump target: it falls through.
	poke<int32_t>(l.entries, v, static_cast<int32_t>(l.chain_head.at("a")));
	auto r = abi::parse_replace(Builder::replace_of(l, 4));
	ASSERT_TRUE(r.ok()) << r.error().message;
	// A user chain without its RETURN falls off the end of the table: ELOOP.
	Builder f;
	f.chain("z");
	f.rule("INPUT", Rule{Ip(), {}, Target::jump("z")});
	auto lf = f.layout();
	// Turn z's RETURN and the final ERROR into conditional rules that fall through.
	const uint32_t ret = lf.offsets[lf.offsets.size() - 2];
	lf.entries[ret + abi::ip_proto] = IPPROTO_TCP;
	EXPECT_EQ(parse_errno(Builder::replace_of(lf, 4)), ELOOP);
}

TEST(AbiReplace, UnreachableBadJumpIsKeptButNeverRuns)
{
	// mark_source_chains only follows what a hook reaches; an unreferenced chain's bad
	// jump passes, as in the kernel.
	Builder b;
	b.chain("orphan");
	b.rule("orphan", Rule{Ip(), {}, Target::accept()});
	auto l = b.layout();
	const uint32_t rule = l.chain_start.at("orphan");
	poke<int32_t>(l.entries, rule + abi::entry_size + abi::ext_header_size, 12345);
	auto r = abi::parse_replace(Builder::replace_of(l, 4));
	ASSERT_TRUE(r.ok()) << r.error().message;
	EXPECT_EQ(peek<uint32_t>(r->table.entries, rule + abi::entry_comefrom), 0u);
	auto ir = abi::to_ir(r->table);
	ASSERT_TRUE(ir.ok());
}

TEST(AbiReplace, QueueVerdictIsNotSupported)
{
	Builder b;
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_UDP), {}, Target::verdict_of(abi::verdict_queue)});
	auto r = abi::parse_replace(b.replace());
	ASSERT_TRUE(r.ok()) << r.error().message; // the kernel accepts NF_QUEUE
	auto ir = abi::to_ir(r->table);
	ASSERT_FALSE(ir.ok());
	EXPECT_EQ(ir.error().errnum, EOPNOTSUPP);
}

TEST(AbiReplace, StoredBlobZeroesCountersAndSetsComefrom)
{
	Bytes b = rich().replace();
	// Counters and comefrom from the caller are ignored.
	for (uint32_t off : rich().layout().offsets) {
		poke<uint64_t>(b, H + off + abi::entry_counters, 77);
		poke<uint32_t>(b, H + off + abi::entry_comefrom, 0xdead);
	}
	auto r = abi::parse_replace(b);
	ASSERT_TRUE(r.ok());
	for (uint32_t off : r->table.offsets) {
		EXPECT_EQ(peek<uint64_t>(r->table.entries, off + abi::entry_counters), 0u);
		EXPECT_EQ(peek<uint32_t>(r->table.entries, off + abi::entry_comefrom) & ~0x0eu, 0u);
	}
	// The "web" chain is reached from INPUT only.
	const auto l = rich().layout();
	EXPECT_EQ(peek<uint32_t>(r->table.entries, l.chain_start.at("web") + abi::entry_comefrom),
		  1u << 1);
}

TEST(AbiReplace, HundredThousandRules)
{
	// The parser's cost grows as n log n (binary searches of the entry offsets), so a
	// table of the size the design aims at is checked and read back quickly.
	test::Builder b;
	for (uint32_t k = 0; k < 100000; k++)
		b.rule("INPUT", test::Rule{test::Ip().proto(IPPROTO_TCP).src(0x0a000000 + k, 32),
					   {test::tcp(0, 0xffff, static_cast<uint16_t>(k),
						      static_cast<uint16_t>(k))},
					   test::Target::drop()});
	const test::Bytes blob = b.replace();
	auto r = abi::parse_replace(blob);
	ASSERT_TRUE(r.ok()) << r.error().message;
	auto ir = abi::to_ir(r->table);
	ASSERT_TRUE(ir.ok());
	EXPECT_EQ(ir->rules.size(), 100004u);
	const std::vector<ir::Counter> counters(ir->rules.size());
	const test::Bytes back = abi::entries_to_user(r->table, counters);
	EXPECT_EQ(back.size(), blob.size() - abi::replace_size);
}

Target reject_target(uint32_t with)
{
	Bytes t = test::named_target("REJECT", 0, sizeof(struct ipt_reject_info));
	std::memcpy(t.data() + abi::ext_header_size, &with, sizeof(with));
	return Target{0, "", false, t};
}

TEST(AbiReplace, RejectChecksAsRejectTgCheck)
{
	const auto with = [](Ip ip, uint32_t w, const std::string &chain = "INPUT") {
		Builder b;
		b.rule(chain, Rule{ip, {}, reject_target(w)});
		return parse_errno(b.replace());
	};
	EXPECT_EQ(with(Ip(), IPT_ICMP_PORT_UNREACHABLE), 0);
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP), IPT_TCP_RESET), 0);
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP), IPT_TCP_RESET, "OUTPUT"), 0);
	// "TCP_RESET invalid for non-tcp": -p tcp is needed, not inverted.
	EXPECT_EQ(with(Ip(), IPT_TCP_RESET), EINVAL);
	EXPECT_EQ(with(Ip().proto(IPPROTO_UDP), IPT_TCP_RESET), EINVAL);
	Ip not_tcp = Ip().proto(IPPROTO_TCP);
	not_tcp.ip.invflags |= IPT_INV_PROTO;
	EXPECT_EQ(with(not_tcp, IPT_TCP_RESET), EINVAL);
	// "ECHOREPLY no longer supported."
	EXPECT_EQ(with(Ip().proto(IPPROTO_ICMP), IPT_ICMP_ECHOREPLY), EINVAL);
	// A value reject_tg() does not know passes the check (and only drops).
	EXPECT_EQ(with(Ip(), 42), 0);
	// xt_check_target(): REJECT belongs to the filter table.
	Builder m;
	m.rule("INPUT", Rule{Ip(), {}, reject_target(IPT_ICMP_PORT_UNREACHABLE)});
	EXPECT_EQ(parse_errno(Builder::replace_of(m.layout(), 4, "mangle")), EINVAL);
	EXPECT_EQ(parse_errno(Builder::replace_of(m.layout(), 4, "filter")), 0);
}

// addrtype_mt_checkentry_v1: --limit-iface-in/-out against the hooks that reach the rule
// (revision 0 has no checkentry); to_ir keeps what addrtype_mt_v0/_v1 read.
TEST(AbiReplace, AddrtypeChecksAsTheKernel)
{
	const auto v1 = [](uint16_t source, uint16_t dest, uint32_t flags) {
		struct xt_addrtype_info_v1 a = {};
		a.source = source, a.dest = dest, a.flags = flags;
		return test::match("addrtype", 1, &a, sizeof(a));
	};
	const auto with = [](Bytes m, const std::string &chain) {
		Builder b;
		b.rule(chain, Rule{Ip(), {std::move(m)}, Target::accept()});
		return parse_errno(b.replace());
	};
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, 0), "INPUT"), 0);
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_LIMIT_IFACE_IN), "INPUT"), 0);
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_LIMIT_IFACE_OUT), "INPUT"), EINVAL);
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_LIMIT_IFACE_IN), "FORWARD"), 0);
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_LIMIT_IFACE_OUT), "FORWARD"), 0);
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_LIMIT_IFACE_OUT), "OUTPUT"), 0);
	EXPECT_EQ(with(v1(0, XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_LIMIT_IFACE_IN), "OUTPUT"), EINVAL);
	EXPECT_EQ(with(v1(XT_ADDRTYPE_LOCAL, 0,
			  XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT),
		       "FORWARD"),
		  EINVAL);
	// Unknown flag bits and type bits pass, as in the kernel.
	EXPECT_EQ(with(v1(0xffff, 0xffff, 0xfff3), "INPUT"), 0);
	struct xt_addrtype_info a0 = {};
	a0.dest = XT_ADDRTYPE_BROADCAST;
	a0.invert_dest = 3;
	a0.invert_source = 2;
	a0.source = XT_ADDRTYPE_UNICAST;
	EXPECT_EQ(with(test::match("addrtype", 0, &a0, sizeof(a0)), "OUTPUT"), 0);
	// Both revisions are IPv4's: another one's EPROTOTYPE is lost to the NFPROTO_UNSPEC pass.
	EXPECT_EQ(with(test::match("addrtype", 2, &a0, sizeof(a0)), "INPUT"), ENOENT);

	Builder b;
	b.rule("FORWARD",
	       Rule{Ip(), {test::match("addrtype", 0, &a0, sizeof(a0))}, Target::accept()});
	b.rule("FORWARD", Rule{Ip(),
			       {v1(XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_MULTICAST,
				   XT_ADDRTYPE_INVERT_SOURCE | XT_ADDRTYPE_LIMIT_IFACE_OUT)},
			       Target::accept()});
	auto r = abi::parse_replace(b.replace());
	ASSERT_TRUE(r.ok()) << r.error().message;
	auto ir = abi::to_ir(r->table);
	ASSERT_TRUE(ir.ok());
	std::vector<ir::AddrtypeMatch> got;
	for (const auto &r : ir->rules)
		for (const auto &m : r.matches)
			if (auto *a = std::get_if<ir::AddrtypeMatch>(&m))
				got.push_back(*a);
	ASSERT_EQ(got.size(), 2u);
	// Revision 0: the low bit of each inversion word counts.
	EXPECT_EQ(got[0], (ir::AddrtypeMatch{XT_ADDRTYPE_UNICAST, XT_ADDRTYPE_BROADCAST, false,
					     true, ir::AddrtypeMatch::Dev::None}));
	EXPECT_EQ(got[1], (ir::AddrtypeMatch{XT_ADDRTYPE_LOCAL, XT_ADDRTYPE_MULTICAST, true, false,
					     ir::AddrtypeMatch::Dev::Out}));
}

// xt_mark and xt_connmark: the revisions iptables 1.8.9 sends (mark 1, MARK 2, connmark 1),
// in every chain, no checkentry of their own; to_ir keeps what mark_mt, mark_tg and
// connmark_mt read, the invert byte as sent.
TEST(AbiReplace, MarkAndConnmarkAsTheKernelRegistersThem)
{
	struct xt_mark_mtinfo1 mi = {};
	mi.mark = 0xfeedcafe, mi.mask = 0xffff0000, mi.invert = 1;
	struct xt_mark_tginfo2 ti = {};
	ti.mark = 0x10, ti.mask = 0xff;
	struct xt_connmark_mtinfo1 ci = {};
	ci.mark = 7, ci.mask = 0xf, ci.invert = 2;
	const auto mark_target = [](uint8_t rev, const void *d, size_t len) {
		Bytes t = test::named_target("MARK", rev, len);
		std::memcpy(t.data() + abi::ext_header_size, d, len);
		return Target{0, "", false, t};
	};
	for (const char *chain : {"INPUT", "FORWARD", "OUTPUT"}) {
		Builder b;
		b.rule(chain,
		       Rule{Ip(), {test::match("mark", 1, &mi, sizeof(mi))}, Target::accept()});
		b.rule(chain, Rule{Ip(), {}, mark_target(2, &ti, sizeof(ti))});
		b.rule(chain,
		       Rule{Ip(), {test::match("connmark", 1, &ci, sizeof(ci))}, Target::drop()});
		auto r = abi::parse_replace(b.replace());
		ASSERT_TRUE(r.ok()) << chain << ": " << r.error().message;
		auto t = abi::to_ir(r->table);
		ASSERT_TRUE(t.ok());
		const auto &rules = t->rules;
		const size_t at = *t->hook_entry[std::string(chain) == "INPUT"	   ? 1
						 : std::string(chain) == "FORWARD" ? 2
										   : 3];
		ASSERT_EQ(rules[at].matches.size(), 1u);
		EXPECT_EQ(std::get<ir::MarkMatch>(rules[at].matches[0]),
			  (ir::MarkMatch{0xfeedcafe, 0xffff0000, 1}));
		EXPECT_EQ(rules[at + 1].target.kind, ir::Target::Kind::Mark);
		EXPECT_EQ(rules[at + 1].target.mark, 0x10u);
		EXPECT_EQ(rules[at + 1].target.mark_mask, 0xffu);
		EXPECT_EQ(std::get<ir::ConnmarkMatch>(rules[at + 2].matches[0]),
			  (ir::ConnmarkMatch{7, 0xf, 2}));
	}
	const auto with_match = [](const char *name, uint8_t rev, const void *d, size_t len) {
		Builder b;
		b.rule("INPUT", Rule{Ip(), {test::match(name, rev, d, len)}, Target::accept()});
		return parse_errno(b.replace());
	};
	// Other revisions: mark and connmark are NFPROTO_UNSPEC's (EPROTOTYPE), MARK IPv4's,
	// whose EPROTOTYPE the UNSPEC pass loses (ENOENT).
	EXPECT_EQ(with_match("mark", 0, &mi, sizeof(mi)), EPROTOTYPE);
	EXPECT_EQ(with_match("connmark", 0, &ci, sizeof(ci)), EPROTOTYPE);
	EXPECT_EQ(abi::find_revision(abi::ExtKind::Target, "MARK", 2), 2);
	EXPECT_EQ(abi::find_revision(abi::ExtKind::Target, "MARK", 1), -EPROTONOSUPPORT);
	EXPECT_EQ(abi::find_revision(abi::ExtKind::Match, "mark", 1), 1);
	EXPECT_EQ(abi::find_revision(abi::ExtKind::Match, "connmark", 1), 1);
	Builder b;
	b.rule("INPUT", Rule{Ip(), {}, mark_target(1, &ti, sizeof(ti))});
	EXPECT_EQ(parse_errno(b.replace()), ENOENT);
	// A size other than the extension's: EINVAL (xt_check_match).
	EXPECT_EQ(with_match("mark", 1, &ti, sizeof(ti)), EINVAL);
}

} // namespace
} // namespace bpfilter
