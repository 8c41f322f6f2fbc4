// nf_conntrack as the generated programs see it: kfunc ids, struct nf_conn offsets, settings,
// the namespace's own-flow and TCP-table maps.
#include "loader/conntrack.hpp"
#include "loader/map_btf.hpp"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/btf.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/maps.hpp"
#include "loader/btf.hpp"

namespace bpfilter::loader
{
namespace
{

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + std::strerror(err));
}

constexpr std::array<const char *, 4> kfunc_names = {"bpf_xdp_ct_lookup", "bpf_skb_ct_lookup",
						     "bpf_ct_release", "bpf_ct_change_timeout"};

Result<codegen::CtLayout> layout_of(const struct btf *b)
{
	codegen::CtLayout ly;
	const auto need = [&](int16_t &field, std::initializer_list<std::string_view> path) {
		auto o = offset_of(b, "nf_conn", path);
		if (o && *o != 0) // no field the programs read is at nf_conn's start
			field = *o;
		return o && *o != 0;
	};
	const bool ok = need(ly.status, {"status"}) && need(ly.timeout, {"timeout"}) &&
			need(ly.tuple[0], {"tuplehash", "[0]", "tuple"}) &&
			need(ly.tuple[1], {"tuplehash", "[1]", "tuple"}) &&
			need(ly.tcp_state, {"proto", "tcp", "state"}) &&
			need(ly.tcp_seen_flags[0], {"proto", "tcp", "seen", "[0]", "flags"}) &&
			need(ly.tcp_seen_flags[1], {"proto", "tcp", "seen", "[1]", "flags"}) &&
			need(ly.tcp_last_dir, {"proto", "tcp", "last_dir"}) &&
			need(ly.tcp_last_index, {"proto", "tcp", "last_index"});
	if (!ok)
		return make_error(ENOENT, "loader: struct nf_conn in the kernel's BTF lacks a "
					  "field bpfilter reads");
	(void)need(ly.mark, {"mark"}); // -m connmark's; absent without CONFIG_NF_CONNTRACK_MARK
	// The generated code reads the tuple at fixed places (conntrack.cpp).
	const int32_t tuple = btf__find_by_name_kind(b, "nf_conntrack_tuple", BTF_KIND_STRUCT);
	if (tuple < 0 || btf__resolve_size(b, static_cast<uint32_t>(tuple)) != 40)
		return make_error(ENOENT, "loader: struct nf_conntrack_tuple is not the 40 bytes "
					  "bpfilter knows");
	return ly;
}

uint32_t sysctl(const char *name, uint32_t fallback)
{
	std::ifstream in(std::string("/proc/sys/net/netfilter/") + name);
	uint32_t v = 0;
	if (in >> v)
		return v;
	return fallback;
}

// The BTF of the loaded module `name`, split on vmlinux's, with an fd for fd_array.
std::optional<std::pair<BtfPtr, Fd>> module_btf(const char *name, const struct btf *vmlinux)
{
	uint32_t id = 0;
	while (bpf_btf_get_next_id(id, &id) == 0) {
		Fd fd(bpf_btf_get_fd_by_id(id));
		if (!fd)
			continue;
		char buf[64] = {};
		struct bpf_btf_info info = {};
		info.name = reinterpret_cast<uint64_t>(buf);
		info.name_len = sizeof(buf);
		uint32_t len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0 || !info.kernel_btf ||
		    std::string_view(buf) != name)
			continue;
		BtfPtr b(btf__load_from_kernel_by_id_split(id, const_cast<struct btf *>(vmlinux)));
		if (!b)
			return std::nullopt;
		return std::make_pair(std::move(b), std::move(fd));
	}
	return std::nullopt;
}

