// The sockopt service: the six IPT_SO_* calls answered as ip_tables answers them.
#include <gtest/gtest.h>

#include "abi/table.hpp"
#include "abi_builder.hpp"
#include "service/table_service.hpp"
#include "service_dataplane_double.hpp"

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

struct Fixture : ::testing::Test {
	std::shared_ptr<test::DataplaneLog> log = std::make_shared<test::DataplaneLog>();
	service::TableService svc{std::make_unique<test::RecordingDataplane>(log)};

	void SetUp() override { ASSERT_TRUE(svc.init().ok()); }

	static Bytes name_buf(size_t len, const std::string &name = "filter")
	{
		Bytes b(len, 0);
		std::memcpy(b.data(), name.data(), name.size());
		return b;
	}

	service::Reply info(const std::string &name = "filter")
	{
		return svc.getsockopt(IPT_SO_GET_INFO, abi::getinfo_size,
				      name_buf(abi::getinfo_size, name));
	}

	// GET_INFO then GET_ENTRIES, as iptables reads the table.
	Bytes entries()
	{
		auto i = info();
		EXPECT_EQ(i.status, 0);
		const uint32_t size = peek<uint32_t>(i.data, abi::getinfo_size_field);
		Bytes req = name_buf(abi::get_entries_size);
		poke<uint32_t>(req, abi::get_entries_size_field, size);
		auto r = svc.getsockopt(IPT_SO_GET_ENTRIES, abi::get_entries_size + size, req);
		EXPECT_EQ(r.status, 0);
		EXPECT_EQ(r.data.size(), abi::get_entries_size + size);
		EXPECT_TRUE(std::equal(req.begin(), req.end(), r.data.begin())); // header untouched
		return Bytes(r.data.begin() + abi::get_entries_size, r.data.end());
	}

	uint32_t num_entries() { return peek<uint32_t>(info().data, abi::getinfo_num_entries); }

	service::Reply replace(const Bytes &optval)
	{
		return svc.setsockopt(IPT_SO_SET_REPLACE, optval);
	}

	service::Reply add_counters(const std::vector<ir::Counter> &c,
				    const std::string &name = "filter")
	{
		Bytes b = name_buf(abi::counters_info_size, name);
		poke<uint32_t>(b, abi::counters_info_num, static_cast<uint32_t>(c.size()));
		const Bytes cs = abi::counters_to_user(c);
		b.insert(b.end(), cs.begin(), cs.end());
		return svc.setsockopt(IPT_SO_SET_ADD_COUNTERS, b);
	}

	int revision(uint32_t optname, const std::string &name, uint8_t rev, uint32_t len = 30)
	{
		Bytes b(30, 0);
		std::memcpy(b.data(), name.data(), std::min<size_t>(name.size(), 30));
		b[29] = rev;
		return svc.getsockopt(optname, len, b).status;
	}
};

Builder ssh_table()
{
	Builder b;
	b.chain("web");
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP),
			     {test::tcp(0, 0xffff, 22, 22), test::comment("ssh")},
			     Target::accept()});
	b.rule("INPUT", Rule{Ip().proto(IPPROTO_TCP), {}, Target::jump("web")});
	b.rule("web", Rule{Ip().proto(IPPROTO_TCP),
			   {test::multiport(1, {{80, 80}, {443, 443}})},
			   Target::accept()});
	b.policy("INPUT", abi::verdict_drop);
	return b;
}

