// Finding the runs of address rules and of service rules that one map lookup can judge, and the
// map each becomes.
#include "codegen/classify.hpp"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "codegen/plan.hpp"

namespace bpfilter::codegen
{

namespace
{

using Kind = ir::Target::Kind;

// The class number of rule j's target tg in a set whose targets so far are `kinds` (a
// rule of each in `classes`): a new class when tg is new, none past the set's limit.
std::optional<uint8_t> target_class(std::vector<ir::Target> &kinds, std::vector<uint32_t> &classes,
				    const ir::Target &tg, uint32_t j)
{
	auto k = std::find(kinds.begin(), kinds.end(), tg);
	if (k != kinds.end())
		return static_cast<uint8_t>(k - kinds.begin());
	if (kinds.size() == addr_set_max_classes)
		return std::nullopt;
	kinds.push_back(tg);
	classes.push_back(j);
	return static_cast<uint8_t>(kinds.size() - 1);
}

// A rule that tests one address against a prefix and nothing else.
struct Shape {
	bool any = false; // neither address tested: the /0 of either
	bool dst = false;
	uint32_t addr = 0; // network order, within the prefix
	uint8_t len = 0;
};

// mask in host order: leading ones, then zeros?
bool cidr(uint32_t mask)
{
	const uint32_t rest = ~mask;
	return (rest & (rest + 1)) == 0;
}

std::optional<Shape> shape_of(const ir::Rule &r, HookSet hooks)
{
	if (!r.matches.empty() || (r.ip.invflags & (IPT_INV_SRCIP | IPT_INV_DSTIP)))
		return std::nullopt;
	ir::IpHeaderMatch rest = r.ip;
	rest.src = rest.src_mask = rest.dst = rest.dst_mask = 0;
	if (fold_ip(rest, hooks) != Fold::Always)
		return std::nullopt;
	const bool s = r.ip.src_mask != 0, d = r.ip.dst_mask != 0;
	if (s && d)
		return std::nullopt;
	Shape out;
	out.any = !s && !d;
	out.dst = d;
	const uint32_t mask = ntohl(d ? r.ip.dst_mask : r.ip.src_mask);
	if (!cidr(mask))
		return std::nullopt;
	out.addr = d ? r.ip.dst : r.ip.src;
	out.len = static_cast<uint8_t>(std::popcount(mask));
	return out;
}

uint32_t mask_of(uint8_t len) // network order
{
	return len ? htonl(~0u << (32 - len)) : 0;
}

struct Member {
	uint32_t rule = 0;
	uint32_t addr = 0;
	uint8_t len = 0;
	uint8_t cls = 0;
	bool ends = false; // its target ends the walk
};

// The rules a packet meets in a prefix, by Member index, in rule order: at most
// addr_set_max_slots + 1 (one more says "too many").
struct Walk {
	std::array<uint32_t, addr_set_max_slots + 1> m{};
	uint8_t n = 0;
	bool closed = false; // ends with a rule that ends the walk: nothing after it counts
	void add(uint32_t member, bool ends)
	{
		if (closed || n == m.size())
			return;
		m[n++] = member;
		closed = ends;
	}
};

// Walk of a prefix: its ancestors' rules and its own, merged in rule order (Member indices
// are in rule order), cut after the first that ends the walk.
Walk merge(const Walk &a, const Walk &b, const std::vector<Member> &members)
{
	Walk out;
	uint8_t i = 0, j = 0;
	while ((i < a.n || j < b.n) && !out.closed && out.n < out.m.size()) {
		const bool take_a = j >= b.n || (i < a.n && a.m[i] < b.m[j]);
		const uint32_t k = take_a ? a.m[i++] : b.m[j++];
		out.add(k, members[k].ends);
	}
	return out;
}

// The map of members[0, count): nothing when some prefix meets more rules than a value
// holds.
std::optional<AddrSetData> build(const std::vector<Member> &members, size_t count, uint32_t first,
				 uint8_t *hash_len)
{
	const auto key = [](uint32_t addr, uint8_t len) { return uint64_t{len} << 32 | addr; };
	std::unordered_map<uint64_t, uint32_t> at; // prefix -> index in walks
	std::vector<uint64_t> prefixes;
	std::vector<Walk> walks;
	std::set<uint8_t> lengths;
	at.reserve(count);
	for (size_t k = 0; k < count; k++) {
		const Member &m = members[k];
		auto [it, fresh] =
			at.try_emplace(key(m.addr, m.len), static_cast<uint32_t>(prefixes.size()));
		if (fresh) {
			prefixes.push_back(key(m.addr, m.len));
			walks.emplace_back();
			lengths.insert(m.len);
		}
		walks[it->second].add(static_cast<uint32_t>(k), m.ends);
	}
	// Shorter prefixes first, so that a prefix's nearest ancestor is complete.
	std::vector<uint32_t> order(prefixes.size());
	for (uint32_t k = 0; k < order.size(); k++)
		order[k] = k;
	std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
		return (prefixes[a] >> 32) < (prefixes[b] >> 32);
	});
	const std::vector<uint8_t> lens(lengths.rbegin(), lengths.rend()); // longest first
	uint32_t slots = 1;
	for (uint32_t k : order) {
		const auto addr = static_cast<uint32_t>(prefixes[k]);
		const auto len = static_cast<uint8_t>(prefixes[k] >> 32);
		for (uint8_t l : lens) {
			if (l >= len)
				continue;
			if (auto it = at.find(key(addr & mask_of(l), l)); it != at.end()) {
				walks[k] = merge(walks[it->second], walks[k], members);
				break;
			}
		}
		if (walks[k].n > addr_set_max_slots)
			return std::nullopt;
		slots = std::max<uint32_t>(slots, walks[k].n);
	}
	AddrSetData data;
	data.lpm = lengths.size() > 1;
	*hash_len = *lengths.begin();
	data.slots = slots;
	data.keys.reserve(2 * prefixes.size());
	data.values.reserve(slots * prefixes.size());
	for (uint32_t k = 0; k < prefixes.size(); k++) {
		data.keys.push_back(static_cast<uint32_t>(prefixes[k]));
		data.keys.push_back(static_cast<uint32_t>(prefixes[k] >> 32));
		for (uint32_t s = 0; s < slots; s++) {
			if (s >= walks[k].n) {
				data.values.push_back(maps::addr_set_none);
				continue;
			}
			const Member &m = members[walks[k].m[s]];
			data.values.push_back(maps::addr_set_word(m.cls, m.rule - first));
		}
	}
	return data;
}

