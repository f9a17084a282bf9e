/* flowd.native._fastpath: the compiled pcap record walk and frame decoder of flowd's batch path.
 *
 * Two loops that flowd/capture/files.py and flowd/core/decode.py otherwise run in Python and numpy
 * (../shared/guide/performance.md, paths 4a/4b). Each does exactly what its pure twin does; the pure
 * code stays the statement of the rules and the oracle tests/flowd/test_fastpath.py compares with:
 *
 *   walk_pcap     ==  files._walk_pcap_numpy  (classic pcap records -> offset/caplen/wirelen/ts columns)
 *   extract       ==  decode.decode_frame, for every frame of a batch (key row, columns, status byte)
 *   walk_tpacket  ==  capture.ring.packet_offsets (TPACKET_V3 ring blocks -> packet header offsets)
 *
 * Arrays come in through the buffer protocol (numpy allocates them; no numpy headers are used), and
 * nothing is read outside the buffer or past a frame's caplen. The module is optional: without it
 * flowd runs the pure path, and FLOWD_NO_FASTPATH=1 forces that path even when it is built.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* --- shared tables (flowd.core.decode._CODE, _SLOW; flowd.capture.files._WalkStop) ---------------- */

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

/* Why walk_pcap stopped. */
enum walk_stop {
    WALK_FULL = 0,     /* max_records records taken */
    WALK_HEADER = 1,   /* the buffer ends at or inside the next record header */
    WALK_TOO_LONG = 2, /* the next record's caplen exceeds max_caplen */
    WALK_DATA = 3,     /* the buffer ends inside the next record's data */
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
#define PCAP_RECORD_HEADER 16
#define PREFETCH_AHEAD 16 /* frames: extract reads a frame's headers while later ones are on their way */
/* TPACKET_V3 (linux/if_packet.h): tpacket_block_desc is 48 bytes, its num_pkts, offset_to_first_pkt
 * and blk_len are at 12, 16 and 20; a tpacket3_hdr is 48 bytes, 8-aligned, tp_next_offset first. */
#define BLOCK_DESC_LEN 48
#define TPACKET3_HDR_LEN 48
#define TPACKET3_HDR_ALIGN 8

/* Why walk_tpacket stopped (flowd.capture.ring._TpacketWalk). */
enum tpacket_walk { TPACKET_OK = 0, TPACKET_BLOCK = 1, TPACKET_HEADER = 2, TPACKET_FULL = 3 };

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
static void frame_macs(const uint8_t *f, unsigned linktype, uint8_t *out)
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

/* --- buffer-protocol arguments --------------------------------------------------------------- */

#define MAX_ARRAYS 15

typedef struct {
    Py_buffer views[MAX_ARRAYS];
    int held;
} arrays;

static void release(arrays *a)
{
    while (a->held > 0)
        PyBuffer_Release(&a->views[--a->held]);
}

/* Take a C-contiguous array of at least n items of the native type with struct code `code`.
 * Returns its memory, or NULL with an exception set. */
static void *take(arrays *a, PyObject *obj, const char *name, char code, Py_ssize_t itemsize,
                  Py_ssize_t n, int writable)
{
    Py_buffer *v = &a->views[a->held];
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return NULL;
    a->held++;
    const char *fmt = v->format ? v->format : "B";
    if (*fmt == '@' || *fmt == '=' || (*fmt == '<' && PY_LITTLE_ENDIAN) || (*fmt == '>' && PY_BIG_ENDIAN))
        fmt++;
    char kind = fmt[0];
    /* the size check below tells int64 'q'/'l' and uint32 'I'/'L' apart from their wrong-size twins */
    int same_kind = kind == code || (code == 'q' && kind == 'l') || (code == 'I' && kind == 'L');
    if (!same_kind || fmt[1] != '\0' || v->itemsize != itemsize || v->len < n * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected at least %zd native '%c' items of %zd bytes",
                     name, n, code, itemsize);
        return NULL;
    }
    return v->buf;
}

/* The captured bytes: any buffer (bytes, memoryview, mmap, a uint8 array). */
static const uint8_t *take_bytes(arrays *a, PyObject *obj, Py_ssize_t *len)
{
    Py_buffer *v = &a->views[a->held];
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    a->held++;
    *len = v->len;
    return v->buf;
}

/* --- the Python functions -------------------------------------------------------------------- */

