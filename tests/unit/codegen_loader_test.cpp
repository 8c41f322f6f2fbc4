// Loading generated programs: the verifier's reason on refusal, missing maps, counters across
// blocks.
#include "codegen_harness.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "codegen/insn.hpp"
#include "codegen/maps.hpp"
#include "loader/attach.hpp"
#include "loader/btf.hpp"

namespace bpfilter::test
{
namespace
{

TEST(CodegenLoader, RefusalCarriesTheVerifiersReason)
{
	codegen::Program p;
	p.insns = {codegen::insn::exit()}; // R0 never set
	p.num_counters = 1;
	auto r = loader::load_program(p, -1, -1, {});
	ASSERT_FALSE(r.ok());
	EXPECT_EQ(r.error().errnum, EACCES) << r.error().message;
	EXPECT_NE(r.error().message.find("R0 !read_ok"), std::string::npos) << r.error().message;
}

TEST(CodegenLoader, MapsTheProgramNeedsMustBeGiven)
{
	TableBuilder b;
	b.input = {R().in("eth0").drop()};
	auto code = codegen::compile(b.build(), {.local_only = true});
	ASSERT_TRUE(code.ok());
	auto r = loader::load_program(*code, -1, -1, {});
	ASSERT_FALSE(r.ok());
	EXPECT_EQ(r.error().errnum, EINVAL);

	// Without -i and local_only, neither shared map is referenced; the loader makes the rest.
	TableBuilder c;
	c.input = {R().src("10.0.0.1").drop()};
	auto plain = codegen::compile(c.build(), {.local_only = false});
	ASSERT_TRUE(plain.ok());
	for (const codegen::MapRef &m : plain->map_refs)
		EXPECT_TRUE(m.slot == codegen::MapSlot::Counters ||
			    m.slot == codegen::MapSlot::Scratch ||
			    m.slot == codegen::MapSlot::Frags);
	auto loaded = loader::load_program(*plain, -1, -1, {});
	ASSERT_TRUE(loaded.ok()) << loaded.error().message;
	EXPECT_EQ(loaded->num_counters(), 5u); // the rule, three policies, the final ERROR
}

TEST(CodegenLoader, CountersInTheSecondBlock)
{
	// Rules past counters_per_block live in the Counters map's second entry.
	TableBuilder b;
	const uint32_t n = codegen::maps::counters_per_block + 5;
	for (uint32_t i = 0; i + 1 < n; i++)
		b.input.push_back(R().src("10.0.0.99").drop());
	b.input.push_back(R().proto(17).drop());
	ir::Table t = b.build();
	Xdp x(t);
	ASSERT_TRUE(x.ok()) << x.error;
	ASSERT_GE(b.input_at.back(), codegen::maps::counters_per_block);
	x.expect(udp_packet(1, 2), drop, {b.input_at.back()});
	x.expect(tcp_packet(1, 2), pass, {b.input_policy_at});
	x.expect(udp_packet(1, 2), drop, {b.input_at.back()});
	Packet p = tcp_packet(1, 2);
	p.saddr = ip4h("10.0.0.99");
	x.expect(p, drop, {b.input_at[0]});
}

TEST(CodegenLoader, NamesSayHookTableChainsAndNamespace)
{
	using codegen::Flavor;
	EXPECT_EQ(loader::program_full_name(Flavor::Xdp, "filter", 4026531840),
		  "bpfilter_xdp_in_filter_INPUT_FORWARD_net4026531840");
	EXPECT_EQ(loader::program_full_name(Flavor::TcIngress, "filter", 4026532001),
		  "bpfilter_tc_in_filter_INPUT_FORWARD_net4026532001");
	EXPECT_EQ(loader::program_full_name(Flavor::TcEgress, "filter", 7),
		  "bpfilter_tc_out_filter_OUTPUT_net7");
	EXPECT_EQ(loader::program_full_name(Flavor::Xdp, "filter", 9, true),
		  "bpfilter_xdp_in_filter_INPUT_offload_net9");
	EXPECT_EQ(loader::program_full_name(Flavor::TcEgress, "filter", 0),
		  "bpfilter_tc_out_filter_OUTPUT");
	// The kernel keeps 15 characters: each flavor's name, a prefix of the whole.
	for (Flavor f : {Flavor::Xdp, Flavor::TcIngress, Flavor::TcEgress}) {
		const std::string full = loader::program_full_name(f, "filter", 1);
		EXPECT_EQ(loader::program_name(f).size(), 15u);
		EXPECT_EQ(full.substr(0, 15), loader::program_name(f));
	}
}

TEST(CodegenLoader, OurProgramsByNameAndType)
{
	constexpr uint32_t xdp = BPF_PROG_TYPE_XDP, cls = BPF_PROG_TYPE_SCHED_CLS;
	EXPECT_TRUE(loader::is_our_program("bpfilter_xdp_in", xdp));
	EXPECT_TRUE(loader::is_our_program("bpfilter_tc_in_", cls));
	EXPECT_TRUE(loader::is_our_program("bpfilter_tc_out", cls));
	// An earlier helper's names, adopted.
	EXPECT_TRUE(loader::is_our_program("bpfilter_in", xdp));
	EXPECT_TRUE(loader::is_our_program("bpfilter_tc_in", cls));
	// A name at the wrong hook's type, or another's program.
	EXPECT_FALSE(loader::is_our_program("bpfilter_xdp_in", cls));
	EXPECT_FALSE(loader::is_our_program("bpfilter_tc_out", xdp));
	EXPECT_FALSE(loader::is_our_program("bpfilter_in", cls));
	EXPECT_FALSE(loader::is_our_program("bpfilter_jiffy", xdp));
	EXPECT_FALSE(loader::is_our_program("bpfilter_xdp_i", xdp));
	EXPECT_FALSE(loader::is_our_program("xdp_pass", xdp));
	EXPECT_FALSE(loader::is_our_program("", xdp));
}

// The BTF name of a program's first function, and the name of a map's value type.
std::string btf_type_name(uint32_t btf_id, uint32_t type_id)
{
	loader::BtfPtr b(btf__load_from_kernel_by_id(btf_id));
	if (!b)
		return "(no BTF)";
	const struct btf_type *t = btf__type_by_id(b.get(), type_id);
	return t ? btf__name_by_offset(b.get(), t->name_off) : "(no type)";
}

TEST(CodegenLoader, ProgramAndCountersCarryNamesAndBtf)
{
	TableBuilder c;
	c.input = {R().src("10.0.0.1").drop()};
	auto plain = codegen::compile(c.build(), {.local_only = false});
	ASSERT_TRUE(plain.ok());
	loader::LoadOptions lo;
	lo.name = loader::program_full_name(codegen::Flavor::Xdp, "filter", 4026531840);
	auto loaded = loader::load_program(*plain, -1, -1, lo);
	ASSERT_TRUE(loaded.ok()) << loaded.error().message;

	bpf_func_info fi = {};
	struct bpf_prog_info info = {};
	info.nr_func_info = 1;
	info.func_info_rec_size = sizeof(fi);
	info.func_info = reinterpret_cast<uintptr_t>(&fi);
	uint32_t len = sizeof(info);
	ASSERT_EQ(bpf_obj_get_info_by_fd(loaded->fd(), &info, &len), 0);
	EXPECT_STREQ(info.name, "bpfilter_xdp_in");
	EXPECT_TRUE(loader::is_ours(loaded->fd()));
	ASSERT_NE(info.btf_id, 0u);
	EXPECT_EQ(btf_type_name(info.btf_id, fi.type_id), lo.name);

	struct bpf_map_info mi = {};
	len = sizeof(mi);
	ASSERT_EQ(bpf_obj_get_info_by_fd(loaded->counters_fd(), &mi, &len), 0);
	EXPECT_STREQ(mi.name, "bpfilter_cnt");
	ASSERT_NE(mi.btf_id, 0u);
	EXPECT_EQ(btf_type_name(mi.btf_id, mi.btf_value_type_id), "bpfilter_counters");
	EXPECT_EQ(btf_type_name(mi.btf_id, mi.btf_key_type_id), "u32");
}

// The ids of the maps a program uses.
std::set<uint32_t> map_ids(int prog_fd)
{
	std::vector<uint32_t> ids(64);
	struct bpf_prog_info info = {};
	info.nr_map_ids = static_cast<uint32_t>(ids.size());
	info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
	uint32_t len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
		return {};
	return {ids.begin(), ids.begin() + std::min<uint32_t>(info.nr_map_ids, 64)};
}

// XDP and tc ingress both judge INPUT: given the table's SetMaps, their equal sets are one
// map, filled once; a set that differs gets its own.
TEST(CodegenLoader, ProgramsShareEqualSetMaps)
{
	TableBuilder b;
	for (uint32_t i = 0; i < 40; i++)
		b.input.push_back(R().src(("10.0.0." + std::to_string(i + 1)).c_str()).drop());
	const ir::Table t = b.build();
	auto devices = loader::create_devices_map();
	auto local = loader::create_local_addrs_map();
	ASSERT_TRUE(devices.ok() && local.ok());
	loader::SetMaps sets;
	loader::LoadOptions lo;
	lo.set_maps = &sets;
	std::vector<std::set<uint32_t>> used;
	std::vector<codegen::Program> code;
	for (auto f : {codegen::Flavor::Xdp, codegen::Flavor::TcIngress}) {
		codegen::Options o = local_only_off();
		o.flavor = f;
		auto c = codegen::compile(t, o);
		ASSERT_TRUE(c.ok()) << c.error().message;
		ASSERT_EQ(c->addr_sets.size(), 1u);
		code.push_back(std::move(*c));
	}
	ASSERT_EQ(code[0].addr_sets[0], code[1].addr_sets[0]);
	std::vector<loader::LoadedProgram> progs;
	for (const codegen::Program &c : code) {
		auto p = loader::load_program(c, devices->get(), local->get(), lo);
		ASSERT_TRUE(p.ok()) << p.error().message;
		used.push_back(map_ids(p->fd()));
		progs.push_back(std::move(*p));
	}
	auto set_fd = sets.get(code[0].addr_sets[0]); // the one made for XDP
	ASSERT_TRUE(set_fd.ok());
	struct bpf_map_info mi = {};
	uint32_t len = sizeof(mi);
	ASSERT_EQ(bpf_obj_get_info_by_fd(*set_fd, &mi, &len), 0);
	EXPECT_TRUE(used[0].count(mi.id)) << "XDP's program does not use the set's map";
	EXPECT_TRUE(used[1].count(mi.id)) << "tc ingress's program does not use the set's map";
	// Filled once, with every key: 40 /32s in a hash.
	uint32_t key = 0, next = 0, keys = 0;
	for (const void *prev = nullptr; bpf_map_get_next_key(*set_fd, prev, &next) == 0;
	     prev = &key, key = next)
		keys++;
	EXPECT_EQ(keys, 40u);

	// Another set's contents: another map.
	codegen::Program other = code[0];
	other.addr_sets[0].values[0] ^= 1;
	auto other_fd = sets.get(other.addr_sets[0]);
	ASSERT_TRUE(other_fd.ok());
	EXPECT_NE(*other_fd, *set_fd);
	sets.forget(other);
	auto again = sets.get(code[1].addr_sets[0]);
	ASSERT_TRUE(again.ok());
	EXPECT_EQ(*again, *set_fd);
}

TEST(CodegenLoader, AProgramOfOneFunctionHasItsNameInBtf)
{
	codegen::Program p;
	p.insns = {codegen::insn::mov64(codegen::R0, 0), codegen::insn::exit()}; // TC_ACT_OK
	p.num_counters = 1;
	loader::LoadOptions lo;
	lo.name = loader::program_full_name(codegen::Flavor::TcEgress, "filter", 12);
	p.flavor = codegen::Flavor::TcEgress;
	auto loaded = loader::load_program(p, -1, -1, lo);
	ASSERT_TRUE(loaded.ok()) << loaded.error().message;
	bpf_func_info fi = {};
	struct bpf_prog_info info = {};
	info.nr_func_info = 1;
	info.func_info_rec_size = sizeof(fi);
	info.func_info = reinterpret_cast<uintptr_t>(&fi);
	uint32_t len = sizeof(info);
	ASSERT_EQ(bpf_obj_get_info_by_fd(loaded->fd(), &info, &len), 0);
	EXPECT_STREQ(info.name, "bpfilter_tc_out");
	EXPECT_EQ(btf_type_name(info.btf_id, fi.type_id), "bpfilter_tc_out_filter_OUTPUT_net12");
}

} // namespace
} // namespace bpfilter::test
