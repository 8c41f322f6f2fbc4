// The kernel's clock as netfilter's matches read it: jiffies (bpf_jiffies64()) and HZ.
#include "loader/jiffies.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <time.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "codegen/insn.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

namespace
{

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + std::strerror(err));
}

double monotonic_s()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

} // namespace

Result<uint64_t> read_jiffies()
{
	using namespace codegen::insn;
	using codegen::R0, codegen::R1, codegen::R2, codegen::R3, codegen::R6;
	// XDP: the first 8 bytes of the frame = bpf_jiffies64().
	const std::array<bpf_insn, 9> prog = {{
		ldx(BPF_W, R2, R1, offsetof(xdp_md, data)),
		ldx(BPF_W, R3, R1, offsetof(xdp_md, data_end)),
		mov64(R6, R2),
		alu64_imm(BPF_ADD, R2, 8),
		jmp_reg(BPF_JGT, R2, R3, 2),
		call_helper(BPF_FUNC_jiffies64),
		stx(BPF_DW, R6, R0, 0),
		mov64(R0, XDP_PASS),
		exit(),
	}};
	const int pfd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bpfilter_jiffy", "GPL", prog.data(),
				      prog.size(), nullptr);
	if (pfd < 0)
		return sys_error(-pfd, "loader: loading the jiffies reader");
	const Fd fd(pfd);
	std::array<uint8_t, 64> in{}, out{};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out.data(),
		    .data_size_in = in.size(), .data_size_out = out.size(), .repeat = 1);
	if (bpf_prog_test_run_opts(fd.get(), &opts) != 0)
		return sys_error(errno, "loader: running the jiffies reader");
	uint64_t j = 0;
	std::memcpy(&j, out.data(), sizeof(j));
	return j;
}

namespace
{

// Jiffies over one pause of `pause_ns`, as ticks per second.
Result<double> jiffies_rate(long pause_ns)
{
	auto j0 = read_jiffies();
	if (!j0)
		return j0.error();
	const double t0 = monotonic_s();
	const timespec pause{pause_ns / 1'000'000'000, pause_ns % 1'000'000'000};
	nanosleep(&pause, nullptr);
	auto j1 = read_jiffies();
	if (!j1)
		return j1.error();
	const double t1 = monotonic_s();
	return static_cast<double>(*j1 - *j0) / (t1 - t0);
}

} // namespace

Result<uint32_t> measure_hz()
{
	// A stalled tick (a busy virtual machine: qemu's TCG took 211 Hz for 250 in a 0.1 s
	// window) counts late; jiffies catch up from the clock, so a longer window is nearer.
	double hz = 0;
	for (long pause_ns : {100'000'000L, 400'000'000L, 1'000'000'000L}) {
		auto rate = jiffies_rate(pause_ns);
		if (!rate)
			return rate.error();
		hz = *rate;
		uint32_t best = 0;
		double err = 1e9;
		for (uint32_t c : {100u, 250u, 300u, 1000u}) {
			if (std::fabs(hz - c) < err) {
				err = std::fabs(hz - c);
				best = c;
			}
		}
		if (err <= 0.1 * best)
			return best;
	}
	return make_error(EOPNOTSUPP, "loader: jiffies advance at " + std::to_string(hz) +
					      " Hz, not a HZ Kconfig offers");
}

} // namespace bpfilter::loader
