# Differential tests against real netfilter (scripts/difftest, tests/difftest/README.md).
#   make difftest                          the corpus and DIFFTEST_COUNT random cases from DIFFTEST_SEED
#   make difftest-long SEED=N COUNT=N      COUNT random cases from seed SEED
#   make difftest-self-check               the same harness with netfilter on both sides
# The test lane shrinks at most one failing case and writes it under $(BUILD)/difftest, not
# into the source tree; difftest-long writes its reproducers into tests/difftest/corpus.
DIFFTEST_SEED  ?= 1
DIFFTEST_COUNT ?= 300
# Beds to run (input, router, host) and the share of generated cases with FORWARD and
# OUTPUT rules: DIFFTEST_BEDS=input DIFFTEST_HOOKS=0 is the INPUT-only lane of old.
DIFFTEST_BEDS  ?= input,router,host
DIFFTEST_HOOKS ?= 0.35
SEED           ?= 1
COUNT          ?= 1000
DIFFTEST       := BUILD=$(BUILD) scripts/difftest --beds $(DIFFTEST_BEDS) --hooks $(DIFFTEST_HOOKS)

.PHONY: difftest difftest-long difftest-self-check
difftest: $(UMH) $(PRELOAD_SO)
	$(DIFFTEST) --corpus tests/difftest/corpus --corpus-also first-branch,accumulate,chunked \
		--random --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT) \
		--max-shrinks 1 --shrink-budget 150 --repro-dir $(BUILD)/difftest

difftest-long: $(UMH) $(PRELOAD_SO)
	$(DIFFTEST) --random --seed $(SEED) --count $(COUNT)

# The harness against itself needs no translator: every bed, whatever DIFFTEST_BEDS says.
difftest-self-check:
	BUILD=$(BUILD) scripts/difftest --self-check --corpus tests/difftest/corpus --random --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT)
	@n=$$(ls tests/difftest/corpus/*.rules | wc -l); \
	f=$$(BUILD=$(BUILD) scripts/difftest --self-check --perturb --corpus tests/difftest/corpus | grep -c '^FAIL '); \
	if [ "$$f" -eq "$$n" ]; then echo "perturbed second side: all $$n corpus rulesets differ, as they must"; \
	else echo "perturbed second side: only $$f of $$n corpus rulesets differ: the harness misses differences"; exit 1; fi