TEST_F(Fixture, InitInstallsTheInitialTableThroughTheDataplane)
{
	ASSERT_EQ(log->installed.size(), 1u);
	ASSERT_EQ(log->checked.size(), 1u);
	EXPECT_EQ(log->installed[0].rules.size(), 4u);
	auto i = info();
	ASSERT_EQ(i.status, 0);
	ASSERT_EQ(i.data.size(), 84u);
	EXPECT_EQ(std::string(reinterpret_cast<const char *>(i.data.data())), "filter");
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_valid_hooks), 0x0eu);
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_hook_entry), 0xffffffffu);
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_hook_entry + 8), 152u);
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_underflow + 12), 304u);
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_underflow + 16), 0xffffffffu);
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_num_entries), 4u);
	EXPECT_EQ(peek<uint32_t>(i.data, abi::getinfo_size_field), 632u);
	// GET_ENTRIES: the initial entries with comefrom marks.
	Bytes want = abi::initial_filter_entries();
	poke<uint32_t>(want, 0 + abi::entry_comefrom, 2);
	poke<uint32_t>(want, 152 + abi::entry_comefrom, 4);
	poke<uint32_t>(want, 304 + abi::entry_comefrom, 8);
	EXPECT_EQ(entries(), want);
}

TEST_F(Fixture, GetInfoChecks)
{
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_INFO, 83, name_buf(83)).status, -EINVAL);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_INFO, 85, name_buf(85)).status, -EINVAL);
	EXPECT_EQ(info("nat").status, -ENOENT);
	EXPECT_EQ(info("filterx").status, -ENOENT);
	// Only the first 31 bytes of the name count.
	Bytes b = name_buf(84);
	std::memset(b.data() + 6, 0, 26);
	b[31] = 'z';
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_INFO, 84, b).status, 0);
	EXPECT_EQ(svc.getsockopt(99, 84, b).status, -ENOPROTOOPT);
}

TEST_F(Fixture, GetEntriesChecks)
{
	Bytes req = name_buf(abi::get_entries_size);
	poke<uint32_t>(req, abi::get_entries_size_field, 632);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_ENTRIES, 39, req).status, -EINVAL);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_ENTRIES, 40 + 631, req).status, -EINVAL);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_ENTRIES, 40 + 632, req).status, 0);
	poke<uint32_t>(req, abi::get_entries_size_field, 640);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_ENTRIES, 40 + 640, req).status, -EAGAIN);
	Bytes nat = name_buf(abi::get_entries_size, "nat");
	poke<uint32_t>(nat, abi::get_entries_size_field, 632);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_ENTRIES, 40 + 632, nat).status, -ENOENT);
}

TEST_F(Fixture, ReplaceRoundTrip)
{
	const Builder b = ssh_table();
	const auto l = b.layout();
	auto r = replace(b.replace(4));
	ASSERT_EQ(r.status, 0);
	EXPECT_EQ(r.data.size(), 4u * 16); // the four old counters
	ASSERT_EQ(log->installed.size(), 2u);
	EXPECT_EQ(log->installed[1].rules.size(), l.offsets.size());
	EXPECT_EQ(num_entries(), l.offsets.size());
	// What comes back is what was sent, but for comefrom (set by mark_source_chains).
	Bytes got = entries();
	ASSERT_EQ(got.size(), l.entries.size());
	for (uint32_t off : l.offsets)
		poke<uint32_t>(got, off + abi::entry_comefrom, 0);
	EXPECT_EQ(got, l.entries);
	// Replaying what was read back is accepted and reads back identically.
	Bytes again = Builder::replace_of(l, static_cast<uint32_t>(l.offsets.size()));
	const Bytes before = entries();
	std::copy(before.begin(), before.end(), again.begin() + abi::replace_size);
	ASSERT_EQ(replace(again).status, 0);
	EXPECT_EQ(entries(), before);
}

TEST_F(Fixture, NameTailsAndPaddingAreWhatTheKernelWrites)
{
	// Garbage after a name's NUL and in a match's alignment padding is not returned:
	// xt_obj_to_user writes the name and its NUL only, xt_data_to_user zeroes the pad.
	const Builder b = ssh_table();
	auto l = b.layout();
	Bytes raw = l.entries;
	const uint32_t m = abi::entry_size; // first rule's tcp match
	raw[m + abi::ext_name + 10] = 0x55;
	raw[m + abi::ext_header_size + 12] = 0x66;     // padding after struct xt_tcp
	raw[l.offsets[0] + abi::entry_nfcache] = 0x01; // the header is returned as sent
	l.entries = raw;
	ASSERT_EQ(replace(Builder::replace_of(l, 4)).status, 0);
	Bytes got = entries();
	EXPECT_EQ(got[m + abi::ext_name + 10], 0);
	EXPECT_EQ(got[m + abi::ext_header_size + 12], 0);
	EXPECT_EQ(got[l.offsets[0] + abi::entry_nfcache], 0x01);
}

