#!/bin/bash
# The front door itself: the request protocol on the socket (framing, checks, errors) and the preload library's pass-through.
set -eu
. "$(dirname "$0")/lib.sh"
bf_setup

# A raw protocol client: sends the given requests on one connection, prints each reply
# as "status data_len" or "closed".
cat >"$BF_TMP/proto.py" <<'PY'
import socket, struct, sys
REQ, REP = 0x71726662, 0x70726662
def req(op, optname=0, optlen=0, data=b"", cookie=0, magic=REQ, version=2, seq=7, data_len=None):
    n = len(data) if data_len is None else data_len
    return struct.pack("=IHHIIIIQiI", magic, version, op, optname, optlen, n, 0, cookie, -1, seq) + data
def reply(s):
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            return "closed"
        hdr += chunk
    magic, seq, status, n = struct.unpack("=IIiI", hdr)
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    assert magic == REP and seq == 7, "bad reply header"
    return "%d %d %s" % (status, n, data[:6].rstrip(b"\0").decode("ascii", "replace"))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(3)
for r in eval("[" + sys.argv[2] + "]"):
    try:
        s.sendall(r)
        print(reply(s))
    except (BrokenPipeError, ConnectionResetError):
        print("closed")
        break
PY
# In the helper's namespace: a client elsewhere is refused (frontdoor_trust.sh).
proto() { in_host "$PYTHON" "$BF_TMP/proto.py" "$BF_SOCK" "$1"; }
getinfo='req(2, 64, 84, b"filter".ljust(84, b"\0"))'

check_eq "HEALTH answers 0" "$(proto 'req(0)')" "0 0 "
check_eq "GET_INFO over the socket returns the 84-byte ipt_getinfo" "$(proto "$getinfo")" "0 84 filter"
check_eq "GET_INFO with a short optlen is EINVAL, as ip_tables says" \
	"$(proto 'req(2, 64, 10, b"filter\0\0\0\0")')" "-22 0 "
check_eq "an unknown op is EOPNOTSUPP and the connection goes on" \
	"$(proto 'req(99), req(0)' | tr '\n' ,)" "-95 0 ,0 0 ,"
check_eq "a bad magic closes the connection without a reply" "$(proto 'req(0, magic=0x1234)')" closed
check_eq "another protocol version is EPROTONOSUPPORT, then closed" \
	"$(proto 'req(0, version=3), req(0)' 2>/dev/null | tr '\n' ,)" "-93 0 ,closed,"
check_eq "data_len beyond BPFILTER_MAX_DATA is E2BIG, then closed" \
	"$(proto 'req(1, 64, 0, data_len=(256 << 20) + 1)')" "-7 0 "
check_eq "setsockopt carrying more data than optlen is EINVAL" "$(proto 'req(1, 64, 5, b"x" * 10)')" "-22 0 "
check_eq "the namespace cookie a client sends means nothing: its own namespace is served" \
	"$(proto 'req(2, 64, 84, b"filter".ljust(84, b"\0"), cookie=12345)')" "0 84 filter"
check_eq "a client in another namespace is refused (EXDEV), whatever cookie it sends" \
	"$("$PYTHON" "$BF_TMP/proto.py" "$BF_SOCK" 'req(2, 64, 84, b"filter".ljust(84, b"\0"), cookie=0)')" "-18 0 "
# A client that dies half way through a header must not take the helper with it.
"$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"bfrq\1\0")
' "$BF_SOCK"
check_eq "after a truncated request the helper still answers" "$(proto 'req(0)')" "0 0 "
# One that stops half way and waits must not hold up the others.
"$PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"bfrq\1\0\2\0")
time.sleep(4)
' "$BF_SOCK" &
staller=$!
sleep 0.3
t0=$(now_ms)
check_eq "while a client sits on half a header, another is answered" "$(proto 'req(0)')" "0 0 "
check "at once (under 3 s, process starts included; the staller holds on for 4 s)" test $(($(now_ms) - t0)) -lt 3000
check_eq "iptables works meanwhile" "$(ipt -S INPUT | head -1)" "-P INPUT ACCEPT"
wait "$staller"

