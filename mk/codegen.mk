# Codegen's own test binary: the codegen_* unit tests linked with just what they use, so
# they build and run while other parts of the helper are mid-edit.
# `make BUILD=build-h2 codegen-tests && build-h2/codegen_tests`
CODEGEN_TEST_SRCS := $(sort $(wildcard tests/unit/codegen_*.cpp))
CODEGEN_TEST_OBJS := $(CODEGEN_TEST_SRCS:%.cpp=$(BUILD)/%.o)
CODEGEN_DEPS      := $(filter $(BUILD)/umh/codegen/% $(BUILD)/umh/loader/program.o \
			$(BUILD)/umh/ir/eval.o $(BUILD)/umh/common/%,$(CORE_OBJS))

$(BUILD)/codegen_tests: $(CODEGEN_TEST_OBJS) $(CODEGEN_DEPS)
	$(CXX) -o $@ $^ -lgtest -lgtest_main -pthread $(LDLIBS_BPF)

.PHONY: codegen-tests
codegen-tests: $(BUILD)/codegen_tests