TEST_F(Fixture, ReplaceReturnsOldCountersAndCountersStartAtZero)
{
	log->counters = {{1, 100}, {2, 200}, {3, 300}, {4, 400}};
	ASSERT_EQ(add_counters({{10, 1000}, {0, 0}, {0, 0}, {1, 1}}).status, 0);
	auto r = replace(ssh_table().replace(4));
	ASSERT_EQ(r.status, 0);
	ASSERT_EQ(r.data.size(), 64u);
	EXPECT_EQ(peek<uint64_t>(r.data, 0), 11u);
	EXPECT_EQ(peek<uint64_t>(r.data, 8), 1100u);
	EXPECT_EQ(peek<uint64_t>(r.data, 48), 5u);
	EXPECT_EQ(peek<uint64_t>(r.data, 56), 401u);
	const Bytes got = entries();
	for (uint32_t off : ssh_table().layout().offsets)
		EXPECT_EQ(peek<uint64_t>(got, off + abi::entry_counters), 0u);
}

TEST_F(Fixture, GetEntriesSumsDataplaneAndAddedCounters)
{
	ASSERT_EQ(replace(ssh_table().replace(4)).status, 0);
	const auto offs = ssh_table().layout().offsets;
	log->counters.assign(offs.size(), {});
	log->counters[0] = {5, 500};
	std::vector<ir::Counter> add(offs.size());
	add[0] = {1, 60};
	add[2] = {7, 70};
	ASSERT_EQ(add_counters(add).status, 0);
	ASSERT_EQ(add_counters(add).status, 0);
	const Bytes got = entries();
	EXPECT_EQ(peek<uint64_t>(got, offs[0] + abi::entry_counters), 7u);
	EXPECT_EQ(peek<uint64_t>(got, offs[0] + abi::entry_counters + 8), 620u);
	EXPECT_EQ(peek<uint64_t>(got, offs[2] + abi::entry_counters), 14u);
	EXPECT_EQ(peek<uint64_t>(got, offs[2] + abi::entry_counters + 8), 140u);
}

TEST_F(Fixture, AddCountersChecks)
{
	EXPECT_EQ(add_counters({}).status, -EINVAL); // len <= sizeof(xt_counters_info)
	EXPECT_EQ(add_counters({{1, 1}, {1, 1}, {1, 1}}).status, -EINVAL); // wrong number
	EXPECT_EQ(add_counters({{1, 1}, {1, 1}, {1, 1}, {1, 1}}, "nat").status, -ENOENT);
	Bytes b = name_buf(abi::counters_info_size);
	poke<uint32_t>(b, abi::counters_info_num, 4);
	b.resize(b.size() + 4 * 16 - 1); // one byte short
	EXPECT_EQ(svc.setsockopt(IPT_SO_SET_ADD_COUNTERS, b).status, -EINVAL);
	EXPECT_EQ(svc.setsockopt(99, b).status, -ENOPROTOOPT);
}

TEST_F(Fixture, StaleReplaceGetsEagainAndChangesNothing)
{
	const Bytes before = entries();
	EXPECT_EQ(replace(ssh_table().replace(3)).status, -EAGAIN);
	EXPECT_EQ(replace(ssh_table().replace(5)).status, -EAGAIN);
	EXPECT_EQ(entries(), before);
	EXPECT_EQ(log->installed.size(), 1u);
	// Errors that come before EAGAIN in do_replace win over it.
	Bytes bad = ssh_table().replace(3);
	bad[abi::replace_size + abi::ip_flags] = 0x80;
	EXPECT_EQ(replace(bad).status, -EINVAL);
	EXPECT_EQ(replace(Builder::replace_of(ssh_table().layout(), 3, "nat")).status, -ENOENT);
}