# The preload library: other sockopts go to the kernel untouched.
cat >"$BF_TMP/passthrough.py" <<'PY'
import ctypes, errno, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 33)
assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 33
# IPT_SO_GET_INFO on a raw socket goes to the helper: filter with 3 hooks. Through libc,
# as iptables calls it, with the table's name in the buffer.
libc = ctypes.CDLL(None, use_errno=True)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def get_info(length):
    buf = ctypes.create_string_buffer(b"filter", 84)
    n = ctypes.c_uint32(length)
    rc = libc.getsockopt(r.fileno(), socket.IPPROTO_IP, 64, buf, ctypes.byref(n))
    return rc, ctypes.get_errno(), buf.raw, n.value
rc, err, info, n = get_info(84)
assert rc == 0 and n == 84, (rc, err, n)
assert info[:6] == b"filter", info
assert struct.unpack_from("=I", info, 32)[0] == 0x0e, "valid_hooks"
# A wrong length is the helper's EINVAL, as ip_tables gives it.
rc, err, _, _ = get_info(80)
assert rc == -1 and err == errno.EINVAL, (rc, err)
# The same optname on an IPv6 socket is not ours (ip6tables' level is IPPROTO_IPV6).
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    u.getsockopt(socket.IPPROTO_IPV6, 64, 84)
except OSError as e:
    pass
print("passthrough ok")
PY
check "the preload passes other sockopts through and forwards IPT_SO_*" \
	in_host env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" "$PYTHON" "$BF_TMP/passthrough.py"

cat >"$BF_TMP/unreachable.py" <<'PY'
import errno, socket
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(3):
    try:
        r.getsockopt(socket.IPPROTO_IP, 64, 84)
        raise SystemExit("IPT_SO_GET_INFO succeeded without a helper")
    except OSError as e:
        assert e.errno == errno.ECONNREFUSED, e
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
PY
out=$(in_host env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_TMP/nobody.sock" "$PYTHON" "$BF_TMP/unreachable.py" 2>&1) && rc=0 || rc=$?
check_eq "without a helper, IPT_SO_* fail with ECONNREFUSED and others still work" "$rc" 0
check_eq "one line says where the helper was expected" "$(grep -c "not reachable at $BF_TMP/nobody.sock" <<<"$out")" 1

# iptables in another namespace than the helper's is refused, with a line that says why.
out=$(in_peer env LD_PRELOAD="$BF_PRELOAD" BPFILTER_SOCKET="$BF_SOCK" iptables-legacy -L -n 2>&1) && rc=0 || rc=$?
check "iptables in another namespace fails" test "$rc" -ne 0
check "and is told the helper serves another namespace" grep -q "serves another network namespace" <<<"$out"

# A second helper on the same socket is refused; the first goes on.
out=$(ip netns exec "$HOST" "$BF_UMH" --listen "$BF_SOCK" 2>&1) && rc=0 || rc=$?
check "a second helper on a live socket refuses to start" grep -q "another helper serves\\|another bpfilter_umh --listen serves" <<<"$out"
check_eq "the first still answers" "$(proto 'req(0)')" "0 0 "
check_eq "and its program is still attached" "$(xdp_mode_of veth0)" xdp
no_adoption() { ! grep -q "adopting\|in force" <<<"$1"; }
check "the second touched no interface" no_adoption "$out"

# Nor does a second helper in the same namespace on another socket.
out=$(ip netns exec "$HOST" "$BF_UMH" --listen "$BF_TMP/other.sock" 2>&1) && rc=0 || rc=$?
check "a second helper in the same namespace refuses to start" \
	grep -q "another bpfilter_umh --listen serves this network namespace" <<<"$out"
check "it touched no interface" no_adoption "$out"
check_eq "the first one's program is still attached" "$(xdp_mode_of veth0)" xdp

# A helper in another namespace may not take the socket path either.
out=$(ip netns exec "$PEER" "$BF_UMH" --listen "$BF_SOCK" 2>&1) && rc=0 || rc=$?
check "a helper elsewhere on a live socket path refuses to start" \
	grep -q "another helper serves $BF_SOCK" <<<"$out"
check "before touching its own namespace's interfaces" no_adoption "$out"

# Many clients one after another.
for i in $(seq 50); do ipt -A INPUT -s "10.7.0.$i" -j DROP; done
check_eq "50 iptables runs, 50 rules" "$(ipt -S INPUT | grep -c -- '-A INPUT')" 50
check "the peer still gets through" ping_ok

bf_summary
