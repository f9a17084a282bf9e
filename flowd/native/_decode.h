/* flowd/native/_decode.h: one frame -> its flow key and columns, decode_frame's rules in C.
 *
 * Shared by flowd.native._fastpath (extract: a batch of frames) and flowd.native._flowtable's live ingest
 * (flowd/native/_live.c: frames straight from a capture ring into the flow cache). flowd.core.frame_rules
 * .decode_frame is the statement of the rules; tests/flowd/test_decode_paths.py holds this code to it.
 */
#ifndef FLOWD_DECODE_H
#define FLOWD_DECODE_H

#include <stdint.h>
#include <string.h>

/* Per-frame status of extract: 0 accounted, a flowd.core.decode._CODE drop code, or SLOW. */
enum status {
    ACCOUNTED = 0,
    NOT_IP = 1,
    HEADER_TOO_SMALL = 2,
    BAD_IP_HEADER = 3,
    UNSUPPORTED_LINK_TYPE = 4,
    TRUNCATED = 5,
    SLOW = 255, /* not decided here: the frame lies outside the buffer; decode_frame's business */
};

/* --- wire constants (the Final tables at the top of flowd/core/decode.py) ------------------------- */

#define KEY_BYTES 40
#define MPLS_KEPT 3
#define MAC_BYTES 12 /* flowd.model.batch.MAC_BYTES: destination then source address */
#define MAC_LEN 6
#define MPLS_BOTTOM 0x100u
#define VLAN_ID_MASK 0x0FFFu
#define IPV4_OFFSET_MASK 0x1FFFu
#define IPV4_MIN_HEADER 20
#define IPV6_HEADER 40
#define FRAGMENT_HEADER 8
#define NULL_HEADER 4
#define PPPOE_HEADER 8 /* RFC 2516 session header (6 bytes) and the 2-byte PPP protocol */
#define PPP_PROTOCOL_AT 6
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057
#define TCP_FLAGS_AT 13

enum { ETH_IPV4 = 0x0800, ETH_IPV6 = 0x86DD, ETH_VLAN = 0x8100, ETH_QINQ = 0x88A8,
       ETH_QINQ_LEGACY = 0x9100, ETH_MPLS = 0x8847, ETH_MPLS_MULTICAST = 0x8848, ETH_PPPOE_SESSION = 0x8864 };
enum { P_HOP_BY_HOP = 0, P_ICMP = 1, P_TCP = 6, P_UDP = 17, P_ROUTING = 43, P_FRAGMENT = 44,
       P_AH = 51, P_ICMPV6 = 58, P_DEST_OPTIONS = 60, P_SCTP = 132, P_UDPLITE = 136 };
enum { LINK_NULL = 0, LINK_ETHERNET = 1, LINK_RAW_DLT12 = 12, LINK_RAW_DLT14 = 14, LINK_RAW = 101,
       LINK_LOOP = 108, LINK_SLL = 113, LINK_IPV4 = 228, LINK_IPV6 = 229, LINK_SLL2 = 276 };

static inline unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static inline int is_tpid(unsigned t) { return t == ETH_VLAN || t == ETH_QINQ || t == ETH_QINQ_LEGACY; }

/* ADDRESS_FAMILIES: AF_INET, AF_INET6 on Net/OpenBSD, FreeBSD, Darwin -> IP version, else 0. */
static inline int family_version(uint32_t af)
{
    return af == 2 ? 4 : (af == 24 || af == 28 || af == 30) ? 6 : 0;
}

/* IPV6_EXTENSIONS: the headers the IPv6 walk steps over (ESP and No Next Header end it). */
static inline int is_extension(unsigned p)
{
    return p == P_HOP_BY_HOP || p == P_ROUTING || p == P_FRAGMENT || p == P_DEST_OPTIONS || p == P_AH;
}

/* TRANSPORT_HEADER: fixed header length of the protocols whose ports are keyed, else 0. */
static inline int64_t transport_header(unsigned p)
{
    switch (p) {
    case P_TCP: return 20;
    case P_UDP: case P_UDPLITE: return 8;
    case P_SCTP: return 12;
    case P_ICMP: case P_ICMPV6: return 4;
    default: return 0;
    }
}

/* --- extract: decode_frame in C -------------------------------------------------------------- */

/* One accounted frame: a row of every output column. */
typedef struct {
    uint8_t key[KEY_BYTES];
    uint32_t length;
    uint8_t tcp_flags, ttl;
    uint16_t vlan, inner_vlan;
    uint32_t mpls[MPLS_KEPT];
} packet;

/* decode._link for the Ethernet-like links: VLAN tags, then IP, a PPPoE session header then IP, or an
 * MPLS stack then IP.
 * On success *pos is the IP header's offset and *version 4 or 6. */
