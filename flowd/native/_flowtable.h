/* flowd/native/_flowtable.h: what flowd.native._flowtable's live ingest (_live.c) uses of its flow cache
 * (_flowtable.c); both are built into the one extension. */
#ifndef FLOWD_FLOWTABLE_H
#define FLOWD_FLOWTABLE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_flowkey.h"

/* Whether obj is a flowd.native._flowtable.Table. */
__attribute__((visibility("hidden"))) int flowtable_check(PyObject *obj);

/* Table.add for columns in C memory (mac NULL: none; one batch: admission as in Table.add); 0 and the
 * table's count of ended flows waiting for drain() in *ended, or -1 with an exception set. */
__attribute__((visibility("hidden"))) int flowtable_add(
    PyObject *table, Py_ssize_t n, const uint8_t *keys, const uint32_t *length, const double *ts,
    const uint8_t *flags, const uint8_t *ttl, const uint16_t *vlan, const uint16_t *inner, const uint32_t *mpls,
    const uint8_t *mac, size_t *ended);

/* ingest_ring (_live.c): the module's functions, and its constants added to the module (0, or -1). */
extern PyMethodDef live_methods[];
__attribute__((visibility("hidden"))) int live_constants(PyObject *m);

#endif