// The rules from i on that could form one classified run: where it stops, and its members.
struct Stretch {
	uint32_t end = 0;
	bool dst = false;
	std::vector<Member> members;
	std::vector<uint32_t> classes;
};

Stretch stretch_from(const ir::Table &t, const std::map<uint32_t, SubprogId> &starts, HookSet hooks,
		     uint32_t start, uint32_t i)
{
	Stretch s;
	std::optional<bool> dst;
	std::vector<ir::Target> kinds;
	uint32_t j = i;
	for (; j < t.rules.size(); j++) {
		if (j != start && starts.count(j))
			break; // another run starts here
		if (j - i >= maps::addr_set_rule_mask)
			break;
		const ir::Rule &r = t.rules[j];
		if (fold_ip(r.ip, hooks) == Fold::Never)
			continue;
		// The run's end (an unconditional verdict) stays a rule of its own.
		if (ends_run(t, j, hooks))
			break;
		const auto shape = shape_of(r, hooks);
		if (!shape)
			break;
		if (!shape->any) {
			if (dst && *dst != shape->dst)
				break;
			dst = shape->dst;
		}
		const ir::Target tg = effective_target(t, j);
		const auto k = target_class(kinds, s.classes, tg, j);
		if (!k)
			break;
		s.members.push_back({j, shape->addr, shape->len, *k, ends_walk(tg)});
	}
	s.end = j;
	s.dst = dst.value_or(false);
	return s;
}

// A rule of a tuple set: the fields it tests (TupleKey) and their values.
struct TupleShape {
	TupleKey key;
	bool tcp = false, udp = false;
	uint32_t proto = 0, src = 0, dst = 0; // addresses network order, within the prefix
	ir::PortRange sport, dport;
	std::array<uint8_t, 16> in{}, out{}; // the names, zero after them
};

