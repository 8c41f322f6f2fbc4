// `bpfilter_umh --recent`: the front door's counterpart of /proc/net/xt_recent/NAME, a client
// of a helper serving on a Unix socket.
#pragma once

#include <string>

namespace bpfilter::server
{

// Print list `name` of the helper at `socket_path` as /proc/net/xt_recent/NAME reads, or,
// with `input` ("+ADDR", "-ADDR", "/"), write it as to that file. Returns the exit status.
int recent_command(const std::string &socket_path, const std::string &name,
		   const std::string *input);

} // namespace bpfilter::server
