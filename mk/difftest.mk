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
# Flows with conntrack state, REJECT and LOG: the stateful corpus (tests/difftest/corpus-stateful,
# about 25 s a form) always runs; generated cases with such rules (--stateful) only with
# DIFFTEST_STATEFUL=1 (DIFFTEST_STATEFUL_SHARE: the share of generated cases that get them).
DIFFTEST_STATEFUL       ?= 0
DIFFTEST_STATEFUL_SHARE ?= 0.3
STATEFUL_CORPUS         := tests/difftest/corpus-stateful
DIFFTEST       := BUILD=$(BUILD) scripts/difftest --beds $(DIFFTEST_BEDS) --hooks $(DIFFTEST_HOOKS)
DIFFTEST_EXTRA := --corpus $(STATEFUL_CORPUS)
ifeq ($(DIFFTEST_STATEFUL),1)
DIFFTEST_EXTRA += --stateful $(DIFFTEST_STATEFUL_SHARE)
endif

.PHONY: difftest difftest-long difftest-self-check
difftest: $(UMH) $(PRELOAD_SO)
	$(DIFFTEST) --corpus tests/difftest/corpus $(DIFFTEST_EXTRA) --corpus-also first-branch,accumulate,chunked \
		--random --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT) \
		--max-shrinks 1 --shrink-budget 150 --repro-dir $(BUILD)/difftest

difftest-long: $(UMH) $(PRELOAD_SO)
	$(DIFFTEST) $(if $(filter 1,$(DIFFTEST_STATEFUL)),--stateful $(DIFFTEST_STATEFUL_SHARE)) --random --seed $(SEED) --count $(COUNT)

# The harness against itself needs no translator: every bed, whatever DIFFTEST_BEDS says,
# and the stateful corpus and cases too. Then the negative tests: every corpus ruleset must
# differ with the second side's policies flipped, every REJECT case of the stateful corpus
# must show a reply whose bytes differ with its --reject-with changed, and the LOG case a
# LOG line with its --log-level changed (only those comparisons could tell).
difftest-self-check:
	BUILD=$(BUILD) scripts/difftest --self-check --corpus tests/difftest/corpus --corpus $(STATEFUL_CORPUS) \
		--stateful $(DIFFTEST_STATEFUL_SHARE) --random --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT)
	@n=$$(ls tests/difftest/corpus/*.rules $(STATEFUL_CORPUS)/*.rules | wc -l); \
	f=$$(BUILD=$(BUILD) scripts/difftest --self-check --perturb --corpus tests/difftest/corpus --corpus $(STATEFUL_CORPUS) | grep -c '^FAIL '); \
	if [ "$$f" -eq "$$n" ]; then echo "perturbed second side: all $$n corpus rulesets differ, as they must"; \
	else echo "perturbed second side: only $$f of $$n corpus rulesets differ: the harness misses differences"; exit 1; fi
	@n=$$(ls $(STATEFUL_CORPUS)/reject-icmp-*.rules | wc -l); \
	f=$$(BUILD=$(BUILD) scripts/difftest --self-check --perturb reject --corpus $(STATEFUL_CORPUS) | \
		grep '^DIFF [^ ]*/reject-icmp-[^ ]*: reply: ' | cut -d' ' -f2 | sort -u | wc -l); \
	if [ "$$f" -eq "$$n" ]; then echo "perturbed REJECT types: all $$n REJECT cases show replies whose bytes differ, as they must"; \
	else echo "perturbed REJECT types: only $$f of $$n REJECT cases show a reply difference: the byte comparison misses"; exit 1; fi
	@f=$$(BUILD=$(BUILD) scripts/difftest --self-check --perturb log $(STATEFUL_CORPUS)/log.rules $(STATEFUL_CORPUS)/log.packets | \
		grep -c '^DIFF [^ ]*: log: '); \
	if [ "$$f" -eq 1 ]; then echo "perturbed LOG levels: the LOG lines differ, as they must"; \
	else echo "perturbed LOG levels: no LOG line difference: the LOG comparison misses"; exit 1; fi
