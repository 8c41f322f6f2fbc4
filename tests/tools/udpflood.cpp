// udpflood: send UDP datagrams to ADDR:PORT as fast as sendmmsg allows for SECONDS (bench traffic).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: udpflood ADDR PORT SECONDS\n");
		return 2;
	}
	sockaddr_in dst{};
	dst.sin_family = AF_INET;
	dst.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "udpflood: bad address %s\n", argv[1]);
		return 2;
	}
	const double seconds = atof(argv[3]);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, reinterpret_cast<sockaddr *>(&dst), sizeof(dst)) != 0) {
		perror("udpflood: socket");
		return 1;
	}
	constexpr unsigned batch = 64;
	char payload[18] = {};
	std::vector<iovec> iov(batch, iovec{payload, sizeof(payload)});
	std::vector<mmsghdr> msgs(batch);
	for (unsigned i = 0; i < batch; ++i) {
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	unsigned long long sent = 0;
	const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
	while (std::chrono::steady_clock::now() < end) {
		int n = sendmmsg(fd, msgs.data(), batch, 0);
		if (n > 0)
			sent += static_cast<unsigned>(n);
	}
	printf("%llu\n", sent);
	close(fd);
	return 0;
}
