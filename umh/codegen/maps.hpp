// Layouts of the maps that generated programs read and write, shared with the loader.
#pragma once

#include <linux/bpf.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace bpfilter::codegen::maps
{

// Counters: BPF_MAP_TYPE_PERCPU_ARRAY of blocks. Key u32 block number; value the
// counters of rules [block * counters_per_block, ...), one CounterValue each. Blocks
// rather than one entry per rule because a program then looks a block up once per
// chain it enters instead of once per rule it counts (each lookup is a helper call the
// verifier rewrites, which costs load time on large tables).
struct CounterValue {
	uint64_t packets;
	uint64_t bytes; // IP datagram (tot_len), as netfilter counts skb->len
};
inline constexpr uint32_t counters_type = BPF_MAP_TYPE_PERCPU_ARRAY;
// A per-CPU value is at most 32 KiB (PCPU_MIN_UNIT_SIZE).
inline constexpr uint32_t counters_per_block = 2048;
inline constexpr uint32_t counter_block(uint32_t rule)
{
	return rule / counters_per_block;
}
inline constexpr uint32_t counter_slot(uint32_t rule)
{
	return rule % counters_per_block;
}
// The map's geometry for a table of n rules (n >= 1 of each, so that the map exists).
inline constexpr uint32_t counter_blocks(uint32_t n)
{
	return n ? (n + counters_per_block - 1) / counters_per_block : 1;
}
inline constexpr uint32_t counter_block_bytes(uint32_t n)
{
	return static_cast<uint32_t>(sizeof(CounterValue)) * (n == 0 ? 1
							      : n < counters_per_block
								      ? n
								      : counters_per_block);
}

// Devices: BPF_MAP_TYPE_HASH, key u32 ifindex, value what the programs need to know of the
// device: its name as the kernel keeps it (NUL padded to 16 bytes, for -i and -o), its
// MAC address (frames for another host's, or sent by an upper device, are not the IP
// layer's) and how long a link-layer header its packets carry at tc (14 on Ethernet and
// loopback, 0 on tun, WireGuard and IP tunnels). A missing ifindex reads as the all-zero
// name; the tc programs pass a packet of a device they do not know.
struct DeviceValue {
	uint8_t name[16];
	uint8_t mac[6];
	uint8_t l2len;
	uint8_t flags; // device_xdp_judges
};
// The device's XDP program (native) judges what it receives; its tc ingress program only
// the copies the host loops back to itself (its own broadcasts and multicast), which
// native XDP never sees.
inline constexpr uint8_t device_xdp_judges = 1;
// The device is the lower device of an ipvlan device (LocalAddrs' ipvlan_addr).
inline constexpr uint8_t device_ipvlan_lower = 2;
// The device is ARPHRD_ETHER (-m mac; -m pkttype's broadcast address is ff:ff:ff:ff:ff:ff).
inline constexpr uint8_t device_ether = 4;
inline constexpr uint32_t devices_type = BPF_MAP_TYPE_HASH;
inline constexpr uint32_t devices_max_entries = 4096;
namespace device_off
{
inline constexpr int16_t name = 0;
inline constexpr int16_t mac = 16;
inline constexpr int16_t l2len = 22;
inline constexpr int16_t flags = 23;
} // namespace device_off

// LocalAddrs: BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC), the namespace's local routing
// table (local and broadcast routes, 127/8 among them) and the joined multicast groups.
// Value: local_delivered, or'ed with martian_source where input routing refuses the
// address as a packet's source: the host's own addresses, and with policy routing rules
// or rp_filter (fib_validate_source()'s full check) its broadcast addresses too.
struct LocalAddrKey {
	uint32_t prefixlen;
	uint32_t addr; // network byte order
};
// flags: the bits below. prefsrc: a local route's preferred source (RTA_PREFSRC, network
// byte order, 0 for none), the source ip_route_output_key_hash() gives a flow to an
// address of that route (RTN_LOCAL: fib_prefsrc, else the address itself): OUTPUT's
// ICMP error to this host (REJECT) takes it.
struct LocalAddrValue {
	uint8_t flags;
	uint8_t pad[3];
	uint32_t prefsrc;
};
namespace local_addr_off
{
inline constexpr int16_t flags = 0;
inline constexpr int16_t prefsrc = 4;
} // namespace local_addr_off
using LocalAddrFlags = uint8_t;
inline constexpr LocalAddrFlags local_delivered = 1;
inline constexpr LocalAddrFlags martian_source = 2;
// An address of an ipvlan device: its lower device's rx_handler hands packets for it to
// the ipvlan device, and the ipvlan device sends through the lower one, so the lower's
// programs leave those to the ipvlan device's.
inline constexpr LocalAddrFlags ipvlan_addr = 4;
// A broadcast route's address (RTN_BROADCAST): REJECT sends no reply to it.
inline constexpr LocalAddrFlags broadcast_addr = 8;
inline constexpr uint32_t local_addrs_type = BPF_MAP_TYPE_LPM_TRIE;
inline constexpr uint32_t local_addrs_max_entries = 4096;

// AddrTypes: BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC), keyed as LocalAddrs: the routes
// inet_dev_addr_type() finds (-m addrtype), one value per prefix, as the helper resolves
// them from the namespace's routing tables (ir::AddrtypeRoute, loader/addrtype.cpp).
struct AddrTypeValue {
	uint8_t type;	 // RTN_*
	uint8_t has_dev; // the route's first next hop has a device, named in dev
	uint8_t pad[6];
	uint8_t dev[16];
};
inline constexpr uint32_t addr_types_type = BPF_MAP_TYPE_LPM_TRIE;
inline constexpr uint32_t addr_types_max_entries = 16384;
namespace addr_type_off
{
inline constexpr int16_t type = 0;
inline constexpr int16_t has_dev = 1;
inline constexpr int16_t dev = 8;
} // namespace addr_type_off

// Scratch: BPF_MAP_TYPE_PERCPU_ARRAY of one entry (key 0), the parsed packet
// (layout::pkt_off) of the packet this CPU is judging.
inline constexpr uint32_t scratch_type = BPF_MAP_TYPE_PERCPU_ARRAY;

// U32Buf: BPF_MAP_TYPE_ARRAY with an entry per possible CPU (key: the CPU), the IP
// datagram -m u32 reads, up to its total length (at most 65535 bytes): beyond the per-CPU
// value limit of 32 KiB, so a plain array indexed by CPU. u32_buf_size leaves room for a
// 4-byte read at any offset below 65536, so that the verifier sees every read in bounds.
inline constexpr uint32_t u32_buf_type = BPF_MAP_TYPE_ARRAY;
inline constexpr uint32_t u32_buf_size = 65536 + 8;

// Frags: BPF_MAP_TYPE_LRU_HASH, the datagrams whose fragments are arriving. Key as
// ip_defrag() finds its queue (addresses, IP id, protocol); value a parsed packet
// (layout::pkt_off, size bytes) whose fr_* fields follow the reassembly. The least
// recently used entry goes when the map is full, as the kernel's queues go under
// memory pressure: that datagram is then not counted.
struct FragKey {
	uint32_t saddr;	   // network order
	uint32_t daddr;	   // network order
	uint32_t id_proto; // IP id << 8 | protocol
};
inline constexpr uint32_t frags_type = BPF_MAP_TYPE_LRU_HASH;
inline constexpr uint32_t frags_max_entries = 1024;
// A queue older than this is gone from the kernel (net.ipv4.ipfrag_time, 30 s).
inline constexpr uint64_t frag_timeout_ns = 30'000'000'000ull;

// CtOwn: BPF_MAP_TYPE_LRU_HASH, the flows the kernel's bpf_*_ct_lookup() cannot look up
// (it serves TCP and UDP only): ICMP queries, as nf_conntrack_proto_icmp.c tracks them
// (addresses, type, code and id, in the original direction), and every other protocol as
// nf_conntrack_proto_generic.c does (addresses and protocol). An entry is made or
// refreshed when a packet that would create or refresh the kernel's entry is let through
// (emit_ct_confirm()); it lapses after the kernel's timeout for it. TCP connections a
// packet opened at ingress are kept too, for their first seconds: a reset the host
// answers with before any reply makes the kernel drop its entry (its ctinfo stays
// ESTABLISHED), before tc egress could find it.
struct CtOwnKey {
	uint32_t src; // network order, original direction
	uint32_t dst;
	// ICMP: type << 24 | code << 16 | id (host order); TCP: sport << 16 | dport; others:
	// 0xff000000 | protocol.
	uint32_t info;
	uint32_t proto;
};
struct CtOwnValue {
	uint64_t expires; // bpf_ktime_get_ns() at which the entry lapses
	uint32_t status;  // IPS_SEEN_REPLY | IPS_CONFIRMED, as the kernel's entry has them
	uint32_t pad;
};
inline constexpr uint32_t ct_own_type = BPF_MAP_TYPE_LRU_HASH;
inline constexpr uint32_t ct_own_max_entries = 16384;
inline constexpr uint32_t ct_own_generic = 0xff000000u;
// In CtOwnKey::proto: a forwarded packet's note that its TTL ran out
// (codegen::emit_ct_expired_note()), kept for the kernel's time exceeded to find.
inline constexpr uint32_t ct_own_expired = 0x100;
inline constexpr uint64_t ct_own_expired_ns = 1'000'000'000;
// How long a TCP entry of ours lives: nf_conntrack_tcp_timeout_syn_sent.
inline constexpr uint32_t ct_own_tcp_timeout = 120;

// CtTcp: BPF_MAP_TYPE_ARRAY of one entry, nf_conntrack_proto_tcp.c's tcp_conntracks
// [dir][index][old state]: the state a segment moves a connection to, ct_tcp_invalid
// (sIV, TCP_CONNTRACK_MAX) or ct_tcp_ignore (sIG).
inline constexpr uint8_t ct_tcp_invalid = 10, ct_tcp_ignore = 11;
inline constexpr uint8_t ct_tcp_syn_sent = 1, ct_tcp_time_wait = 7;
inline constexpr size_t ct_tcp_states = 10, ct_tcp_indexes = 6;
using CtTcpTable = std::array<uint8_t, 2 * ct_tcp_indexes * ct_tcp_states>;
inline constexpr CtTcpTable ct_tcp_table = [] {
	constexpr uint8_t sNO = 0, sSS = 1, sSR = 2, sES = 3, sFW = 4, sCW = 5, sLA = 6, sTW = 7,
			  sCL = 8, sS2 = 9, sIV = ct_tcp_invalid, sIG = ct_tcp_ignore;
	(void)sNO;
	// Rows: syn, synack, fin, ack, rst, none (get_conntrack_index()); columns: the old
	// state sNO .. sS2. Copied from Linux 6.1.
	constexpr uint8_t t[2][6][10] = {
		{
			{sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
			{sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
			{sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
			{sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
			{sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
			{sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
		},
		{
			{sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
			{sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
			{sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
			{sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
			{sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
			{sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
		},
	};
	CtTcpTable out{};
	for (size_t d = 0; d < 2; d++)
		for (size_t i = 0; i < ct_tcp_indexes; i++)
			for (size_t o = 0; o < ct_tcp_states; o++)
				out[(d * ct_tcp_indexes + i) * ct_tcp_states + o] = t[d][i][o];
	return out;
}();

// IcmpGlobal: BPF_MAP_TYPE_ARRAY of one, the namespace's ICMP token bucket for REJECT's
// replies, as icmp_global_allow() keeps net->ipv4.icmp_global_{credit,stamp} (times in ns).
struct IcmpGlobalValue {
	int64_t credit;
	uint64_t stamp;
};
inline constexpr uint32_t icmp_global_type = BPF_MAP_TYPE_ARRAY;
// IcmpPeers: BPF_MAP_TYPE_LRU_HASH, key u32 address (network order), the tokens the
// kernel keeps per peer in its inet_peer (rate_tokens, rate_last; in ns).
struct IcmpPeerValue {
	uint64_t tokens;
	uint64_t last;
};
inline constexpr uint32_t icmp_peers_type = BPF_MAP_TYPE_LRU_HASH;
inline constexpr uint32_t icmp_peers_max_entries = 4096;

static_assert(sizeof(IcmpGlobalValue) == 16);
static_assert(sizeof(IcmpPeerValue) == 16);

// -j LOG. The prologue of a table with LOG rules copies the headers a log line may print
// into the parsed packet (LogSnap, at layout::pkt_off::log_base); a LOG rule reserves a
// LogRecord in the namespace's LogRing, fills it with the rule's options, that copy and
// the devices' names, and submits it; the helper formats the line as nf_log_syslog does
// (service/nf_log.cpp). A full ring loses the line and counts it in LogLost.
inline constexpr uint32_t log_snap_bytes = 168;
struct LogSnap {
	uint16_t caplen;     // bytes of `bytes` copied from the packet
	uint8_t l2len;	     // the IP header's offset in `bytes`: the link-layer header before it
	uint8_t hh_len;	     // the input device's hard_header_len (what MAC= prints)
	uint8_t flags;	     // log_snap_*
	uint8_t reassembled; // INPUT/OUTPUT judged the datagram its fragments make
	uint16_t vlan_tci;   // with log_snap_vlan: the tag tc saw (skb_vlan_tag_present)
	uint16_t vlan_proto; // network order
	uint16_t pad;
	uint32_t mark; // skb->mark (tc; 0 at XDP, where there is no skb)
	// The devices, by ifindex (0: the hook has none); a LOG rule looks their names up in
	// Devices when it fires, so that packets no rule logs cost no lookup.
	uint32_t in_ifindex, out_ifindex;
	uint8_t bytes[log_snap_bytes]; // from the link-layer header (ingress) or the IP header
};
inline constexpr uint8_t log_snap_ingress = 1; // the hook has an input device (IN=, MAC=)
inline constexpr uint8_t log_snap_ether = 2;   // ... of type ARPHRD_ETHER (--log-macdecode)
inline constexpr uint8_t log_snap_vlan = 4;
inline constexpr uint8_t log_snap_forward = 8; // FORWARD: ip_forward() took one off the TTL

struct LogRecord {
	uint8_t level;	 // xt_log_info.level
	uint8_t flags;	 // xt_log_info.logflags
	uint8_t has_uid; // uid and gid are the sending socket's (--log-uid at OUTPUT)
	uint8_t pad;
	uint32_t len;	      // the datagram's length as the hook sees it (skb->len)
	char prefix[32];      // xt_log_info.prefix, NUL-terminated
	char in[16], out[16]; // the devices' names, all zero where the hook has none
	LogSnap snap;
	uint32_t uid, gid; // with has_uid: the file's fsuid and fsgid, as init_user_ns sees them
};
inline constexpr uint32_t log_ring_type = BPF_MAP_TYPE_RINGBUF;
inline constexpr uint32_t log_ring_bytes = 256u << 10; // about 900 lines between two polls
// LogLost: BPF_MAP_TYPE_PERCPU_ARRAY of one u64, lines lost to a full ring.
inline constexpr uint32_t log_lost_type = BPF_MAP_TYPE_PERCPU_ARRAY;

// Limits: BPF_MAP_TYPE_ARRAY of one value, a LimitBucket for each -m limit match of the
// table (ir::LimitMatch::slot), as xt_limit_priv: jiffies of the last refill and the credit.
// A rule reaches its bucket by address (BPF_PSEUDO_MAP_VALUE), with no lookup. Made for
// each table and filled by the loader (limit_mt_check: full, prev = jiffies), as netfilter
// makes every bucket anew when a table is set.
struct LimitBucket {
	uint64_t prev;
	uint32_t credit;
	uint32_t pad;
};
inline constexpr uint32_t limits_type = BPF_MAP_TYPE_ARRAY;
static_assert(sizeof(LimitBucket) == 16);

// Hashlimit: BPF_MAP_TYPE_HASH (no prealloc) of every htable's entries in the namespace
// (one map, however many names: a program may use at most 64 maps), by the htable's number
// and struct dsthash_dst's IPv4 part (network order); value struct dsthash_ent's expires and
// rateinfo (ir::hashlimit::Entry) behind a bpf_spin_lock, which the map's BTF declares.
// HashlimitCounts: BPF_MAP_TYPE_ARRAY (mmapable) of one value, a u64 per htable number:
// how many entries it holds (ht->count), which a new entry must find below the htable's
// max (dsthash_alloc_init()); the program adds to it atomically, the helper's garbage
// collection takes from it. The helper keeps both for the namespace (loader/hashlimit.hpp).
struct HashlimitKey {
	uint32_t table; // the htable's number (codegen::Options::HashlimitRef::id)
	uint32_t src, dst;
	uint16_t sport, dport;
};
struct HashlimitValue {
	uint32_t lock; // struct bpf_spin_lock
	uint32_t pad;
	uint64_t expires, prev;
	uint64_t w[4];
};
inline constexpr uint32_t hashlimit_type = BPF_MAP_TYPE_HASH;
// Every htable together holds at most HASHLIMIT_MAX_SIZE entries, the most one may hold.
inline constexpr uint32_t hashlimit_capacity = 1048576;
inline constexpr uint32_t hashlimit_max_tables = 65536; // htables in a namespace
static_assert(sizeof(HashlimitKey) == 16 && sizeof(HashlimitValue) == 56);
// -m recent. RecentEntries: BPF_MAP_TYPE_HASH (no prealloc) of every list's entries in
// the namespace, by list number and masked address; RecentHeads: BPF_MAP_TYPE_ARRAY of
// one value, a RecentHead per list number (reached by address); RecentTmp: a per-CPU
// RecentEntry where a new entry is built (the stack cannot hold one). The helper keeps
// them for the namespace, so a list outlives the tables that name it (ir/recent.hpp has
// the semantics).
struct RecentKey {
	uint32_t list;
	uint32_t addr; // network order, masked
};
struct RecentEntry {
	uint64_t seq; // LRU clock of its last update: the smallest is the list's head
	uint8_t ttl;
	uint8_t index;
	uint16_t nstamps;
	uint32_t pad;
	uint64_t stamps[256];
};
struct RecentHead {
	uint64_t seq;	       // the list's LRU clock
	uint32_t mask;	       // network order
	uint32_t nstamps_mask; // nstamps_max_mask
};
inline constexpr uint32_t recent_max_lists = 1024;
inline constexpr uint32_t recent_max_entries = 100 * recent_max_lists;
static_assert(sizeof(RecentKey) == 8 && sizeof(RecentEntry) == 16 + 8 * 256 &&
	      sizeof(RecentHead) == 16);
// -m connlimit (ir/connlimit.hpp has the semantics). Connlimit: BPF_MAP_TYPE_HASH
// (BPF_F_NO_PREALLOC), one per table, made anew when a table is set as netfilter makes each
// rule's nf_conncount_data: a match's list of connection tuples (struct nf_conncount_list)
// by its slot and masked address. ConnlimitTmp: a per-CPU array of one ConnlimitWork, what
// the prologue (which has the context the conntrack kfuncs need) works out for each of the
// table's matches before the chains run: the packet's tuple, and per match the count and
// the list as the match would leave it, which the match stores when the rule reaches it.
struct ConnlimitKey {
	uint32_t slot;
	uint32_t addr; // network order, masked
};
// struct nf_conncount_tuple: the tuple as ir::connlimit::Tuple (ports host order), the CPU
// and (u32)jiffies of its add.
struct ConnlimitConn {
	uint32_t src, dst;
	uint16_t sport, dport;
	uint8_t proto;
	uint8_t pad;
	uint16_t cpu;
	uint32_t jiffies32;
};
inline constexpr uint32_t connlimit_conns = 16; // a list's tuples at most (a power of 2)
struct ConnlimitList {
	uint32_t count;
	uint32_t last_gc;
	uint32_t last_gc_count;
	uint32_t pad;
	ConnlimitConn conns[connlimit_conns];
};
// One match's part of ConnlimitWork: its key, the count (0: connlimit_mt() hotdrops),
// whether the list changed (the match stores `list` under `key`), and the list.
struct ConnlimitSlot {
	ConnlimitKey key;
	uint32_t count;
	uint32_t write;
	ConnlimitList list;
};
inline constexpr uint32_t connlimit_max_slots = 32;
// The prologue's state: the packet's tuple (cpu and jiffies32 those of this packet),
// `flags` (connlimit_tuple, _confirmed, _assured), the walk's mode and progress.
struct ConnlimitHead {
	ConnlimitConn tuple;
	uint32_t flags;
	uint32_t mode; // connlimit_gc, _walk, _append
	uint32_t w;    // tuples kept so far
	uint32_t keep; // keep every tuple from here on (a twin was found, or no walk)
	uint32_t twin; // the packet's tuple is in the list
	uint32_t key;  // the ConnlimitTmp key (0)
	uint64_t now;  // bpf_ktime_get_ns(), for bpfilter's own entries (CtOwn)
	uint64_t pad;
};
inline constexpr uint32_t connlimit_tuple = 1, connlimit_confirmed = 2, connlimit_assured = 4;
inline constexpr uint32_t connlimit_gc = 0, connlimit_walk = 1, connlimit_append = 2;
inline constexpr uint32_t connlimit_type = BPF_MAP_TYPE_HASH;
inline constexpr uint32_t connlimit_max_entries = 65536;
inline constexpr uint32_t connlimit_tmp_type = BPF_MAP_TYPE_PERCPU_ARRAY;
inline constexpr uint32_t connlimit_tmp_bytes(uint32_t slots)
{
	return static_cast<uint32_t>(sizeof(ConnlimitHead) + sizeof(ConnlimitSlot) * slots);
}
// Limits a list of connlimit_conns tuples decides as the kernel's unbounded list would: a
// count above the limit is reached before the list is full, or no count exceeds the limit
// (the kernel's lists stop at INT_MAX).
inline constexpr bool connlimit_countable(uint32_t limit)
{
	return limit < connlimit_conns || limit >= 0x7fffffffu;
}
static_assert(sizeof(ConnlimitConn) == 20 && sizeof(ConnlimitList) == 16 + 20 * connlimit_conns &&
	      sizeof(ConnlimitSlot) == 16 + sizeof(ConnlimitList) && sizeof(ConnlimitHead) == 64);
static_assert(connlimit_tmp_bytes(connlimit_max_slots) <= (32u << 10));

// Counters of the offload flavor (codegen::Options::offload): a device's program counts in
// a BPF_MAP_TYPE_ARRAY bound to the device (map_ifindex), since a NIC has no per-CPU maps:
// one entry (key 0) of CounterValue per rule, in blocks of counters_per_block as the
// host's (the program adds block * offload_block_bytes to the value's address), each
// added to with BPF_ATOMIC adds.
inline constexpr uint32_t offload_counters_type = BPF_MAP_TYPE_ARRAY;
inline constexpr int32_t offload_block_bytes =
	static_cast<int32_t>(sizeof(CounterValue) * counters_per_block);
inline constexpr uint32_t offload_counters_bytes(uint32_t n)
{
	return static_cast<uint32_t>(sizeof(CounterValue)) * (n ? n : 1);
}

// AddrSet: one per classified run of address rules (codegen/classify.hpp), made for each
// program and filled by the loader from Program::addr_sets. BPF_MAP_TYPE_LPM_TRIE
// (BPF_F_NO_PREALLOC) keyed as LocalAddrKey by the rules' prefixes; the value is
// AddrSet::slots u32 words, the rules of the run that a packet in that prefix (and in no
// longer one of the set) matches, in order, up to and including the first whose target
// ends the walk: each addr_set_word(), then addr_set_none.
// BPF_MAP_TYPE_HASH keyed by the address alone when every prefix has the same length.
inline constexpr uint32_t addr_set_lpm_type = BPF_MAP_TYPE_LPM_TRIE;
inline constexpr uint32_t addr_set_hash_type = BPF_MAP_TYPE_HASH;
inline constexpr uint32_t addr_set_none = 0xffffffffu;
inline constexpr uint32_t addr_set_rule_bits = 24; // rule - first, below the class
inline constexpr uint32_t addr_set_rule_mask = (1u << addr_set_rule_bits) - 1;
inline constexpr uint32_t addr_set_word(uint32_t cls, uint32_t rule_in_run)
{
	return cls << addr_set_rule_bits | rule_in_run;
}

static_assert(sizeof(LogSnap) == 192);
static_assert(sizeof(LogRecord) == 8 + 32 + 32 + 192 + 8);
static_assert(sizeof(CounterValue) == 16);
static_assert(sizeof(FragKey) == 12);
static_assert(sizeof(CtOwnKey) == 16 && sizeof(CtOwnValue) == 16);
static_assert(sizeof(CounterValue) * counters_per_block <= (32u << 10));
static_assert(sizeof(DeviceValue) == 24);
static_assert(sizeof(LocalAddrKey) == 8);
static_assert(sizeof(AddrTypeValue) == 24);

} // namespace bpfilter::codegen::maps