// Runs iptables-legacy with `args` (no LD_PRELOAD: the kernel's own table); its exit status.
int iptables_legacy(std::vector<std::string> args)
{
	args.insert(args.begin(), "iptables-legacy");
	std::vector<char *> argv;
	argv.reserve(args.size() + 1);
	for (std::string &a : args)
		argv.push_back(a.data());
	argv.push_back(nullptr);
	std::vector<char *> envp;
	for (char **e = environ; *e; e++) {
		const std::string_view v(*e);
		if (v.substr(0, 11) != "LD_PRELOAD=" && v.substr(0, 17) != "XTABLES_LOCKFILE=")
			envp.push_back(*e);
	}
	// The iptables command we are answering holds the xtables lock until we do: a lock
	// of our own, or we would wait for ourselves.
	static char lockfile[] = "XTABLES_LOCKFILE=/run/bpfilter-raw.xtables.lock";
	envp.push_back(lockfile);
	envp.push_back(nullptr);
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid = 0;
	const int err = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
	posix_spawn_file_actions_destroy(&actions);
	if (err != 0)
		return -err;
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// The netlink attribute of `type` among those in [p, end), or nullptr.
const struct nlattr *find_attr(const uint8_t *p, const uint8_t *end, uint16_t type)
{
	while (p + sizeof(struct nlattr) <= end) {
		const auto *a = reinterpret_cast<const struct nlattr *>(p);
		if (a->nla_len < sizeof(struct nlattr) || p + a->nla_len > end)
			return nullptr;
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		p += NLA_ALIGN(a->nla_len);
	}
	return nullptr;
}

const uint8_t *payload(const struct nlattr *a)
{
	return reinterpret_cast<const uint8_t *>(a) + NLA_HDRLEN;
}

const uint8_t *payload_end(const struct nlattr *a)
{
	return reinterpret_cast<const uint8_t *>(a) + a->nla_len;
}

// The own-map key of a destroyed entry's original tuple, if it is one we keep.
std::optional<codegen::maps::CtOwnKey> own_key_of(const uint8_t *attrs, const uint8_t *end)
{
	const struct nlattr *orig = find_attr(attrs, end, CTA_TUPLE_ORIG);
	if (!orig)
		return std::nullopt;
	const struct nlattr *ip = find_attr(payload(orig), payload_end(orig), CTA_TUPLE_IP);
	const struct nlattr *proto = find_attr(payload(orig), payload_end(orig), CTA_TUPLE_PROTO);
	if (!ip || !proto)
		return std::nullopt;
	const struct nlattr *src = find_attr(payload(ip), payload_end(ip), CTA_IP_V4_SRC);
	const struct nlattr *dst = find_attr(payload(ip), payload_end(ip), CTA_IP_V4_DST);
	const struct nlattr *num = find_attr(payload(proto), payload_end(proto), CTA_PROTO_NUM);
	if (!src || !dst || !num || src->nla_len < NLA_HDRLEN + 4 ||
	    dst->nla_len < NLA_HDRLEN + 4 || num->nla_len < NLA_HDRLEN + 1)
		return std::nullopt;
	codegen::maps::CtOwnKey key{};
	std::memcpy(&key.src, payload(src), 4);
	std::memcpy(&key.dst, payload(dst), 4);
	const uint8_t l4 = *payload(num);
	key.proto = l4;
	if (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP) {
		// Ours only mark a connection's first moments (ingress's TCP, egress's first
		// packet): they go with the kernel's entry.
		const auto *sp = find_attr(payload(proto), payload_end(proto), CTA_PROTO_SRC_PORT);
		const auto *dp = find_attr(payload(proto), payload_end(proto), CTA_PROTO_DST_PORT);
		if (!sp || !dp || sp->nla_len < NLA_HDRLEN + 2 || dp->nla_len < NLA_HDRLEN + 2)
			return std::nullopt;
		const auto be16 = [](const uint8_t *b) {
			return static_cast<uint32_t>(b[0]) << 8 | b[1];
		};
		key.info = be16(payload(sp)) << 16 | be16(payload(dp));
		return key;
	}
	if (l4 != IPPROTO_ICMP) {
		key.info = codegen::maps::ct_own_generic | l4;
		return key;
	}
	const auto *id = find_attr(payload(proto), payload_end(proto), CTA_PROTO_ICMP_ID);
	const auto *type = find_attr(payload(proto), payload_end(proto), CTA_PROTO_ICMP_TYPE);
	const auto *code = find_attr(payload(proto), payload_end(proto), CTA_PROTO_ICMP_CODE);
	if (!id || !type || !code || id->nla_len < NLA_HDRLEN + 2)
		return std::nullopt;
	const uint32_t id_h = static_cast<uint32_t>(payload(id)[0]) << 8 | payload(id)[1];
	key.info = static_cast<uint32_t>(*payload(type)) << 24 |
		   static_cast<uint32_t>(*payload(code)) << 16 | id_h;
	return key;
}

} // namespace

Result<Fd> open_ct_events()
{
	Fd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER));
	if (!fd)
		return sys_error(errno, "loader: opening a ctnetlink socket");
	struct sockaddr_nl addr = {};
	addr.nl_family = AF_NETLINK;
	addr.nl_groups = 1u << (NFNLGRP_CONNTRACK_DESTROY - 1);
	if (bind(fd.get(), reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) != 0)
		return sys_error(errno, "loader: listening to conntrack's destroy events");
	return fd;
}

