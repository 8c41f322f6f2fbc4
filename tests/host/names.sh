#!/bin/bash
# What bpftool says of bpfilter's programs and maps: names that give the hook, table, chains and namespace, and a counters map whose dump names its fields and counts a rule's packets. A program of an earlier helper's naming is adopted.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup_netns

# An XDP program named as helpers before this naming named theirs (bpfilter_in), on veth0
# before the helper starts: the helper takes it for its predecessor's and replaces it.
legacy=$BF_TMP/legacy_xdp.o
clang -O2 -target bpf -Dforeign=bpfilter_in -c "$BF_ROOT/tests/host/foreign_xdp.c" -o "$legacy"
in_host ip -force link set dev veth0 xdp obj "$legacy" sec xdp
legacy_id=$(in_host bpftool -j net show dev veth0 | "$PYTHON" -c '
import json, sys
print(json.load(sys.stdin)[0]["xdp"][0]["id"])')
check_eq "veth0 runs a program named bpfilter_in" \
	"$(bpftool -j prog show id "$legacy_id" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["name"])')" \
	bpfilter_in
bf_start_helper
in_peer busybox ping -c 1 -W 2 "$HOST_IP" >/dev/null 2>&1 || true
check "the helper adopted it as an earlier helper's" \
	grep -q "adopting program id $legacy_id .* on veth0 left by an earlier helper" "$BF_TMP/umh.log"

ino=$(in_host stat -L -c %i /proc/self/ns/net)
echo "# HOST's network namespace: inode $ino ($(in_host readlink /proc/self/ns/net))"
check "an OUTPUT rule" ipt -A OUTPUT -p udp --dport 9 -j ACCEPT
check "a DROP rule for the peer's pings" ipt -I INPUT -s "$PEER_IP" -p icmp -j DROP
check_eq "none of 5 pings answered" "$(ping_count 5)" 0
check_eq "iptables counts 5 pings on the rule" "$(rule_counters INPUT 1)" "5 420"

# The programs on veth0: id and bpftool's name (the whole one, from BTF) per hook.
progs_json()
{
	in_host bpftool -j net show dev veth0 | "$PYTHON" -c '
import json, sys
for block in json.load(sys.stdin) or []:
    for x in block.get("xdp", []):
        print("xdp", x["id"])
    for t in block.get("tc", []):
        print("tc_in" if t["kind"].endswith("ingress") else "tc_out", t["id"])
' | while read -r hook id; do
		echo "$hook $id $(bpftool -j prog show id "$id" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["name"])')"
	done | sort
}
progs_json >"$BF_TMP/progs"
sed 's/^/# /' "$BF_TMP/progs"
name_of() { awk -v h="$1" '$1 == h { print $3 }' "$BF_TMP/progs"; }
id_of() { awk -v h="$1" '$1 == h { print $2 }' "$BF_TMP/progs"; }
check_eq "XDP: hook, table, chains, namespace" "$(name_of xdp)" "bpfilter_xdp_in_filter_INPUT_FORWARD_net$ino"
check_eq "tc ingress: hook, table, chains, namespace" "$(name_of tc_in)" "bpfilter_tc_in_filter_INPUT_FORWARD_net$ino"
check_eq "tc egress: hook, table, chains, namespace" "$(name_of tc_out)" "bpfilter_tc_out_filter_OUTPUT_net$ino"
check "the adopted program is gone" sh -c "! bpftool prog show id $legacy_id"

# The kernel's own name is the first 15 characters, what ip link and tc show.
check "ip link shows the XDP program's kernel name" \
	sh -c "ip -n $HOST -d link show veth0 | grep -q 'prog/xdp id $(id_of xdp) name bpfilter_xdp_in '"
check "tc shows the egress program's kernel name" \
	sh -c "tc -n $HOST filter show dev veth0 egress | grep -q 'bpfilter_tc_out:\[$(id_of tc_out)\]'"

# Finding a namespace's programs with bpftool: by whole name, or every name ending in its
# inode.
check_eq "bpftool prog show name finds the XDP program by its whole name" \
	"$(bpftool -j prog show name "bpfilter_xdp_in_filter_INPUT_FORWARD_net$ino" | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(str(p["id"]) for p in (d if isinstance(d, list) else [d])))')" "$(id_of xdp)"
ns_progs=$(bpftool -j prog show | "$PYTHON" -c '
import json, sys
print(" ".join(sorted(str(p["id"]) for p in json.load(sys.stdin) if p.get("name", "").endswith("_net" + sys.argv[1]))))' "$ino")
check_eq "the programs whose names end in _net$ino are veth0's and lo's" \
	"$ns_progs" "$(in_host bpftool -j net show | "$PYTHON" -c '
import json, sys
ids = set()
for block in json.load(sys.stdin) or []:
    for x in block.get("xdp", []) + block.get("tc", []):
        ids.add(str(x["id"]))
print(" ".join(sorted(ids)))')"

# The counters map: named bpfilter_cnt, among the XDP program's maps.
counters=$(bpftool -j prog show id "$(id_of xdp)" | "$PYTHON" -c '
import json, subprocess, sys
for m in json.load(sys.stdin).get("map_ids", []):
    info = json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", str(m)], capture_output=True, text=True).stdout)
    if info.get("name") == "bpfilter_cnt":
        print(m)')
check "the XDP program counts in a map named bpfilter_cnt" test -n "$counters"
bpftool map show id "$counters" | sed 's/^/# /'
check "the counters map carries BTF" sh -c "bpftool map show id $counters | grep -q btf_id"

bpftool map dump id "$counters" >"$BF_TMP/dump"
head -n 16 "$BF_TMP/dump" | sed 's/^/# /'
check "bpftool map dump prints the rules' fields by name" \
	grep -q '"rule": \[{' "$BF_TMP/dump"
check "each rule's packets and bytes, by name" \
	sh -c "grep -q '\"packets\": [0-9]*,\$' '$BF_TMP/dump' && grep -q '\"bytes\": [0-9]*\$' '$BF_TMP/dump'"
# Block 0 is what the programs count (rule 0 is INPUT's first), summed over CPUs;
# block 1 is the base carried across helpers (0 here); the last entry is the fingerprint.
rule0=$(bpftool -j map dump id "$counters" | "$PYTHON" -c '
import json, sys
for e in json.load(sys.stdin):
    f = e.get("formatted", e)
    if f["key"] != 0:
        continue
    p = b = 0
    for v in f["values"]:
        r = v["value"]["rule"][0]
        p += r["packets"]
        b += r["bytes"]
    print(p, b)')
check_eq "bpftool map dump: block 0, rule 0, summed over CPUs" "$rule0" "5 420"

# The maps of -m recent and of conntrack's own flows: their dumps name their fields too.
check "the DROP rule gone" ipt -D INPUT 1
check "a rule with -m state and -m recent" \
	ipt -I INPUT -p icmp -m state --state NEW,ESTABLISHED -m recent --name bfnames --set
check_eq "3 pings answered" "$(ping_count 3)" 3
map_named() { # the map named $2 among program $1's
	bpftool -j prog show id "$1" | "$PYTHON" -c '
import json, subprocess, sys
for m in json.load(sys.stdin).get("map_ids", []):
    info = json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", str(m)], capture_output=True, text=True).stdout)
    if info.get("name") == sys.argv[1]:
        print(m)' "$2"
}
xdp=$(in_host bpftool -j net show dev veth0 | "$PYTHON" -c '
import json, sys
print(json.load(sys.stdin)[0]["xdp"][0]["id"])')
recent=$(map_named "$xdp" bpfilter_recent)
ctown=$(map_named "$xdp" bpfilter_ctown)
bpftool map dump id "${recent:-0}" >"$BF_TMP/recent" 2>&1 || true
bpftool map dump id "${ctown:-0}" >"$BF_TMP/ctown" 2>&1 || true
grep -v '"stamps"\|^ *[0-9]*,\?$\|^ *\],\?$' "$BF_TMP/recent" | head -n 12 | sed 's/^/# /'
head -n 14 "$BF_TMP/ctown" | sed 's/^/# /'
check "bpfilter_recent's dump names list, addr, seq, stamps" \
	sh -c "grep -q '\"list\": ' '$BF_TMP/recent' && grep -q '\"addr\": ' '$BF_TMP/recent' &&
		grep -q '\"seq\": ' '$BF_TMP/recent' && grep -q '\"stamps\": \[' '$BF_TMP/recent'"
check "bpfilter_ctown's dump names src, dst, proto, expires, status" \
	sh -c "grep -q '\"src\": ' '$BF_TMP/ctown' && grep -q '\"proto\": 1\$' '$BF_TMP/ctown' &&
		grep -q '\"expires\": ' '$BF_TMP/ctown' && grep -q '\"status\": ' '$BF_TMP/ctown'"

bf_summary
