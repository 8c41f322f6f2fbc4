// The helper's log: one line a message, to stderr or the kernel log.
#include "common/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace bpfilter::log
{
namespace
{

struct State {
	Sink sink = Sink::Stderr;
	int kmsg_fd = -1;
	int max_kern_level = 6; // info
};

State &state()
{
	static State s;
	return s;
}

void emit(const char *level, int kern_level, std::string_view line)
{
	State &s = state();
	if (kern_level > s.max_kern_level)
		return;
	std::string text;
	if (s.sink == Sink::Kmsg && s.kmsg_fd >= 0) {
		text = "<" + std::to_string(kern_level) + ">bpfilter: ";
		text.append(line);
		text.push_back('\n');
		if (write(s.kmsg_fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()))
			return;
	}
	text = std::string("bpfilter: ") + level + ": ";
	text.append(line);
	text.push_back('\n');
	fwrite(text.data(), 1, text.size(), stderr);
	fflush(stderr);
}

} // namespace

void set_sink(Sink sink)
{
	State &s = state();
	s.sink = sink;
	if (sink == Sink::Kmsg && s.kmsg_fd < 0)
		s.kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
}

bool set_level(std::string_view name)
{
	int level = 0;
	if (name == "error")
		level = 3;
	else if (name == "warning")
		level = 4;
	else if (name == "info")
		level = 6;
	else
		return false;
	state().max_kern_level = level;
	return true;
}

void info(std::string_view line)
{
	emit("info", 6, line);
}
void warn(std::string_view line)
{
	emit("warning", 4, line);
}
void error(std::string_view line)
{
	emit("error", 3, line);
}

} // namespace bpfilter::log
