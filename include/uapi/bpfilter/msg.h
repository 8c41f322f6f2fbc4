/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * bpfilter request protocol: what the kernel module (or the userspace
 * front door) sends to the usermode helper, and what the helper answers.
 *
 * Requests and replies over a byte stream; each reply names its request by
 * seq. On the module's channel several requests may be in flight and their
 * replies come in any order (those about one network namespace in order);
 * through the front door a client sends one and waits for its reply.
 * A request is a struct bpfilter_request followed by data_len bytes of
 * optval; a reply is a struct bpfilter_reply followed by data_len bytes.
 * All fields are in host byte order: both ends run on the same machine.
 */
#ifndef _UAPI_BPFILTER_MSG_H
#define _UAPI_BPFILTER_MSG_H

#include <linux/types.h>

#define BPFILTER_REQ_MAGIC	0x71726662U	/* "bfrq" */
#define BPFILTER_REPLY_MAGIC	0x70726662U	/* "bfrp" */
/* 2: the helper writes struct bpfilter_log messages between replies. */
#define BPFILTER_PROTO_VERSION	2

/* Largest optval a request may carry: ip_tables' own ceiling is memory. */
#define BPFILTER_MAX_DATA	(256U << 20)

enum bpfilter_op {
	/* No data; the helper answers status 0 when it is ready to serve. */
	BPFILTER_OP_HEALTH = 0,
	/* optname is an IPT_SO_SET_*; data is the optval the caller passed. */
	BPFILTER_OP_SETSOCKOPT = 1,
	/*
	 * optname is an IPT_SO_GET_*; optlen is the caller's *optlen and data
	 * is the leading part of optval that the get reads as input (the whole
	 * struct ipt_getinfo, the struct ipt_get_entries header, the struct
	 * xt_get_revision).
	 */
	BPFILTER_OP_GETSOCKOPT = 2,
	/* No data; the network namespace netns_cookie is gone: drop its state. */
	BPFILTER_OP_NETNS_GONE = 3,
	/*
	 * No data; interfaces appeared, went or were renamed in netns_cookie:
	 * arg is the ifindex, or 0 for any number of them (the module
	 * coalesces). The helper rescans the namespace's links and attaches
	 * the namespace's programs.
	 */
	BPFILTER_OP_LINK_ADDED = 4,
	/*
	 * No data; an IPv4 address was added to or removed from an interface
	 * of netns_cookie (arg: its ifindex, or 0). The helper re-reads the
	 * namespace's local routes, which tell INPUT traffic from forwarded.
	 */
	BPFILTER_OP_ADDRS_CHANGED = 5,
	/*
	 * No data; detach every program the helper attached in netns_cookie
	 * and drop the namespace's state. The module sends it for each
	 * namespace before it stops the helper for good (rmmod).
	 */
	BPFILTER_OP_DETACH = 6,
	/*
	 * No data; an interface arrived in netns_cookie, where the helper keeps
	 * no table, carrying an XDP program (a device keeps its XDP program when
	 * it changes namespace): arg is its ifindex. The helper removes
	 * bpfilter's programs from it: another namespace's table must not judge
	 * there.
	 */
	BPFILTER_OP_LINK_STRAY = 7,
	/*
	 * data is an -m hashlimit name; the reply's data is what
	 * /proc/net/ipt_hashlimit/NAME would read in netns_cookie (status
	 * -ENOENT when no rule there names it). The front door's preload
	 * answers opens of that path with it.
	 */
	BPFILTER_OP_HASHLIMIT_READ = 8,
	/*
	 * No data; the reply's data names the files netfilter would show in
	 * netns_cookie for the tables in force there: for each, 'r'
	 * (/proc/net/xt_recent/NAME) or 'h' (/proc/net/ipt_hashlimit/NAME), the
	 * name and a NUL. The module asks after every accepted
	 * IPT_SO_SET_REPLACE and makes or removes its /proc files to match.
	 */
	BPFILTER_OP_PROC_NAMES = 9,
};

/*
 * Never a caller's sockopt (the module registers no such optname): the
 * namespace's -m recent lists, what /proc/net/xt_recent/NAME reads and takes
 * on netfilter. The module sends them for its /proc/net/xt_recent files, the
 * front door for `bpfilter_umh --recent`. Get: the input is the list's name with
 * its NUL; the reply is the file's text. Set: optval is the name, its NUL, then
 * the bytes of one write() to the file ("+ADDR", "-ADDR", "/").
 */
#define BPFILTER_SO_GET_RECENT	0x62660001U
#define BPFILTER_SO_SET_RECENT	0x62660002U

struct bpfilter_request {
	__u32 magic;		/* BPFILTER_REQ_MAGIC */
	__u16 version;		/* BPFILTER_PROTO_VERSION */
	__u16 op;		/* enum bpfilter_op */
	__u32 optname;		/* IPT_SO_* for the sockopt ops */
	__u32 optlen;		/* the caller's optlen (set) or *optlen (get) */
	__u32 data_len;		/* bytes of data that follow this header */
	/*
	 * Op specific, 0 when unused. SETSOCKOPT, GETSOCKOPT: the calling
	 * process's pid in the helper's pid namespace (for the log; the front
	 * door puts its peer's there).
	 */
	__u32 arg;
	/*
	 * The caller's network namespace: a cookie that stays unique for the
	 * life of the machine, and a descriptor for it that is valid in the
	 * helper's descriptor table for this request only (-1: the helper's
	 * own namespace). The helper closes netns_fd after the request.
	 */
	__u64 netns_cookie;
	__s32 netns_fd;
	__u32 seq;		/* echoed in the reply */
};

struct bpfilter_reply {
	__u32 magic;		/* BPFILTER_REPLY_MAGIC */
	__u32 seq;		/* the request's seq */
	/*
	 * What the sockopt call returns: 0 or a negative errno; for
	 * IPT_SO_GET_REVISION_* the best revision, as ip_tables does.
	 */
	__s32 status;
	/*
	 * Bytes that follow. A get: the bytes to copy to optval (data_len
	 * becomes *optlen). IPT_SO_SET_REPLACE: the old table's counters, a
	 * struct xt_counters for each of the replaced table's entries, to be
	 * written at ipt_replace.counters in the caller's memory.
	 */
	__u32 data_len;
};

/*
 * A line for the kernel log, from -j LOG: between two replies (never while
 * it owes one), the helper may write a struct bpfilter_log followed by len
 * bytes of text (no NUL, no newline), all in one write(). The module prints
 * it at the printk level `level`, as netfilter's nf_log_syslog does.
 */
#define BPFILTER_LOG_MAGIC	0x6c726662U	/* "bfrl" */
#define BPFILTER_LOG_MAX	1024

struct bpfilter_log {
	__u32 magic;		/* BPFILTER_LOG_MAGIC */
	__u16 level;		/* 0 (KERN_EMERG) to 7 (KERN_DEBUG) */
	__u16 len;		/* bytes of text, at most BPFILTER_LOG_MAX */
};

#endif /* _UAPI_BPFILTER_MSG_H */
