# The host talking to itself: each ping crosses OUTPUT -o lo and INPUT -i lo twice (the
# request and the reply), counted once each time.
check "fresh table" fresh_table
check "iptables -A for lo" add_rules "-A INPUT -i lo -p icmp" "-A INPUT -p icmp" \
	"-A OUTPUT -o lo -p icmp" "-A OUTPUT -p icmp"
check "the host pings itself" pings "" 127.0.0.1 3
expect_counts INPUT "6 504" "6 504"
expect_counts OUTPUT "6 504" "6 504"
check "flush" fresh_table
