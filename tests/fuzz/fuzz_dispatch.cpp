// Fuzz target: the request framing and the dispatcher, as the module's channel drives them.
//
// The input is a byte stream of requests (struct bpfilter_request and its data, as
// include/uapi/bpfilter/msg.h frames them), served by server::serve_channel and the
// Dispatcher with each namespace's data plane replaced by the unit tests' in-memory one, so
// nothing is loaded or attached. The target runs in a network namespace of its own (requests
// such as LINK_STRAY act on its devices). Then every answer must be well formed: one reply
// per complete request, in order, with its seq, a status and a data length that fit the
// request (GET_INFO 84 bytes, GET_ENTRIES the size asked, SET_REPLACE one counter per entry
// replaced, errors nothing), nothing else on the stream, and the loop's exit status saying
// whether the stream ended cleanly.
//
// A namespace descriptor in a request is the helper's to close: the target replaces any
// netns_fd >= 0 by a descriptor of its own namespace (a real one, so that entering it runs),
// and netns_cookie 1 by that namespace's cookie, so that both the matching and the mismatched
// cases are reachable.
#include <fcntl.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "abi/layout.hpp"
#include "fuzz_common.hpp"
#include "server/dispatcher.hpp"
#include "server/server.hpp"
#include "server/wire.hpp"
#include "service_dataplane_double.hpp"

