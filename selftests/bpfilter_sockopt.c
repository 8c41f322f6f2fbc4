// SPDX-License-Identifier: GPL-2.0
/*
 * The iptables sockopt ABI through bpfilter.ko, checked against what
 * ip_tables answers: tables, errnos, counters, capabilities, namespaces.
 * Each test runs in a forked child in a network namespace of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4/ip_tables.h>

#include "kselftest_harness.h"

#define STD_SIZE	XT_ALIGN(sizeof(struct ipt_entry) + sizeof(struct xt_standard_target))
#define ERR_SIZE	XT_ALIGN(sizeof(struct ipt_entry) + sizeof(struct xt_error_target))
#define FILTER_HOOKS	((1 << NF_INET_LOCAL_IN) | (1 << NF_INET_FORWARD) | (1 << NF_INET_LOCAL_OUT))
/* iptable_filter's initial table: three policies and the error entry. */
#define FRESH_ENTRIES	4
#define FRESH_SIZE	(3 * STD_SIZE + ERR_SIZE)

struct table {
	struct ipt_replace *repl;
	size_t len;
	unsigned int off;	/* where the next entry goes */
};

static int raw_socket(void)
{
	return socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
}

/* A network namespace of the test's own, with a fresh filter table. */
static int new_netns(void)
{
	return unshare(CLONE_NEWNET);
}

static int get_info(int fd, const char *name, struct ipt_getinfo *info)
{
	socklen_t len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	strncpy(info->name, name, sizeof(info->name) - 1);
	return getsockopt(fd, SOL_IP, IPT_SO_GET_INFO, info, &len) ? -errno : 0;
}

static struct ipt_get_entries *get_entries(int fd, unsigned int size, int *err)
{
	socklen_t len = sizeof(struct ipt_get_entries) + size;
	struct ipt_get_entries *e = calloc(1, len);

	strcpy(e->name, "filter");
	e->size = size;
	*err = getsockopt(fd, SOL_IP, IPT_SO_GET_ENTRIES, e, &len) ? -errno : 0;
	return e;
}

static void table_init(struct table *t, unsigned int size, unsigned int num_entries)
{
	t->len = sizeof(struct ipt_replace) + size;
	t->repl = calloc(1, t->len);
	strcpy(t->repl->name, "filter");
	t->repl->valid_hooks = FILTER_HOOKS;
	t->repl->num_entries = num_entries;
	t->repl->size = size;
	t->off = 0;
}

static struct ipt_entry *table_entry(struct table *t, unsigned int target_size)
{
	struct ipt_entry *e = (void *)((char *)t->repl->entries + t->off);

	e->target_offset = sizeof(*e);
	e->next_offset = XT_ALIGN(sizeof(*e) + target_size);
	t->off += e->next_offset;
	return e;
}

static void add_standard(struct table *t, int verdict, const char *src)
{
	struct ipt_entry *e = table_entry(t, sizeof(struct xt_standard_target));
	struct xt_standard_target *st = (void *)e->elems;

	if (src) {
		inet_pton(AF_INET, src, &e->ip.src);
		e->ip.smsk.s_addr = 0xffffffff;
	}
	st->target.u.target_size = XT_ALIGN(sizeof(*st));
	st->verdict = verdict;
}

static void add_error(struct table *t, const char *name)
{
	struct ipt_entry *e = table_entry(t, sizeof(struct xt_error_target));
	struct xt_error_target *et = (void *)e->elems;

	et->target.u.target_size = XT_ALIGN(sizeof(*et));
	strcpy(et->target.u.user.name, XT_ERROR_TARGET);
	strcpy(et->errorname, name);
}

static void set_hook(struct table *t, int hook, unsigned int entry, unsigned int underflow)
{
	t->repl->hook_entry[hook] = entry;
	t->repl->underflow[hook] = underflow;
}

/* iptables -A INPUT -s 10.1.2.3 -j DROP on a fresh table: 5 entries. */
static void table_drop_rule(struct table *t, unsigned int num_counters)
{
	table_init(t, 4 * STD_SIZE + ERR_SIZE, 5);
	add_standard(t, -NF_DROP - 1, "10.1.2.3");
	add_standard(t, -NF_ACCEPT - 1, NULL);
	add_standard(t, -NF_ACCEPT - 1, NULL);
	add_standard(t, -NF_ACCEPT - 1, NULL);
	add_error(t, "ERROR");
	set_hook(t, NF_INET_LOCAL_IN, 0, STD_SIZE);
	set_hook(t, NF_INET_FORWARD, 2 * STD_SIZE, 2 * STD_SIZE);
	set_hook(t, NF_INET_LOCAL_OUT, 3 * STD_SIZE, 3 * STD_SIZE);
	t->repl->num_counters = num_counters;
}

