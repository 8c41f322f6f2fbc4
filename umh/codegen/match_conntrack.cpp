// -m conntrack and -m state (conntrack_mt in xt_conntrack.c) on the parsed packet.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

void emit_conntrack(Cond &c, const ir::ConntrackMatch &)
{
	// Not reached: plan.cpp's check_emittable refuses these rules until the prologue
	// looks the packet up in the connection table.
	c.fail();
}

} // namespace bpfilter::codegen
