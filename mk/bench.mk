# Benchmarks: figures and ratios against a baseline measured in the same run.
#   make bench        per-packet cost (BPF_PROG_TEST_RUN) and load time by rule count,
#                     then traffic through veth against iptables-legacy (scripts/bench-veth),
#                     then restore and append times and the helper's peak RSS (scripts/bench-updates)
BENCH_DEPS := $(CORE_OBJS)

$(BUILD)/bench: $(BUILD)/tests/bench/bench.o $(BENCH_DEPS)
	$(CXX) -o $@ $^ $(LDLIBS_BPF)

.PHONY: bench
bench: $(BUILD)/bench $(UMH) $(PRELOAD_SO)
	$(BUILD)/bench $(BENCH_SIZES)
	BUILD=$(BUILD) scripts/bench-veth
	BUILD=$(BUILD) scripts/bench-updates
