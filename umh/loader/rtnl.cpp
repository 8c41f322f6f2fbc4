// rtnetlink in the current network namespace: dumps of links and local routes, and change
// notifications.
#include "loader/rtnl.hpp"

#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

namespace bpfilter::loader::rtnl
{
namespace
{

constexpr size_t recv_buf_size = 64 * 1024;
constexpr int dump_attempts = 5;

Result<Fd> open_socket(uint32_t groups, bool nonblock)
{
	int type = SOCK_RAW | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
	Fd fd(socket(AF_NETLINK, type, NETLINK_ROUTE));
	if (!fd)
		return make_error(errno, std::string("rtnetlink socket: ") + strerror(errno));
	struct sockaddr_nl sa = {};
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = groups;
	if (bind(fd.get(), reinterpret_cast<struct sockaddr *>(&sa), sizeof(sa)) < 0)
		return make_error(errno, std::string("rtnetlink bind: ") + strerror(errno));
	if (groups) {
		// A burst of changes (a thousand veths at once) must not overrun the watcher.
		int size = 4 << 20;
		setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	return fd;
}

// Attributes of a message as (type, payload) pairs, bounded by the message's length.
template <typename F> void for_each_attr(const struct rtattr *rta, int len, F &&fn)
{
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		fn(rta->rta_type & NLA_TYPE_MASK, RTA_DATA(rta), RTA_PAYLOAD(rta));
}

bool parse_link(const struct nlmsghdr *h, Link &link)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
		return false;
	const auto *ifi = static_cast<const struct ifinfomsg *>(NLMSG_DATA(h));
	link = Link{};
	link.ifindex = ifi->ifi_index;
	link.type = ifi->ifi_type;
	const auto str = [](const void *data, size_t len) {
		return std::string(static_cast<const char *>(data),
				   strnlen(static_cast<const char *>(data), len));
	};
	const auto u32 = [](const void *data, size_t len) {
		uint32_t v = 0;
		if (len >= sizeof(v))
			memcpy(&v, data, sizeof(v));
		return v;
	};
	for_each_attr(IFLA_RTA(ifi), static_cast<int>(IFLA_PAYLOAD(h)),
		      [&](unsigned type, const void *data, size_t len) {
			      switch (type) {
			      case IFLA_IFNAME: {
				      size_t n = strnlen(static_cast<const char *>(data), len);
				      memcpy(link.name.data(), data,
					     std::min(n, link.name.size() - 1));
				      break;
			      }
			      case IFLA_ADDRESS:
				      if (len == link.mac.size())
					      memcpy(link.mac.data(), data, len);
				      break;
			      case IFLA_MASTER:
				      link.master = static_cast<int>(u32(data, len));
				      break;
			      case IFLA_LINK:
				      link.lower = static_cast<int>(u32(data, len));
				      break;
			      case IFLA_LINK_NETNSID:
				      link.lower_elsewhere = true;
				      break;
			      case IFLA_LINKINFO:
				      for_each_attr(static_cast<const struct rtattr *>(data),
						    static_cast<int>(len),
						    [&](unsigned t, const void *d, size_t l) {
							    if (t == IFLA_INFO_KIND)
								    link.kind = str(d, l);
							    else if (t == IFLA_INFO_SLAVE_KIND)
								    link.slave_kind = str(d, l);
						    });
				      break;
			      default:
				      break;
			      }
		      });
	return true;
}

// A local or broadcast route of the local table, or false for any other route.
bool parse_local_route(const struct nlmsghdr *h, LocalRoute &route)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		return false;
	const auto *rtm = static_cast<const struct rtmsg *>(NLMSG_DATA(h));
	if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len > 32)
		return false;
	if (rtm->rtm_type != RTN_LOCAL && rtm->rtm_type != RTN_BROADCAST)
		return false;
	uint32_t table = rtm->rtm_table;
	route = LocalRoute{0, rtm->rtm_dst_len, rtm->rtm_type == RTN_LOCAL};
	for_each_attr(RTM_RTA(rtm), static_cast<int>(RTM_PAYLOAD(h)),
		      [&](unsigned type, const void *data, size_t len) {
			      if (type == RTA_TABLE && len >= 4)
				      memcpy(&table, data, 4);
			      else if (type == RTA_DST && len >= 4)
				      memcpy(&route.addr, data, 4);
			      else if (type == RTA_OIF && len >= 4)
				      memcpy(&route.oif, data, 4);
			      else if (type == RTA_PREFSRC && len >= 4)
				      memcpy(&route.prefsrc, data, 4);
		      });
	return table == RT_TABLE_LOCAL;
}

