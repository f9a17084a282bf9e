/* flowd.native._flowtable.ingest_ring: every ready block of a TPACKET_V3 ring decoded straight into the flow cache.
 *
 * The live packet path of a capture with no firewall filter and no packets-per-second cap in one call,
 * with no frame batch in between: for each ready block in ring order (from index `first`, while its
 * block_status has TP_STATUS_USER) every frame is decoded in place (_decode.h; an outer VLAN tag the
 * kernel took off is put back first, in a scratch frame, as flowd.capture.ring_walk.frames_of does),
 * its family's 1-in-N / run-length sampler decides, and the block's sampled packets of each family go
 * to that family's table as one batch (_flowtable.c's add); then the block goes back to the kernel.
 * Python is reached once per call, not once per block: flowd/core/live_path.py turns the counts into
 * statistics and drains the ended flows. It is the compiled form of PacketRing.read + Pipeline.process
 * with one block per batch, which stay the statement (tests/flowd/test_live_path.py compares the two).
 *
 * ingest_ring(ring, first, block_size, block_count, linktype, ifindex, shift, tables, macs, sampling, edges, counts)
 *   tables: (inet Table or None, inet6 Table or None); None: that family is not sampled on this input
 *   macs: bit 0 (inet), bit 1 (inet6): that family's table keeps each flow's MAC addresses
 *   sampling: int64[6] (position, rate, run_length) of the inet then inet6 sampler; positions advance
 *   edges: uint32 size-range lower bounds after the first (flowd.core.stats.SIZE_EDGES)
 *   counts: int64[COUNT_SIZES + len(edges) + 1], added to (layout: enum count below)
 * returns (status, next block index, blocks taken, inet flows ended, inet6 flows ended); a status other
 * than RING_OK names what is wrong with the block at `next` (the blocks before it were taken).
 */
#include "_flowtable.h"
#include "_decode.h"
#include "_tpacket.h"

#include <stdlib.h>

enum count {
    COUNT_FRAMES = 0,
    COUNT_DROPS = 1,       /* + decode status (1..5): frames dropped by that code */
    COUNT_UNBOUND = 6,     /* + family (0 inet, 1 inet6): accounted packets of a family not sampled here */
    COUNT_OFFERED = 8,     /* + family: packets offered to the sampler */
    COUNT_SAMPLED = 10,    /* + family: packets it took (handed to the table) */
    COUNT_SIZES = 12,      /* the size histogram of sampled packets, len(edges) + 1 bins */
};
#define MAX_FRAME (65535 + VLAN_TAG)

typedef struct {  /* one family's packets of one block, as Table.add's columns */
    uint8_t *key;
    uint32_t *length, *mpls;
    double *ts;
    uint8_t *flags, *ttl;
    uint16_t *vlan, *inner;
    uint8_t *mac;  /* MAC_BYTES a row once a table of this family kept MAC addresses */
    int use_mac;   /* this call's table keeps them */
    Py_ssize_t n;
} columns;

static void columns_free(columns *c)
{
    free(c->key); free(c->length); free(c->mpls); free(c->ts); free(c->flags); free(c->ttl); free(c->vlan);
    free(c->inner); free(c->mac);
    memset(c, 0, sizeof *c);
}

/* Each thread's columns stay allocated between calls (grown when a block holds more packets, or when a
 * family starts keeping MAC addresses): a call then touches no fresh pages, and the heap is not trimmed
 * and refaulted at every wake-up. */
static __thread columns kept[2];
static __thread size_t kept_rows[2];

static int columns_alloc(columns *c, size_t rows, int macs)
{
    columns_free(c);
    c->mac = macs ? malloc(rows * MAC_BYTES) : NULL;
    if (macs && !c->mac)
        return -1;
    c->key = malloc(rows * KEY_BYTES);
    c->length = malloc(rows * 4);
    c->mpls = malloc(rows * 4 * MPLS_KEPT);
    c->ts = malloc(rows * 8);
    c->flags = malloc(rows);
    c->ttl = malloc(rows);
    c->vlan = malloc(rows * 2);
    c->inner = malloc(rows * 2);
    return c->key && c->length && c->mpls && c->ts && c->flags && c->ttl && c->vlan && c->inner ? 0 : -1;
}

static inline void columns_put(columns *c, const packet *p, double ts, const uint8_t *frame, unsigned linktype)
{
    Py_ssize_t i = c->n++;
    if (c->use_mac)
        frame_macs(frame, linktype, c->mac + i * MAC_BYTES);
    memcpy(c->key + i * KEY_BYTES, p->key, KEY_BYTES);
    c->length[i] = p->length;
    memcpy(c->mpls + i * MPLS_KEPT, p->mpls, sizeof p->mpls);
    c->ts[i] = ts;
    c->flags[i] = p->tcp_flags;
    c->ttl[i] = p->ttl;
    c->vlan[i] = p->vlan;
    c->inner[i] = p->inner_vlan;
}