// A device name that matches exactly one name: ifname_compare_aligned() compares the bytes
// the mask covers, so the mask must cover the name and its NUL (iptables' `-i eth0`; not
// `eth+`), and whatever it covers after the NUL must be zero in the rule, as it is in every
// device's name (IFNAMSIZ bytes, zero after the name). The key is the name, zero after it.
std::optional<std::array<uint8_t, 16>> exact_name(const ir::Iface &i)
{
	std::array<uint8_t, 16> out{};
	size_t k = 0;
	for (; k < i.name.size(); k++) {
		if (i.mask[k] != 0xff)
			return std::nullopt;
		if (i.name[k] == 0)
			break;
		out[k] = i.name[k];
	}
	if (k == i.name.size())
		return std::nullopt;
	for (size_t j = k + 1; j < i.name.size(); j++)
		if (i.name[j] & i.mask[j])
			return std::nullopt;
	return out;
}

bool no_mask(const ir::Iface &i)
{
	return std::all_of(i.mask.begin(), i.mask.end(), [](uint8_t b) { return b == 0; });
}

std::optional<uint8_t> prefix_len(uint32_t mask_n)
{
	const uint32_t mask = ntohl(mask_n);
	if (!cidr(mask))
		return std::nullopt;
	return static_cast<uint8_t>(std::popcount(mask));
}

uint32_t ports_of(const ir::PortRange &r)
{
	return static_cast<uint32_t>(r.hi) - r.lo + 1;
}

bool full(const ir::PortRange &r)
{
	return r.lo == 0 && r.hi == 0xffff;
}

// The rule's tuple shape: -p, -s, -d and one -m tcp or -m udp with ports, all exact (no `!`,
// prefixes, port ranges of at most tuple_max_keys keys, no --tcp-flags or --tcp-option).
// Address-only rules are an AddrSet's (shape_of()), not this.
std::optional<TupleShape> tuple_shape_of(const ir::Rule &r, HookSet hooks)
{
	if (r.matches.size() > 1 ||
	    (r.ip.invflags &
	     (IPT_INV_SRCIP | IPT_INV_DSTIP | IPT_INV_PROTO | IPT_INV_VIA_IN | IPT_INV_VIA_OUT)))
		return std::nullopt;
	ir::IpHeaderMatch rest = r.ip;
	rest.src = rest.src_mask = rest.dst = rest.dst_mask = 0;
	rest.proto = 0;
	rest.in = rest.out = ir::Iface{};
	if (fold_ip(rest, hooks) != Fold::Always)
		return std::nullopt;
	TupleShape s;
	// A device this program's hooks never have (-o at INPUT alone) folds to a constant:
	// the name is tested as it is, against the all-zero name the parsed packet has there.
	for (auto [iface, tested, name] :
	     {std::tuple{&r.ip.in, &s.key.in, &s.in}, std::tuple{&r.ip.out, &s.key.out, &s.out}}) {
		if (no_mask(*iface))
			continue;
		const auto exact = exact_name(*iface);
		if (!exact)
			return std::nullopt;
		*tested = true;
		*name = *exact;
	}
	if (r.ip.proto > 0xff)
		return std::nullopt; // never matches: fold_ip() has it
	s.key.proto = r.ip.proto != 0;
	s.proto = r.ip.proto;
	if (r.ip.src_mask) {
		const auto len = prefix_len(r.ip.src_mask);
		if (!len || (r.ip.src & ~r.ip.src_mask))
			return std::nullopt;
		s.key.src_len = static_cast<int8_t>(*len);
		s.src = r.ip.src;
	}
	if (r.ip.dst_mask) {
		const auto len = prefix_len(r.ip.dst_mask);
		if (!len || (r.ip.dst & ~r.ip.dst_mask))
			return std::nullopt;
		s.key.dst_len = static_cast<int8_t>(*len);
		s.dst = r.ip.dst;
	}
	if (!r.matches.empty()) {
		const ir::Match &m = r.matches[0];
		if (const auto *tcp = std::get_if<ir::TcpMatch>(&m)) {
			if (tcp->invflags || tcp->option || tcp->flg_mask || tcp->flg_cmp ||
			    r.ip.proto != IPPROTO_TCP)
				return std::nullopt;
			s.tcp = true;
			s.sport = tcp->sport;
			s.dport = tcp->dport;
		} else if (const auto *udp = std::get_if<ir::UdpMatch>(&m)) {
			if (udp->invflags || r.ip.proto != IPPROTO_UDP)
				return std::nullopt;
			s.udp = true;
			s.sport = udp->sport;
			s.dport = udp->dport;
		} else {
			return std::nullopt;
		}
		// A match that tests no port still hotdrops and fails on fragments: not a
		// key's field. Empty ranges (never matching, still hotdropping) neither.
		s.key.sport = !full(s.sport);
		s.key.dport = !full(s.dport);
		if (!s.key.ports() || s.sport.lo > s.sport.hi || s.dport.lo > s.dport.hi)
			return std::nullopt;
		if (uint64_t{s.key.sport ? ports_of(s.sport) : 1} *
			    (s.key.dport ? ports_of(s.dport) : 1) >
		    tuple_max_keys)
			return std::nullopt;
	}
	// Only the address, or nothing at all: an AddrSet's shape.
	if (!s.key.proto && !s.key.ports() && !s.key.in && !s.key.out &&
	    (s.key.src_len < 0 || s.key.dst_len < 0))
		return std::nullopt;
	return s;
}