PyDoc_STRVAR(extract_doc,
"extract(buf, offsets, caplens, linktypes, ifindexes, wirelens, key_out, length_out, flags_out,\n"
"        ttl_out, vlan_out, inner_vlan_out, mpls_out, status_out, mac_out) -> None\n\n"
"Decode every frame buf[offsets[i]:offsets[i] + caplens[i]] as flowd.core.decode.decode_frame does:\n"
"row i of the outputs gets its key and columns, status_out[i] 0 (accounted), a drop code or 255\n"
"(not decided here). Input arrays: int64, uint32, uint16, uint32, uint32; outputs: uint8 (n, 40),\n"
"uint32, uint8, uint8, uint16, uint16, uint32 (n, 3), uint8, and uint8 (n, 12) or None (no MACs).");

static PyObject *extract(PyObject *self, PyObject *args)
{
    PyObject *o[MAX_ARRAYS];
    arrays a = {.held = 0};
    Py_ssize_t buflen;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOOO:extract", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &o[13], &o[14]))
        return NULL;
    const uint8_t *buf = take_bytes(&a, o[0], &buflen);
    if (buf == NULL)
        goto fail;
    Py_ssize_t n = PyObject_Length(o[1]);
    if (n < 0)
        goto fail;
    const int64_t *offsets = take(&a, o[1], "offsets", 'q', 8, n, 0);
    const uint32_t *caplens = offsets ? take(&a, o[2], "caplens", 'I', 4, n, 0) : NULL;
    const uint16_t *linktypes = caplens ? take(&a, o[3], "linktypes", 'H', 2, n, 0) : NULL;
    const uint32_t *ifindexes = linktypes ? take(&a, o[4], "ifindexes", 'I', 4, n, 0) : NULL;
    const uint32_t *wirelens = ifindexes ? take(&a, o[5], "wirelens", 'I', 4, n, 0) : NULL;
    uint8_t *key = wirelens ? take(&a, o[6], "key_out", 'B', 1, n * KEY_BYTES, 1) : NULL;
    uint32_t *length = key ? take(&a, o[7], "length_out", 'I', 4, n, 1) : NULL;
    uint8_t *flags = length ? take(&a, o[8], "flags_out", 'B', 1, n, 1) : NULL;
    uint8_t *ttl = flags ? take(&a, o[9], "ttl_out", 'B', 1, n, 1) : NULL;
    uint16_t *vlan = ttl ? take(&a, o[10], "vlan_out", 'H', 2, n, 1) : NULL;
    uint16_t *inner = vlan ? take(&a, o[11], "inner_vlan_out", 'H', 2, n, 1) : NULL;
    uint32_t *mpls = inner ? take(&a, o[12], "mpls_out", 'I', 4, n * MPLS_KEPT, 1) : NULL;
    uint8_t *status = mpls ? take(&a, o[13], "status_out", 'B', 1, n, 1) : NULL;
    if (status == NULL)
        goto fail;
    uint8_t *mac = NULL;
    if (o[14] != Py_None && (mac = take(&a, o[14], "mac_out", 'B', 1, n * MAC_BYTES, 1)) == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        packet p;
        int64_t off = offsets[i], cap = caplens[i];
        if (i + PREFETCH_AHEAD < n) { /* full frames lie far apart: fetch a later frame's headers now */
            int64_t ahead = offsets[i + PREFETCH_AHEAD];
            if (ahead >= 0 && ahead < buflen) {
                __builtin_prefetch(buf + ahead);
                if (ahead + 64 < buflen)
                    __builtin_prefetch(buf + ahead + 64);
            }
        }
        if (off < 0 || off > buflen || cap > buflen - off) { /* decode() refuses such a batch */
            memset(&p, 0, sizeof p);
            status[i] = SLOW;
        } else {
            status[i] = (uint8_t)decode_one(buf + off, cap, linktypes[i], wirelens[i], ifindexes[i], &p);
        }
        memcpy(key + i * KEY_BYTES, p.key, KEY_BYTES);
        length[i] = p.length;
        flags[i] = p.tcp_flags;
        ttl[i] = p.ttl;
        vlan[i] = p.vlan;
        inner[i] = p.inner_vlan;
        memcpy(mpls + i * MPLS_KEPT, p.mpls, sizeof p.mpls);
        if (mac) {
            if (status[i] == ACCOUNTED)
                frame_macs(buf + off, linktypes[i], mac + i * MAC_BYTES);
            else
                memset(mac + i * MAC_BYTES, 0, MAC_BYTES);
        }
    }
    Py_END_ALLOW_THREADS

    release(&a);
    Py_RETURN_NONE;
fail:
    release(&a);
    return NULL;
}

