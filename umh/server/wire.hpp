// The request protocol on a byte stream: whole-message reads and writes, shared by the helper and
// the preload library.
//
// Header only on purpose: the preload library is built from one source file and must not
// pull in the helper's core.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "bpfilter/msg.h"

namespace bpfilter::wire
{

// Reads exactly len bytes unless the stream ends first. Returns the bytes read (less than
// len only at end of stream) or a negative errno. Retries on EINTR.
inline ssize_t read_full(int fd, void *buf, size_t len)
{
	auto *p = static_cast<uint8_t *>(buf);
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += static_cast<size_t>(n);
	}
	return static_cast<ssize_t>(done);
}

// Writes all len bytes or fails with a negative errno. A socket is written with
// MSG_NOSIGNAL so that a vanished peer is EPIPE rather than a SIGPIPE that would kill the
// caller (the preload library lives in other people's processes); anything else (the
// module's channel) with write().
inline int write_full(int fd, const void *buf, size_t len)
{
	const auto *p = static_cast<const uint8_t *>(buf);
	size_t done = 0;
	bool is_socket = true;
	while (done < len) {
		ssize_t n = is_socket ? send(fd, p + done, len - done, MSG_NOSIGNAL)
				      : write(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOTSOCK && is_socket) {
				is_socket = false;
				continue;
			}
			return -errno;
		}
		done += static_cast<size_t>(n);
	}
	return 0;
}

// Why a request header is unacceptable, or 0. Run before reading its data.
inline int check_request_header(const bpfilter_request &req)
{
	if (req.magic != BPFILTER_REQ_MAGIC)
		return -EBADMSG;
	if (req.version != BPFILTER_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (req.data_len > BPFILTER_MAX_DATA)
		return -E2BIG;
	return 0;
}

// The same for a reply, given the most data the reader can take.
inline int check_reply_header(const bpfilter_reply &rep, uint32_t seq, size_t max_data)
{
	if (rep.magic != BPFILTER_REPLY_MAGIC || rep.seq != seq)
		return -EBADMSG;
	if (rep.data_len > max_data)
		return -E2BIG;
	return 0;
}

} // namespace bpfilter::wire
