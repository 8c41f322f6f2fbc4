# iptables' own test suite (iptables-test.py, 1.8.9) on netfilter and through the front door,
# per file: scripts/upstream-tests, Documentation/testing.md. The suite is looked for beside
# the clone (../shared/iptables-1.8.9-tests) or at UPSTREAM_TESTS_SUITE.
.PHONY: upstream-tests
upstream-tests: $(UMH) $(PRELOAD_SO)
	BUILD=$(BUILD) scripts/upstream-tests $(if $(UPSTREAM_TESTS_SUITE),--suite $(UPSTREAM_TESTS_SUITE))
