# bpfilter: top-level build. `make` builds the helper, the preload library and the unit
# tests; `make check` runs every test lane; `make kmod` builds the module (see kmod/).
.DEFAULT_GOAL := all

BUILD     ?= build
CXX       ?= g++
CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= bpftool
CXXFLAGS  ?= -O2 -g
CXXFLAGS  += -std=c++20 -Wall -Wextra -Werror=return-type -Iumh -Iinclude/uapi -I$(BUILD)
LDLIBS_BPF := -Wl,-Bstatic -lbpf -lelf -lz -lzstd -Wl,-Bdynamic

# Every .cpp under umh/ is part of the helper's core, except the programs' entry points
# and the preload library, which are linked on their own.
UMH_MAIN   := umh/main.cpp
PRELOAD    := umh/frontdoor/preload.cpp
CORE_SRCS  := $(filter-out $(UMH_MAIN) $(PRELOAD),$(sort $(wildcard umh/*.cpp umh/*/*.cpp)))
CORE_OBJS  := $(CORE_SRCS:%.cpp=$(BUILD)/%.o)
UNIT_SRCS  := $(sort $(wildcard tests/unit/*.cpp))
UNIT_OBJS  := $(UNIT_SRCS:%.cpp=$(BUILD)/%.o)
TOOL_SRCS  := $(sort $(wildcard tests/tools/*.cpp))
TOOLS      := $(TOOL_SRCS:tests/tools/%.cpp=$(BUILD)/tools/%)

BPF_SRCS   := $(sort $(wildcard bpf/*.bpf.c))
BPF_OBJS   := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
BPF_SKELS  := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.skel.h)

UMH        := $(BUILD)/bpfilter_umh
PRELOAD_SO := $(BUILD)/libbpfilter_preload.so
UNIT       := $(BUILD)/unit_tests

all: $(UMH) $(PRELOAD_SO) $(UNIT) $(TOOLS)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c
	@mkdir -p $(@D)
	$(CLANG) -O2 -g -target bpf -D__TARGET_ARCH_x86 -Iinclude/uapi -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/%.o: %.cpp $(BPF_SKELS)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c $< -o $@

# The helper is static so that the module can carry it as a blob and run it anywhere.
$(UMH): $(BUILD)/umh/main.o $(CORE_OBJS)
	$(CXX) $(LDFLAGS) -static -pthread -o $@ $^ -lbpf -lelf -lz -lzstd

$(PRELOAD_SO): $(PRELOAD) include/uapi/bpfilter/msg.h
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) $(LDFLAGS) -fPIC -shared -o $@ $< -ldl

$(UNIT): $(UNIT_OBJS) $(CORE_OBJS)
	$(CXX) -o $@ $^ -lgtest -lgtest_main -pthread $(LDLIBS_BPF)

$(BUILD)/tools/%: tests/tools/%.cpp $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS_BPF)

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)

.PHONY: all clean check
# Every test lane (lint, unit, host, difftest, upstream, guest), totalled: see scripts/check.
check:
	BUILD=$(BUILD) scripts/check

clean:
	rm -rf $(BUILD)

# Each part of the project may add its own targets in mk/*.mk.
-include $(sort $(wildcard mk/*.mk))