Status forget_destroyed(int events_fd, int own_map_fd)
{
	std::vector<uint8_t> buf(64u << 10);
	for (;;) {
		const ssize_t n = recv(events_fd, buf.data(), buf.size(), 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return {};
			if (errno == ENOBUFS) // events lost: entries lapse on their own
				continue;
			return sys_error(errno, "loader: reading conntrack's events");
		}
		const uint8_t *p = buf.data(), *end = buf.data() + n;
		while (p + sizeof(struct nlmsghdr) <= end) {
			const auto *h = reinterpret_cast<const struct nlmsghdr *>(p);
			if (h->nlmsg_len < sizeof(*h) || p + h->nlmsg_len > end)
				break;
			const uint8_t *attrs =
				p + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
			if (NFNL_SUBSYS_ID(h->nlmsg_type) == NFNL_SUBSYS_CTNETLINK &&
			    NFNL_MSG_TYPE(h->nlmsg_type) == IPCTNL_MSG_CT_DELETE &&
			    attrs <= p + h->nlmsg_len) {
				if (auto key = own_key_of(attrs, p + h->nlmsg_len))
					(void)bpf_map_delete_elem(own_map_fd, &*key);
			}
			p += NLMSG_ALIGN(h->nlmsg_len);
		}
	}
}

Status hold_conntrack(bool on)
{
	const std::vector<std::string> rule = {
		"PREROUTING", "-m",	   "conntrack",
		"--ctstate",  "INVALID",   "-m",
		"comment",    "--comment", "bpfilter: connection tracking on for bpfilter's rules"};
	auto with = [&](const char *op) {
		std::vector<std::string> args = {"-w", "5", "-t", "raw", op};
		args.insert(args.end(), rule.begin(), rule.end());
		return args;
	};
	const bool there = iptables_legacy(with("-C")) == 0;
	if (on == there)
		return {};
	const int rc = iptables_legacy(with(on ? "-A" : "-D"));
	if (rc == 0)
		return {};
	return make_error(rc < 0 ? -rc : EOPNOTSUPP,
			  std::string("loader: iptables-legacy -t raw could not ") +
				  (on ? "add" : "remove") +
				  " the rule that keeps connection tracking on (exit " +
				  std::to_string(rc) + ")");
}

bool tracks_connections(const ir::Table &table)
{
	for (const ir::Rule &r : table.rules)
		for (const ir::Match &m : r.matches)
			if (std::holds_alternative<ir::ConntrackMatch>(m) ||
			    std::holds_alternative<ir::ConnmarkMatch>(m) ||
			    std::holds_alternative<ir::ConnlimitMatch>(m))
				return true;
	return false;
}

Result<std::unique_ptr<Conntrack>> open_conntrack()
{
	auto ct = std::make_unique<Conntrack>();
	BtfPtr vmlinux(btf__load_vmlinux_btf());
	if (!vmlinux)
		return make_error(ENOENT, "loader: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)");
	const struct btf *where = vmlinux.get();
	BtfPtr module;
	if (btf__find_by_name_kind(where, kfunc_names[0], BTF_KIND_FUNC) < 0) {
		auto m = module_btf("nf_conntrack", vmlinux.get());
		if (!m)
			return make_error(ENOENT, "loader: nf_conntrack's kfuncs are neither in "
						  "vmlinux nor in a loaded nf_conntrack module");
		module = std::move(m->first);
		ct->module_btf = std::move(m->second);
		where = module.get();
	}
	for (size_t k = 0; k < kfunc_names.size(); k++) {
		const int32_t id = btf__find_by_name_kind(where, kfunc_names[k], BTF_KIND_FUNC);
		if (id < 0)
			return make_error(ENOENT, std::string("loader: the kernel has no kfunc ") +
							  kfunc_names[k]);
		ct->btf_id[k] = id;
	}
	auto ly = layout_of(where);
	if (!ly)
		return ly.error();
	ct->layout = *ly;
	ct->layout.icmp_timeout = sysctl("nf_conntrack_icmp_timeout", 30);
	ct->layout.generic_timeout = sysctl("nf_conntrack_generic_timeout", 600);
	ct->layout.tcp_loose = sysctl("nf_conntrack_tcp_loose", 1) != 0;

	auto own_btf = ct_own_map_btf();
	if (!own_btf)
		return own_btf.error();
	LIBBPF_OPTS(bpf_map_create_opts, own_opts);
	own_btf->apply(own_opts);
	const int own = bpf_map_create(static_cast<bpf_map_type>(codegen::maps::ct_own_type),
				       "bpfilter_ctown", sizeof(codegen::maps::CtOwnKey),
				       sizeof(codegen::maps::CtOwnValue),
				       codegen::maps::ct_own_max_entries, &own_opts);
	if (own < 0)
		return sys_error(-own, "loader: creating the own-flows map");
	ct->own = Fd(own);
	const int tcp = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bpfilter_cttcp", sizeof(uint32_t),
				       sizeof(codegen::maps::CtTcpTable), 1, nullptr);
	if (tcp < 0)
		return sys_error(-tcp, "loader: creating the TCP state table");
	ct->tcp = Fd(tcp);
	const uint32_t zero = 0;
	if (bpf_map_update_elem(tcp, &zero, codegen::maps::ct_tcp_table.data(), BPF_ANY) != 0 ||
	    bpf_map_freeze(tcp) != 0)
		return sys_error(errno, "loader: filling the TCP state table");
	return ct;
}

} // namespace bpfilter::loader
