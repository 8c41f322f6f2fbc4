// Loading generated programs: the verifier's reason on refusal, missing maps, counters across
// blocks.
#include "codegen_harness.hpp"

#include "codegen/insn.hpp"
#include "codegen/maps.hpp"

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

} // namespace
} // namespace bpfilter::test
