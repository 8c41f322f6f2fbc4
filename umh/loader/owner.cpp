// -m owner: the kernel's layout of the objects between an skb and its socket's credentials.
#include "loader/owner.hpp"

#include <bpf/btf.h>
#include <fcntl.h>
#include <linux/btf.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "loader/btf.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{
namespace
{

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + strerror(err));
}

bool same_ns(int a, int b)
{
	struct stat sa = {}, sb = {};
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

} // namespace

Result<codegen::OwnerLayout> owner_layout()
{
	BtfPtr b(btf__load_vmlinux_btf());
	if (!b)
		return make_error(ENOENT, "loader: -m owner needs the kernel's BTF "
					  "(CONFIG_DEBUG_INFO_BTF)");
	codegen::OwnerLayout ly;
	std::string missing;
	const auto need = [&](int16_t &field, const char *type,
			      std::initializer_list<std::string_view> path) {
		auto o = offset_of(b.get(), type, path);
		if (o)
			field = *o;
		else if (missing.empty())
			missing = std::string("struct ") + type + " " + std::string(*path.begin());
	};
	need(ly.skb_sk, "sk_buff", {"sk"});
	need(ly.skb_dev, "sk_buff", {"dev"});
	need(ly.dev_net, "net_device", {"nd_net", "net"});
	need(ly.sk_state, "sock_common", {"skc_state"});
	need(ly.sk_net, "sock_common", {"skc_net", "net"});
	// request_sock's rsk_listener is a #define for __req_common.skc_listener.
	need(ly.rsk_listener, "sock_common", {"skc_listener"});
	need(ly.sk_socket, "sock", {"sk_socket"});
	need(ly.sock_file, "socket", {"file"});
	need(ly.file_cred, "file", {"f_cred"});
	need(ly.fsuid, "cred", {"fsuid"});
	need(ly.fsgid, "cred", {"fsgid"});
	need(ly.group_info, "cred", {"group_info"});
	need(ly.ngroups, "group_info", {"ngroups"});
	need(ly.gid, "group_info", {"gid"});
	if (!missing.empty())
		return make_error(ENOENT, "loader: -m owner reads " + missing +
						  ", which the kernel's BTF does not have");
	// struct sock begins with its sock_common, and a request_sock with its own.
	if (offset_of(b.get(), "sock", {"__sk_common"}).value_or(-1) != 0 ||
	    offset_of(b.get(), "request_sock", {"__req_common"}).value_or(-1) != 0)
		return make_error(ENOENT, "loader: struct sock or request_sock does not begin "
					  "with struct sock_common");
	return ly;
}

bool uses_owner(const ir::Table &table)
{
	return std::any_of(table.rules.begin(), table.rules.end(), [](const ir::Rule &r) {
		return std::any_of(r.matches.begin(), r.matches.end(), [](const ir::Match &m) {
			auto *o = std::get_if<ir::OwnerMatch>(&m);
			return o && (o->match & 3) != 0; // XT_OWNER_UID | XT_OWNER_GID
		});
	});
}

Status check_owner_userns(const ir::Table &table)
{
	if (!uses_owner(table))
		return {};
	Fd net(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
	Fd own(open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC));
	if (!net || !own)
		return sys_error(errno, "loader: -m owner: reading the namespaces");
	Fd owner(ioctl(net.get(), NS_GET_USERNS));
	if (!owner)
		return sys_error(errno, "loader: -m owner: the network namespace's user namespace");
	if (!same_ns(owner.get(), own.get()))
		return make_error(EOPNOTSUPP,
				  "loader: --uid-owner/--gid-owner in a network namespace of "
				  "another user namespace: make_kuid() would map the ids through "
				  "that namespace, which the helper does not translate");
	return {};
}

} // namespace bpfilter::loader
