// The helper's log: one line a message, to stderr or the kernel log.
#pragma once

#include <string_view>

namespace bpfilter::log
{

enum class Sink { Stderr, Kmsg };

// Where lines go from now on. Kmsg writes to /dev/kmsg, for the helper the module starts.
void set_sink(Sink sink);

// The least severe lines written from now on: "error", "warning" or "info" (the default).
// False, and nothing changed, for another word.
bool set_level(std::string_view name);

void info(std::string_view line);
void warn(std::string_view line);
void error(std::string_view line);

} // namespace bpfilter::log