static int ethertype_link(const uint8_t *f, int64_t cap, int64_t type_at, int64_t *pos, int *version,
                          packet *p)
{
    int64_t at = *pos; /* the link header's length */
    if (cap < at)
        return HEADER_TOO_SMALL;
    unsigned ethertype = be16(f + type_at);
    int64_t tags = 0;
    while (is_tpid(ethertype)) { /* any depth; the outer id and the next one are kept */
        if (cap < at + 4)
            return HEADER_TOO_SMALL;
        unsigned vid = be16(f + at) & VLAN_ID_MASK;
        ethertype = be16(f + at + 2);
        if (tags == 0)
            p->vlan = (uint16_t)vid;
        else if (tags == 1)
            p->inner_vlan = (uint16_t)vid;
        tags++;
        at += 4;
    }
    if (ethertype == ETH_IPV4 || ethertype == ETH_IPV6) {
        *pos = at;
        *version = ethertype == ETH_IPV4 ? 4 : 6;
        return ACCOUNTED;
    }
    if (ethertype == ETH_PPPOE_SESSION) {
        if (cap < at + PPPOE_HEADER)
            return HEADER_TOO_SMALL;
        unsigned protocol = be16(f + at + PPP_PROTOCOL_AT);
        if (protocol != PPP_IPV4 && protocol != PPP_IPV6) /* LCP, IPCP, MPLS over PPP... */
            return NOT_IP;
        *pos = at + PPPOE_HEADER;
        *version = protocol == PPP_IPV4 ? 4 : 6;
        return ACCOUNTED;
    }
    if (ethertype != ETH_MPLS && ethertype != ETH_MPLS_MULTICAST)
        return NOT_IP;
    for (int labels = 0;;) {
        if (cap < at + 4)
            return HEADER_TOO_SMALL;
        uint32_t entry = be32(f + at);
        at += 4;
        if (labels < MPLS_KEPT)
            p->mpls[labels++] = entry >> 8; /* label<<4 | exp<<1 | s; the TTL byte is dropped */
        if (entry & MPLS_BOTTOM)
            break;
    }
    if (cap <= at)
        return HEADER_TOO_SMALL;
    int nibble = f[at] >> 4; /* 0: pseudowire control word (Ethernet over MPLS); else unknown */
    if (nibble != 4 && nibble != 6)
        return NOT_IP;
    *pos = at;
    *version = nibble;
    return ACCOUNTED;
}

/* decode._link: where the IP header starts and which version the link announces (0: the nibble). */
static int link_layer(const uint8_t *f, int64_t cap, unsigned linktype, int64_t *pos, int *version,
                      packet *p)
{
    switch (linktype) {
    case LINK_ETHERNET: *pos = 14; return ethertype_link(f, cap, 12, pos, version, p);
    case LINK_SLL: *pos = 16; return ethertype_link(f, cap, 14, pos, version, p);
    case LINK_SLL2: *pos = 20; return ethertype_link(f, cap, 0, pos, version, p);
    case LINK_RAW: case LINK_RAW_DLT12: case LINK_RAW_DLT14:
        *pos = 0; *version = 0; return ACCOUNTED;
    case LINK_IPV4: *pos = 0; *version = 4; return ACCOUNTED;
    case LINK_IPV6: *pos = 0; *version = 6; return ACCOUNTED;
    case LINK_NULL: case LINK_LOOP: {
        if (cap < NULL_HEADER)
            return HEADER_TOO_SMALL;
        int v = family_version(be32(f));
        if (v == 0 && linktype == LINK_NULL) /* host byte order: either order is accepted */
            v = family_version(le32(f));
        if (v == 0)
            return NOT_IP;
        *pos = NULL_HEADER;
        *version = v;
        return ACCOUNTED;
    }
    default:
        return UNSUPPORTED_LINK_TYPE;
    }
}

/* decode._ip: the IP header, the truncation checks, the IPv6 extension walk and the transport ports,
 * into the key. */