static int replace(int fd, struct table *t, struct xt_counters *old)
{
	t->repl->counters = old;
	return setsockopt(fd, SOL_IP, IPT_SO_SET_REPLACE, t->repl, t->len) ? -errno : 0;
}

static int add_counters(int fd, unsigned int n, unsigned int len_n, uint64_t base)
{
	size_t len = sizeof(struct xt_counters_info) + len_n * sizeof(struct xt_counters);
	struct xt_counters_info *ci = calloc(1, len);
	unsigned int i;
	int ret;

	strcpy(ci->name, "filter");
	ci->num_counters = n;
	for (i = 0; i < len_n; i++) {
		ci->counters[i].pcnt = base + i;
		ci->counters[i].bcnt = (base + i) * 100;
	}
	ret = setsockopt(fd, SOL_IP, IPT_SO_SET_ADD_COUNTERS, ci, len) ? -errno : 0;
	free(ci);
	return ret;
}

static int drop_cap(int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[cap / 32].effective &= ~(1U << (cap % 32));
	return syscall(SYS_capset, &hdr, data);
}

FIXTURE(ns) {
	int fd;
};

FIXTURE_SETUP(ns)
{
	ASSERT_EQ(0, new_netns());
	self->fd = raw_socket();
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(ns)
{
	close(self->fd);
}

TEST_F(ns, get_info_fresh)
{
	struct ipt_getinfo info;

	ASSERT_EQ(0, get_info(self->fd, "filter", &info));
	EXPECT_EQ(FILTER_HOOKS, info.valid_hooks);
	EXPECT_EQ(FRESH_ENTRIES, info.num_entries);
	EXPECT_EQ(FRESH_SIZE, info.size);
	EXPECT_EQ(0, info.hook_entry[NF_INET_LOCAL_IN]);
	EXPECT_EQ(STD_SIZE, info.hook_entry[NF_INET_FORWARD]);
	EXPECT_EQ(2 * STD_SIZE, info.hook_entry[NF_INET_LOCAL_OUT]);
	EXPECT_EQ(2 * STD_SIZE, info.underflow[NF_INET_LOCAL_OUT]);
}

TEST_F(ns, get_info_bad_len_and_name)
{
	struct ipt_getinfo info = { .name = "filter" };
	socklen_t len = sizeof(info) - 1;

	EXPECT_EQ(-1, getsockopt(self->fd, SOL_IP, IPT_SO_GET_INFO, &info, &len));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-ENOENT, get_info(self->fd, "nosuchtable", &info));
}

TEST_F(ns, get_entries_fresh)
{
	struct ipt_get_entries *e;
	struct xt_standard_target *st;
	int err;

	e = get_entries(self->fd, FRESH_SIZE, &err);
	ASSERT_EQ(0, err);
	EXPECT_EQ(sizeof(struct ipt_entry), e->entrytable[0].target_offset);
	EXPECT_EQ(STD_SIZE, e->entrytable[0].next_offset);
	st = (void *)e->entrytable[0].elems;
	EXPECT_EQ(-NF_ACCEPT - 1, st->verdict);
	free(e);
	/* A size that is not the table's: EAGAIN, iptables retries. */
	e = get_entries(self->fd, FRESH_SIZE + STD_SIZE, &err);
	EXPECT_EQ(-EAGAIN, err);
	free(e);
}

