// LogRing: a network namespace's -j LOG records, read from the ring buffer its programs write.
#include "loader/log_ring.hpp"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bpfilter::loader
{

Result<std::unique_ptr<LogRing>> LogRing::create()
{
	auto maps = create_log_maps();
	if (!maps)
		return maps.error();
	std::unique_ptr<LogRing> ring(new LogRing(std::move(*maps)));
	ring->rb_ = ring_buffer__new(ring->maps_.ring.get(), on_record, ring.get(), nullptr);
	if (!ring->rb_)
		return make_error(errno, std::string("loader: reading the LOG ring: ") +
						 std::strerror(errno));
	return ring;
}

int LogRing::on_record(void *self, void *data, size_t size)
{
	const auto *ring = static_cast<const LogRing *>(self);
	if (ring->each_)
		(*ring->each_)(std::span<const uint8_t>(static_cast<const uint8_t *>(data), size));
	return 0;
}

LogRing::~LogRing()
{
	ring_buffer__free(rb_);
}

Result<size_t> LogRing::drain(const std::function<void(std::span<const uint8_t>)> &each)
{
	each_ = &each;
	const int n = ring_buffer__consume(rb_);
	each_ = nullptr;
	if (n < 0)
		return make_error(-n, std::string("loader: reading the LOG ring: ") +
					      std::strerror(-n));
	return static_cast<size_t>(n);
}

Result<uint64_t> LogRing::newly_lost()
{
	auto total = maps_.lost_count();
	if (!total)
		return total.error();
	const uint64_t fresh = *total - lost_reported_;
	lost_reported_ = *total;
	return fresh;
}

} // namespace bpfilter::loader