static int ip_layer(const uint8_t *f, int64_t cap, int64_t pos, int version, int64_t wirelen,
                    packet *p)
{
    uint8_t *key = p->key;
    unsigned proto;
    int first = 1;
    int64_t upper, packet_end;
    const int64_t wire = wirelen > cap ? wirelen : cap; /* a snaplen is not damage: judge by the wire */
    if (version == 0) { /* raw IP link: the version nibble decides */
        if (cap <= pos)
            return HEADER_TOO_SMALL;
        version = f[pos] >> 4;
        if (version != 4 && version != 6)
            return BAD_IP_HEADER;
    }
    const uint8_t *h = f + pos;
    if (version == 4) {
        if (cap - pos < IPV4_MIN_HEADER)
            return HEADER_TOO_SMALL;
        int64_t header = (h[0] & 0x0F) * 4, total = be16(h + 2);
        if (h[0] >> 4 != 4 || header < IPV4_MIN_HEADER || total < header)
            return BAD_IP_HEADER;
        if (cap - pos < header)
            return HEADER_TOO_SMALL;
        if (pos + total > wire) /* Linux ip_rcv: InTruncatedPkts */
            return TRUNCATED;
        first = (be16(h + 6) & IPV4_OFFSET_MASK) == 0;
        proto = h[9];
        key[10] = key[11] = key[26] = key[27] = 0xFF; /* ::ffff:a.b.c.d */
        memcpy(key + 12, h + 12, 4);
        memcpy(key + 28, h + 16, 4);
        key[37] = h[1];
        p->ttl = h[8];
        p->length = (uint32_t)total;
        upper = pos + header;
        packet_end = pos + total;
    } else {
        if (cap - pos < IPV6_HEADER)
            return HEADER_TOO_SMALL;
        uint32_t vtf = be32(h);
        int64_t plen = be16(h + 4);
        if (vtf >> 28 != 6)
            return BAD_IP_HEADER;
        proto = h[6];
        memcpy(key, h + 8, 32);
        key[37] = (uint8_t)(vtf >> 20); /* traffic class */
        p->ttl = h[7];
        upper = pos + IPV6_HEADER;
        if (plen) {
            packet_end = upper + plen;
            p->length = (uint32_t)(plen + IPV6_HEADER);
            if (packet_end > wire) /* Linux ipv6_rcv: InTruncatedPkts, before the extension headers */
                return TRUNCATED;
        } else { /* jumbogram or offloaded super-packet: the wire says how long it is */
            packet_end = wire;
            p->length = (uint32_t)(wirelen - pos > IPV6_HEADER ? wirelen - pos : IPV6_HEADER);
        }
        /* after a later fragment's header: the middle of the fragmented part, not headers */
        while (first && is_extension(proto)) {
            unsigned next;
            int64_t size;
            if (proto == P_FRAGMENT) {
                if (cap < upper + 4)
                    return HEADER_TOO_SMALL;
                next = f[upper];
                first = be16(f + upper + 2) >> 3 == 0;
                size = FRAGMENT_HEADER;
            } else {
                if (cap < upper + 2)
                    return HEADER_TOO_SMALL;
                next = f[upper];
                size = proto == P_AH ? (f[upper + 1] + 2) * 4 : (f[upper + 1] + 1) * 8;
            }
            if (upper + size > packet_end)
                return BAD_IP_HEADER;
            proto = next;
            upper += size;
        }
    }
    /* a packet that ends inside its transport's fixed header is truncated (a tiny first fragment too);
     * ports only when that header is also captured */
    int64_t need = transport_header(proto);
    if (first && need && packet_end - upper < need)
        return TRUNCATED;
    int64_t end = cap < packet_end ? cap : packet_end;
    if (first && need && end - upper >= need) {
        if (proto == P_ICMP || proto == P_ICMPV6) { /* source 0, destination type*256 + code */
            key[34] = f[upper];
            key[35] = f[upper + 1];
        } else {
            memcpy(key + 32, f + upper, 4);
            if (proto == P_TCP)
                p->tcp_flags = f[upper + TCP_FLAGS_AT];
        }
    }
    key[36] = (uint8_t)proto;
    return ACCOUNTED;
}

/* frame_rules.frame_macs: destination then source MAC address of an accounted frame; the cooked
 * captures record only the sender's address (its length field must say 6), other links none. */
static inline void frame_macs(const uint8_t *f, unsigned linktype, uint8_t *out)
{
    memset(out, 0, MAC_BYTES);
    if (linktype == LINK_ETHERNET)
        memcpy(out, f, MAC_BYTES);
    else if (linktype == LINK_SLL && be16(f + 4) == MAC_LEN)
        memcpy(out + MAC_LEN, f + 6, MAC_LEN);
    else if (linktype == LINK_SLL2 && f[11] == MAC_LEN)
        memcpy(out + MAC_LEN, f + 12, MAC_LEN);
}

static int decode_one(const uint8_t *f, int64_t cap, unsigned linktype, int64_t wirelen,
                      uint32_t ifindex, packet *p)
{
    int64_t pos;
    int version, status;
    memset(p, 0, sizeof *p);
    status = link_layer(f, cap, linktype, &pos, &version, p);
    if (status == ACCOUNTED)
        status = ip_layer(f, cap, pos, version, wirelen, p);
    if (status != ACCOUNTED) {
        memset(p, 0, sizeof *p); /* a dropped frame's row is all zeros */
        return status;
    }
    p->key[38] = (uint8_t)(ifindex >> 8); /* the low 16 bits, big-endian */
    p->key[39] = (uint8_t)ifindex;
    return ACCOUNTED;
}

#endif
