# Benchmarks: figures and ratios against baselines measured in the same run.
#   make bench        scripts/bench: one interleaved run of netfilter, bpfilter and a bare XDP_DROP
#                     program by shape and rule count: packets per second through veth
#                     (tests/tools/xdpbench's live frames), ns/packet of the loaded program,
#                     restore and append times, the helper's peak RSS; then build/bench: the
#                     generated code's forms (one by one, hash, LPM, tuple set) side by side
#   BENCH_SHAPES, BENCH_SIZES, BENCH_SECONDS pick a subset (scripts/bench);
#   BENCH_CODEGEN_SIZES the sizes of build/bench's first part
BENCH_DEPS := $(CORE_OBJS)

$(BUILD)/bench: $(BUILD)/tests/bench/bench.o $(BENCH_DEPS)
	$(CXX) -o $@ $^ $(LDLIBS_BPF)

.PHONY: bench
bench: $(BUILD)/bench $(UMH) $(PRELOAD_SO) $(BUILD)/tools/xdpbench
	BUILD=$(BUILD) scripts/bench
	$(BUILD)/bench $(BENCH_CODEGEN_SIZES)