using TupleWords = std::array<uint32_t, tuple_max_words>;

// The distinct keys of a set, `words` words each, kept where the map's data wants them
// (AddrSetData::keys) and found again by an open-addressing table of their numbers: 4 or 8
// bytes a key beside the key itself, where a hash map of TupleWords took about 80 and a
// copy of every key (at 100k service rules, 20 MiB of the helper's peak).
class TupleIndex
{
public:
	TupleIndex(std::vector<uint32_t> &keys, uint32_t words, size_t expect)
	    : keys_(keys), words_(words), base_(keys.size() / words)
	{
		size_t n = 16;
		while (n < 2 * expect)
			n *= 2;
		slots_.assign(n, 0);
	}
	// The key's number among those this index added, and whether it is new (appended).
	std::pair<uint32_t, bool> insert(const TupleWords &w)
	{
		if (2 * (count_ + 1) > slots_.size())
			grow();
		size_t i = hash(w.data()) & (slots_.size() - 1);
		for (; slots_[i]; i = (i + 1) & (slots_.size() - 1))
			if (std::equal(w.begin(), w.begin() + words_, at(slots_[i] - 1)))
				return {slots_[i] - 1, false};
		keys_.insert(keys_.end(), w.begin(), w.begin() + words_);
		slots_[i] = ++count_;
		return {count_ - 1, true};
	}

private:
	const uint32_t *at(uint32_t n) const { return keys_.data() + (base_ + n) * words_; }
	size_t hash(const uint32_t *w) const
	{
		uint64_t h = 0xcbf29ce484222325ULL;
		for (uint32_t k = 0; k < words_; k++) {
			h ^= w[k];
			h *= 0x100000001b3ULL;
		}
		return static_cast<size_t>(h ^ (h >> 29));
	}
	void grow()
	{
		std::vector<uint32_t> old = std::move(slots_);
		slots_.assign(old.size() * 2, 0);
		for (uint32_t n : old) {
			if (!n)
				continue;
			size_t i = hash(at(n - 1)) & (slots_.size() - 1);
			while (slots_[i])
				i = (i + 1) & (slots_.size() - 1);
			slots_[i] = n;
		}
	}
	std::vector<uint32_t> &keys_;
	uint32_t words_;
	size_t base_;		      // keys before this index's first
	std::vector<uint32_t> slots_; // key number + 1; 0: empty
	uint32_t count_ = 0;
};

struct TupleMember {
	uint32_t rule = 0;
	TupleShape shape;
	uint8_t cls = 0;
	bool ends = false;
};

// The key words of a rule (probe: without the ports), `sport` and `dport` the ports.
TupleWords tuple_words(const TupleKey &k, const TupleShape &s, bool probe, uint32_t sport,
		       uint32_t dport)
{
	TupleWords w{};
	size_t n = 0;
	w[n++] = s.proto | (probe ? tuple_probe : 0);
	if (k.src_len >= 0)
		w[n++] = s.src;
	if (k.dst_len >= 0)
		w[n++] = s.dst;
	if (k.ports())
		w[n++] = probe ? 0 : (k.sport ? sport << 16 : 0) | (k.dport ? dport : 0);
	for (auto [tested, name] : {std::pair{k.in, &s.in}, std::pair{k.out, &s.out}}) {
		if (!tested)
			continue;
		std::memcpy(&w[n], name->data(), name->size()); // as the program loads them
		n += name->size() / 4;
	}
	return w;
}

