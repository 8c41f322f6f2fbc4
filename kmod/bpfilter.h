/* SPDX-License-Identifier: GPL-2.0 */
/* Interfaces between the parts of bpfilter.ko: backends, requests, namespaces, helper. */
#ifndef _BPFILTER_KMOD_H
#define _BPFILTER_KMOD_H

#include <linux/init.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/sockptr.h>
#include <linux/types.h>

#include "bpfilter/msg.h"

struct net;
struct sock;
struct bpfilter_chan;
struct bpfilter_netns;

/*
 * A backend routes a kernel's IPT_SO_* get/setsockopt calls to
 * bpfilter_setsockopt() and bpfilter_getsockopt(). main.c tries them in
 * order; adding one (e.g. the bpfilter_ops hook of CONFIG_BPFILTER kernels)
 * is one new file and one line in main.c.
 */
struct bpfilter_backend {
	const char *name;
	int (*attach)(void);
	void (*detach)(void);
};

extern const struct bpfilter_backend bpfilter_backend_nf;

/* sockopt.c: the caller's side of a request. */
int bpfilter_setsockopt(struct sock *sk, int optname, sockptr_t optval,
			unsigned int optlen);
int bpfilter_getsockopt(struct sock *sk, int optname, void __user *optval,
			int *optlen);

/* sockopt.c: "netns COOKIE (owner uid U), pid P (COMM)" for refusal lines. */
void bpfilter_who(struct net *net, char *buf, size_t len);

/*
 * One exchange with the helper. The sender fills req.op, req.optname,
 * req.optlen, req.arg, data, data_len, net and max_reply; the transport fills
 * the rest of req and, on success, status and reply (kvmalloc'd, the sender
 * frees it with kvfree).
 */
struct bpfilter_msg {
	struct bpfilter_request req;
	const void *data;
	/* The namespace the request is about (NULL: none). Kept alive by the sender. */
	struct net *net;
	u32 max_reply;
	s32 status;
	void *reply;
	u32 reply_len;
	/* The transport's: on the channel's queue or in flight, then answered. */
	struct list_head node;
	bool done;
};

/* sockopt.c: a request about net from outside a sockopt (the /proc files), as the caller's. */
int bpfilter_request(struct net *net, struct bpfilter_msg *msg);

/*
 * The helper's life cycle (start, restart and the replay of every table,
 * stop) and the list of namespaces: held for bookkeeping and, rarely, a
 * restart, never across a caller's exchange. Everything below marked
 * "locked" must be called with it held. Lock order: bpfilter_mutex, then a
 * namespace's lock (bpfilter_netns_lock()), then the channel's.
 */
extern struct mutex bpfilter_mutex;

/* main.c: start the helper if needed, restore the tables, let requests use it. Locked. */
int bpfilter_helper_ready(void);

/* bpfilter_umh_blob.S: the helper's executable, init data. */
extern const char bpfilter_umh_blob_start[];
extern const char bpfilter_umh_blob_end[];

/* umh.c: the helper's life cycle and its private channel. */
int __init bpfilter_umh_init(void);
void bpfilter_umh_exit(void);
bool bpfilter_umh_running(void);		/* locked */
int bpfilter_umh_start(void);			/* locked */
void bpfilter_umh_stop(void);			/* locked: EOF, then SIGKILL if it lingers */
int bpfilter_umh_exchange(struct bpfilter_msg *msg, bool killable); /* locked */
void bpfilter_umh_publish(void);		/* locked: requests may use the helper */
/*
 * Exchanges of requests, without bpfilter_mutex: several may be in flight.
 * get: a reference on the published helper's channel (NULL: none, or dead).
 */
struct bpfilter_chan *bpfilter_umh_get(void);
void bpfilter_umh_put(struct bpfilter_chan *chan);
int bpfilter_umh_send(struct bpfilter_chan *chan, struct bpfilter_msg *msg, bool killable);

/* netns.c: per network namespace state. */
int bpfilter_netns_init(void);
void bpfilter_netns_exit(void);
int bpfilter_netns_track(struct net *net);	/* locked */
/*
 * A namespace's requests, one at a time (killable; a request about another
 * namespace does not wait for it), and for a namespace of another user
 * namespace one of unpriv_max_inflight slots. The namespace must be tracked
 * and net kept alive by the caller. "ns-locked" below: called with it held.
 */
struct bpfilter_netns *bpfilter_netns_lock(struct net *net);
void bpfilter_netns_unlock(struct bpfilter_netns *ns);
void bpfilter_netns_save(struct bpfilter_netns *ns, void *replace, u32 len); /* ns-locked */
bool bpfilter_table_tracks(const void *replace, u32 len);
int bpfilter_netns_ct_prepare(struct bpfilter_netns *ns, struct net *net,
			      bool tracks);	/* ns-locked */
void bpfilter_netns_ct_commit(struct bpfilter_netns *ns, struct net *net, bool tracks,
			      bool accepted);	/* ns-locked */
void bpfilter_netns_replay(void);		/* locked */
void bpfilter_netns_detach_all(void);		/* locked */

/*
 * proc.c: /proc/net/xt_recent and /proc/net/ipt_hashlimit. After an accepted
 * replace, fetch (ns-locked) asks the helper which names are in force, and
 * sync (no lock) makes the files match.
 */
int bpfilter_proc_init(void);
void bpfilter_proc_exit(void);
void bpfilter_proc_stop(void);
void bpfilter_proc_fetch(struct net *net, struct bpfilter_chan *chan); /* ns-locked */
void bpfilter_proc_sync(struct net *net);

/*
 * params.c: the module parameters as the helper's options, at most
 * BPFILTER_PARAMS_ARGC strings stored from argv (static, never freed).
 */
#define BPFILTER_PARAMS_ARGC 5
int bpfilter_params_argv(char **argv);

#endif /* _BPFILTER_KMOD_H */