// A route of the local or main table, or false for any other.
bool parse_route(const struct nlmsghdr *h, Route &route)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		return false;
	const auto *rtm = static_cast<const struct rtmsg *>(NLMSG_DATA(h));
	if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len > 32)
		return false;
	route = Route{};
	route.prefixlen = rtm->rtm_dst_len;
	route.table = rtm->rtm_table;
	route.type = rtm->rtm_type;
	route.tos = rtm->rtm_tos;
	route.flags = rtm->rtm_flags;
	bool multipath = false;
	for_each_attr(RTM_RTA(rtm), static_cast<int>(RTM_PAYLOAD(h)),
		      [&](unsigned type, const void *data, size_t len) {
			      if (type == RTA_TABLE && len >= 4)
				      memcpy(&route.table, data, 4);
			      else if (type == RTA_DST && len >= 4)
				      memcpy(&route.addr, data, 4);
			      else if (type == RTA_OIF && len >= 4)
				      memcpy(&route.oif, data, 4);
			      else if (type == RTA_MULTIPATH && !multipath &&
				       len >= sizeof(struct rtnexthop)) {
				      // fib_info_nhc(fi, 0): the first next hop's device.
				      const auto *nh = static_cast<const struct rtnexthop *>(data);
				      route.oif = nh->rtnh_ifindex;
				      route.flags |= nh->rtnh_flags;
				      multipath = true;
			      }
		      });
	return route.table == RT_TABLE_LOCAL || route.table == RT_TABLE_MAIN;
}

// Runs one dump request and hands each answer message to on_msg. A dump the kernel
// marks as interrupted (the set changed meanwhile) is run again.
template <typename F>
Status dump(uint16_t type, const void *body, size_t body_len, F &&on_msg_reset)
{
	for (int attempt = 0; attempt < dump_attempts; attempt++) {
		auto sock = open_socket(0, false);
		if (!sock)
			return sock.error();
		std::vector<uint8_t> req(NLMSG_SPACE(body_len));
		auto *h = reinterpret_cast<struct nlmsghdr *>(req.data());
		h->nlmsg_len = NLMSG_LENGTH(body_len);
		h->nlmsg_type = type;
		h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		h->nlmsg_seq = 1;
		memcpy(NLMSG_DATA(h), body, body_len);
		if (send(sock->get(), req.data(), h->nlmsg_len, 0) < 0)
			return make_error(errno, std::string("rtnetlink dump request: ") +
							 strerror(errno));

		auto on_msg = on_msg_reset();
		std::vector<uint8_t> buf(recv_buf_size);
		bool done = false, interrupted = false;
		while (!done) {
			ssize_t n = recv(sock->get(), buf.data(), buf.size(), 0);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return make_error(errno, std::string("rtnetlink dump: ") +
								 strerror(errno));
			}
			int len = static_cast<int>(n);
			for (auto *m = reinterpret_cast<struct nlmsghdr *>(buf.data());
			     NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
				if (m->nlmsg_flags & NLM_F_DUMP_INTR)
					interrupted = true;
				if (m->nlmsg_type == NLMSG_DONE) {
					done = true;
					break;
				}
				if (m->nlmsg_type == NLMSG_ERROR) {
					const auto *e =
						static_cast<const struct nlmsgerr *>(NLMSG_DATA(m));
					if (e->error)
						return make_error(-e->error,
								  std::string("rtnetlink dump: ") +
									  strerror(-e->error));
					continue;
				}
				on_msg(m);
			}
		}
		if (!interrupted)
			return {};
	}
	return make_error(EAGAIN, "rtnetlink dump kept changing under us");
}

} // namespace

Result<std::vector<Link>> dump_links()
{
	std::vector<Link> links;
	struct ifinfomsg ifi = {};
	ifi.ifi_family = AF_UNSPEC;
	Status st = dump(RTM_GETLINK, &ifi, sizeof(ifi), [&] {
		links.clear();
		return [&](const struct nlmsghdr *m) {
			Link l;
			if (m->nlmsg_type == RTM_NEWLINK && parse_link(m, l))
				links.push_back(l);
		};
	});
	if (!st)
		return st.error();
	return links;
}

