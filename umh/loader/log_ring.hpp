// LogRing: a network namespace's -j LOG records, read from the ring buffer its programs write.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "common/result.hpp"
#include "loader/program.hpp"

struct ring_buffer;

namespace bpfilter::loader
{

class LogRing
{
public:
	static Result<std::unique_ptr<LogRing>> create();
	LogRing(const LogRing &) = delete;
	LogRing &operator=(const LogRing &) = delete;
	~LogRing();

	const LogMaps &maps() const { return maps_; }
	// Readable when records wait.
	int fd() const { return maps_.ring.get(); }

	// Hands every waiting record (a codegen::maps::LogRecord) to `each`, in the order the
	// programs wrote them. Returns how many.
	Result<size_t> drain(const std::function<void(std::span<const uint8_t>)> &each);

	// Records the programs could not write (the ring was full) since the last call.
	Result<uint64_t> newly_lost();

private:
	explicit LogRing(LogMaps maps) : maps_(std::move(maps)) {}
	static int on_record(void *self, void *data, size_t size);
	LogMaps maps_;
	struct ring_buffer *rb_ = nullptr; // libbpf's reader, its context `this`
	const std::function<void(std::span<const uint8_t>)> *each_ = nullptr; // during drain()
	uint64_t lost_reported_ = 0;
};

} // namespace bpfilter::loader
