// One network namespace's iptables state, answering the six IPT_SO_* sockopts as ip_tables would.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/result.hpp"
#include "service/dataplane.hpp"

namespace bpfilter::service
{

// What a sockopt call returns: status is 0, a negative errno, or (revision queries) the
// best revision; data is what goes back to the caller (a get's optval, or the old
// counters of IPT_SO_SET_REPLACE).
struct Reply {
	int status = 0;
	std::vector<uint8_t> data;
};

class TableService
{
public:
	explicit TableService(std::unique_ptr<Dataplane> dataplane);

	// Install the initial table: filter with empty INPUT, FORWARD, OUTPUT and ACCEPT
	// policies, built in code, as iptable_filter starts.
	Status init();

	// IPT_SO_SET_REPLACE, IPT_SO_SET_ADD_COUNTERS; optval is the caller's bytes.
	Reply setsockopt(uint32_t optname, std::span<const uint8_t> optval);
	// The same, the caller's bytes given up: IPT_SO_SET_REPLACE makes its entries of them.
	Reply setsockopt(uint32_t optname, std::vector<uint8_t> &&optval);
	// IPT_SO_GET_INFO, _ENTRIES, _REVISION_MATCH, _REVISION_TARGET; optlen is the caller's
	// *optlen, optval the input part of the buffer.
	Reply getsockopt(uint32_t optname, uint32_t optlen, std::span<const uint8_t> optval);

	Dataplane &dataplane() { return *dataplane_; }

private:
	Reply set_replace(std::vector<uint8_t> &&optval);
	struct State;
	std::unique_ptr<Dataplane> dataplane_;
	std::shared_ptr<State> state_;
};

} // namespace bpfilter::service
