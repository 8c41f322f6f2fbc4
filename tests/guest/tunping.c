// SPDX-License-Identifier: GPL-2.0
/*
 * The far end of a tun device for the guest's device tests, so that packets cross tun0
 * both ways without socat or a second stack:
 *
 *   tunping DEV echo                 answer every ICMP echo request the host sends into DEV
 *                                    (for up to 60 s, or until killed)
 *   tunping DEV ping SRC DST COUNT   inject COUNT echo requests SRC -> DST, as if they came
 *                                    from the wire, and wait up to 1 s for each reply;
 *                                    exits 0 when every reply came back
 *
 * Built static by scripts/initramfs-build. IPv4 only; anything else read is ignored.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define ECHO_ID 0x6270 /* "bp" */

static uint16_t csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/*
 * Attaching turns the carrier on, but the device queues packets only once the link watch
 * has run (up to a second later): until then the kernel's packets for us are dropped. Its
 * operstate turns "up" in the same step.
 */
static void wait_running(const char *name)
{
	char path[64], state[16] = "";

	snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", name);
	for (int i = 0; i < 30; i++) {
		FILE *f = fopen(path, "r");

		if (f) {
			if (!fgets(state, sizeof(state), f))
				state[0] = 0;
			fclose(f);
		}
		if (!strncmp(state, "up", 2))
			break;
		usleep(100 * 1000);
	}
	usleep(100 * 1000);
}

static int tun_open(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR);

	if (fd < 0) {
		perror("/dev/net/tun");
		exit(2);
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		exit(2);
	}
	wait_running(name);
	return fd;
}

/* Reads one packet, waiting at most ms milliseconds; returns its length, 0 on timeout. */
static ssize_t tun_read(int fd, uint8_t *buf, size_t size, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n = poll(&pfd, 1, ms);

	if (n < 0 && errno != EINTR) {
		perror("poll");
		exit(2);
	}
	if (n <= 0)
		return 0;
	return read(fd, buf, size);
}

/* The ICMP header of an IPv4 packet of protocol ICMP, or NULL. */
static uint8_t *icmp_of(uint8_t *pkt, ssize_t len, size_t *icmp_len)
{
	size_t ihl;

	if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != IPPROTO_ICMP)
		return NULL;
	ihl = (size_t)(pkt[0] & 0xf) * 4;
	if ((size_t)len < ihl + 8)
		return NULL;
	*icmp_len = (size_t)len - ihl;
	return pkt + ihl;
}

static int do_echo(int fd)
{
	uint8_t pkt[2048];
	time_t end = time(NULL) + 60;

	while (time(NULL) < end) {
		ssize_t len = tun_read(fd, pkt, sizeof(pkt), 1000);
		uint8_t addr[4], *icmp;
		size_t icmp_len;

		icmp = icmp_of(pkt, len, &icmp_len);
		if (!icmp || icmp[0] != 8)
			continue;
		memcpy(addr, pkt + 12, 4);
		memcpy(pkt + 12, pkt + 16, 4);
		memcpy(pkt + 16, addr, 4);
		pkt[8] = 64;
		pkt[10] = pkt[11] = 0;
		memcpy(pkt + 10, &(uint16_t){ csum(pkt, (size_t)(icmp - pkt)) }, 2);
		icmp[0] = 0;
		icmp[2] = icmp[3] = 0;
		memcpy(icmp + 2, &(uint16_t){ csum(icmp, icmp_len) }, 2);
		if (write(fd, pkt, (size_t)len) != len)
			perror("write");
	}
	return 0;
}

static int do_ping(int fd, const char *src, const char *dst, int count)
{
	int answered = 0;

	for (int seq = 1; seq <= count; seq++) {
		uint8_t pkt[84] = { 0x45, 0, 0, sizeof(pkt), 0, 0, 0x40, 0, 64, IPPROTO_ICMP };
		uint8_t *icmp = pkt + 20;
		struct timespec t0, now;

		pkt[5] = (uint8_t)seq;
		if (inet_pton(AF_INET, src, pkt + 12) != 1 || inet_pton(AF_INET, dst, pkt + 16) != 1) {
			fprintf(stderr, "tunping: bad address\n");
			return 2;
		}
		memcpy(pkt + 10, &(uint16_t){ csum(pkt, 20) }, 2);
		icmp[0] = 8;
		icmp[4] = ECHO_ID >> 8;
		icmp[5] = ECHO_ID & 0xff;
		icmp[7] = (uint8_t)seq;
		for (size_t i = 8; i < 64; i++)
			icmp[i] = (uint8_t)i;
		memcpy(icmp + 2, &(uint16_t){ csum(icmp, 64) }, 2);
		if (write(fd, pkt, sizeof(pkt)) != (ssize_t)sizeof(pkt)) {
			perror("write");
			return 2;
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			uint8_t in[2048], *reply;
			size_t reply_len;
			long left;
			ssize_t len;

			clock_gettime(CLOCK_MONOTONIC, &now);
			left = 1000 - ((now.tv_sec - t0.tv_sec) * 1000 +
				       (now.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				break;
			len = tun_read(fd, in, sizeof(in), (int)left);
			reply = icmp_of(in, len, &reply_len);
			if (reply && reply[0] == 0 && reply[4] == (ECHO_ID >> 8) &&
			    reply[5] == (ECHO_ID & 0xff) && reply[7] == (uint8_t)seq) {
				answered++;
				break;
			}
		}
	}
	printf("tunping: %d sent, %d answered\n", count, answered);
	return answered == count ? 0 : 1;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc == 3 && !strcmp(argv[2], "echo")) {
		fd = tun_open(argv[1]);
		return do_echo(fd);
	}
	if (argc == 6 && !strcmp(argv[2], "ping")) {
		fd = tun_open(argv[1]);
		return do_ping(fd, argv[3], argv[4], atoi(argv[5]));
	}
	fprintf(stderr, "usage: tunping DEV echo | tunping DEV ping SRC DST COUNT\n");
	return 2;
}