TEST_F(Fixture, RefusedTableLeavesEverythingAsItWas)
{
	ASSERT_EQ(replace(ssh_table().replace(4)).status, 0);
	const Bytes before = entries();
	const uint32_t n = num_entries();
	log->refuse_check = make_error(EOPNOTSUPP, "FORWARD is not supported");
	EXPECT_EQ(replace(Builder().replace(n)).status, -EOPNOTSUPP);
	log->refuse_check = Status{};
	log->refuse_replace = make_error(EPERM, "verifier said no");
	EXPECT_EQ(replace(Builder().replace(n)).status, -EPERM);
	log->refuse_replace = Status{};
	Builder q;
	q.rule("INPUT", Rule{Ip(), {}, Target::verdict_of(abi::verdict_queue)});
	EXPECT_EQ(replace(q.replace(n)).status, -EOPNOTSUPP);
	EXPECT_EQ(entries(), before);
	EXPECT_EQ(num_entries(), n);
	EXPECT_EQ(log->installed.size(), 2u);
	EXPECT_EQ(replace(Builder().replace(n)).status, 0);
}

TEST_F(Fixture, Revisions)
{
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "tcp", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "tcp", 1), -EPROTONOSUPPORT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "multiport", 1), 1);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "multiport", 0), -EPROTONOSUPPORT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "iprange", 1), 1);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "comment", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "icmp", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "udp", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "conntrack", 3), 3);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "conntrack", 4), -EPROTONOSUPPORT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "addrtype", 0), 1);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "addrtype", 1), 1);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "addrtype", 2), -EPROTONOSUPPORT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "hashlimit", 1), 3);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "hashlimit", 0), -EPROTONOSUPPORT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "cpu", 0), -ENOENT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "ERROR", 0),
		  -ENOENT); // a target, not a match
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_TARGET, "ERROR", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_TARGET, "", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_TARGET, "REJECT", 0), 0);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_TARGET, "TPROXY", 0), -ENOENT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_TARGET, "tcp", 0), -ENOENT);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "tcp", 0, 29), -EINVAL);
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH, "tcp", 0, 31), -EINVAL);
	// The name is cut at 28 bytes: rev.name[28] = 0.
	EXPECT_EQ(revision(IPT_SO_GET_REVISION_MATCH,
			   std::string("tcp") + std::string(26, '\0') + "x", 0),
		  0);
	// The reply leaves the caller's buffer and length as they were.
	Bytes b(30, 0);
	std::memcpy(b.data(), "tcp", 3);
	auto r = svc.getsockopt(IPT_SO_GET_REVISION_MATCH, 30, b);
	EXPECT_EQ(r.status, 0);
	EXPECT_EQ(r.data, b);
}

TEST(ServiceNoInit, NoTableBeforeInit)
{
	auto log = std::make_shared<test::DataplaneLog>();
	service::TableService svc{std::make_unique<test::RecordingDataplane>(log)};
	Bytes b(84, 0);
	std::memcpy(b.data(), "filter", 6);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_INFO, 84, b).status, -ENOENT);
	EXPECT_EQ(svc.setsockopt(IPT_SO_SET_REPLACE, Builder().replace()).status, -ENOENT);
	log->refuse_replace = make_error(ENOMEM, "no maps");
	auto s = svc.init();
	ASSERT_FALSE(s.ok());
	EXPECT_EQ(s.error().errnum, ENOMEM);
	EXPECT_EQ(svc.getsockopt(IPT_SO_GET_INFO, 84, b).status, -ENOENT);
}

} // namespace
} // namespace bpfilter