enum { B_RING, B_SAMPLING, B_EDGES, B_COUNTS, NBUFFERS };

typedef struct {
    Py_buffer v[NBUFFERS];
    int held;  /* the first `held` are taken */
} buffers;

/* The next argument's buffer, writable or not, made of itemsize-byte items; 0, or -1 with an exception set. */
static int take_buffer(buffers *b, PyObject *obj, Py_ssize_t itemsize, int writable, const char *name)
{
    Py_buffer *v = &b->v[b->held];
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    b->held++;
    if (v->len % itemsize) {
        PyErr_Format(PyExc_ValueError, "ingest_ring: %s is not made of %zd-byte items", name, itemsize);
        return -1;
    }
    return 0;
}

static void buffers_release(buffers *b)
{
    while (b->held > 0)
        PyBuffer_Release(&b->v[--b->held]);
}

/* Hand a block's packets of each family to its table; 0, or -1 with an exception set. */
static int flush_columns(PyObject *const tables[2], columns cols[2], size_t ended[2])
{
    for (int f = 0; f < 2; f++) {
        columns *c = &cols[f];
        if (c->n && flowtable_add(tables[f], c->n, c->key, c->length, c->ts, c->flags, c->ttl, c->vlan,
                                  c->inner, c->mpls, c->use_mac ? c->mac : NULL, &ended[f]) < 0)
            return -1;
        c->n = 0;
    }
    return 0;
}

static PyObject *ingest_ring(PyObject *self, PyObject *args)
{
    PyObject *ringobj, *tableargs, *samplingobj, *edgesobj, *countsobj;
    long long first, size, count;
    unsigned linktype, ifindex;
    double shift;
    int macs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OLLLIIdO!iOOO:ingest_ring", &ringobj, &first, &size, &count, &linktype, &ifindex,
                          &shift, &PyTuple_Type, &tableargs, &macs, &samplingobj, &edgesobj, &countsobj))
        return NULL;
    PyObject *tables[2] = {NULL, NULL};
    if (PyTuple_GET_SIZE(tableargs) != 2) {
        PyErr_SetString(PyExc_ValueError, "ingest_ring: tables must be (inet table or None, inet6 table or None)");
        return NULL;
    }
    for (int f = 0; f < 2; f++) {
        PyObject *t = PyTuple_GET_ITEM(tableargs, f);
        if (t != Py_None && !flowtable_check(t)) {
            PyErr_SetString(PyExc_TypeError, "ingest_ring: a table is not a flowd.native._flowtable.Table");
            return NULL;
        }
        tables[f] = t == Py_None ? NULL : t;
    }
    buffers b = {.held = 0};
    PyObject *result = NULL;
    columns *cols = kept;
    for (int f = 0; f < 2; f++)
        cols[f].use_mac = 0;  /* until the columns have room for them */
    uint8_t *scratch = NULL;
    if (take_buffer(&b, ringobj, 1, 1, "ring") < 0 || take_buffer(&b, samplingobj, 8, 1, "sampling") < 0
        || take_buffer(&b, edgesobj, 4, 0, "edges") < 0 || take_buffer(&b, countsobj, 8, 1, "counts") < 0)
        goto done;
    Py_ssize_t nedges = b.v[B_EDGES].len / 4;
    if (size < BLOCK_DESC_BYTES || count < 1 || first < 0 || first >= count || size * count > b.v[B_RING].len
        || b.v[B_SAMPLING].len != 6 * 8 || b.v[B_COUNTS].len / 8 < COUNT_SIZES + nedges + 1) {
        PyErr_SetString(PyExc_ValueError, "ingest_ring: the ring geometry or an array size does not fit");
        goto done;
    }
    int64_t *sampling = b.v[B_SAMPLING].buf, *counts = b.v[B_COUNTS].buf;
    const uint32_t *edges = b.v[B_EDGES].buf;
    for (int f = 0; f < 2; f++)
        if (tables[f] && (sampling[3 * f + 1] < 1 || sampling[3 * f] < 0)) {
            PyErr_SetString(PyExc_ValueError, "ingest_ring: a sampling rate below 1 or a negative position");
            goto done;
        }
    int ethernet = linktype == LINK_ETHERNET, status = RING_OK;
    size_t ended[2] = {0, 0};
    int64_t taken = 0, i = first;
    uint8_t *ring = b.v[B_RING].buf;
    for (; taken < count; i = (i + 1) % count, taken++) {
        uint8_t *block = ring + i * size;
        if (!block_ready(block))
            break;
        uint32_t packets;
        int64_t off, end;
        if ((status = block_bounds(block, size, &packets, &off, &end)) != RING_OK)
            break;
        for (int f = 0; f < 2; f++)
            if (packets > kept_rows[f] || (((macs >> f) & 1) && !kept[f].mac)) {
                size_t rows = packets > kept_rows[f] ? packets : kept_rows[f];
                kept_rows[f] = 0;
                if (columns_alloc(&kept[f], rows, (macs >> f) & 1) < 0) {
                    columns_free(&kept[f]);
                    PyErr_NoMemory();
                    goto done;
                }
                kept_rows[f] = rows;
            }
        for (int f = 0; f < 2; f++)
            cols[f].use_mac = (macs >> f) & 1;
        for (uint32_t p = 0; p < packets && status == RING_OK; p++) {
            tp_packet pk;
            if ((status = block_packet(block, off, end, ethernet, &pk)) != RING_OK)
                break;
            off += pk.next;
            if (p + 1 < packets && off + 192 <= end) {  /* the next packet's header and first frame lines */
                __builtin_prefetch(block + off);
                __builtin_prefetch(block + off + 64);
                __builtin_prefetch(block + off + 128);
            }
            const uint8_t *frame = pk.mac;
            uint32_t cap = pk.snap, wire = pk.len;
            if (pk.tagged) {
                if (scratch == NULL && (scratch = malloc(MAX_FRAME)) == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                cap = packet_copy(&pk, scratch);
                wire += VLAN_TAG;
                frame = scratch;
            }
            counts[COUNT_FRAMES]++;
            packet decoded;
            int code = decode_one(frame, cap, linktype, wire, ifindex, &decoded);
            if (code != ACCOUNTED) {
                counts[COUNT_DROPS + code - 1]++;  /* 1..DROP_CODES: every frame lies in its block */
                continue;
            }
            int f = is_v4(decoded.key) ? 0 : 1;
            if (tables[f] == NULL) {
                counts[COUNT_UNBOUND + f]++;
                continue;
            }
            int64_t *position = &sampling[3 * f];
            counts[COUNT_OFFERED + f]++;
            int64_t rate = sampling[3 * f + 1];
            int keep = rate == 1 || *position % rate <= sampling[3 * f + 2];
            ++*position;
            if (!keep)
                continue;
            counts[COUNT_SAMPLED + f]++;
            Py_ssize_t bin = 0;
            while (bin < nedges && edges[bin] <= decoded.length)
                bin++;
            counts[COUNT_SIZES + bin]++;
            columns_put(&cols[f], &decoded, (double)pk.sec + (double)pk.nsec * 1e-9 + shift, frame, linktype);
        }
        if (status != RING_OK)
            break;
        if (flush_columns(tables, cols, ended) < 0)
            goto done;
        block_release(block);
    }
    /* A damaged block: the packets taken from it before the damage are accounted, the block is kept. */
    if (status != RING_OK && flush_columns(tables, cols, ended) < 0)
        goto done;
    result = Py_BuildValue("iLLnn", status, (long long)i, (long long)taken, (Py_ssize_t)ended[0],
                           (Py_ssize_t)ended[1]);
done:
    cols[0].n = cols[1].n = 0;
    free(scratch);
    buffers_release(&b);
    return result;
}