PyDoc_STRVAR(walk_pcap_doc,
"walk_pcap(buf, start, end, max_records, swapped, nanosecond, offset_out, caplen_out, wirelen_out,\n"
"          ts_out, max_caplen) -> (count, next_pos, status)\n\n"
"Walk classic pcap records from buf[start] while they lie whole before `end`: up to max_records\n"
"rows of data offset (int64), caplen and wirelen (uint32) and timestamp in seconds (float64).\n"
"next_pos is where the walk stopped; status says why (flowd.capture.files._WalkStop).");

static PyObject *walk_pcap(PyObject *self, PyObject *args)
{
    PyObject *bufobj, *offo, *capo, *wireo, *tso;
    Py_ssize_t start, end, max_records, max_caplen, buflen;
    int swapped, nanosecond;
    arrays a = {.held = 0};
    (void)self;
    if (!PyArg_ParseTuple(args, "OnnnppOOOOn:walk_pcap", &bufobj, &start, &end, &max_records,
                          &swapped, &nanosecond, &offo, &capo, &wireo, &tso, &max_caplen))
        return NULL;
    const uint8_t *buf = take_bytes(&a, bufobj, &buflen);
    if (buf == NULL)
        goto fail;
    if (start < 0 || end < start || end > buflen || max_records < 0 || max_caplen < 0) {
        PyErr_SetString(PyExc_ValueError, "walk_pcap: need 0 <= start <= end <= len(buf), "
                                          "max_records >= 0 and max_caplen >= 0");
        goto fail;
    }
    int64_t *offsets = take(&a, offo, "offset_out", 'q', 8, max_records, 1);
    uint32_t *caplens = offsets ? take(&a, capo, "caplen_out", 'I', 4, max_records, 1) : NULL;
    uint32_t *wirelens = caplens ? take(&a, wireo, "wirelen_out", 'I', 4, max_records, 1) : NULL;
    double *ts = wirelens ? take(&a, tso, "ts_out", 'd', 8, max_records, 1) : NULL;
    if (ts == NULL)
        goto fail;

    const double units = nanosecond ? 1e9 : 1e6;
    Py_ssize_t pos = start, count = 0;
    int stop = WALK_FULL;
    Py_BEGIN_ALLOW_THREADS
    for (; count < max_records; count++) {
        /* record header: seconds, fraction, captured length, original length (file byte order) */
        if (end - pos < PCAP_RECORD_HEADER) {
            stop = WALK_HEADER;
            break;
        }
        uint32_t field[4];
        memcpy(field, buf + pos, sizeof field);
        if (swapped)
            for (int k = 0; k < 4; k++)
                field[k] = __builtin_bswap32(field[k]);
        if (field[2] > (uint64_t)max_caplen) {
            stop = WALK_TOO_LONG;
            break;
        }
        if ((Py_ssize_t)field[2] > end - pos - PCAP_RECORD_HEADER) {
            stop = WALK_DATA;
            break;
        }
        offsets[count] = pos + PCAP_RECORD_HEADER;
        caplens[count] = field[2];
        wirelens[count] = field[3];
        ts[count] = (double)field[0] + (double)field[1] / units; /* as numpy: sec + frac / units */
        pos += PCAP_RECORD_HEADER + (Py_ssize_t)field[2];
    }
    Py_END_ALLOW_THREADS

    release(&a);
    return Py_BuildValue("nni", count, pos, stop);
fail:
    release(&a);
    return NULL;
}

PyDoc_STRVAR(walk_tpacket_doc,
"walk_tpacket(buf, starts, offset_out, end_out, max_packets) -> (count, status, block, at)\n\n"
"Follow tp_next_offset through the TPACKET_V3 blocks copied into buf at starts (int64): row i of\n"
"the outputs (int64) gets a packet header's offset and the end of its block. status 0 when every\n"
"block was walked, else why not (flowd.capture.ring._TpacketWalk), with the failing block's index\n"
"and the offending header offset.");

