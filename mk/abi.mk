# H1's own test binary: the ABI, service and evaluator unit tests linked with only the
# objects they need, so they build while other parts of the tree are mid-edit.
ABI_CORE_SRCS := $(sort $(wildcard umh/abi/*.cpp)) umh/service/table_service.cpp umh/service/nf_log.cpp umh/ir/eval.cpp umh/common/log.cpp
ABI_TEST_SRCS := $(sort $(wildcard tests/unit/abi_*.cpp tests/unit/service_*.cpp tests/unit/eval_*.cpp))
ABI_OBJS      := $(ABI_CORE_SRCS:%.cpp=$(BUILD)/%.o) $(ABI_TEST_SRCS:%.cpp=$(BUILD)/%.o)

$(BUILD)/abi_unit_tests: $(ABI_OBJS)
	$(CXX) -o $@ $^ -lgtest -lgtest_main -pthread -lzstd

# The snapshot tool needs only the ABI and the service.
$(BUILD)/abi-tools/ipt_snapshot: tests/tools/ipt_snapshot.cpp $(filter-out $(BUILD)/tests/%,$(ABI_OBJS))
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -o $@ $^ -lzstd

.PHONY: abi-unit
abi-unit: $(BUILD)/abi_unit_tests
	$(BUILD)/abi_unit_tests

$(BUILD)/abi-tools/ipt_errno: tests/tools/ipt_errno.cpp tests/unit/abi_builder.hpp $(filter-out $(BUILD)/tests/%,$(ABI_OBJS))
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -o $@ $(filter %.cpp %.o,$^) -lzstd

$(BUILD)/abi-tools/ipt_evalcheck: tests/tools/ipt_evalcheck.cpp $(filter-out $(BUILD)/tests/%,$(ABI_OBJS))
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -o $@ $^ -lzstd