// The map of members[0, count): nothing when some key meets more rules than a value holds.
std::optional<AddrSetData> build_tuples(const TupleKey &k, const std::vector<TupleMember> &members,
					size_t count, uint32_t first)
{
	const uint32_t words = k.words();
	AddrSetData data;
	data.lpm = false;
	data.key_words = words;
	data.keys.reserve(count * words * (k.ports() ? 2 : 1)); // one key and probe a rule
	std::vector<Walk> walks;				// by key number
	walks.reserve(count);
	TupleIndex at(data.keys, words, count);
	uint32_t slots = 1;
	for (size_t m = 0; m < count; m++) {
		const TupleShape &s = members[m].shape;
		const ir::PortRange sp = k.sport ? s.sport : ir::PortRange{0, 0};
		const ir::PortRange dp = k.dport ? s.dport : ir::PortRange{0, 0};
		for (uint32_t sport = sp.lo; sport <= sp.hi; sport++) {
			for (uint32_t dport = dp.lo; dport <= dp.hi; dport++) {
				const auto [n, fresh] =
					at.insert(tuple_words(k, s, false, sport, dport));
				if (fresh)
					walks.emplace_back();
				Walk &walk = walks[n];
				walk.add(static_cast<uint32_t>(m), members[m].ends);
				if (walk.n > addr_set_max_slots)
					return std::nullopt;
				slots = std::max<uint32_t>(slots, walk.n);
			}
		}
	}
	data.slots = slots;
	const size_t num_keys = walks.size();
	data.values.reserve((num_keys + (k.ports() ? count : 0)) * slots);
	for (size_t n = 0; n < num_keys; n++) {
		for (uint32_t s = 0; s < slots; s++) {
			if (s >= walks[n].n) {
				data.values.push_back(maps::addr_set_none);
				continue;
			}
			const TupleMember &m = members[walks[n].m[s]];
			data.values.push_back(maps::addr_set_word(m.cls, m.rule - first));
		}
	}
	walks = std::vector<Walk>();
	if (k.ports()) {
		// The probes: one key per protocol and addresses some rule has.
		TupleIndex probes(data.keys, words, count);
		for (size_t m = 0; m < count; m++)
			if (probes.insert(tuple_words(k, members[m].shape, true, 0, 0)).second)
				data.values.insert(data.values.end(), slots, maps::addr_set_none);
	}
	return data;
}

struct TupleStretch {
	uint32_t end = 0;
	TupleKey key;
	std::vector<TupleMember> members;
	std::vector<uint32_t> classes;
};

TupleStretch tuple_stretch_from(const ir::Table &t, const std::map<uint32_t, SubprogId> &starts,
				HookSet hooks, uint32_t start, uint32_t i)
{
	TupleStretch s;
	std::optional<TupleKey> key;
	std::vector<ir::Target> kinds;
	uint32_t j = i;
	for (; j < t.rules.size(); j++) {
		if (j != start && starts.count(j))
			break;
		if (j - i >= maps::addr_set_rule_mask)
			break;
		const ir::Rule &r = t.rules[j];
		if (fold_ip(r.ip, hooks) == Fold::Never)
			continue;
		if (ends_run(t, j, hooks))
			break;
		const auto shape = tuple_shape_of(r, hooks);
		if (!shape || (key && *key != shape->key))
			break;
		key = shape->key;
		const ir::Target tg = effective_target(t, j);
		const auto k = target_class(kinds, s.classes, tg, j);
		if (!k)
			break;
		s.members.push_back({j, *shape, *k, ends_walk(tg)});
	}
	s.end = j;
	s.key = key.value_or(TupleKey{});
	return s;
}

// A tuple set from rule i on, of at least min_rules rules; where it ends in `*resume`.
std::optional<AddrSet> tuple_set_from(const ir::Table &t,
				      const std::map<uint32_t, SubprogId> &starts, HookSet hooks,
				      uint32_t start, uint32_t i, uint32_t min_rules,
				      uint32_t *resume)
{
	TupleStretch s = tuple_stretch_from(t, starts, hooks, start, i);
	*resume = std::max(i + 1, s.end);
	if (s.members.size() < min_rules)
		return std::nullopt;
	AddrSet set;
	set.first = i;
	set.end = s.end;
	set.tuple = true;
	set.key = s.key;
	size_t count = s.members.size();
	auto data = build_tuples(s.key, s.members, count, i);
	if (!data) {
		// Some key meets too many rules: the longest head that does not.
		size_t lo = 1, hi = s.members.size() - 1;
		while (lo < hi) {
			const size_t mid = lo + (hi - lo + 1) / 2;
			if (build_tuples(s.key, s.members, mid, i))
				lo = mid;
			else
				hi = mid - 1;
		}
		count = lo;
		*resume = s.members[count].rule;
		if (count < min_rules)
			return std::nullopt;
		data = build_tuples(s.key, s.members, count, i);
		set.end = s.members[count].rule;
	}
	set.data = std::move(*data);
	set.data.rules = static_cast<uint32_t>(count);
	uint8_t top = 0;
	for (size_t k = 0; k < count; k++) {
		top = std::max(top, s.members[k].cls);
		set.tcp |= s.members[k].shape.tcp;
		set.udp |= s.members[k].shape.udp;
	}
	s.classes.resize(top + 1u);
	set.classes = std::move(s.classes);
	return set;
}

} // namespace

