// The helper's log: one line a message, to stderr or the kernel log.
#include "common/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>

namespace bpfilter::log
{
namespace
{

// /dev/kmsg refuses records over LOG_LINE_MAX (1024 less the record's header), "<N>"
// included: well under it.
constexpr size_t record_max = 900;
// Lines queued for the channel at most (one request's worth); beyond, the oldest go.
constexpr size_t queue_max = 512;
// Namespaces whose rate limit is remembered; the least recently seen is forgotten.
constexpr size_t buckets_max = 256;

struct Queued {
	int level;
	std::string text;
};

struct State {
	Sink sink = Sink::Stderr;
	int kmsg_fd = -1;
	int max_kern_level = 6; // info
	Writer channel;
	std::deque<Queued> queue;
	uint64_t queue_lost = 0;
	Limiter limiter;
	// The helper serves namespaces on several threads: everything above is this lock's.
	std::mutex mu;
};

State &state()
{
	static State s;
	return s;
}

// The request a thread serves: each worker names its own namespace and caller.
struct ThreadScope {
	bool in_scope = false;
	uint64_t cookie = 0;
	std::string who;
};
thread_local ThreadScope scope;

void to_kmsg_or_stderr(int kern_level, const char *level, const std::string &record)
{
	State &s = state();
	if (s.sink == Sink::Kmsg && s.kmsg_fd >= 0) {
		const std::string text = "<" + std::to_string(kern_level) + ">" + record + "\n";
		if (write(s.kmsg_fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()))
			return;
	}
	// "bpfilter: " is the record's start; stderr's lines also say the level.
	std::string text = record;
	text.insert(std::min<size_t>(10, text.size()), std::string(level) + ": ");
	text.push_back('\n');
	fwrite(text.data(), 1, text.size(), stderr);
	fflush(stderr);
}

void emit(const char *level, int kern_level, std::string_view line)
{
	State &s = state();
	const std::lock_guard<std::mutex> hold(s.mu);
	if (kern_level > s.max_kern_level)
		return;
	std::string prefix = "bpfilter: ";
	if (scope.in_scope) {
		// Warnings and errors (refusals, which cost a caller little to provoke) are
		// limited; an info line comes with work done (a table in force), bounded by that.
		uint64_t dropped = 0;
		if (kern_level <= 4 &&
		    !s.limiter.allow(scope.cookie, std::chrono::steady_clock::now(), dropped))
			return;
		if (dropped)
			prefix += "(" + std::to_string(dropped) +
				  " lines of this namespace dropped by the rate limit) ";
		prefix += scope.who + ": ";
	}
	for (std::string &record : split_records(prefix, line, record_max)) {
		if (s.channel) {
			if (s.queue.size() >= queue_max) {
				s.queue.pop_front();
				s.queue_lost++;
			}
			s.queue.push_back({kern_level, std::move(record)});
		} else {
			to_kmsg_or_stderr(kern_level, level, record);
		}
	}
}

} // namespace

std::vector<std::string> split_records(std::string_view prefix, std::string_view line,
				       size_t max_len)
{
	std::vector<std::string_view> pieces;
	while (true) {
		const size_t nl = line.find('\n');
		std::string_view piece = line.substr(0, nl);
		// A record's room for text, with "[iii/nnn] " beside the prefix.
		const size_t room = max_len > prefix.size() + 12 ? max_len - prefix.size() - 12 : 1;
		do {
			pieces.push_back(piece.substr(0, room));
			piece.remove_prefix(std::min(room, piece.size()));
		} while (!piece.empty());
		if (nl == std::string_view::npos)
			break;
		line.remove_prefix(nl + 1);
	}
	std::vector<std::string> out;
	for (size_t i = 0; i < pieces.size(); i++) {
		std::string r(prefix);
		if (pieces.size() > 1)
			r += "[" + std::to_string(i + 1) + "/" + std::to_string(pieces.size()) +
			     "] ";
		r.append(pieces[i]);
		out.push_back(std::move(r));
	}
	return out;
}

bool Limiter::allow(uint64_t key, std::chrono::steady_clock::time_point now, uint64_t &dropped)
{
	auto it = std::find_if(buckets_.begin(), buckets_.end(),
			       [key](const auto &b) { return b.first == key; });
	if (it == buckets_.end()) {
		if (buckets_.size() >= buckets_max)
			buckets_.erase(buckets_.begin());
		buckets_.push_back({key, Bucket{burst, now, 0}});
		it = std::prev(buckets_.end());
	} else {
		// Most recently seen last: the first is the one forgotten.
		std::rotate(it, std::next(it), buckets_.end());
		it = std::prev(buckets_.end());
	}
	Bucket &b = it->second;
	const double secs = std::chrono::duration<double>(now - b.last).count();
	b.tokens = std::min(burst, b.tokens + std::max(0.0, secs) * refill);
	b.last = now;
	if (b.tokens < 1) {
		b.dropped++;
		return false;
	}
	b.tokens -= 1;
	dropped = b.dropped;
	b.dropped = 0;
	return true;
}

void set_sink(Sink sink)
{
	State &s = state();
	const std::lock_guard<std::mutex> hold(s.mu);
	s.sink = sink;
	if (sink == Sink::Kmsg && s.kmsg_fd < 0)
		s.kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
}

void set_channel(Writer writer)
{
	State &s = state();
	const std::lock_guard<std::mutex> hold(s.mu);
	s.channel = std::move(writer);
}

void flush()
{
	State &s = state();
	const std::lock_guard<std::mutex> hold(s.mu);
	if (s.queue_lost) {
		s.queue.push_front({4, "bpfilter: " + std::to_string(s.queue_lost) +
					       " log lines lost: too many in one request"});
		s.queue_lost = 0;
	}
	while (!s.queue.empty()) {
		Queued q = std::move(s.queue.front());
		s.queue.pop_front();
		if (!s.channel || !s.channel(q.level, q.text))
			to_kmsg_or_stderr(q.level, q.level <= 3 ? "error" : "warning", q.text);
	}
}

Scope::Scope(uint64_t netns_cookie, std::string who)
{
	scope.in_scope = true;
	scope.cookie = netns_cookie;
	scope.who = std::move(who);
}

Scope::~Scope()
{
	scope.in_scope = false;
	scope.who.clear();
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
	State &s = state();
	const std::lock_guard<std::mutex> hold(s.mu);
	s.max_kern_level = level;
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
