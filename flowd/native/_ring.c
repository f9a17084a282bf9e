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

#include "_tpacket.h"

/* One pass over the ready blocks: check them, count frames and bytes; or (out != NULL) also copy. */
static int walk(uint8_t *ring, int64_t first, int64_t size, int64_t count, int64_t most, int ethernet, int64_t *blocks,
                int64_t *frames, int64_t *bytes, uint8_t *out, int64_t *offset, uint32_t *caplen,
                uint32_t *wirelen, double *ts, int64_t *bad)
{
    int64_t n = 0, used = 0, walked = 0;
    for (int64_t i = first; walked < most; i = (i + 1) % count, walked++) {
        uint8_t *block = ring + i * size;
        if (!block_ready(block))
            break;
        uint32_t packets;
        int64_t off, end;
        *bad = i;
        if (block_bounds(block, size, &packets, &off, &end) != RING_OK)
            return RING_BLOCK;
        for (uint32_t p = 0; p < packets; p++) {
            tp_packet pk;
            int status = block_packet(block, off, end, ethernet, &pk);
            if (status != RING_OK)
                return status;
            uint32_t grown = pk.snap + (pk.tagged ? VLAN_TAG : 0);
            if (out) {
                offset[n] = used;
                caplen[n] = grown;
                wirelen[n] = pk.len + (pk.tagged ? VLAN_TAG : 0);
                ts[n] = (double)pk.sec + (double)pk.nsec * 1e-9;
                packet_copy(&pk, out + used);
            }
            used += grown;
            n++;
            off += pk.next;
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
    if (size < BLOCK_DESC_BYTES || count < 1 || first < 0 || first >= count || size * count > view.len) {
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
    for (int64_t i = 0; i < blocks; i++)
        block_release((uint8_t *)view.buf + ((first + i) % count) * size);
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
