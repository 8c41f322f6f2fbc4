// The kernel's own LOG lines for tests/host/log_frames.py's frames (tests/unit/data/), for tests.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "service/nf_log.hpp"

namespace bpfilter::test
{

inline std::vector<uint8_t> unhex(const std::string &hex)
{
	std::vector<uint8_t> out;
	for (size_t i = 0; i + 1 < hex.size(); i += 2)
		out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
	return out;
}

// tests/unit/data/nf_log_kernel.txt (made by capture_nf_log.sh): frames, each followed by
// the lines the kernel printed for it, by rule.
struct Capture {
	std::string kernel;
	std::map<std::string, std::vector<uint8_t>> frames;
	struct Line {
		std::string frame, rule, text;
	};
	std::vector<Line> lines;
};

inline Capture read_capture()
{
	const std::string here = __FILE__; // tests/unit/nf_log_capture.hpp
	std::ifstream in(here.substr(0, here.rfind('/')) + "/data/nf_log_kernel.txt");
	Capture c;
	std::string row, frame;
	while (std::getline(in, row)) {
		std::istringstream s(row);
		std::string kind;
		s >> kind;
		if (kind == "#" && c.kernel.empty()) {
			s >> c.kernel >> c.kernel; // "# Linux 6.18.0 ..."
		} else if (kind == "frame") {
			std::string hex;
			s >> frame >> hex;
			c.frames[frame] = unhex(hex);
		} else if (kind == "line") {
			std::string rule;
			s >> rule;
			c.lines.push_back(
				{frame, rule, row.substr(row.find(rule) + rule.size() + 1)});
		}
	}
	return c;
}

// The dialect of the kernel the capture comes from.
inline service::LogDialect capture_dialect(const Capture &c)
{
	unsigned major = 0, minor = 0;
	if (sscanf(c.kernel.c_str(), "%u.%u", &major, &minor) != 2)
		return {};
	return service::LogDialect{.tcp_ae = major > 6 || (major == 6 && minor >= 16)};
}

} // namespace bpfilter::test
