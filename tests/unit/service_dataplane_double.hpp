// Test double for service::Dataplane: records every table it is given and returns the
// counters a test sets, so the sockopt service can be tested without BPF.
#pragma once

#include <memory>
#include <vector>

#include "service/dataplane.hpp"

namespace bpfilter::test
{

struct DataplaneLog {
	std::vector<ir::Table> checked;
	std::vector<ir::Table> installed;
	std::vector<ir::Counter> counters; // what counters() returns for the installed table
	Status refuse_check;		   // returned by check() when set
	Status refuse_replace;		   // returned by replace() when set
};

class RecordingDataplane : public service::Dataplane
{
public:
	explicit RecordingDataplane(std::shared_ptr<DataplaneLog> log) : log_(std::move(log)) {}

	Status check(const ir::Table &table) const override
	{
		log_->checked.push_back(table);
		return log_->refuse_check;
	}

	Result<std::vector<ir::Counter>> replace(ir::Table table,
						 service::IrSource /*source*/) override
	{
		if (!log_->refuse_replace.ok())
			return log_->refuse_replace.error();
		std::vector<ir::Counter> old;
		if (!log_->installed.empty())
			old = log_->counters;
		log_->installed.push_back(table);
		log_->counters.assign(table.rules.size(), ir::Counter{});
		return old;
	}

	Result<std::vector<ir::Counter>> counters() const override { return log_->counters; }

private:
	std::shared_ptr<DataplaneLog> log_;
};

} // namespace bpfilter::test
