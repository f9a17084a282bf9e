/* flowd.native._ring: every ready block of a TPACKET_V3 ring -> one frame buffer and its columns, in one call.
 *
 * The compiled form of flowd.capture.ring.PacketRing.read + frames_of (which stay the statement and the
 * oracle: tests/flowd/test_ring_read.py compares the two on the same blocks). Kernel references:
 * Documentation/networking/packet_mmap.rst, include/uapi/linux/if_packet.h.
 *
 * read_ring(ring, first, block_size, block_count, ethernet) walks the blocks from index `first` in ring
 * order while their block_status has TP_STATUS_USER (read with acquire order), copies each packet's
 * captured bytes into one bytes object (an outer VLAN tag the kernel took off is put back after the
 * MAC addresses when `ethernet`, as libpcap does: caplen and wirelen grow by 4), fills the offset,
 * caplen, wirelen and timestamp columns, and hands every walked block back to the kernel
 * (TP_STATUS_KERNEL, release order). It returns (status, next block index, blocks walked, frames,
 * buf, offset, caplen, wirelen, ts), the columns as bytearrays of int64, uint32, uint32 and float64. A status
 * other than RING_OK names what is wrong with the block at `next` (nothing is handed back then).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum ring_status { RING_OK = 0, RING_BLOCK = 1, RING_HEADER = 2, RING_FRAME = 3 };

enum {
    TP_STATUS_USER = 1, TP_STATUS_VLAN_VALID = 1 << 4, TP_STATUS_VLAN_TPID_VALID = 1 << 6,
    BLOCK_STATUS_AT = 8, BLOCK_PACKETS_AT = 12, BLOCK_FIRST_AT = 16, BLOCK_LENGTH_AT = 20, BLOCK_DESC_LEN = 48,
    HDR_NEXT = 0, HDR_SEC = 4, HDR_NSEC = 8, HDR_SNAPLEN = 12, HDR_LEN = 16, HDR_STATUS = 20, HDR_MAC = 24,
    HDR_VLAN_TCI = 32, HDR_VLAN_TPID = 36, HDR_LEN_TOTAL = 48, HDR_ALIGN = 8,
    MAC_ADDRESSES = 12, VLAN_TAG = 4, ETH_P_8021Q = 0x8100
};

static inline uint32_t u32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t u16_at(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* One pass over the ready blocks: check them, count frames and bytes; or (out != NULL) also copy. */
static int walk(uint8_t *ring, int64_t first, int64_t size, int64_t count, int64_t most, int ethernet, int64_t *blocks,
                int64_t *frames, int64_t *bytes, uint8_t *out, int64_t *offset, uint32_t *caplen,
                uint32_t *wirelen, double *ts, int64_t *bad)
{
    int64_t n = 0, used = 0, walked = 0;
    for (int64_t i = first; walked < most; i = (i + 1) % count, walked++) {
        uint8_t *block = ring + i * size;
        if (!(__atomic_load_n((uint32_t *)(block + BLOCK_STATUS_AT), __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            break;
        uint32_t packets = u32_at(block + BLOCK_PACKETS_AT), at = u32_at(block + BLOCK_FIRST_AT);
        int64_t end = u32_at(block + BLOCK_LENGTH_AT);
        *bad = i;
        if (end > size || (packets && (at < BLOCK_DESC_LEN || at > end)))
            return RING_BLOCK;
        int64_t off = at;
        for (uint32_t p = 0; p < packets; p++) {
            if (off + HDR_LEN_TOTAL > end || off % HDR_ALIGN)
                return RING_HEADER;
            const uint8_t *h = block + off;
            uint32_t snap = u32_at(h + HDR_SNAPLEN), status = u32_at(h + HDR_STATUS);
            int64_t mac = off + u16_at(h + HDR_MAC);
            if (mac + (int64_t)snap > end)
                return RING_FRAME;
            int tagged = ethernet && (status & TP_STATUS_VLAN_VALID) && snap >= MAC_ADDRESSES;
            if (out) {
                uint8_t *dst = out + used;
                offset[n] = used;
                caplen[n] = snap + (tagged ? VLAN_TAG : 0);
                wirelen[n] = u32_at(h + HDR_LEN) + (tagged ? VLAN_TAG : 0);
                ts[n] = (double)u32_at(h + HDR_SEC) + (double)u32_at(h + HDR_NSEC) * 1e-9;
                if (tagged) {
                    unsigned tpid = status & TP_STATUS_VLAN_TPID_VALID ? u16_at(h + HDR_VLAN_TPID) : ETH_P_8021Q;
                    unsigned tci = u32_at(h + HDR_VLAN_TCI) & 0xFFFF;
                    memcpy(dst, block + mac, MAC_ADDRESSES);
                    dst[12] = tpid >> 8; dst[13] = tpid & 0xFF; dst[14] = tci >> 8; dst[15] = tci & 0xFF;
                    memcpy(dst + MAC_ADDRESSES + VLAN_TAG, block + mac + MAC_ADDRESSES, snap - MAC_ADDRESSES);
                } else {
                    memcpy(dst, block + mac, snap);
                }
            }
            used += snap + (tagged ? VLAN_TAG : 0);
            n++;
            off += u32_at(h + HDR_NEXT);
        }
    }
    *blocks = walked;
    *frames = n;
    *bytes = used;
    return RING_OK;
}

static PyObject *read_ring(PyObject *self, PyObject *args)
{
    Py_buffer view;
    long long first, size, count;
    int ethernet;
    if (!PyArg_ParseTuple(args, "w*LLLp", &view, &first, &size, &count, &ethernet))
        return NULL;
    PyObject *result = NULL, *buf = NULL, *off = NULL, *cap = NULL, *wire = NULL, *ts = NULL;
    if (size < BLOCK_DESC_LEN || count < 1 || first < 0 || first >= count || size * count > view.len) {
        PyErr_SetString(PyExc_ValueError, "read_ring: the ring geometry does not fit the buffer");
        goto done;
    }
    int64_t blocks, frames, bytes, bad = first;
    int status = walk(view.buf, first, size, count, count, ethernet, &blocks, &frames, &bytes, NULL, NULL, NULL, NULL,
                      NULL, &bad);
    if (status != RING_OK) {
        result = Py_BuildValue("iLLLOOOOO", status, (long long)bad, 0LL, 0LL, Py_None, Py_None, Py_None, Py_None,
                               Py_None);
        goto done;
    }
    buf = PyBytes_FromStringAndSize(NULL, bytes);
    off = PyByteArray_FromStringAndSize(NULL, frames * 8);  /* columns: writable, like numpy's own */
    cap = PyByteArray_FromStringAndSize(NULL, frames * 4);
    wire = PyByteArray_FromStringAndSize(NULL, frames * 4);
    ts = PyByteArray_FromStringAndSize(NULL, frames * 8);
    if (!buf || !off || !cap || !wire || !ts)
        goto done;
    int64_t again_blocks, again_frames, again_bytes;
    /* The kernel never writes a block it has handed over, and the second pass stops at the first's count:
       the same frames, into buffers of the size counted. */
    walk(view.buf, first, size, count, blocks, ethernet, &again_blocks, &again_frames, &again_bytes,
         (uint8_t *)PyBytes_AS_STRING(buf), (int64_t *)PyByteArray_AS_STRING(off),
         (uint32_t *)PyByteArray_AS_STRING(cap), (uint32_t *)PyByteArray_AS_STRING(wire),
         (double *)PyByteArray_AS_STRING(ts), &bad);
    /* Only the blocks the first pass counted are ours: the kernel may have retired more since. */
    for (int64_t i = 0; i < blocks; i++) {
        uint8_t *block = (uint8_t *)view.buf + ((first + i) % count) * size;
        __atomic_store_n((uint32_t *)(block + BLOCK_STATUS_AT), 0, __ATOMIC_RELEASE);
    }
    result = Py_BuildValue("iLLLOOOOO", RING_OK, (long long)((first + blocks) % count), (long long)blocks,
                           (long long)frames, buf, off, cap, wire, ts);
done:
    Py_XDECREF(buf);
    Py_XDECREF(off);
    Py_XDECREF(cap);
    Py_XDECREF(wire);
    Py_XDECREF(ts);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(read_ring_doc,
"read_ring(ring, first, block_size, block_count, ethernet) -> (status, next, blocks, frames, buf, offset,\n"
"caplen, wirelen, ts): every ready block from index first, copied out and handed back (see the file's comment).");

static PyMethodDef methods[] = {
    {"read_ring", read_ring, METH_VARARGS, read_ring_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowd.native._ring",
    "A TPACKET_V3 ring's ready blocks copied out in one call (flowd.capture.ring uses it when built).", -1, methods,
};

PyMODINIT_FUNC PyInit__ring(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "RING_OK", RING_OK) || PyModule_AddIntConstant(m, "RING_BLOCK", RING_BLOCK)
        || PyModule_AddIntConstant(m, "RING_HEADER", RING_HEADER)
        || PyModule_AddIntConstant(m, "RING_FRAME", RING_FRAME)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
