/* flowd/native/_tpacket.h: reading a TPACKET_V3 ring's blocks in place (linux/if_packet.h layouts).
 *
 * Shared by flowd.native._ring (read_ring: ready blocks copied out as a frame batch) and flowd.native.
 * _flowtable's live ingest (flowd/native/_live.c: ready blocks decoded straight into the flow cache).
 * flowd.capture.ring.PacketRing.read_python and flowd.capture.ring_walk.frames_of state the walk.
 */
#ifndef FLOWD_TPACKET_H
#define FLOWD_TPACKET_H

#include <stdint.h>
#include <string.h>

enum ring_status { RING_OK = 0, RING_BLOCK = 1, RING_HEADER = 2, RING_FRAME = 3 };

enum {
    TP_STATUS_USER = 1, TP_STATUS_VLAN_VALID = 1 << 4, TP_STATUS_VLAN_TPID_VALID = 1 << 6,
    BLOCK_STATUS_AT = 8, BLOCK_PACKETS_AT = 12, BLOCK_FIRST_AT = 16, BLOCK_LENGTH_AT = 20, BLOCK_DESC_BYTES = 48,
    HDR_NEXT = 0, HDR_SEC = 4, HDR_NSEC = 8, HDR_SNAPLEN = 12, HDR_LEN = 16, HDR_STATUS = 20, HDR_MAC = 24,
    HDR_VLAN_TCI = 32, HDR_VLAN_TPID = 36, HDR_LEN_TOTAL = 48, HDR_ALIGN = 8,
    MAC_ADDRESSES = 12, VLAN_TAG = 4, TPID_8021Q = 0x8100
};

static inline uint32_t u32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t u16_at(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* Whether the kernel has handed the block over (acquire: its data is visible once this says so). */
static inline int block_ready(const uint8_t *block)
{
    return (__atomic_load_n((const uint32_t *)(block + BLOCK_STATUS_AT), __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0;
}

/* Hand the block back to the kernel (TP_STATUS_KERNEL, release order). */
static inline void block_release(uint8_t *block)
{
    __atomic_store_n((uint32_t *)(block + BLOCK_STATUS_AT), 0, __ATOMIC_RELEASE);
}

/* A ready block's packet count, first packet offset and used length; RING_BLOCK when they do not fit. */
static inline int block_bounds(const uint8_t *block, int64_t size, uint32_t *packets, int64_t *first, int64_t *end)
{
    *packets = u32_at(block + BLOCK_PACKETS_AT);
    *first = u32_at(block + BLOCK_FIRST_AT);
    *end = u32_at(block + BLOCK_LENGTH_AT);
    if (*end > size || (*packets && (*first < BLOCK_DESC_BYTES || *first > *end)))
        return RING_BLOCK;
    return RING_OK;
}

/* One packet of a block: where its frame lies and the header fields a batch keeps. */
typedef struct {
    const uint8_t *mac;   /* the captured bytes (without the tag the kernel took off) */
    uint32_t snap, len;   /* tp_snaplen, tp_len as the kernel reports them */
    uint32_t sec, nsec;
    uint32_t next;        /* tp_next_offset */
    int tagged;           /* an outer VLAN tag to put back after the MAC addresses */
    unsigned tpid, tci;
} tp_packet;

/* The packet whose tpacket3_hdr is at `off` in a block of `end` used bytes; RING_HEADER or RING_FRAME when
 * the header or the frame does not lie inside the block. */
static inline int block_packet(const uint8_t *block, int64_t off, int64_t end, int ethernet, tp_packet *p)
{
    if (off + HDR_LEN_TOTAL > end || off % HDR_ALIGN)
        return RING_HEADER;
    const uint8_t *h = block + off;
    uint32_t status = u32_at(h + HDR_STATUS);
    int64_t mac = off + u16_at(h + HDR_MAC);
    p->snap = u32_at(h + HDR_SNAPLEN);
    if (mac + (int64_t)p->snap > end)
        return RING_FRAME;
    p->mac = block + mac;
    p->len = u32_at(h + HDR_LEN);
    p->sec = u32_at(h + HDR_SEC);
    p->nsec = u32_at(h + HDR_NSEC);
    p->next = u32_at(h + HDR_NEXT);
    p->tagged = ethernet && (status & TP_STATUS_VLAN_VALID) && p->snap >= MAC_ADDRESSES;
    p->tpid = status & TP_STATUS_VLAN_TPID_VALID ? u16_at(h + HDR_VLAN_TPID) : TPID_8021Q;
    p->tci = u32_at(h + HDR_VLAN_TCI) & 0xFFFF;
    return RING_OK;
}

/* The frame as it was on the wire (an outer tag put back, as libpcap does): its length, copied to dst. */
static inline uint32_t packet_copy(const tp_packet *p, uint8_t *dst)
{
    if (!p->tagged) {
        memcpy(dst, p->mac, p->snap);
        return p->snap;
    }
    memcpy(dst, p->mac, MAC_ADDRESSES);
    dst[12] = p->tpid >> 8; dst[13] = p->tpid & 0xFF; dst[14] = p->tci >> 8; dst[15] = p->tci & 0xFF;
    memcpy(dst + MAC_ADDRESSES + VLAN_TAG, p->mac + MAC_ADDRESSES, p->snap - MAC_ADDRESSES);
    return p->snap + VLAN_TAG;
}

#endif
