/* flowd.native._send: many export datagrams to a connected socket in few system calls.
 *
 *   send_datagrams  ==  the datagram loop of flowd.export.udp.UdpSender._send_run (socket.send each)
 *
 * sendmmsg() hands the kernel up to SEND_BATCH datagrams at a time, and the interpreter lock is released
 * meanwhile, so a thread that encodes the next export goes on. Like the loop it replaces,
 * it stops at the first datagram the kernel refuses and says why; the caller decides what follows. The
 * module is optional: without it (or with FLOWD_NO_FASTPATH=1) the Python loop sends.
 */

#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define SEND_BATCH 1024 /* datagrams per call, and per sendmmsg() (the kernel takes at most UIO_MAXIOV) */

PyDoc_STRVAR(send_datagrams_doc,
"send_datagrams(fd, datagrams, start) -> (sent, octets, errno)\n\n"
"Send datagrams[start:] (bytes objects; at most SEND_BATCH of them) on the connected socket fd, in\n"
"order, until one fails; return how many were sent, their octets, and the errno of the one that failed\n"
"(0: none failed; the caller calls again for the ones after SEND_BATCH).");

static PyObject *send_datagrams(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *seq;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "iOn:send_datagrams", &fd, &seq, &start))
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "datagrams must be a sequence of bytes");
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    if (start < 0 || start > n) {
        Py_DECREF(fast);
        return PyErr_Format(PyExc_ValueError, "start %zd outside 0..%zd", start, n);
    }
    Py_ssize_t count = n - start > SEND_BATCH ? SEND_BATCH : n - start;
    for (Py_ssize_t j = 0; j < count; j++) {
        if (!PyBytes_Check(items[start + j])) {
            Py_DECREF(fast);
            return PyErr_Format(PyExc_TypeError, "datagram %zd is %.100s, not bytes", start + j,
                                Py_TYPE(items[start + j])->tp_name);
        }
    }
    if (count == 0) {
        Py_DECREF(fast);
        return Py_BuildValue("nKi", (Py_ssize_t)0, 0ULL, 0);
    }
    struct mmsghdr *msgs = PyMem_Calloc((size_t)count, sizeof *msgs);
    struct iovec *iov = PyMem_Calloc((size_t)count, sizeof *iov);
    PyObject **held = PyMem_Calloc((size_t)count, sizeof *held);
    if (msgs == NULL || iov == NULL || held == NULL) {
        PyMem_Free(msgs);
        PyMem_Free(iov);
        PyMem_Free(held);
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t j = 0; j < count; j++) {
        PyObject *d = items[start + j];
        held[j] = Py_NewRef(d);  /* another thread may change the list while the lock is released */
        iov[j].iov_base = PyBytes_AS_STRING(d);
        iov[j].iov_len = (size_t)PyBytes_GET_SIZE(d);
        msgs[j].msg_hdr.msg_iov = &iov[j];
        msgs[j].msg_hdr.msg_iovlen = 1;
    }
    Py_ssize_t sent = 0;
    unsigned long long octets = 0;
    int error = 0, interrupted = 1;
    while (interrupted) {  /* the lock is taken back only to run signal handlers, or at the end */
        interrupted = 0;
        Py_BEGIN_ALLOW_THREADS
        while (sent < count) {
            int r = sendmmsg(fd, msgs + sent, (unsigned int)(count - sent), 0);
            if (r < 0) {
                if (errno == EINTR)
                    interrupted = 1;
                else
                    error = errno;
                break;
            }
            for (int k = 0; k < r; k++)
                octets += msgs[sent + k].msg_len;
            sent += r;  /* fewer than asked: the next call sends the rest or says why it cannot */
        }
        Py_END_ALLOW_THREADS
        if (interrupted && PyErr_CheckSignals() < 0)
            break;
    }
    for (Py_ssize_t j = 0; j < count; j++)
        Py_DECREF(held[j]);
    PyMem_Free(msgs);
    PyMem_Free(iov);
    PyMem_Free(held);
    Py_DECREF(fast);
    if (PyErr_Occurred())
        return NULL;
    return Py_BuildValue("nKi", sent, octets, error);
}

static PyMethodDef methods[] = {
    {"send_datagrams", send_datagrams, METH_VARARGS, send_datagrams_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowd.native._send",
    "Export datagrams to a connected socket in batches, sendmmsg(), the interpreter lock released (optional).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__send(void)
{
    return PyModule_Create(&module);
}
