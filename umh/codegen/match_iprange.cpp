// -m iprange (revision 1, IPv4): source and destination address ranges, as iprange_mt4().
#include <linux/netfilter/xt_iprange.h>

#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

namespace off = layout::pkt_off;

void emit_iprange(Cond &c, const ir::IprangeMatch &m)
{
	// Compared in host order, as the kernel does after ntohl().
	if (m.flags & IPRANGE_SRC)
		c.range(off::saddr_h, m.src_min, m.src_max, 0xffffffffu, m.flags & IPRANGE_SRC_INV);
	if (m.flags & IPRANGE_DST)
		c.range(off::daddr_h, m.dst_min, m.dst_max, 0xffffffffu, m.flags & IPRANGE_DST_INV);
}

} // namespace bpfilter::codegen
