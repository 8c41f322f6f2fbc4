// SPDX-License-Identifier: GPL-2.0
/*
 * chanhold PID FD SECONDS: takes a copy of descriptor FD of process PID
 * (pidfd_getfd(), as a root process with CAP_SYS_PTRACE can), checks that
 * reading it is refused (the helper's channel answers only the helper),
 * holds it SECONDS, then closes it. For the life-cycle tests: rmmod must
 * wait for it, not free code the descriptor still refers to.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int pidfd, fd;
	char c;

	if (argc != 4) {
		fprintf(stderr, "usage: chanhold PID FD SECONDS\n");
		return 2;
	}
	pidfd = syscall(434 /* pidfd_open */, atoi(argv[1]), 0);
	if (pidfd < 0) {
		perror("pidfd_open");
		return 1;
	}
	fd = syscall(438 /* pidfd_getfd */, pidfd, atoi(argv[2]), 0);
	if (fd < 0) {
		perror("pidfd_getfd");
		return 1;
	}
	printf("holding descriptor %s of %s as %d\n", argv[2], argv[1], fd);
	fflush(stdout);
	if (read(fd, &c, 1) != -1 || errno != EPERM) {
		fprintf(stderr, "reading the channel was not refused with EPERM\n");
		return 1;
	}
	sleep(atoi(argv[3]));
	close(fd);
	printf("closed\n");
	return 0;
}
