# Differential tests against real netfilter (scripts/difftest, tests/difftest/README.md).
#   make difftest                          the corpus and DIFFTEST_COUNT random cases from DIFFTEST_SEED
#   make difftest-long SEED=N COUNT=N      COUNT random cases from seed SEED
#   make difftest-self-check               the same harness with netfilter on both sides
DIFFTEST_SEED  ?= 1
DIFFTEST_COUNT ?= 300
SEED           ?= 1
COUNT          ?= 1000
DIFFTEST       := BUILD=$(BUILD) scripts/difftest

.PHONY: difftest difftest-long difftest-self-check
difftest: $(UMH) $(PRELOAD_SO)
	$(DIFFTEST) --corpus tests/difftest/corpus --random --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT)

difftest-long: $(UMH) $(PRELOAD_SO)
	$(DIFFTEST) --random --seed $(SEED) --count $(COUNT)

difftest-self-check:
	$(DIFFTEST) --self-check --corpus tests/difftest/corpus --random --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT)