namespace bpfilter::fuzz
{
namespace
{

uint64_t own_cookie = 0;

// What a well-formed reply to a request may carry.
struct Expect {
	uint32_t seq = 0;
	uint32_t op = 0, optname = 0, optlen = 0;
	uint32_t replace_counters = 0; // SET_REPLACE: ipt_replace.num_counters
	bool final_refusal = false;    // a readable but unservable header: its errno only
	int refusal = 0;
};

// Walks the stream as the server will, rewriting descriptors and cookies, and says which
// replies must come back and whether the stream ends cleanly.
std::vector<Expect> prepare(std::vector<uint8_t> &s, std::vector<int> &fds, bool &clean_end)
{
	std::vector<Expect> out;
	size_t off = 0;
	clean_end = false;
	for (;;) {
		if (off == s.size()) {
			clean_end = true;
			return out;
		}
		if (s.size() - off < sizeof(bpfilter_request))
			return out; // a truncated header: no reply
		bpfilter_request h;
		std::memcpy(&h, s.data() + off, sizeof(h));
		if (h.netns_fd >= 0) {
			h.netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
			require(h.netns_fd >= 0, "opening the target's own namespace");
			fds.push_back(h.netns_fd);
		}
		if (h.netns_cookie == 1)
			h.netns_cookie = own_cookie;
		// Workers answer requests as they finish (HEALTH at once, before requests still
		// in flight): replies are matched by seq, which the helper never reads, so
		// each request gets its own.
		h.seq = static_cast<uint32_t>(out.size());
		std::memcpy(s.data() + off, &h, sizeof(h));
		const int err = wire::check_request_header(h);
		if (err == -EBADMSG)
			return out; // bad magic: nothing can be answered
		if (err) {
			Expect e;
			e.seq = h.seq;
			e.final_refusal = true;
			e.refusal = err;
			out.push_back(e);
			return out;
		}
		if (s.size() - off - sizeof(h) < h.data_len)
			return out; // truncated data: no reply
		Expect e;
		e.seq = h.seq;
		e.op = h.op;
		e.optname = h.optname;
		e.optlen = h.optlen;
		const uint8_t *data = s.data() + off + sizeof(h);
		if (h.op == BPFILTER_OP_SETSOCKOPT && h.optname == IPT_SO_SET_REPLACE &&
		    h.data_len >= abi::replace_size)
			std::memcpy(&e.replace_counters, data + abi::replace_num_counters, 4);
		out.push_back(e);
		off += sizeof(h) + h.data_len;
	}
}

void check_reply(const Expect &e, const bpfilter_reply &r, size_t index)
{
	const std::string what = "reply " + std::to_string(index) + " (op " + std::to_string(e.op) +
				 ", optname " + std::to_string(e.optname) + ", status " +
				 std::to_string(r.status) + ", " + std::to_string(r.data_len) +
				 " bytes)";
	require(r.magic == BPFILTER_REPLY_MAGIC && r.seq == e.seq, what + ": bad magic or seq");
	if (e.final_refusal) {
		require(r.status == e.refusal && r.data_len == 0,
			what + ": not the refusal of its header");
		return;
	}
	const bool revision =
		e.op == BPFILTER_OP_GETSOCKOPT &&
		(e.optname == IPT_SO_GET_REVISION_MATCH || e.optname == IPT_SO_GET_REVISION_TARGET);
	if (r.status < 0) {
		require(r.data_len == 0 && r.status >= -4095, what + ": an error with data");
		return;
	}
	if (revision) {
		require(r.data_len == abi::get_revision_size && r.status < 256,
			what + ": a revision answer of another shape");
		return;
	}
	require(r.status == 0, what + ": a positive status");
	size_t want = 0;
	if (e.op == BPFILTER_OP_GETSOCKOPT && e.optname == IPT_SO_GET_INFO)
		want = abi::getinfo_size;
	else if (e.op == BPFILTER_OP_GETSOCKOPT && e.optname == IPT_SO_GET_ENTRIES)
		want = e.optlen;
	else if (e.op == BPFILTER_OP_SETSOCKOPT && e.optname == IPT_SO_SET_REPLACE)
		want = static_cast<size_t>(e.replace_counters) * abi::counters_size;
	else
		require(e.op != BPFILTER_OP_GETSOCKOPT, what + ": a get answered by another op");
	require(r.data_len == want, what + ": " + std::to_string(want) + " bytes of data were due");
}

std::vector<uint8_t> read_all(int fd)
{
	std::vector<uint8_t> b(static_cast<size_t>(lseek(fd, 0, SEEK_END)));
	require(pread(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()),
		"reading the replies back");
	return b;
}

// Closes the descriptors the dispatcher did not (requests it never served).
void close_leftovers(const std::vector<int> &fds)
{
	for (int fd : fds) {
		char link[64] = {};
		const std::string path = "/proc/self/fd/" + std::to_string(fd);
		if (readlink(path.c_str(), link, sizeof(link) - 1) > 0 &&
		    std::strncmp(link, "net:[", 5) == 0)
			close(fd);
	}
}

} // namespace
} // namespace bpfilter::fuzz

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	using namespace bpfilter;
	if (unshare(CLONE_NEWNET) < 0)
		fuzz::finding(std::string("unshare(CLONE_NEWNET): ") + strerror(errno) +
			      " (the target must run as root)");
	fuzz::own_cookie = server::current_netns_cookie();
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	using namespace bpfilter;
	std::vector<uint8_t> stream(data, data + size);
	std::vector<int> fds;
	bool clean_end = false;
	const std::vector<fuzz::Expect> expect = fuzz::prepare(stream, fds, clean_end);

	loader::Fd in(memfd_create("fuzz-requests", MFD_CLOEXEC));
	loader::Fd out(memfd_create("fuzz-replies", MFD_CLOEXEC));
	fuzz::require(in && out, "memfd_create");
	fuzz::require(write(in.get(), stream.data(), stream.size()) ==
				      static_cast<ssize_t>(stream.size()) &&
			      lseek(in.get(), 0, SEEK_SET) == 0,
		      "writing the requests");

	int status;
	{
		server::DispatcherOptions options;
		options.make_dataplane = [] {
			return std::make_unique<test::RecordingDataplane>(
				std::make_shared<test::DataplaneLog>());
		};
		auto dispatcher = server::Dispatcher::create(options);
		fuzz::require(dispatcher.ok(), "Dispatcher::create");
		status = server::serve_channel(in.get(), out.get(), **dispatcher);
		fuzz::require((*dispatcher)->healthy(), "the dispatcher lost its namespace");
	}
	fuzz::close_leftovers(fds);

	fuzz::require(status == (clean_end ? 0 : 1),
		      "serve_channel returned " + std::to_string(status) + " for a stream that " +
			      (clean_end ? "ends cleanly" : "does not"));
	const std::vector<uint8_t> replies = fuzz::read_all(out.get());
	std::vector<bool> answered(expect.size(), false);
	size_t off = 0;
	while (off < replies.size()) {
		bpfilter_reply r;
		fuzz::require(replies.size() - off >= sizeof(r), "a reply's header is cut short");
		std::memcpy(&r, replies.data() + off, sizeof(r));
		fuzz::require(r.seq < expect.size() && !answered[r.seq],
			      "a reply (seq " + std::to_string(r.seq) +
				      ") for no request, or a second one");
		answered[r.seq] = true;
		fuzz::check_reply(expect[r.seq], r, r.seq);
		off += sizeof(r);
		fuzz::require(replies.size() - off >= r.data_len,
			      "reply " + std::to_string(r.seq) + "'s data is cut short");
		off += r.data_len;
	}
	for (size_t k = 0; k < expect.size(); k++)
		fuzz::require(answered[k], "reply " + std::to_string(k) + " is missing");
	return 0;
}
