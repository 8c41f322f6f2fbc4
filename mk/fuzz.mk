# libFuzzer targets (tests/fuzz/README.md): the SET_REPLACE parser and validator with its
# round trip, the request framing and dispatcher, and codegen against the reference evaluator.
#   make fuzz [FUZZ_TIME=300] [FUZZ_TARGETS="replace dispatch codegen"] [FUZZ_JOBS=1]
#       runs each target FUZZ_TIME seconds from its seed corpus (tests/fuzz/corpus/TARGET),
#       new inputs into $(BUILD)/fuzz/corpus/TARGET, findings into $(BUILD)/fuzz/findings
#   make fuzz-build      the targets only ($(BUILD)/fuzz/fuzz_TARGET)
# Everything, the helper's code included, is built with clang, ASan, UBSan (any report
# aborts) and libFuzzer's coverage, in $(BUILD)/fuzz, apart from the ordinary build.
FUZZ_CXX      ?= clang++
FUZZ_TIME     ?= 300
FUZZ_JOBS     ?= 1
FUZZ_TARGETS  ?= replace dispatch codegen
FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CXXFLAGS := -std=c++20 -g -O1 $(FUZZ_SAN) -Wall -Werror=return-type \
		 -Iumh -Iinclude/uapi -I$(BUILD) -Itests/unit -Itests/fuzz

FUZZ_CORE_OBJS := $(CORE_SRCS:%.cpp=$(FUZZ_DIR)/obj/%.o)
# The parser's target needs only the ABI and the service; the others the whole helper.
FUZZ_ABI_OBJS  := $(filter $(FUZZ_DIR)/obj/umh/abi/% $(FUZZ_DIR)/obj/umh/common/% \
		    $(FUZZ_DIR)/obj/umh/service/table_service.o,$(FUZZ_CORE_OBJS))

$(FUZZ_DIR)/obj/%.o: %.cpp $(BPF_SKELS)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/libcore.a: $(FUZZ_CORE_OBJS)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_replace: tests/fuzz/fuzz_replace.cpp $(FUZZ_ABI_OBJS)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_ABI_OBJS) -lzstd

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.cpp $(FUZZ_DIR)/libcore.a
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_DIR)/libcore.a \
		$(LDLIBS_BPF) -lgtest -pthread

FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	BUILD=$(BUILD) FUZZ_TIME=$(FUZZ_TIME) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run $(FUZZ_TARGETS)
