// The kernel's clock as netfilter's matches read it: jiffies (bpf_jiffies64()) and HZ.
#pragma once

#include <cstdint>

#include "common/result.hpp"

namespace bpfilter::loader
{

// get_jiffies_64() now, read by a small program run with BPF_PROG_TEST_RUN.
Result<uint64_t> read_jiffies();

// CONFIG_HZ of the running kernel: jiffies counted against CLOCK_MONOTONIC over about
// 100 ms, the nearest of the values Kconfig offers (100, 250, 300, 1000).
Result<uint32_t> measure_hz();

} // namespace bpfilter::loader