static PyObject *walk_tpacket(PyObject *self, PyObject *args)
{
    PyObject *bufobj, *starto, *offo, *endo;
    Py_ssize_t max_packets, buflen;
    arrays a = {.held = 0};
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOn:walk_tpacket", &bufobj, &starto, &offo, &endo, &max_packets))
        return NULL;
    const uint8_t *buf = take_bytes(&a, bufobj, &buflen);
    if (buf == NULL)
        goto fail;
    Py_buffer *sv = &a.views[a.held];
    if (PyObject_GetBuffer(starto, sv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto fail;
    a.held++;
    Py_ssize_t blocks = sv->len / 8;
    const int64_t *starts = take(&a, starto, "starts", 'q', 8, blocks, 0);
    int64_t *offsets = starts ? take(&a, offo, "offset_out", 'q', 8, max_packets, 1) : NULL;
    int64_t *ends = offsets ? take(&a, endo, "end_out", 'q', 8, max_packets, 1) : NULL;
    if (ends == NULL || max_packets < 0)
        goto fail;

    Py_ssize_t count = 0, block = 0;
    int64_t at = 0;
    int status = TPACKET_OK;
    Py_BEGIN_ALLOW_THREADS
    for (; block < blocks; block++) {
        int64_t start = starts[block];
        uint32_t head[3]; /* num_pkts, offset_to_first_pkt, blk_len */
        if (start < 0 || start + BLOCK_DESC_LEN > buflen) {
            status = TPACKET_BLOCK;
            break;
        }
        memcpy(head, buf + start + 12, sizeof head);
        int64_t end = start + (int64_t)head[2];
        if ((int64_t)head[2] > buflen - start || (head[0] && head[1] < BLOCK_DESC_LEN)) {
            status = TPACKET_BLOCK;
            break;
        }
        at = start + (int64_t)head[1];
        for (uint32_t i = 0; i < head[0]; i++) {
            if (at + TPACKET3_HDR_LEN > end || at % TPACKET3_HDR_ALIGN != 0) {
                status = TPACKET_HEADER;
                break;
            }
            if (count == max_packets) {
                status = TPACKET_FULL;
                break;
            }
            offsets[count] = at;
            ends[count] = end;
            count++;
            uint32_t next;
            memcpy(&next, buf + at, sizeof next);
            at += next;
        }
        if (status != TPACKET_OK)
            break;
    }
    Py_END_ALLOW_THREADS

    release(&a);
    return Py_BuildValue("ninL", count, status, block, (long long)at);
fail:
    release(&a);
    return NULL;
}

/* --- the module ------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"extract", extract, METH_VARARGS, extract_doc},
    {"walk_pcap", walk_pcap, METH_VARARGS, walk_pcap_doc},
    {"walk_tpacket", walk_tpacket, METH_VARARGS, walk_tpacket_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowd.native._fastpath",
    "Compiled pcap record and ring block walks and frame decoder for flowd's batch path (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* name -> code pairs the Python side checks against its own tables before using this module */
static int add_table(PyObject *m, const char *attr, const char *const *names, const int *codes, int n)
{
    PyObject *table = PyDict_New();
    if (table == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        PyObject *code = PyLong_FromLong(codes[i]);
        if (code == NULL || PyDict_SetItemString(table, names[i], code) < 0) {
            Py_XDECREF(code);
            Py_DECREF(table);
            return -1;
        }
        Py_DECREF(code);
    }
    if (PyModule_AddObject(m, attr, table) < 0) {
        Py_DECREF(table);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__fastpath(void)
{
    static const char *const drop_names[] = {"not-ip", "header-too-small", "bad-ip-header",
                                             "unsupported-link-type", "truncated"};
    static const int drop_codes[] = {NOT_IP, HEADER_TOO_SMALL, BAD_IP_HEADER, UNSUPPORTED_LINK_TYPE,
                                     TRUNCATED};
    static const char *const stop_names[] = {"FULL", "HEADER", "TOO_LONG", "DATA"};
    static const int stop_codes[] = {WALK_FULL, WALK_HEADER, WALK_TOO_LONG, WALK_DATA};
    static const char *const tpacket_names[] = {"OK", "BLOCK", "HEADER", "FULL"};
    static const int tpacket_codes[] = {TPACKET_OK, TPACKET_BLOCK, TPACKET_HEADER, TPACKET_FULL};
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (add_table(m, "DROP_CODES", drop_names, drop_codes, 5) < 0
        || add_table(m, "WALK_STOPS", stop_names, stop_codes, 4) < 0
        || add_table(m, "TPACKET_WALKS", tpacket_names, tpacket_codes, 4) < 0
        || PyModule_AddIntConstant(m, "SLOW", SLOW) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
