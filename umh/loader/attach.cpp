// Attach points: tc clsact filters at a fixed handle and priority, and telling our programs by
// name.
#include "loader/attach.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <dirent.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "common/log.hpp"
#include "loader/fd.hpp"
#include "loader/program.hpp"

namespace bpfilter::loader
{

namespace
{

bpf_tc_attach_point point(TcDir dir)
{
	return dir == TcDir::Ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

std::string errstr(int err)
{
	return strerror(err < 0 ? -err : err);
}

// One kernel answer to keep per thread: each serves one request at a time (libbpf calls
// print_libbpf on the thread that made the call).
thread_local std::string kernel_message;

int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char buf[512];
	const int n = vsnprintf(buf, sizeof(buf), format, args);
	std::string line(buf,
			 n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
	while (!line.empty() && line.back() == '\n')
		line.pop_back();
	if (line.starts_with("libbpf: "))
		line.erase(0, 8);
	constexpr std::string_view ack = "Kernel error message: ";
	if (line.starts_with(ack)) {
		kernel_message = line.substr(ack.size());
		return n;
	}
	if (level == LIBBPF_WARN)
		log::warn("libbpf: " + line);
	return n;
}

// " (the kernel says: ...)" for an error message, when it said something.
std::string kernel_says()
{
	std::string m = take_kernel_message();
	return m.empty() ? std::string() : " (the kernel says: " + m + ")";
}

} // namespace

void route_libbpf_messages()
{
	libbpf_set_print(print_libbpf);
}

std::string take_kernel_message()
{
	return std::exchange(kernel_message, std::string());
}

std::string_view to_string(TcDir dir)
{
	return dir == TcDir::Ingress ? "tc ingress" : "tc egress";
}

bool is_ours(int prog_fd)
{
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return false;
	return is_our_program(std::string_view(info.name, strnlen(info.name, sizeof(info.name))),
			      info.type);
}

uint32_t prog_id(int prog_fd)
{
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info);
	if (prog_fd < 0 || bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return 0;
	return info.id;
}

bool is_ours_id(uint32_t prog_id)
{
	Fd fd(prog_id ? bpf_prog_get_fd_by_id(prog_id) : -1);
	return fd && is_ours(fd.get());
}

namespace
{

// "comm[pid]" of the processes that hold program `id` open (fdinfo's prog_id), for
// telling a user whose program is in the way: the scan runs only on such an error.
std::string holders_of(uint32_t id)
{
	std::string out;
	DIR *proc = opendir("/proc");
	if (!proc)
		return out;
	const std::string want = "prog_id:\t" + std::to_string(id) + "\n";
	while (struct dirent *p = readdir(proc)) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		const std::string base = std::string("/proc/") + p->d_name;
		DIR *fds = opendir((base + "/fdinfo").c_str());
		if (!fds)
			continue;
		bool holds = false;
		while (struct dirent *f = readdir(fds)) {
			if (f->d_name[0] == '.' || holds)
				continue;
			std::ifstream in(base + "/fdinfo/" + f->d_name);
			std::string text((std::istreambuf_iterator<char>(in)),
					 std::istreambuf_iterator<char>());
			holds = text.find(want) != std::string::npos;
		}
		closedir(fds);
		if (!holds)
			continue;
		std::ifstream comm(base + "/comm");
		std::string name;
		std::getline(comm, name);
		out += (out.empty() ? "" : ", ") + name + "[" + p->d_name + "]";
	}
	closedir(proc);
	return out;
}

} // namespace

std::string describe_prog(uint32_t id)
{
	std::string what = "id " + std::to_string(id);
	Fd fd(bpf_prog_get_fd_by_id(id));
	if (!fd)
		return what;
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info);
	if (!bpf_obj_get_info_by_fd(fd.get(), &info, &len))
		what += std::string(" \"") + info.name + "\"";
	fd = Fd(); // not one of the holders
	const std::string holders = holders_of(id);
	what += holders.empty() ? " (held open by no process: attached by ip link or bpftool?)"
				: " (held open by " + holders + ")";
	return what;
}

Status tc_attach(int ifindex, TcDir dir, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(dir));
	int err = bpf_tc_hook_create(&hook);
	if (err == -EEXIST)
		(void)take_kernel_message(); // an existing qdisc is what we want
	if (err && err != -EEXIST)
		return make_error(-err, "creating the clsact qdisc for " +
						std::string(to_string(dir)) + ": " + errstr(err) +
						kernel_says());
	// Replace creates the filter where there is none, and swaps the program of ours in
	// place (cls_bpf replaces it under RCU: every packet sees one or the other).
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
		    .handle = tc_handle, .priority = tc_priority);
	err = bpf_tc_attach(&hook, &opts);
	if (err)
		return make_error(-err, "attaching the " + std::string(to_string(dir)) +
						" filter: " + errstr(err) + kernel_says());
	return {};
}

Status tc_detach(int ifindex, TcDir dir)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(dir));
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = tc_handle, .priority = tc_priority);
	int err = bpf_tc_detach(&hook, &opts);
	if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
		return make_error(-err, "detaching the " + std::string(to_string(dir)) +
						" filter: " + errstr(err));
	return {};
}

uint32_t tc_prog_id(int ifindex, TcDir dir)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(dir));
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = tc_handle, .priority = tc_priority);
	if (bpf_tc_query(&hook, &opts))
		return 0;
	return opts.prog_id;
}

std::optional<XdpAttachment> our_xdp(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	if (bpf_xdp_query(ifindex, 0, &q))
		return std::nullopt;
	const std::pair<uint32_t, uint32_t> modes[] = {{q.drv_prog_id, XDP_FLAGS_DRV_MODE},
						       {q.skb_prog_id, XDP_FLAGS_SKB_MODE},
						       {q.hw_prog_id, XDP_FLAGS_HW_MODE}};
	for (auto [id, mode] : modes) {
		Fd fd(id ? bpf_prog_get_fd_by_id(id) : -1);
		if (fd && is_ours(fd.get()))
			return XdpAttachment{std::move(fd), mode};
	}
	return std::nullopt;
}

Status detach_stray(int ifindex)
{
	if (auto xdp = our_xdp(ifindex)) {
		const std::string what = describe_prog(prog_id(xdp->fd.get()));
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = xdp->fd.get());
		const int err = bpf_xdp_detach(ifindex, xdp->mode, &opts);
		if (err && err != -ENODEV)
			return make_error(-err, "removing a stray XDP program " + what + ": " +
							errstr(err));
		log::info("removed " + what + " from ifindex " + std::to_string(ifindex) +
			  ", brought from a namespace whose table it ran");
	}
	for (TcDir dir : {TcDir::Ingress, TcDir::Egress})
		if (is_ours_id(tc_prog_id(ifindex, dir)))
			BF_TRY(tc_detach(ifindex, dir));
	return {};
}

} // namespace bpfilter::loader