TEST_F(ns, get_entries_bad_len)
{
	struct ipt_get_entries e = { .name = "filter", .size = FRESH_SIZE };
	socklen_t len = sizeof(e);

	EXPECT_EQ(-1, getsockopt(self->fd, SOL_IP, IPT_SO_GET_ENTRIES, &e, &len));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(ns, get_revision)
{
	struct xt_get_revision rev = { .name = "udp", .revision = 0 };
	socklen_t len = sizeof(rev);

	EXPECT_LE(0, getsockopt(self->fd, SOL_IP, IPT_SO_GET_REVISION_MATCH, &rev, &len));
	len = sizeof(rev) + 1;
	EXPECT_EQ(-1, getsockopt(self->fd, SOL_IP, IPT_SO_GET_REVISION_MATCH, &rev, &len));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(ns, replace_good)
{
	struct xt_counters old[FRESH_ENTRIES];
	struct ipt_getinfo info;
	struct ipt_get_entries *e;
	struct table t;
	int err;

	memset(old, 0xff, sizeof(old));
	table_drop_rule(&t, FRESH_ENTRIES);
	ASSERT_EQ(0, replace(self->fd, &t, old));
	/* The old table's counters come back: a fresh table has seen nothing here. */
	EXPECT_EQ(0, old[0].pcnt);
	EXPECT_EQ(0, old[FRESH_ENTRIES - 1].bcnt);
	ASSERT_EQ(0, get_info(self->fd, "filter", &info));
	EXPECT_EQ(5, info.num_entries);
	EXPECT_EQ(t.repl->size, info.size);
	EXPECT_EQ(STD_SIZE, info.underflow[NF_INET_LOCAL_IN]);
	e = get_entries(self->fd, info.size, &err);
	ASSERT_EQ(0, err);
	EXPECT_EQ(htonl(0x0a010203), e->entrytable[0].ip.src.s_addr);
	EXPECT_EQ(-NF_DROP - 1, ((struct xt_standard_target *)e->entrytable[0].elems)->verdict);
	free(e);
	free(t.repl);
}

TEST_F(ns, replace_stale_num_counters)
{
	struct xt_counters old[FRESH_ENTRIES];
	struct ipt_getinfo info;
	struct table t;

	table_drop_rule(&t, FRESH_ENTRIES - 1);
	EXPECT_EQ(-EAGAIN, replace(self->fd, &t, old));
	ASSERT_EQ(0, get_info(self->fd, "filter", &info));
	EXPECT_EQ(FRESH_ENTRIES, info.num_entries);
	free(t.repl);
}

TEST_F(ns, replace_malformed)
{
	struct xt_counters old[FRESH_ENTRIES];
	struct ipt_getinfo info;
	struct table t;

	/* num_counters 0 */
	table_drop_rule(&t, 0);
	EXPECT_EQ(-EINVAL, replace(self->fd, &t, old));
	free(t.repl);
	/* num_counters overflowing the counters' allocation */
	table_drop_rule(&t, INT_MAX / sizeof(struct xt_counters));
	EXPECT_EQ(-ENOMEM, replace(self->fd, &t, old));
	free(t.repl);
	/* a hook entry that is not on an entry boundary */
	table_drop_rule(&t, FRESH_ENTRIES);
	t.repl->hook_entry[NF_INET_FORWARD] = STD_SIZE + 4;
	EXPECT_EQ(-EINVAL, replace(self->fd, &t, old));
	free(t.repl);
	/* num_entries that does not match the blob */
	table_drop_rule(&t, FRESH_ENTRIES);
	t.repl->num_entries = 6;
	EXPECT_EQ(-EINVAL, replace(self->fd, &t, old));
	free(t.repl);
	/* a last entry that is not the error target */
	table_drop_rule(&t, FRESH_ENTRIES);
	strcpy(((struct xt_error_target *)((struct ipt_entry *)((char *)t.repl->entries +
		4 * STD_SIZE))->elems)->target.u.user.name, "NOSUCH");
	EXPECT_NE(0, replace(self->fd, &t, old));
	free(t.repl);
	/* valid_hooks that are not the filter table's */
	table_drop_rule(&t, FRESH_ENTRIES);
	t.repl->valid_hooks |= 1 << NF_INET_PRE_ROUTING;
	EXPECT_EQ(-EINVAL, replace(self->fd, &t, old));
	free(t.repl);
	/* a table that does not exist */
	table_drop_rule(&t, FRESH_ENTRIES);
	strcpy(t.repl->name, "nosuchtable");
	EXPECT_EQ(-ENOENT, replace(self->fd, &t, old));
	free(t.repl);
	/* nothing of that changed the table */
	ASSERT_EQ(0, get_info(self->fd, "filter", &info));
	EXPECT_EQ(FRESH_ENTRIES, info.num_entries);
	EXPECT_EQ(FRESH_SIZE, info.size);
}

TEST_F(ns, add_counters)
{
	struct xt_counters old[FRESH_ENTRIES], old5[5];
	struct ipt_get_entries *e;
	struct table t;
	int err;

	table_drop_rule(&t, FRESH_ENTRIES);
	ASSERT_EQ(0, replace(self->fd, &t, old));
	EXPECT_EQ(0, add_counters(self->fd, 5, 5, 7));
	EXPECT_EQ(0, add_counters(self->fd, 5, 5, 1));
	e = get_entries(self->fd, t.repl->size, &err);
	ASSERT_EQ(0, err);
	EXPECT_EQ(8, e->entrytable[0].counters.pcnt);
	EXPECT_EQ(800, e->entrytable[0].counters.bcnt);
	free(e);
	/* len must be exactly num_counters counters; the count must be the table's */
	EXPECT_EQ(-EINVAL, add_counters(self->fd, 5, 4, 1));
	EXPECT_EQ(-EINVAL, add_counters(self->fd, 4, 4, 1));
	free(t.repl);
	/* The next replace hands the counters back through ipt_replace.counters. */
	memset(old5, 0, sizeof(old5));
	table_drop_rule(&t, 5);
	ASSERT_EQ(0, replace(self->fd, &t, old5));
	EXPECT_EQ(8, old5[0].pcnt);
	EXPECT_EQ(800, old5[0].bcnt);
	EXPECT_EQ(10, old5[1].pcnt);
	free(t.repl);
}

TEST_F(ns, eperm_without_cap_net_admin)
{
	struct xt_counters old[FRESH_ENTRIES];
	struct ipt_getinfo info;
	struct table t;

	ASSERT_EQ(0, drop_cap(CAP_NET_ADMIN));
	EXPECT_EQ(-EPERM, get_info(self->fd, "filter", &info));
	table_drop_rule(&t, FRESH_ENTRIES);
	EXPECT_EQ(-EPERM, replace(self->fd, &t, old));
	EXPECT_EQ(-EPERM, add_counters(self->fd, 4, 4, 1));
	free(t.repl);
}

/* The capability counts in the user namespace that owns the socket's network namespace. */
TEST_F(ns, cap_in_owning_user_ns)
{
	struct ipt_getinfo info;
	int fd;

	ASSERT_EQ(0, unshare(CLONE_NEWUSER | CLONE_NEWNET));
	fd = raw_socket();
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, get_info(fd, "filter", &info));
	/* The socket made before belongs to a namespace this user namespace does not own. */
	EXPECT_EQ(-EPERM, get_info(self->fd, "filter", &info));
	close(fd);
}

TEST_F(ns, netns_isolation)
{
	struct xt_counters old[FRESH_ENTRIES];
	struct ipt_getinfo info;
	struct table t;
	int other;

	table_drop_rule(&t, FRESH_ENTRIES);
	ASSERT_EQ(0, replace(self->fd, &t, old));
	ASSERT_EQ(0, new_netns());
	other = raw_socket();
	ASSERT_LE(0, other);
	ASSERT_EQ(0, get_info(other, "filter", &info));
	EXPECT_EQ(FRESH_ENTRIES, info.num_entries);
	ASSERT_EQ(0, get_info(self->fd, "filter", &info));
	EXPECT_EQ(5, info.num_entries);
	/* And the other way round. */
	table_drop_rule(&t, FRESH_ENTRIES);
	ASSERT_EQ(0, replace(other, &t, old));
	ASSERT_EQ(0, get_info(other, "filter", &info));
	EXPECT_EQ(5, info.num_entries);
	close(other);
	free(t.repl);
}

static unsigned int read_param(const char *name)
{
	char path[128], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/bpfilter/parameters/%s", name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoul(buf, NULL, 10);
}

/*
 * A namespace owned by another user namespace: a table over the module's
 * bounds gets ENOMEM before the helper sees it; the initial user
 * namespace's are not bounded so (the same header reaches the validator).
 */
TEST_F(ns, unpriv_bounds)
{
	unsigned int max_entries = read_param("unpriv_max_entries");
	unsigned int max_bytes = read_param("unpriv_max_bytes");
	struct xt_counters old[FRESH_ENTRIES];
	struct table t;
	int fd;

	ASSERT_LT(0, max_entries);
	ASSERT_LT(0, max_bytes);
	table_drop_rule(&t, FRESH_ENTRIES);
	t.repl->num_entries = max_entries + 1;
	EXPECT_EQ(-EINVAL, replace(self->fd, &t, old));

	ASSERT_EQ(0, unshare(CLONE_NEWUSER | CLONE_NEWNET));
	fd = raw_socket();
	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOMEM, replace(fd, &t, old));
	t.repl->num_entries = 5;
	t.repl->size = max_bytes + 1;
	EXPECT_EQ(-ENOMEM, replace(fd, &t, old));
	t.repl->size = 4 * STD_SIZE + ERR_SIZE;
	EXPECT_EQ(0, replace(fd, &t, old));
	close(fd);
	free(t.repl);
}

TEST_HARNESS_MAIN
