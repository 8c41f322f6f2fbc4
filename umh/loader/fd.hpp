// Fd: a file descriptor owned by exactly one object, closed when that object goes away.
#pragma once

#include <unistd.h>

#include <utility>

namespace bpfilter::loader
{

// Move-only owner of a file descriptor (a BPF map, program or link, a socket, ...).
// -1 means "owns nothing".
class Fd
{
public:
	Fd() = default;
	explicit Fd(int fd) : fd_(fd) {}
	~Fd() { reset(); }

	Fd(const Fd &) = delete;
	Fd &operator=(const Fd &) = delete;
	Fd(Fd &&other) noexcept : fd_(other.release()) {}
	Fd &operator=(Fd &&other) noexcept
	{
		if (this != &other)
			reset(other.release());
		return *this;
	}

	int get() const { return fd_; }
	bool valid() const { return fd_ >= 0; }
	explicit operator bool() const { return valid(); }

	// Give up ownership without closing.
	int release() { return std::exchange(fd_, -1); }

	// Close what we own and take `fd` instead.
	void reset(int fd = -1)
	{
		int old = std::exchange(fd_, fd);
		if (old >= 0)
			::close(old);
	}

private:
	int fd_ = -1;
};

} // namespace bpfilter::loader
