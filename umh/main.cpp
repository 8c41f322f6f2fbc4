// bpfilter_umh: the helper's entry point, serving the request protocol to the kernel module or the
// front door.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "abi/extensions.hpp"
#include "common/log.hpp"
#include "loader/attach.hpp"
#include "loader/bpf_dataplane.hpp"
#include "server/dispatcher.hpp"
#include "server/recent_client.hpp"
#include "server/sandbox.hpp"
#include "server/server.hpp"

namespace
{

void usage(FILE *out)
{
	fputs("usage: bpfilter_umh --listen SOCKET [--fresh] [--xdp-mode "
	      "auto|native|generic|offload] "
	      "[--no-loopback] [--log-level LEVEL]\n"
	      "       bpfilter_umh [--channel [FD]] [--kmsg] [--xdp-mode MODE] [--no-loopback]\n"
	      "                    [--log-level LEVEL]\n"
	      "\n"
	      "--listen SOCKET   serve stock iptables (through libbpfilter_preload.so) on a Unix\n"
	      "                  socket, in this network namespace; SIGINT/SIGTERM detach and "
	      "exit\n"
	      "--fresh           with --listen: start with an empty table, not the one a helper\n"
	      "                  that died had in force (saved in /run/bpfilter)\n"
	      "--channel [FD]    serve the kernel module on FD (default: stdin and stdout) until\n"
	      "                  it closes\n"
	      "--kmsg            log to /dev/kmsg\n"
	      "--xdp-mode MODE   auto (offloaded to NICs that run BPF themselves when the table\n"
	      "                  fits, else native where the driver has it, else generic),\n"
	      "                  native, generic or offload (INPUT on the NIC; default auto)\n"
	      "--no-loopback     leave loopback unfiltered\n"
	      "--log-level LEVEL the least severe lines logged: error, warning or info\n"
	      "                  (default info)\n"
	      "--tests FORM      how rules test packets: auto (default), branch, first-branch,\n"
	      "                  accumulate or chunked (for tests; see Documentation/design.md)\n"
	      "\n"
	      "       bpfilter_umh --recent SOCKET NAME [+ADDR|-ADDR|/]\n"
	      "                  -m recent's list NAME of the helper serving this network\n"
	      "                  namespace on SOCKET, as /proc/net/xt_recent/NAME reads; with\n"
	      "                  a second argument, written as to that file\n"
	      "\n"
	      "       bpfilter_umh --list-extensions\n"
	      "                  print the matches and targets this helper registers, one\n"
	      "                  \"match|target NAME REVISION\" a line, and exit\n",
	      out);
}

// The registry as a kernel with only these extensions would answer IPT_SO_GET_REVISION_*;
// the standard target, whose kernel name is empty, by the name iptables gives it.
void list_extensions(FILE *out)
{
	using namespace bpfilter::abi;
	for (const Extension &ext : registered_extensions()) {
		const std::string_view name = ext.name.empty() ? "standard" : ext.name;
		fprintf(out, "%s %.*s %u\n", ext.kind == ExtKind::Match ? "match" : "target",
			static_cast<int>(name.size()), name.data(), ext.revision);
	}
}

bool parse_fd(const char *s, int &fd)
{
	char *end = nullptr;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > 1 << 20)
		return false;
	fd = static_cast<int>(v);
	return true;
}

