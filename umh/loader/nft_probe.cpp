// nf_tables' IPv4 tables in the current network namespace, through nfnetlink.
#include "loader/nft_probe.hpp"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "loader/fd.hpp"

namespace bpfilter::loader
{
namespace
{

// nfnetlink asks for nf_tables by module alias when it is missing: look first.
bool nf_tables_may_hold_tables()
{
	std::ifstream modules("/proc/modules");
	if (!modules)
		return true; // no loadable modules: built in, or absent and never loaded
	std::string line;
	while (std::getline(modules, line))
		if (line.starts_with("nf_tables "))
			return true;
	return false;
}

Error sys_error(const char *what)
{
	return make_error(errno, std::string("nf_tables probe: ") + what + ": " + strerror(errno));
}

// NFTA_TABLE_NAME of an NFT_MSG_NEWTABLE message.
std::optional<std::string> table_name(const struct nlmsghdr *m)
{
	const size_t head = NLMSG_LENGTH(sizeof(struct nfgenmsg));
	if (m->nlmsg_len < head)
		return std::nullopt;
	const auto *p = reinterpret_cast<const uint8_t *>(m) + NLMSG_ALIGN(head);
	size_t left = m->nlmsg_len > NLMSG_ALIGN(head) ? m->nlmsg_len - NLMSG_ALIGN(head) : 0;
	while (left >= sizeof(struct nlattr)) {
		const auto *a = reinterpret_cast<const struct nlattr *>(p);
		if (a->nla_len < sizeof(*a) || a->nla_len > left)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == NFTA_TABLE_NAME) {
			const char *s = reinterpret_cast<const char *>(p + NLA_HDRLEN);
			return std::string(s, strnlen(s, a->nla_len - NLA_HDRLEN));
		}
		const size_t step = NLA_ALIGN(a->nla_len);
		if (step >= left)
			break;
		p += step;
		left -= step;
	}
	return std::nullopt;
}

// One dump of family's tables, appended to names as "FAMILY NAME".
Status dump_tables(uint8_t family, const char *family_name, std::vector<std::string> &names)
{
	Fd sock(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
	if (!sock)
		return sys_error("socket");
	struct {
		struct nlmsghdr h;
		struct nfgenmsg g;
	} req = {};
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = 1;
	req.g.nfgen_family = family;
	req.g.version = NFNETLINK_V0;
	if (send(sock.get(), &req, sizeof(req), 0) < 0)
		return sys_error("send");

	std::vector<uint8_t> buf(32768);
	for (;;) {
		ssize_t n = recv(sock.get(), buf.data(), buf.size(), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sys_error("recv");
		}
		int len = static_cast<int>(n);
		for (auto *m = reinterpret_cast<struct nlmsghdr *>(buf.data()); NLMSG_OK(m, len);
		     m = NLMSG_NEXT(m, len)) {
			if (m->nlmsg_type == NLMSG_DONE)
				return {};
			if (m->nlmsg_type == NLMSG_ERROR) {
				const auto *e = static_cast<const struct nlmsgerr *>(NLMSG_DATA(m));
				if (!e->error)
					continue;
				errno = -e->error;
				return sys_error("dump");
			}
			if (auto name = table_name(m))
				names.push_back(std::string(family_name) + " " + *name);
		}
	}
}

} // namespace

Result<std::vector<std::string>> nft_ipv4_tables()
{
	std::vector<std::string> names;
	if (!nf_tables_may_hold_tables())
		return names;
	Status st = dump_tables(NFPROTO_IPV4, "ip", names);
	if (st)
		st = dump_tables(NFPROTO_INET, "inet", names);
	if (!st)
		return st.error();
	return names;
}

} // namespace bpfilter::loader
