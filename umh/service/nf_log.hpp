// -j LOG's lines: a record the programs wrote, printed as the kernel's nf_log_syslog prints it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/result.hpp"

namespace bpfilter::service
{

struct LogLine {
	uint8_t level = 4; // the rule's --log-level, a printk level
	std::string text;  // what nf_log_ip_packet() prints after the level, without "\n"
};

// How the running kernel prints a TCP header: since the AccECN changes (Linux 6.16) the
// lowest reserved bit is the AE flag, printed as "AE" and left out of RES=.
struct LogDialect {
	bool tcp_ae = false;
};
// The dialect of the kernel this runs on (uname).
LogDialect kernel_log_dialect();

// The line for one codegen::maps::LogRecord. EINVAL for a record of the wrong size.
Result<LogLine> format_log(std::span<const uint8_t> record, LogDialect dialect = {});

} // namespace bpfilter::service