Result<std::vector<LocalRoute>> dump_local_routes()
{
	std::vector<LocalRoute> routes;
	struct rtmsg rtm = {};
	rtm.rtm_family = AF_INET;
	rtm.rtm_table = RT_TABLE_LOCAL;
	Status st = dump(RTM_GETROUTE, &rtm, sizeof(rtm), [&] {
		routes.clear();
		return [&](const struct nlmsghdr *m) {
			LocalRoute r;
			if (m->nlmsg_type == RTM_NEWROUTE && parse_local_route(m, r))
				routes.push_back(r);
		};
	});
	if (!st)
		return st.error();
	return routes;
}

Result<std::vector<Route>> dump_routes()
{
	std::vector<Route> routes;
	struct rtmsg rtm = {};
	rtm.rtm_family = AF_INET;
	Status st = dump(RTM_GETROUTE, &rtm, sizeof(rtm), [&] {
		routes.clear();
		return [&](const struct nlmsghdr *m) {
			Route r;
			if (m->nlmsg_type == RTM_NEWROUTE && parse_route(m, r))
				routes.push_back(r);
		};
	});
	if (!st)
		return st.error();
	return routes;
}

Result<bool> has_custom_rules()
{
	size_t rules = 0;
	bool custom = false;
	struct rtmsg rtm = {};
	rtm.rtm_family = AF_INET;
	Status st = dump(RTM_GETRULE, &rtm, sizeof(rtm), [&] {
		rules = 0;
		custom = false;
		return [&](const struct nlmsghdr *m) {
			if (m->nlmsg_type != RTM_NEWRULE ||
			    m->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
				return;
			const auto *r = static_cast<const struct rtmsg *>(NLMSG_DATA(m));
			rules++;
			custom |= r->rtm_table != RT_TABLE_LOCAL && r->rtm_table != RT_TABLE_MAIN &&
				  r->rtm_table != RT_TABLE_DEFAULT;
		};
	});
	if (!st)
		return st.error();
	return custom || rules > 3;
}

Result<bool> has_fwmark_rules()
{
	bool found = false;
	struct rtmsg rtm = {};
	rtm.rtm_family = AF_INET;
	Status st = dump(RTM_GETRULE, &rtm, sizeof(rtm), [&] {
		found = false;
		return [&](const struct nlmsghdr *m) {
			if (m->nlmsg_type != RTM_NEWRULE ||
			    m->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
				return;
			const auto *r = static_cast<const struct rtmsg *>(NLMSG_DATA(m));
			for_each_attr(RTM_RTA(r), static_cast<int>(RTM_PAYLOAD(m)),
				      [&](unsigned type, const void *, size_t) {
					      found |= type == FRA_FWMARK || type == FRA_FWMASK;
				      });
		};
	});
	if (!st)
		return st.error();
	return found;
}

Result<Watcher> Watcher::open()
{
	auto fd = open_socket(RTMGRP_LINK | RTMGRP_IPV4_ROUTE, true);
	if (!fd)
		return fd.error();
	return Watcher(std::move(*fd));
}

Result<std::vector<Event>> Watcher::read()
{
	std::vector<Event> events;
	std::vector<uint8_t> buf(recv_buf_size);
	for (;;) {
		ssize_t n = recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (errno == ENOBUFS) {
				events.push_back(Event{Event::Kind::Resync, {}});
				continue;
			}
			return make_error(errno,
					  std::string("rtnetlink watcher: ") + strerror(errno));
		}
		int len = static_cast<int>(n);
		for (auto *m = reinterpret_cast<struct nlmsghdr *>(buf.data()); NLMSG_OK(m, len);
		     m = NLMSG_NEXT(m, len)) {
			Event ev;
			LocalRoute r;
			switch (m->nlmsg_type) {
			case RTM_NEWLINK:
			case RTM_DELLINK:
				if (!parse_link(m, ev.link))
					break;
				ev.kind = m->nlmsg_type == RTM_NEWLINK ? Event::Kind::LinkNew
								       : Event::Kind::LinkDel;
				events.push_back(ev);
				break;
			case RTM_NEWROUTE:
			case RTM_DELROUTE:
				// -m addrtype looks at every route of the local and main tables.
				if (Route any; parse_local_route(m, r) || parse_route(m, any))
					events.push_back(
						Event{Event::Kind::LocalRoutesChanged, {}});
				break;
			default:
				break;
			}
		}
	}
	return events;
}

} // namespace bpfilter::loader::rtnl