int run(int argc, char **argv)
{
	using namespace bpfilter;
	std::string listen_path;
	bool channel = false, kmsg = false, fresh = false;
	int channel_fd = -1;
	server::DispatcherOptions options;

	for (int i = 1; i < argc; i++) {
		std::string_view a = argv[i];
		if (a == "--listen" && i + 1 < argc) {
			listen_path = argv[++i];
		} else if (a == "--channel") {
			channel = true;
			if (i + 1 < argc && parse_fd(argv[i + 1], channel_fd))
				i++;
		} else if (a == "--fresh") {
			fresh = true;
		} else if (a == "--kmsg") {
			kmsg = true;
		} else if (a == "--xdp-mode" && i + 1 < argc) {
			auto mode = loader::parse_xdp_mode(argv[++i]);
			if (!mode) {
				fprintf(stderr, "bpfilter_umh: %s\n", mode.error().message.c_str());
				return 2;
			}
			options.xdp.mode = *mode;
		} else if (a == "--log-level" && i + 1 < argc) {
			if (!log::set_level(argv[++i])) {
				fprintf(stderr,
					"bpfilter_umh: --log-level %s: not error, warning or "
					"info\n",
					argv[i]);
				return 2;
			}
		} else if (a == "--no-loopback") {
			options.xdp.loopback = false;
		} else if (a == "--tests" && i + 1 < argc) {
			const std::string_view form = argv[++i];
			using Tests = codegen::Options::Tests;
			if (form == "auto")
				options.xdp.tests = Tests::Auto;
			else if (form == "branch")
				options.xdp.tests = Tests::Branch;
			else if (form == "first-branch")
				options.xdp.tests = Tests::FirstBranch;
			else if (form == "accumulate")
				options.xdp.tests = Tests::Accumulate;
			else if (form == "chunked")
				options.xdp.tests = Tests::Chunked;
			else {
				fprintf(stderr, "bpfilter_umh: --tests %s: not a form\n", argv[i]);
				return 2;
			}
		} else if (a == "--recent" && i == 1 && (argc == 4 || argc == 5)) {
			const std::string input = argc == 5 ? argv[4] : "";
			return bpfilter::server::recent_command(argv[2], argv[3],
								argc == 5 ? &input : nullptr);
		} else if (a == "--list-extensions") {
			list_extensions(stdout);
			return 0;
		} else if (a == "--help" || a == "-h") {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "bpfilter_umh: unexpected argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (fresh && listen_path.empty()) {
		fputs("bpfilter_umh: --fresh goes with --listen\n", stderr);
		return 2;
	}
	if (!listen_path.empty() && (channel || kmsg)) {
		fputs("bpfilter_umh: --listen does not go with --channel or --kmsg\n", stderr);
		return 2;
	}
	if (kmsg)
		log::set_sink(log::Sink::Kmsg);
	loader::route_libbpf_messages();
	// A peer that goes away is an error on write, not a reason to die.
	signal(SIGPIPE, SIG_IGN);
	if (Status st = server::enter_sandbox({.front_door = !listen_path.empty()}); !st)
		log::error("serving with the privileges the helper started with: " +
			   st.error().message);

	// The module reports new links and addresses itself (a watcher would pin namespaces).
	options.xdp.watch = !listen_path.empty();
	options.xdp.hold_conntrack = !listen_path.empty();
	// The module replays every namespace's last table to a helper it restarts (the
	// front door decides for itself: when it finds a saved table).
	options.xdp.restore_follows = listen_path.empty();
	const int out = channel_fd >= 0 ? channel_fd : STDOUT_FILENO;
	options.log_sink =
		listen_path.empty() ? server::channel_log_sink(out) : server::kmsg_log_sink();
	// The module's helper: its own lines through the channel too, printk()ed by the module,
	// beyond /dev/kmsg's rate limit (10 lines per 5 s) that would drop a refusal's reason.
	if (kmsg && channel)
		log::set_channel(server::channel_line_writer(out));
	if (!listen_path.empty())
		return server::serve_listen(server::ListenOptions{listen_path, fresh}, options);
	auto dispatcher = server::Dispatcher::create(options);
	if (!dispatcher) {
		log::error(dispatcher.error().message);
		return 1;
	}
	int in = channel_fd >= 0 ? channel_fd : STDIN_FILENO;
	return server::serve_channel(in, out, **dispatcher);
}

} // namespace

int main(int argc, char **argv)
{
	// A table's buffers (the request, its entries, its IR, the GET_ENTRIES reply) are MiBs
	// at 100k rules and live for one request: mapped apart and unmapped when freed, they
	// leave no dead pages behind. glibc's default raises the threshold to the largest
	// block freed (up to 32 MiB), after which such buffers come from the heap and their
	// pages stay resident after them (Documentation/design.md, "Memory").
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	// Nothing below throws by design; what the standard library may still throw (out of
	// memory) ends the helper with a line in the log rather than std::terminate.
	try {
		return run(argc, argv);
	} catch (const std::exception &e) {
		bpfilter::log::error(std::string("fatal: ") + e.what());
		return 1;
	}
}