PyDoc_STRVAR(ingest_ring_doc,
"ingest_ring(ring, first, block_size, block_count, linktype, ifindex, shift, tables, macs, sampling, edges,\n"
"counts) "
"-> (status, next, blocks, inet_ended, inet6_ended): every ready block decoded into the flow cache\n"
"(see flowd/native/_live.c).");

__attribute__((visibility("hidden"))) PyMethodDef live_methods[] = {
    {"ingest_ring", ingest_ring, METH_VARARGS, ingest_ring_doc},
    {NULL, NULL, 0, NULL},
};

__attribute__((visibility("hidden"))) int live_constants(PyObject *m)
{
    return PyModule_AddIntConstant(m, "RING_OK", RING_OK) || PyModule_AddIntConstant(m, "RING_BLOCK", RING_BLOCK)
        || PyModule_AddIntConstant(m, "RING_HEADER", RING_HEADER) || PyModule_AddIntConstant(m, "RING_FRAME", RING_FRAME)
        || PyModule_AddIntConstant(m, "COUNT_FRAMES", COUNT_FRAMES)
        || PyModule_AddIntConstant(m, "COUNT_DROPS", COUNT_DROPS)
        || PyModule_AddIntConstant(m, "COUNT_UNBOUND", COUNT_UNBOUND)
        || PyModule_AddIntConstant(m, "COUNT_OFFERED", COUNT_OFFERED)
        || PyModule_AddIntConstant(m, "COUNT_SAMPLED", COUNT_SAMPLED)
        || PyModule_AddIntConstant(m, "COUNT_SIZES", COUNT_SIZES) ? -1 : 0;
}
