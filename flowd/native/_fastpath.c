/* flowd.native._fastpath: the compiled pcap record walk, frame decoder and shard grouping of flowd's batch
 * path.
 *
 * Loops that flowd/capture/files.py, flowd/core/decode.py and flowd/runtime/shard_rows.py otherwise run
 * in Python and numpy (../shared/guide/performance.md, paths 4a/4b). Each does exactly what its pure twin
 * does; the pure code stays the statement of the rules and the oracle the tests compare with
 * (tests/flowd/test_fastpath.py, tests/flowd/test_shard_rows.py):
 *
 *   walk_pcap     ==  files._walk_pcap_numpy  (classic pcap records -> offset/caplen/wirelen/ts columns)
 *   extract       ==  decode.decode_frame, for every frame of a batch (key row, columns, status byte)
 *   walk_tpacket  ==  capture.ring.packet_offsets (TPACKET_V3 ring blocks -> packet header offsets)
 *   group_rows    ==  runtime.shard_rows.group_rows_numpy (batch-mode rows grouped by owning shard)
 *
 * Arrays come in through the buffer protocol (numpy allocates them; no numpy headers are used), and
 * nothing is read outside the buffer or past a frame's caplen. The module is optional: without it
 * flowd runs the pure path, and FLOWD_NO_FASTPATH=1 forces that path even when it is built.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_decode.h"
#include "_flowkey.h"

/* --- shared tables (flowd.capture.files._WalkStop; the decode codes are in _decode.h) ------------- */

/* Why walk_pcap stopped. */
enum walk_stop {
    WALK_FULL = 0,     /* max_records records taken */
    WALK_HEADER = 1,   /* the buffer ends at or inside the next record header */
    WALK_TOO_LONG = 2, /* the next record's caplen exceeds max_caplen */
    WALK_DATA = 3,     /* the buffer ends inside the next record's data */
};

/* --- batch constants ---------------------------------------------------------------------- */

#define PCAP_RECORD_HEADER 16
#define WALK_AHEAD 32768 /* bytes the pcap walk fetches ahead of the record it reads */
#define PREFETCH_AHEAD 16 /* frames: extract reads a frame's headers while later ones are on their way */
/* TPACKET_V3 (linux/if_packet.h): tpacket_block_desc is 48 bytes, its num_pkts, offset_to_first_pkt
 * and blk_len are at 12, 16 and 20; a tpacket3_hdr is 48 bytes, 8-aligned, tp_next_offset first. */
#define BLOCK_DESC_LEN 48
#define TPACKET3_HDR_LEN 48
#define TPACKET3_HDR_ALIGN 8
/* Why walk_tpacket stopped (flowd.capture.ring._TpacketWalk). */
enum tpacket_walk { TPACKET_OK = 0, TPACKET_BLOCK = 1, TPACKET_HEADER = 2, TPACKET_FULL = 3 };

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
    Py_ssize_t pos = start, count = 0, ahead = start;
    int stop = WALK_FULL;
    Py_BEGIN_ALLOW_THREADS
    for (; count < max_records; count++) {
        /* Each header's place depends on the one before, so the walk would wait on memory for every
         * record: stream the bytes WALK_AHEAD beyond it into the cache instead, line by line. */
        for (Py_ssize_t until = pos + WALK_AHEAD < end ? pos + WALK_AHEAD : end; ahead < until; ahead += 64)
            __builtin_prefetch(buf + ahead);
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

PyDoc_STRVAR(group_rows_doc,
"group_rows(keys, status, shards, order_out, counts_out) -> rows\n\n"
"The rows of an (n, 40) uint8 key array grouped as flowd.runtime.shard_rows.group_rows_numpy does:\n"
"group 2 * shard + (0 for IPv4, 1 for IPv6), the shard from the key's hash (shard_of); order_out\n"
"(int64, n) gets the row numbers group by group, each group in row order, counts_out (int64,\n"
"2 * shards) each group's size. Only rows whose status (uint8, n, or None: every row) is 0 count.");

/* flowd.runtime.shard_rows.shard_of's hash: the key's five native words folded by XOR, times MIX */
#define SHARD_MIX 0x9E3779B97F4A7C15ull

static PyObject *group_rows(PyObject *self, PyObject *args)
{
    PyObject *keyo, *statuso, *ordero, *countso;
    Py_ssize_t shards;
    arrays a = {.held = 0};
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnOO:group_rows", &keyo, &statuso, &shards, &ordero, &countso))
        return NULL;
    if (shards < 1 || shards > 1024) {
        PyErr_SetString(PyExc_ValueError, "group_rows: shards must be 1..1024");
        return NULL;
    }
    Py_ssize_t n = PyObject_Length(ordero);
    if (n < 0)
        return NULL;
    const uint8_t *keys = take(&a, keyo, "keys", 'B', 1, n * KEY_BYTES, 0);
    int64_t *order = keys ? take(&a, ordero, "order_out", 'q', 8, n, 1) : NULL;
    int64_t *counts = order ? take(&a, countso, "counts_out", 'q', 8, 2 * shards, 1) : NULL;
    const uint8_t *status = NULL;
    if (counts && statuso != Py_None && (status = take(&a, statuso, "status", 'B', 1, n, 0)) == NULL)
        counts = NULL;
    uint16_t *group = counts ? PyMem_Malloc((size_t)(n ? n : 1) * sizeof *group) : NULL;
    if (group == NULL) {
        if (counts)
            PyErr_NoMemory();
        release(&a);
        return NULL;
    }
    Py_ssize_t groups = 2 * shards, kept = 0;
    Py_BEGIN_ALLOW_THREADS
    memset(counts, 0, (size_t)groups * sizeof *counts);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (status && status[i]) {
            group[i] = UINT16_MAX;
            continue;
        }
        const uint8_t *k = keys + i * KEY_BYTES;
        uint64_t w[KEY_BYTES / 8], folded = 0;
        memcpy(w, k, KEY_BYTES);
        for (int j = 0; j < KEY_BYTES / 8; j++)
            folded ^= w[j];
        folded *= SHARD_MIX;
        uint64_t shard = ((folded >> 32) * (uint64_t)shards) >> 32;
        group[i] = (uint16_t)(2 * shard + !is_v4(k));
        counts[group[i]]++;
    }
    int64_t next[2048], at = 0;
    for (Py_ssize_t g = 0; g < groups; g++) {
        next[g] = at;
        at += counts[g];
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (group[i] != UINT16_MAX)
            order[next[group[i]]++] = i;
    kept = at;
    Py_END_ALLOW_THREADS
    PyMem_Free(group);
    release(&a);
    return PyLong_FromSsize_t(kept);
}

/* --- the module ------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"extract", extract, METH_VARARGS, extract_doc},
    {"walk_pcap", walk_pcap, METH_VARARGS, walk_pcap_doc},
    {"walk_tpacket", walk_tpacket, METH_VARARGS, walk_tpacket_doc},
    {"group_rows", group_rows, METH_VARARGS, group_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowd.native._fastpath",
    "Compiled pcap record and ring block walks, frame decoder and shard grouping for flowd's batch path "
    "(optional).", -1, methods,
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
