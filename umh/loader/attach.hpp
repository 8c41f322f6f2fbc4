// Attach points: XDP through rtnetlink and tc clsact filters, each swapped in place, and how to
// tell bpfilter's programs from others'.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

// libbpf's messages into the helper's log, but for the kernel's extended ack of a failed
// netlink request, which is kept for the error the caller makes of it: many failures are
// expected ones (a clsact qdisc that exists, a filter not there yet).
void route_libbpf_messages();
// The kernel's word on the last failed netlink request (extack), then forgotten: ""
// when it said nothing.
std::string take_kernel_message();

// Is this program one of ours (by its name and type: loader::is_our_program())?
bool is_ours(int prog_fd);
bool is_ours_id(uint32_t prog_id);
// The kernel's id of the program behind prog_fd (0 if it cannot tell).
uint32_t prog_id(int prog_fd);
// "id N "name"", for messages about a program found on a device.
std::string describe_prog(uint32_t id);

// Our XDP program on the device, with the mode it is attached in (XDP_FLAGS_*_MODE).
struct XdpAttachment {
	Fd fd;
	uint32_t mode = 0;
};
std::optional<XdpAttachment> our_xdp(int ifindex);

// tc: our filter is one cls_bpf filter in direct-action mode on the device's clsact
// qdisc (created when missing), at a fixed handle and priority so that a restarted helper
// finds it and a replace swaps it in place.
enum class TcDir : uint8_t { Ingress, Egress };
inline constexpr uint32_t tc_handle = 0xbf1;
inline constexpr uint32_t tc_priority = 0xbf;

// Attach prog_fd as our filter, replacing ours if there is one: atomic on the device.
Status tc_attach(int ifindex, TcDir dir, int prog_fd);
// Remove our filter; nothing to do when it is not there.
Status tc_detach(int ifindex, TcDir dir);
// The id of the program our filter runs there, or 0.
uint32_t tc_prog_id(int ifindex, TcDir dir);

std::string_view to_string(TcDir dir);

// Remove bpfilter's programs (XDP and tc) from the device ifindex of the current
// namespace, leaving anyone else's; nothing to do when there are none.
Status detach_stray(int ifindex);

} // namespace bpfilter::loader
