// The helper's log: one line a message, to stderr or the kernel log.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfilter::log
{

enum class Sink { Stderr, Kmsg };

// Where lines go from now on. Kmsg writes to /dev/kmsg, for the helper the module starts.
void set_sink(Sink sink);

// The module's channel: lines are queued and handed over by flush() (between replies, the
// only time the helper may write to the channel) as -j LOG's are; the module printk()s
// them, so they escape /dev/kmsg's rate limit of 10 lines per 5 s. What cannot be handed
// over goes to /dev/kmsg. Unset (nullptr): lines go to the sink at once.
using Writer = std::function<bool(int level, std::string_view text)>;
void set_channel(Writer writer);
void flush();

// While one lives (one request): every line names the namespace and the caller, and warnings
// and errors are counted against that namespace's rate limit (`burst` lines, then `refill` a
// second; what is dropped is counted and said once lines flow again), so that one namespace's
// refusals cannot crowd out another's.
class Scope
{
public:
	Scope(uint64_t netns_cookie, std::string who);
	~Scope();
	Scope(const Scope &) = delete;
	Scope &operator=(const Scope &) = delete;
};

// The least severe lines written from now on: "error", "warning" or "info" (the default).
// False, and nothing changed, for another word.
bool set_level(std::string_view name);

void info(std::string_view line);
void warn(std::string_view line);
void error(std::string_view line);

// The records one message becomes: split at its newlines, pieces longer than max_len
// split again, each prefixed with prefix and, when there are several, "[i/n] ". Exposed
// for the unit tests.
std::vector<std::string> split_records(std::string_view prefix, std::string_view line,
				       size_t max_len);

// Per-namespace rate limit (exposed for the unit tests): true when a line of `key` may go
// out at `now`; `dropped` gets the lines dropped before it since the last one that went.
struct Limiter {
	static constexpr double burst = 50;
	static constexpr double refill = 2; // lines a second
	bool allow(uint64_t key, std::chrono::steady_clock::time_point now, uint64_t &dropped);

private:
	struct Bucket {
		double tokens = burst;
		std::chrono::steady_clock::time_point last{};
		uint64_t dropped = 0;
	};
	std::vector<std::pair<uint64_t, Bucket>> buckets_;
};

} // namespace bpfilter::log
