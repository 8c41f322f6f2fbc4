// -j LOG's lines: a record the programs wrote, printed as the kernel's nf_log_syslog prints it.
//
// Line by line after Linux 6.1's net/netfilter/nf_log_syslog.c: nf_log_ip_packet(),
// nf_log_dump_packet_common(), dump_mac_header(), dump_ipv4_packet() and its TCP and UDP
// helpers. skb_header_pointer() fails where the datagram (skb->len: the record's len)
// ends; the record holds the first log_snap_bytes of the frame, so a header that lies in
// the datagram but past the copy cannot be printed: the line then says so and ends.
#include "service/nf_log.hpp"

#include <linux/netfilter/xt_LOG.h>
#include <netinet/in.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <optional>

#include "codegen/maps.hpp"

namespace bpfilter::service
{

namespace
{

using codegen::maps::LogRecord;
using codegen::maps::LogSnap;

// The datagram as skb_header_pointer() sees it from the network header: `len` bytes, of
// which `have` were copied.
struct Datagram {
	const uint8_t *bytes = nullptr;
	uint32_t have = 0;
	uint32_t len = 0;
	bool cut = false; // a header lay past the copy

	// The n bytes at off, or nothing where the kernel's skb_header_pointer() fails.
	const uint8_t *at(uint32_t off, uint32_t n)
	{
		if (uint64_t{off} + n > len)
			return nullptr;
		if (uint64_t{off} + n > have) {
			cut = true;
			return nullptr;
		}
		return bytes + off;
	}
};

uint16_t be16(const uint8_t *p)
{
	return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t *p)
{
	return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

class Line
{
public:
	void add(const char *fmt, ...) __attribute__((format(printf, 2, 3)))
	{
		char buf[128];
		va_list ap;
		va_start(ap, fmt);
		const int n = vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		if (n > 0)
			text.append(buf, std::min(static_cast<size_t>(n), sizeof(buf) - 1));
	}
	void addr(const char *name, const uint8_t *p)
	{
		add("%s=%u.%u.%u.%u ", name, p[0], p[1], p[2], p[3]);
	}
	std::string text;
};

// nf_log_dump_tcp_header(): true where the kernel returns 1 (nothing more of this header).
bool dump_tcp(Line &m, Datagram &d, bool fragment, uint32_t off, unsigned flags, LogDialect dialect)
{
	m.add("PROTO=TCP ");
	if (fragment)
		return false;
	const uint8_t *th = d.at(off, 20);
	if (!th) {
		if (!d.cut)
			m.add("INCOMPLETE [%u bytes] ", d.len - off);
		return true;
	}
	m.add("SPT=%u DPT=%u ", be16(th), be16(th + 2));
	if (flags & XT_LOG_TCPSEQ)
		m.add("SEQ=%u ACK=%u ", be32(th + 4), be32(th + 8));
	m.add("WINDOW=%u ", be16(th + 14));
	m.add("RES=0x%02x ", (th[12] & (dialect.tcp_ae ? 0x0e : 0x0f)) << 2);
	if (dialect.tcp_ae && (th[12] & 0x01))
		m.add("AE ");
	static constexpr struct {
		uint8_t bit;
		const char *name;
	} names[] = {{0x80, "CWR "}, {0x40, "ECE "}, {0x20, "URG "}, {0x10, "ACK "},
		     {0x08, "PSH "}, {0x04, "RST "}, {0x02, "SYN "}, {0x01, "FIN "}};
	for (const auto &f : names)
		if (th[13] & f.bit)
			m.add("%s", f.name);
	m.add("URGP=%u ", be16(th + 18));
	const uint32_t doff = (th[12] >> 4) * 4u;
	if ((flags & XT_LOG_TCPOPT) && doff > 20) {
		const uint8_t *op = d.at(off + 20, doff - 20);
		if (!op) {
			if (!d.cut)
				m.add("OPT (TRUNCATED)");
			return true;
		}
		m.add("OPT (");
		for (uint32_t i = 0; i < doff - 20; i++)
			m.add("%02X", op[i]);
		m.add(") ");
	}
	return false;
}

// nf_log_dump_udp_header().
bool dump_udp(Line &m, Datagram &d, uint8_t proto, bool fragment, uint32_t off)
{
	m.add(proto == IPPROTO_UDP ? "PROTO=UDP " : "PROTO=UDPLITE ");
	if (fragment)
		return false;
	const uint8_t *uh = d.at(off, 8);
	if (!uh) {
		if (!d.cut)
			m.add("INCOMPLETE [%u bytes] ", d.len - off);
		return true;
	}
	m.add("SPT=%u DPT=%u LEN=%u ", be16(uh), be16(uh + 2), be16(uh + 4));
	return false;
}

// dump_ipv4_packet(), but for the socket's UID and the mark, which the caller adds.
void dump_ipv4(Line &m, Datagram &d, unsigned flags, uint32_t iphoff, LogDialect dialect)
{
	const uint8_t *ih = d.at(iphoff, 20);
	if (!ih) {
		if (!d.cut)
			m.add("TRUNCATED");
		return;
	}
	m.addr("SRC", ih + 12);
	m.addr("DST", ih + 16);
	const uint16_t frag = be16(ih + 6);
	m.add("LEN=%u TOS=0x%02X PREC=0x%02X TTL=%u ID=%u ", be16(ih + 2), ih[1] & 0x1e,
	      ih[1] & 0xe0, ih[8], be16(ih + 4));
	if (frag & 0x8000)
		m.add("CE ");
	if (frag & 0x4000)
		m.add("DF ");
	if (frag & 0x2000)
		m.add("MF ");
	if (frag & 0x1fff)
		m.add("FRAG:%u ", frag & 0x1fff);
	const uint32_t ihl = (ih[0] & 0x0f) * 4u;
	if ((flags & XT_LOG_IPOPT) && ihl > 20) {
		const uint8_t *op = d.at(iphoff + 20, ihl - 20);
		if (!op) {
			if (!d.cut)
				m.add("TRUNCATED");
			return;
		}
		m.add("OPT (");
		for (uint32_t i = 0; i < ihl - 20; i++)
			m.add("%02X", op[i]);
		m.add(") ");
	}
	const bool fragment = frag & 0x1fff;
	const uint32_t l4 = iphoff + ihl;
	const uint8_t proto = ih[9];
	switch (proto) {
	case IPPROTO_TCP:
		dump_tcp(m, d, fragment, l4, flags, dialect);
		break;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
		dump_udp(m, d, proto, fragment, l4);
		break;
	case IPPROTO_ICMP: {
		// required_len[] of dump_ipv4_packet(), by ICMP type.
		static constexpr uint32_t required[19] = {4, 0,	 0,  28, 28, 28, 0, 0,	4, 0,
							  0, 28, 28, 20, 20, 0,	 0, 12, 12};
		m.add("PROTO=ICMP ");
		if (fragment)
			break;
		const uint8_t *ich = d.at(l4, 8);
		if (!ich) {
			if (!d.cut)
				m.add("INCOMPLETE [%u bytes] ", d.len - l4);
			break;
		}
		const uint8_t type = ich[0], code = ich[1];
		m.add("TYPE=%u CODE=%u ", type, code);
		if (type <= 18 && required[type] && d.len - l4 < required[type]) {
			m.add("INCOMPLETE [%u bytes] ", d.len - l4);
			break;
		}
		switch (type) {
		case 0: // ICMP_ECHOREPLY
		case 8: // ICMP_ECHO
			m.add("ID=%u SEQ=%u ", be16(ich + 4), be16(ich + 6));
			break;
		case 12: // ICMP_PARAMETERPROB
			m.add("PARAMETER=%u ", ich[4]);
			break;
		case 5: // ICMP_REDIRECT
			m.addr("GATEWAY", ich + 4);
			[[fallthrough]];
		case 3:			   // ICMP_DEST_UNREACH
		case 4:			   // ICMP_SOURCE_QUENCH
		case 11:		   // ICMP_TIME_EXCEEDED
			if (iphoff == 0) { // only one level down
				m.add("[");
				dump_ipv4(m, d, flags, l4 + 8, dialect);
				m.add("] ");
			}
			if (type == 3 && code == 4) // ICMP_FRAG_NEEDED
				m.add("MTU=%u ", be16(ich + 6));
			break;
		default:
			break;
		}
		break;
	}
	case IPPROTO_AH: {
		if (fragment)
			break;
		m.add("PROTO=AH ");
		const uint8_t *ah = d.at(l4, 12);
		if (!ah) {
			if (!d.cut)
				m.add("INCOMPLETE [%u bytes] ", d.len - l4);
			break;
		}
		m.add("SPI=0x%x ", be32(ah + 4));
		break;
	}
	case IPPROTO_ESP: {
		m.add("PROTO=ESP ");
		if (fragment)
			break;
		const uint8_t *eh = d.at(l4, 8);
		if (!eh) {
			if (!d.cut)
				m.add("INCOMPLETE [%u bytes] ", d.len - l4);
			break;
		}
		m.add("SPI=0x%x ", be32(eh));
		break;
	}
	default:
		m.add("PROTO=%u ", proto);
	}
}

// dump_mac_header(): the frame's link-layer header is snap.bytes[0, l2len).
void dump_mac(Line &m, const LogSnap &snap, unsigned flags)
{
	const uint8_t *p = snap.bytes;
	if ((flags & XT_LOG_MACDECODE) && (snap.flags & codegen::maps::log_snap_ether)) {
		if (snap.l2len < 14 || snap.caplen < 14)
			return;
		m.add("MACSRC=%02x:%02x:%02x:%02x:%02x:%02x ", p[6], p[7], p[8], p[9], p[10],
		      p[11]);
		m.add("MACDST=%02x:%02x:%02x:%02x:%02x:%02x ", p[0], p[1], p[2], p[3], p[4], p[5]);
		if (snap.flags & codegen::maps::log_snap_vlan) {
			const auto *vp = reinterpret_cast<const uint8_t *>(&snap.vlan_proto);
			m.add("VPROTO=%04x VID=%u ", be16(vp), snap.vlan_tci & 0x0fffu);
		}
		m.add("MACPROTO=%04x ", be16(p + 12));
		return;
	}
	m.add("MAC=");
	if (snap.hh_len && snap.l2len != 0) {
		const uint32_t n = std::min<uint32_t>(snap.hh_len, snap.caplen);
		for (uint32_t i = 0; i < n; i++)
			m.add(i ? ":%02x" : "%02x", p[i]);
	}
	m.add(" ");
}

} // namespace

LogDialect kernel_log_dialect()
{
	struct utsname u;
	unsigned major = 0, minor = 0;
	if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return {};
	return LogDialect{.tcp_ae = major > 6 || (major == 6 && minor >= 16)};
}

Result<LogLine> format_log(std::span<const uint8_t> record, LogDialect dialect)
{
	if (record.size() < sizeof(LogRecord))
		return make_error(EINVAL, "LOG record of " + std::to_string(record.size()) +
						  " bytes, expected " +
						  std::to_string(sizeof(LogRecord)));
	LogRecord rec;
	std::memcpy(&rec, record.data(), sizeof(rec));
	LogSnap &snap = rec.snap;
	snap.caplen = std::min<uint16_t>(snap.caplen, codegen::maps::log_snap_bytes);
	rec.prefix[sizeof(rec.prefix) - 1] = 0;

	const auto name = [](const char(&n)[16]) { return std::string(n, strnlen(n, 16)); };
	Line m;
	const bool in = snap.flags & codegen::maps::log_snap_ingress;
	m.text = rec.prefix;
	m.add("IN=%s OUT=%s ", name(rec.in).c_str(), name(rec.out).c_str());
	if (in)
		dump_mac(m, snap, rec.flags);

	Datagram d;
	if (snap.l2len <= snap.caplen) {
		d.bytes = snap.bytes + snap.l2len;
		d.have = snap.caplen - snap.l2len;
	}
	d.len = rec.len;
	if ((snap.flags & codegen::maps::log_snap_forward) && d.have >= 9 && d.bytes[8]) {
		// ip_forward() decrements the TTL before the FORWARD hook.
		snap.bytes[snap.l2len + 8]--;
	}
	if (snap.reassembled && d.have >= 8) {
		// ip_frag_reasm(): the first fragment's header, the whole length, no MF nor offset.
		uint8_t *ih = snap.bytes + snap.l2len;
		ih[2] = static_cast<uint8_t>(rec.len >> 8);
		ih[3] = static_cast<uint8_t>(rec.len);
		ih[6] &= 0xc0;
		ih[7] = 0;
	}
	dump_ipv4(m, d, rec.flags, 0, dialect);
	if (d.cut)
		m.add("[bpfilter: the rest is past the %u bytes of headers a record holds] ",
		      codegen::maps::log_snap_bytes);
	// nf_log_dump_sk_uid_gid(): OUTPUT's program read them (LogRecord::has_uid).
	if ((rec.flags & XT_LOG_UID) && rec.has_uid)
		m.add("UID=%u GID=%u ", rec.uid, rec.gid);
	if (snap.mark)
		m.add("MARK=0x%x ", snap.mark);
	return LogLine{static_cast<uint8_t>(rec.level & 7), std::move(m.text)};
}

} // namespace bpfilter::service