ir::Target effective_target(const ir::Table &t, uint32_t i)
{
	const ir::Target &tg = t.rules[i].target;
	ir::Target out(tg.kind);
	switch (tg.kind) {
	case Kind::Jump:
	case Kind::Goto:
		if (!is_call(t, i))
			return ir::Target(Kind::Continue);
		out.to = tg.to;
		break;
	case Kind::Reject:
		out.reject_with = tg.reject_with;
		break;
	case Kind::Log:
		out.log = tg.log;
		break;
	case Kind::Mark:
		out.mark = tg.mark;
		out.mark_mask = tg.mark_mask;
		break;
	default:
		break;
	}
	return out;
}

bool ends_walk(const ir::Target &tg)
{
	switch (tg.kind) {
	case Kind::Accept:
	case Kind::Drop:
	case Kind::Error:
	case Kind::Reject:
	case Kind::Return:
	case Kind::Goto:
		return true;
	case Kind::Jump: // the callee may RETURN
	case Kind::Continue:
	case Kind::Log:
	case Kind::Mark:
		return false;
	}
	return false;
}

std::vector<AddrSet> find_addr_sets(const ir::Table &t, const std::map<uint32_t, SubprogId> &starts,
				    HookSet hooks, uint32_t start, uint32_t min_rules)
{
	std::vector<AddrSet> out;
	if (min_rules == 0)
		return out;
	for (uint32_t i = start; i < t.rules.size();) {
		if (i != start && starts.count(i))
			break;
		if (fold_ip(t.rules[i].ip, hooks) == Fold::Never) {
			i++;
			continue;
		}
		if (ends_run(t, i, hooks))
			break;
		Stretch s = stretch_from(t, starts, hooks, start, i);
		if (s.end == i) {
			// Not an address rule: a tuple set, perhaps.
			uint32_t next = i + 1;
			if (auto set =
				    tuple_set_from(t, starts, hooks, start, i, min_rules, &next)) {
				i = set->end;
				out.push_back(std::move(*set));
			} else {
				i = std::max(i + 1, next);
			}
			continue;
		}
		const uint32_t resume = std::max(i + 1, s.end);
		if (s.members.size() < min_rules) {
			i = resume;
			continue;
		}
		AddrSet set;
		set.first = i;
		set.end = s.end;
		set.dst = s.dst;
		auto data = build(s.members, s.members.size(), i, &set.hash_len);
		size_t count = s.members.size();
		if (!data) {
			// Some prefix meets too many rules: the longest head of the stretch
			// that does not (more rules never make a prefix meet fewer).
			size_t lo = 1, hi = s.members.size() - 1;
			while (lo < hi) {
				const size_t mid = lo + (hi - lo + 1) / 2;
				uint8_t unused = 0;
				if (build(s.members, mid, i, &unused))
					lo = mid;
				else
					hi = mid - 1;
			}
			count = lo;
			if (count < min_rules) {
				i = s.members[count].rule;
				if (i == set.first)
					i++;
				continue;
			}
			data = build(s.members, count, i, &set.hash_len);
			set.end = s.members[count].rule;
		}
		set.data = std::move(*data);
		set.data.rules = static_cast<uint32_t>(count);
		// Classes: only those of the members kept.
		uint8_t top = 0;
		for (size_t k = 0; k < count; k++)
			top = std::max(top, s.members[k].cls);
		s.classes.resize(top + 1u);
		set.classes = std::move(s.classes);
		i = set.end;
		out.push_back(std::move(set));
	}
	return out;
}

} // namespace bpfilter::codegen
