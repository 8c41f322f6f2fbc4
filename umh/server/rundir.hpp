// The front door's files, in a directory only root can write: the instance lock and the table in
// force, both per network namespace.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "loader/fd.hpp"

namespace bpfilter::server
{

// /run/bpfilter, made 0700 if missing, refused unless it is a directory owned by the
// helper's user that no one else may write.
inline constexpr const char *run_dir = "/run/bpfilter";

class RunFiles
{
public:
	// For the network namespace with this cookie (unique for the machine's uptime):
	// listen-COOKIE.lock and table-COOKIE (the last IPT_SO_SET_REPLACE accepted).
	static Result<RunFiles> open(uint64_t netns_cookie);

	// One front door per network namespace: two would take each other's programs over.
	// An flock() on the lock file, which only root can create: no other user can hold
	// it first. EADDRINUSE when another helper holds it.
	Status lock();

	// The saved table (nullopt when there is none).
	Result<std::optional<std::vector<uint8_t>>> read_table() const;
	// Saves a table, whole or not at all: written aside before it is handled, renamed
	// over the saved one once accepted (commit_table()), or removed (unstage_table()).
	Status stage_table(std::span<const uint8_t> blob) const;
	Status commit_table() const;
	void unstage_table() const;
	void remove_table() const;

	// At a clean exit: the lock file goes while still held.
	void unlock();

private:
	std::string lock_path_, table_path_;
	loader::Fd lock_;
};

} // namespace bpfilter::server
