/* flowd.native._flowtable: the flow cache in C (merge, expiry, flush), behind flowd/core/compiled_table.py.
 *
 * It applies the rules of flowd/core/flowtable.py's header comment one packet at a time, in arrival order,
 * and gives the same flows, end reasons and statistics as that numpy table, which stays the checked
 * reference (tests/flowd/test_compiled_table.py holds the two together).
 *
 * Storage, per address family ("store"): one row per flow slot, the compact key first (IPv4: source,
 * destination, then the last 8 bytes of flowd.model.flowkey's row = 16 bytes; anything else: the 40-byte
 * row), then a 48-byte value (counters, times, flags, the wheel links). An IPv4 row is one 64-byte
 * cache line, so a packet touches the index entry and one line. VLAN ids and MPLS labels, absent from
 * most flows, live in a shared pool that a row points into. The index is open addressing (linear
 * probing, load at most one half) of uint32 slot + 1; deletion shifts the cluster back, so there are
 * no tombstones. When a bridge template exports MAC addresses (Table(..., macs=True) or keep_macs), each
 * store keeps a parallel array of 12 bytes per slot (destination and source MAC of the flow's first
 * packet), touched only when a flow starts and ends; without it a flow costs not a byte more.
 *
 * Expiry: a timer wheel of per-deadline buckets (doubly linked lists through the rows). A flow sits in
 * the bucket just before its deadline min(last + inactive, first + active) as it was when linked;
 * packets move the deadline later without touching the wheel, so a due bucket may hold flows that
 * are not due yet: they are moved on when their bucket is visited. expire() visits only due buckets.
 *
 * Full tables: new flows are refused exactly as the numpy table refuses them, per batch. During a
 * batch every new flow is taken (and listed); at its end the room is max_flows minus the flows that
 * were cached before the batch and still are, and the new flows beyond that room, latest first
 * (ties: the later first packet), are taken back: their packets count as dropped.
 *
 * Arrays come in and go out through the buffer protocol (numpy allocates them; no numpy headers).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "_flowtable.h"

#define KEY_BYTES 40
#define V4_KEY 16
#define MPLS_KEPT 3
#define MAC_BYTES 12        /* flowd.model.batch.MAC_BYTES */
#define P_TCP 6
#define FIN_OR_RST 0x05u
#define NIL 0xFFFFFFFFu
#define FRESH 0xFFFFFFFEu   /* `next` of a flow the batch being added created: not on the wheel yet */
#define HEAD 0x80000000u    /* `prev` of a flow first in its bucket: HEAD | bucket */
#define V6 0x40000000u      /* flow id bit: the slot is in the IPv6 (40-byte key) store */
#define SLOT 0x3FFFFFFFu
#define MAX_SLOTS 0x3FFFFF00u
#define MIN_ROWS 1024u
#define MIN_INDEX 2048u
#define MAX_BUCKETS 65536u
#define SPOKES 4096.0       /* buckets across the longer timeout */
#define UNANCHORED (INT64_MIN / 2)  /* the cursor of a wheel no flow was linked to yet */

enum reason { IDLE = 1, ACTIVE = 2, END_OF_FLOW = 3, FORCED = 4 };
/* The per-call statistics drain() returns, in flowd.core.flowtable.TableCounters' terms. */
enum counter { S_PACKETS, S_BYTES, S_CREATED, S_FREED, S_DROPPED, S_REFUSED, S_IDLE, S_ACTIVE, S_EOF,
            S_FORCED, S_PEAK, NSTATS };

typedef struct {
    uint64_t packets, bytes;
    double first, last;
    uint8_t flags, ttl_min, ttl_max, live;
    uint32_t l2;          /* 1 + index into the layer-2 pool; 0: untagged, no labels */
    uint32_t prev, next;  /* wheel links (flow ids); while FRESH, prev is the flow's `fresh` entry */
} value;

typedef struct {
    uint16_t vlan, inner_vlan;
    uint32_t mpls[MPLS_KEPT];
} layer2;

typedef struct {  /* an ended flow waiting for drain() */
    uint8_t key[KEY_BYTES];
    uint64_t packets, bytes;
    double first, last;
    uint8_t flags, ttl_min, ttl_max, reason;
    layer2 l2;
    uint8_t mac[MAC_BYTES];
} record;

typedef struct {  /* a flow the batch being added created */
    double first;
    uint32_t row;  /* batch row of its first packet */
    uint32_t id;
    int64_t rec;   /* its record once it ended inside the batch, else -1 */
} fresh;

typedef struct {
    uint32_t keylen, rowlen;
    uint8_t *rows;
    uint8_t *macs;         /* MAC_BYTES per slot, or NULL: the table keeps no MAC addresses */
    uint32_t cap, top, n;  /* slots allocated, handed out, live */
    uint32_t *free, nfree, freecap;
    uint32_t *index, mask;
    int index_stale;       /* a chunked flush left the index behind: rebuild before use */
} store;

typedef struct {
    PyObject_HEAD
    store s[2];
    layer2 *pool;
    uint32_t pool_cap, pool_top, *pool_free, pool_nfree, pool_freecap;
    double active, inactive;
    int64_t max_flows;
    int macs;              /* flows keep their first packet's MAC addresses */
    uint32_t *heads, nbuckets;
    double grain;
    int64_t cursor;        /* the earliest bucket that may hold a flow */
    double early;          /* no flow in the cursor's bucket is due before this */
    int wheel_stale;
    record *ended;
    size_t nended, endedcap;
    fresh *fresh;
    size_t nfresh, freshcap;
    uint64_t stat[NSTATS];
} Table;

static PyTypeObject TableType;

/* --- memory ------------------------------------------------------------------------------------ */

/* Rows and indexes come straight from the kernel: pages nobody touched cost nothing, growth moves
 * the mapping instead of copying it, and freeing gives it all back (no heap fragments). */
#define HUGE_FROM (4u << 20)  /* mappings this large ask for transparent huge pages (fewer TLB misses) */

static void *huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (p && bytes >= HUGE_FROM)
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void *pages(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return huge(p == MAP_FAILED ? NULL : p, bytes);
}

static void *pages_grow(void *p, size_t old, size_t bytes)
{
    void *q = mremap(p, old, bytes, MREMAP_MAYMOVE);
    return huge(q == MAP_FAILED ? NULL : q, bytes);
}

static void pages_free(void *p, size_t bytes)
{
    if (p && bytes)
        munmap(p, bytes);
}

/* --- small helpers ------------------------------------------------------------------------------ */

static int grow(void **p, size_t *cap, size_t want, size_t item)
{
    if (want <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < want)
        c *= 2;
    void *q = realloc(*p, c * item);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int grow32(uint32_t **p, uint32_t *cap, size_t want)
{
    size_t c = *cap;
    int r = grow((void **)p, &c, want, sizeof(uint32_t));
    *cap = (uint32_t)c;
    return r;
}

static inline uint8_t *row_of(const store *st, uint32_t slot) { return st->rows + (size_t)slot * st->rowlen; }
static inline value *val_of(const store *st, uint32_t slot) { return (value *)(row_of(st, slot) + st->keylen); }

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};  /* ::ffff:0:0/96 */

static inline store *store_of(Table *t, uint32_t id) { return &t->s[(id & V6) ? 1 : 0]; }
static inline value *flow(Table *t, uint32_t id) { return val_of(store_of(t, id), id & SLOT); }

static inline void compact(const uint8_t *k, int v6, uint8_t *out)
{
    if (v6) {
        memcpy(out, k, KEY_BYTES);
    } else {
        memcpy(out, k + 12, 4);
        memcpy(out + 4, k + 28, 4);
        memcpy(out + 8, k + 32, 8);
    }
}

static inline void expand(const uint8_t *c, int v6, uint8_t *k)
{
    if (v6) {
        memcpy(k, c, KEY_BYTES);
    } else {
        memcpy(k, V4_MAPPED, 12);
        memcpy(k + 12, c, 4);
        memcpy(k + 16, V4_MAPPED, 12);
        memcpy(k + 28, c + 4, 4);
        memcpy(k + 32, c + 8, 8);
    }
}

static inline uint64_t hash_key(const uint8_t *k, uint32_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (uint32_t i = 0; i < len; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h ^= w;
        h *= 0xFF51AFD7ED558CCDULL;
        h ^= h >> 33;
    }
    h ^= h >> 29;  /* finish with murmur3's fmix64: every key bit reaches the low (index) bits */
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 32;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 29;
    return h;
}

/* --- the index ---------------------------------------------------------------------------------- */

/* The slot holding key k (NIL if none); *pos gets its index position, or the empty one that ends the probe. */
/* Whether two compact keys are equal: the IPv4 key's two words inline, the longer one through memcmp. */
static inline int same_key(const uint8_t *a, const uint8_t *b, uint32_t len)
{
    if (len == V4_KEY) {
        uint64_t x[2], y[2];
        memcpy(x, a, V4_KEY);
        memcpy(y, b, V4_KEY);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
    }
    return memcmp(a, b, len) == 0;
}

static inline uint32_t lookup(const store *st, const uint8_t *k, uint64_t h, uint32_t *pos)
{
    uint32_t p = (uint32_t)h & st->mask;
    for (;;) {
        uint32_t e = st->index[p];
        if (!e)
            break;
        if (same_key(row_of(st, e - 1), k, st->keylen)) {
            *pos = p;
            return e - 1;
        }
        p = (p + 1) & st->mask;
    }
    *pos = p;
    return NIL;
}

static uint32_t position_of(const store *st, uint32_t slot)
{
    uint32_t p = (uint32_t)hash_key(row_of(st, slot), st->keylen) & st->mask;
    while (st->index[p] != slot + 1)
        p = (p + 1) & st->mask;
    return p;
}

/* Empty position p, moving later entries of its cluster back so every probe still finds them. */
static void index_delete(store *st, uint32_t p)
{
    uint32_t mask = st->mask, hole = p, j = p;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t e = st->index[j];
        if (!e)
            break;
        uint32_t home = (uint32_t)hash_key(row_of(st, e - 1), st->keylen) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            st->index[hole] = e;
            hole = j;
        }
    }
    st->index[hole] = 0;
}

static int index_build(store *st, uint32_t size)
{
    uint32_t *idx = pages((size_t)size * sizeof(uint32_t));
    if (!idx)
        return -1;
    pages_free(st->index, ((size_t)st->mask + 1) * sizeof(uint32_t));
    st->index = idx;
    st->mask = size - 1;
    for (uint32_t s = 0; s < st->top; s++) {
        if (!val_of(st, s)->live)
            continue;
        uint32_t p = (uint32_t)hash_key(row_of(st, s), st->keylen) & st->mask;
        while (idx[p])
            p = (p + 1) & st->mask;
        idx[p] = s + 1;
    }
    st->index_stale = 0;
    return 0;
}

/* Room in the index for one more key (load at most one half). */
static int index_room(store *st)
{
    if (st->index_stale)
        return index_build(st, st->mask + 1);
    if ((uint64_t)(st->n + 1) * 2 <= (uint64_t)st->mask + 1)
        return 0;
    return index_build(st, (st->mask + 1) * 2);
}

/* --- slots and the layer-2 pool ----------------------------------------------------------------- */

/* Keep (or stop keeping) a MAC_BYTES array beside the rows; slots that had none read as zeros. */
static int store_macs(store *st, int on)
{
    if (on && !st->macs)
        st->macs = pages((size_t)st->cap * MAC_BYTES);
    if (!on && st->macs) {
        pages_free(st->macs, (size_t)st->cap * MAC_BYTES);
        st->macs = NULL;
    }
    return on && !st->macs ? -1 : 0;
}

static int store_init(store *st, uint32_t keylen, int macs)
{
    memset(st, 0, sizeof *st);
    st->keylen = keylen;
    st->rowlen = keylen + (uint32_t)sizeof(value);
    st->rows = pages((size_t)MIN_ROWS * st->rowlen);
    st->index = pages(MIN_INDEX * sizeof(uint32_t));
    st->cap = st->rows ? MIN_ROWS : 0;
    st->mask = st->index ? MIN_INDEX - 1 : 0;
    return st->rows && st->index && store_macs(st, macs) == 0 ? 0 : -1;
}

static void store_free(store *st)
{
    store_macs(st, 0);
    pages_free(st->rows, (size_t)st->cap * st->rowlen);
    pages_free(st->index, ((size_t)st->mask + 1) * sizeof(uint32_t));
    free(st->free);
    memset(st, 0, sizeof *st);
}

static uint32_t take_slot(store *st)
{
    while (st->nfree) {
        uint32_t s = st->free[--st->nfree];
        if (s < st->top)  /* a chunked flush may have cut the top below freed slots */
            return s;
    }
    if (st->top == st->cap) {
        if (st->cap >= MAX_SLOTS)
            return NIL;
        uint32_t cap = st->cap * 2 > MAX_SLOTS ? MAX_SLOTS : st->cap * 2;
        uint8_t *rows = pages_grow(st->rows, (size_t)st->cap * st->rowlen, (size_t)cap * st->rowlen);
        if (!rows)
            return NIL;
        st->rows = rows;
        if (st->macs) {
            uint8_t *macs = pages_grow(st->macs, (size_t)st->cap * MAC_BYTES, (size_t)cap * MAC_BYTES);
            if (!macs)
                return NIL;  /* the rows' mapping grew and stays so; the slot count does not */
            st->macs = macs;
        }
        st->cap = cap;
    }
    return st->top++;
}

static int give_slot(store *st, uint32_t s)
{
    if (grow32(&st->free, &st->freecap, (size_t)st->nfree + 1) < 0)
        return -1;
    st->free[st->nfree++] = s;
    return 0;
}

static uint32_t l2_new(Table *t, uint16_t vlan, uint16_t inner, const uint32_t *mpls)
{
    if (!vlan && !inner && !mpls[0] && !mpls[1] && !mpls[2])
        return 0;
    uint32_t i;
    if (t->pool_nfree) {
        i = t->pool_free[--t->pool_nfree];
    } else {
        size_t cap = t->pool_cap;
        if (grow((void **)&t->pool, &cap, (size_t)t->pool_top + 1, sizeof(layer2)) < 0)
            return NIL;
        t->pool_cap = (uint32_t)cap;
        i = t->pool_top++;
    }
    t->pool[i].vlan = vlan;
    t->pool[i].inner_vlan = inner;
    memcpy(t->pool[i].mpls, mpls, sizeof t->pool[i].mpls);
    return i + 1;
}

static void l2_get(const Table *t, uint32_t ref, layer2 *out)
{
    if (ref)
        *out = t->pool[ref - 1];
    else
        memset(out, 0, sizeof *out);
}

static int l2_free(Table *t, uint32_t ref)
{
    if (!ref)
        return 0;
    if (grow32(&t->pool_free, &t->pool_freecap, (size_t)t->pool_nfree + 1) < 0)
        return -1;
    t->pool_free[t->pool_nfree++] = ref - 1;
    return 0;
}

/* --- the timer wheel ---------------------------------------------------------------------------- */

static inline double deadline(const Table *t, const value *v)
{
    return fmin(v->last + t->inactive, v->first + t->active);
}

/* The bucket just before deadline d (never before the cursor). */
static inline int64_t bucket_of(const Table *t, double d)
{
    double b = floor(d / t->grain) - 1.0;
    if (!(b < 4e18))
        b = 4e18;
    int64_t i = b > (double)t->cursor ? (int64_t)b : t->cursor;
    return i;
}

static void wheel_link(Table *t, uint32_t id)
{
    value *v = flow(t, id);
    double d = deadline(t, v);
    if (t->cursor == UNANCHORED)
        t->cursor = (int64_t)fmin(fmax(floor(d / t->grain) - 1.0, -4e18), 4e18);
    int64_t at = bucket_of(t, d);
    if (at == t->cursor && d < t->early)  /* the cursor's bucket holds one due this early */
        t->early = d;
    uint32_t b = (uint32_t)(at & (t->nbuckets - 1));
    uint32_t h = t->heads[b];
    v->prev = HEAD | b;
    v->next = h;
    if (h != NIL)
        flow(t, h)->prev = id;
    t->heads[b] = id;
}

static void unlink_flow(Table *t, uint32_t id)
{
    value *v = flow(t, id);
    if (v->prev & HEAD)
        t->heads[v->prev & ~HEAD] = v->next;
    else
        flow(t, v->prev)->next = v->next;
    if (v->next != NIL)
        flow(t, v->next)->prev = v->prev;
    v->prev = v->next = NIL;
}

/* Size the wheel for the timeouts: buckets of at most an eighth of the shorter timeout and about
 * 1/SPOKES of the longer, enough of them to span the longer one. */
static int wheel_setup(Table *t)
{
    double lo = fmin(t->active, t->inactive), hi = fmax(t->active, t->inactive);
    if (!(hi > 0) || !isfinite(hi))
        hi = 1.0;
    double grain = hi / SPOKES;
    if (lo > 0 && lo / 8 < grain)
        grain = lo / 8;
    uint32_t nb = 16;
    while (nb < MAX_BUCKETS && (double)nb < hi / grain + 8)
        nb *= 2;
    if ((double)nb < hi / grain + 8)
        grain = hi / (nb - 8);
    uint32_t *heads = malloc(nb * sizeof(uint32_t));
    if (!heads)
        return -1;
    memset(heads, 0xFF, nb * sizeof(uint32_t));
    free(t->heads);
    t->heads = heads;
    t->nbuckets = nb;
    t->grain = grain;
    t->cursor = UNANCHORED;
    t->early = INFINITY;
    t->wheel_stale = 1;
    return 0;
}

/* Put every cached flow back on the wheel (after a resize or a chunked flush). */
static void wheel_rebuild(Table *t)
{
    memset(t->heads, 0xFF, t->nbuckets * sizeof(uint32_t));
    double earliest = INFINITY;
    for (int f = 0; f < 2; f++)
        for (uint32_t s = 0; s < t->s[f].top; s++) {
            value *v = val_of(&t->s[f], s);
            if (v->live && deadline(t, v) < earliest)
                earliest = deadline(t, v);
        }
    t->cursor = isfinite(earliest) ? (int64_t)floor(earliest / t->grain) - 1 : UNANCHORED;
    t->early = INFINITY;
    for (int f = 0; f < 2; f++)
        for (uint32_t s = 0; s < t->s[f].top; s++)
            if (val_of(&t->s[f], s)->live)
                wheel_link(t, s | (f ? V6 : 0));
    t->wheel_stale = 0;
}

static int ready(Table *t)
{
    for (int f = 0; f < 2; f++)
        if (t->s[f].index_stale && index_build(&t->s[f], t->s[f].mask + 1) < 0)
            return -1;
    if (t->wheel_stale)
        wheel_rebuild(t);
    return 0;
}

/* --- ending flows ------------------------------------------------------------------------------- */

static record *emit(Table *t, uint32_t id, int reason)
{
    if (grow((void **)&t->ended, &t->endedcap, t->nended + 1, sizeof(record)) < 0)
        return NULL;
    store *st = store_of(t, id);
    uint32_t slot = id & SLOT;
    value *v = val_of(st, slot);
    record *r = &t->ended[t->nended++];
    expand(row_of(st, slot), (id & V6) != 0, r->key);
    r->packets = v->packets;
    r->bytes = v->bytes;
    r->first = v->first;
    r->last = v->last;
    r->flags = v->flags;
    r->ttl_min = v->ttl_min;
    r->ttl_max = v->ttl_max;
    r->reason = (uint8_t)reason;
    l2_get(t, v->l2, &r->l2);
    if (st->macs)
        memcpy(r->mac, st->macs + (size_t)slot * MAC_BYTES, MAC_BYTES);
    else
        memset(r->mac, 0, MAC_BYTES);
    return r;
}

/* Take a flow out of the table (index position pos) without a record. */
static int drop_flow(Table *t, uint32_t id, uint32_t pos)
{
    store *st = store_of(t, id);
    value *v = flow(t, id);
    if (v->next != FRESH)
        unlink_flow(t, id);
    index_delete(st, pos);
    v->live = 0;
    st->n--;
    if (l2_free(t, v->l2) < 0)
        return -1;
    return give_slot(st, id & SLOT);
}

static int end_flow(Table *t, uint32_t id, uint32_t pos, int reason)
{
    value *v = flow(t, id);
    if (v->next == FRESH)
        t->fresh[v->prev].rec = (int64_t)t->nended;
    if (!emit(t, id, reason))
        return -1;
    return drop_flow(t, id, pos);
}

static void count_reasons(Table *t, size_t from)
{
    for (size_t i = from; i < t->nended; i++) {
        int r = t->ended[i].reason;
        t->stat[S_FREED]++;
        t->stat[r == IDLE ? S_IDLE : r == ACTIVE ? S_ACTIVE : r == END_OF_FLOW ? S_EOF : S_FORCED]++;
    }
}

/* --- buffer-protocol arguments ------------------------------------------------------------------ */

#define MAX_VIEWS 16

typedef struct {
    Py_buffer v[MAX_VIEWS];
    int n;
} views;

static void views_release(views *a)
{
    while (a->n > 0)
        PyBuffer_Release(&a->v[--a->n]);
}

/* A C-contiguous buffer of at least `bytes` bytes (None gives NULL without an error when optional). */
static void *view(views *a, PyObject *obj, Py_ssize_t bytes, int writable, int optional, const char *name)
{
    if (optional && obj == Py_None)
        return NULL;
    Py_buffer *b = &a->v[a->n];
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return NULL;
    a->n++;
    if (b->len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected at least %zd", name, b->len, bytes);
        return NULL;
    }
    return b->buf;
}

/* --- adding a batch ----------------------------------------------------------------------------- */

/* The next AHEAD packets' compact keys and hashes, their index lines already on the way. */
#define AHEAD 16

typedef struct {
    uint8_t key[AHEAD][KEY_BYTES];
    uint64_t hash[AHEAD];
    int v6[AHEAD];
} ahead;

static inline void look_ahead(const Table *t, ahead *la, const uint8_t *keys, Py_ssize_t j)
{
    const uint8_t *k = keys + j * KEY_BYTES;
    int r = (int)(j % AHEAD), v6 = !is_v4(k);
    const store *st = &t->s[v6];
    compact(k, v6, la->key[r]);
    la->v6[r] = v6;
    la->hash[r] = hash_key(la->key[r], st->keylen);
    __builtin_prefetch(&st->index[(uint32_t)la->hash[r] & st->mask]);
}

static int by_time(const void *a, const void *b)
{
    const fresh *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* The per-batch admission of flowd.core.flowtable.FlowTable.add, applied to the flows the batch created. */
static int admit(Table *t, int64_t cached_before, int64_t cached_ended)
{
    int64_t kept_before = cached_before - cached_ended;
    int64_t room = t->max_flows - kept_before;
    if (room < 0)
        room = 0;
    size_t nf = t->nfresh;
    if ((int64_t)nf > room) {
        for (size_t i = 0; i < nf; i++) {
            fresh *f = &t->fresh[i];
            f->first = f->rec >= 0 ? t->ended[f->rec].first : flow(t, f->id)->first;
        }
        qsort(t->fresh, nf, sizeof(fresh), by_time);
        for (size_t i = (size_t)room; i < nf; i++) {
            fresh *f = &t->fresh[i];
            uint64_t packets, bytes;
            if (f->rec >= 0) {
                record *r = &t->ended[f->rec];
                packets = r->packets;
                bytes = r->bytes;
                r->reason = 0;  /* taken back: removed below */
            } else {
                store *st = store_of(t, f->id);
                value *v = flow(t, f->id);
                packets = v->packets;
                bytes = v->bytes;
                if (drop_flow(t, f->id, position_of(st, f->id & SLOT)) < 0)
                    return -1;
            }
            t->stat[S_DROPPED] += packets;
            t->stat[S_PACKETS] -= packets;
            t->stat[S_BYTES] -= bytes;
            t->stat[S_REFUSED]++;
        }
        nf = (size_t)room;
    }
    size_t whole = 0, keep = 0;
    for (size_t i = 0; i < nf; i++) {
        if (t->fresh[i].rec >= 0) {
            whole++;
        } else {
            keep++;
            wheel_link(t, t->fresh[i].id);
        }
    }
    t->stat[S_CREATED] += nf;
    if (whole && (uint64_t)kept_before + 1 > t->stat[S_PEAK])
        t->stat[S_PEAK] = (uint64_t)kept_before + 1;
    if (keep && (uint64_t)kept_before + keep > t->stat[S_PEAK])
        t->stat[S_PEAK] = (uint64_t)kept_before + keep;
    t->nfresh = 0;
    return 0;
}

static void compact_ended(Table *t, size_t from)
{
    size_t w = from;
    for (size_t i = from; i < t->nended; i++)
        if (t->ended[i].reason)
            t->ended[w++] = t->ended[i];
    t->nended = w;
}

PyDoc_STRVAR(add_doc,
"add(key, length, ts, tcp_flags, ttl, vlan, inner_vlan, mpls, mac, now) -> int\n\n"
"Account a batch (flowd.model.batch.PacketBatch columns: uint8 (n, 40), uint32, float64, uint8, uint8,\n"
"uint16, uint16, uint32 (n, 3), uint8 (n, 12) or None); return how many flows ended (drain() hands them\n"
"over). A new flow keeps its first packet's MAC row when the table keeps MACs (zeros for None).");

/* Account n packets (PacketBatch columns; mac may be NULL) as one batch; 0, or -1 with an exception set. */
static int add_rows(Table *t, Py_ssize_t n, const uint8_t *keys, const uint32_t *length, const double *ts,
                    const uint8_t *flags, const uint8_t *ttl, const uint16_t *vlan, const uint16_t *inner,
                    const uint32_t *mpls, const uint8_t *mac)
{
    if (ready(t) < 0)
        return PyErr_Occurred() ? -1 : (PyErr_NoMemory(), -1);
    size_t start = t->nended;
    int64_t cached_before = (int64_t)t->s[0].n + t->s[1].n, cached_ended = 0;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    uint8_t ck[KEY_BYTES];
    ahead la;
    for (Py_ssize_t j = 0; j < AHEAD && j < n; j++)
        look_ahead(t, &la, keys, j);
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        const uint8_t *k = keys + i * KEY_BYTES;
        int r = (int)(i % AHEAD), v6 = la.v6[r];
        store *st = &t->s[v6];
        memcpy(ck, la.key[r], st->keylen);
        uint64_t h = la.hash[r];
        /* Fetch memory before it is needed: the index line AHEAD packets on, the row half as far. */
        if (i + AHEAD < n)
            look_ahead(t, &la, keys, i + AHEAD);
        if (i + AHEAD / 2 < n) {
            int q = (int)((i + AHEAD / 2) % AHEAD);
            const store *s2 = &t->s[la.v6[q]];
            uint32_t e = s2->index[(uint32_t)la.hash[q] & s2->mask];
            if (e) {
                __builtin_prefetch(row_of(s2, e - 1));
                __builtin_prefetch(row_of(s2, e - 1) + s2->rowlen - 1);
            }
        }
        if (index_room(st) < 0) {
            failed = 1;
            break;
        }
        uint32_t pos, slot = lookup(st, ck, h, &pos);
        double when = ts[i];
        uint32_t id = NIL;
        if (slot != NIL) {
            id = slot | (v6 ? V6 : 0);
            value *v = val_of(st, slot);
            int reason = when - v->last > t->inactive ? IDLE : when - v->first >= t->active ? ACTIVE : 0;
            if (reason) {
                cached_ended += v->next != FRESH;
                if (end_flow(t, id, pos, reason) < 0) {
                    failed = 1;
                    break;
                }
                slot = lookup(st, ck, h, &pos);  /* the shift may have moved the probe's end */
            } else {
                v->packets++;
                v->bytes += length[i];
                v->flags |= flags[i];
                if (when < v->first)
                    v->first = when;
                if (when > v->last)
                    v->last = when;
                if (ttl[i] < v->ttl_min)
                    v->ttl_min = ttl[i];
                if (ttl[i] > v->ttl_max)
                    v->ttl_max = ttl[i];
            }
        }
        if (slot == NIL) {
            uint32_t l2 = l2_new(t, vlan[i], inner[i], mpls + 3 * i);
            if (l2 == NIL || grow((void **)&t->fresh, &t->freshcap, t->nfresh + 1, sizeof(fresh)) < 0) {
                failed = 1;
                break;
            }
            slot = take_slot(st);
            if (slot == NIL) {
                failed = 1;
                break;
            }
            id = slot | (v6 ? V6 : 0);
            memcpy(row_of(st, slot), ck, st->keylen);
            value *v = val_of(st, slot);
            v->packets = 1;
            v->bytes = length[i];
            v->first = v->last = when;
            v->flags = flags[i];
            v->ttl_min = v->ttl_max = ttl[i];
            v->live = 1;
            v->l2 = l2;
            if (st->macs) {
                uint8_t *m = st->macs + (size_t)slot * MAC_BYTES;
                if (mac)
                    memcpy(m, mac + i * MAC_BYTES, MAC_BYTES);
                else
                    memset(m, 0, MAC_BYTES);
            }
            v->next = FRESH;
            v->prev = (uint32_t)t->nfresh;
            t->fresh[t->nfresh++] = (fresh){.first = when, .row = (uint32_t)i, .id = id, .rec = -1};
            st->index[pos] = slot + 1;
            st->n++;
        }
        t->stat[S_PACKETS]++;
        t->stat[S_BYTES] += length[i];
        if (k[36] == P_TCP && (flags[i] & FIN_OR_RST)) {
            cached_ended += flow(t, id)->next != FRESH;
            if (end_flow(t, id, pos, END_OF_FLOW) < 0) {
                failed = 1;
                break;
            }
        }
    }
    if (!failed && admit(t, cached_before, cached_ended) < 0)
        failed = 1;
    Py_END_ALLOW_THREADS
    if (failed) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    compact_ended(t, start);
    count_reasons(t, start);
    return 0;
}

static PyObject *Table_add(Table *t, PyObject *args)
{
    PyObject *o[9];
    double now;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOd:add", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8],
                          &now))
        return NULL;
    (void)now;
    views a = {.n = 0};
    Py_ssize_t n = -1;
    {
        Py_buffer probe;
        if (PyObject_GetBuffer(o[2], &probe, PyBUF_C_CONTIGUOUS) < 0)
            return NULL;
        n = probe.len / (Py_ssize_t)sizeof(double);
        PyBuffer_Release(&probe);
    }
    const uint8_t *keys = view(&a, o[0], n * KEY_BYTES, 0, 0, "key");
    const uint32_t *length = keys ? view(&a, o[1], n * 4, 0, 0, "length") : NULL;
    const double *ts = length ? view(&a, o[2], n * 8, 0, 0, "ts") : NULL;
    const uint8_t *flags = ts ? view(&a, o[3], n, 0, 0, "tcp_flags") : NULL;
    const uint8_t *ttl = flags ? view(&a, o[4], n, 0, 0, "ttl") : NULL;
    const uint16_t *vlan = ttl ? view(&a, o[5], n * 2, 0, 0, "vlan") : NULL;
    const uint16_t *inner = vlan ? view(&a, o[6], n * 2, 0, 0, "inner_vlan") : NULL;
    const uint32_t *mpls = inner ? view(&a, o[7], n * 12, 0, 0, "mpls") : NULL;
    const uint8_t *mac = mpls ? view(&a, o[8], n * MAC_BYTES, 0, 1, "mac") : NULL;
    int failed = !mpls || (!mac && PyErr_Occurred())
        || add_rows(t, n, keys, length, ts, flags, ttl, vlan, inner, mpls, mac) < 0;
    views_release(&a);
    return failed ? NULL : PyLong_FromSize_t(t->nended);
}

int flowtable_check(PyObject *obj) { return PyObject_TypeCheck(obj, &TableType); }

int flowtable_add(PyObject *table, Py_ssize_t n, const uint8_t *keys, const uint32_t *length, const double *ts,
                  const uint8_t *flags, const uint8_t *ttl, const uint16_t *vlan, const uint16_t *inner,
                  const uint32_t *mpls, const uint8_t *mac, size_t *ended)
{
    Table *t = (Table *)table;
    if (add_rows(t, n, keys, length, ts, flags, ttl, vlan, inner, mpls, mac) < 0)
        return -1;
    *ended = t->nended;
    return 0;
}

/* --- expiry ------------------------------------------------------------------------------------- */

static inline int expiry_reason(const Table *t, const value *v, double now)
{
    if (now - v->last > t->inactive)
        return IDLE;
    return now - v->first >= t->active ? ACTIVE : 0;
}

PyDoc_STRVAR(expire_doc, "expire(now) -> int\n\nEnd every flow timed out at now; return how many flows are waiting.");

static PyObject *Table_expire(Table *t, PyObject *arg)
{
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (ready(t) < 0)
        return PyErr_NoMemory();
    size_t start = t->nended;
    if (t->s[0].n + t->s[1].n) {
        double nb = floor(now / t->grain);
        int64_t last = nb < 4e18 && nb > -4e18 ? (int64_t)nb : t->cursor;
        if (last < t->cursor) {
            if (now < t->early)  /* nothing is due yet: the wheel has not reached `now` */
                last = t->cursor - 1;
            else
                last = t->cursor;
        }
        int64_t first = t->cursor;
        if (last >= first)
            t->early = INFINITY;  /* the cursor's bucket is visited: whatever stays there says again */
        if (last - first >= (int64_t)t->nbuckets)
            first = last - (int64_t)t->nbuckets + 1;
        if (last > t->cursor)
            t->cursor = last;  /* moved-on flows go to `last` or later */
        for (int64_t b = first; b <= last; b++) {
            uint32_t pos = (uint32_t)(b & (t->nbuckets - 1));
            uint32_t id = t->heads[pos];
            t->heads[pos] = NIL;
            while (id != NIL) {
                value *v = flow(t, id);
                uint32_t next = v->next;
                v->prev = v->next = NIL;
                int reason = expiry_reason(t, v, now);
                if (reason) {
                    v->next = FRESH;  /* off the wheel already: end_flow must not unlink it */
                    v->prev = 0;
                    store *st = store_of(t, id);
                    if (!emit(t, id, reason) || drop_flow(t, id, position_of(st, id & SLOT)) < 0)
                        return PyErr_NoMemory();
                } else {
                    wheel_link(t, id);
                }
                id = next;
            }
        }
    }
    count_reasons(t, start);
    return PyLong_FromSize_t(t->nended);
}

PyDoc_STRVAR(next_deadline_doc,
"next_deadline() -> float | None\n\nThe earliest time at which expire() ends a flow (None: empty).");

static PyObject *Table_next_deadline(Table *t, PyObject *unused)
{
    (void)unused;
    if (ready(t) < 0)
        return PyErr_NoMemory();
    if (!(t->s[0].n + t->s[1].n))
        Py_RETURN_NONE;
    double best = INFINITY;
    for (uint32_t k = 0; k < t->nbuckets; k++) {
        int64_t b = t->cursor + k;
        if (k > 0 && (double)b * t->grain > best)
            break;
        uint32_t pos = (uint32_t)(b & (t->nbuckets - 1));
        uint32_t id = t->heads[pos];
        t->heads[pos] = NIL;
        while (id != NIL) {  /* put each flow in the bucket of its deadline as it is now */
            value *v = flow(t, id);
            uint32_t next = v->next;
            double d = fmin(nextafter(v->last + t->inactive, INFINITY), v->first + t->active);
            if (d < best)
                best = d;
            wheel_link(t, id);
            id = next;
        }
    }
    return PyFloat_FromDouble(best);
}

/* --- flush -------------------------------------------------------------------------------------- */

/* Start over empty, giving the memory of a large table back. */
static int reset(Table *t)
{
    for (int f = 0; f < 2; f++) {
        uint32_t keylen = t->s[f].keylen;
        store_free(&t->s[f]);
        if (store_init(&t->s[f], keylen, t->macs) < 0)
            return -1;
    }
    free(t->pool);
    free(t->pool_free);
    free(t->fresh);
    t->fresh = NULL;
    t->freshcap = 0;
    t->pool = NULL;
    t->pool_free = NULL;
    t->pool_cap = t->pool_top = t->pool_nfree = t->pool_freecap = 0;
    memset(t->heads, 0xFF, t->nbuckets * sizeof(uint32_t));
    t->cursor = UNANCHORED;
    t->early = INFINITY;
    t->wheel_stale = 0;
    return 0;
}

PyDoc_STRVAR(flush_doc,
"flush(reason, limit) -> int\n\nEnd up to limit cached flows (limit < 0: all) with the given reason;\n"
"return how many flows are waiting. Until the table is empty the index and wheel are rebuilt on\n"
"the next other call, so a flush in chunks costs one pass over the rows.");

static PyObject *Table_flush(Table *t, PyObject *args)
{
    int reason;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "in:flush", &reason, &limit))
        return NULL;
    size_t start = t->nended;
    for (int f = 0; f < 2 && limit != 0; f++) {
        store *st = &t->s[f];
        while (st->top && limit != 0) {
            uint32_t s = st->top - 1;
            value *v = val_of(st, s);
            if (v->live) {
                if (!emit(t, s | (f ? V6 : 0), reason) || l2_free(t, v->l2) < 0)
                    return PyErr_NoMemory();
                v->live = 0;
                st->n--;
                limit--;
            }
            st->top--;
        }
        st->index_stale = 1;
    }
    t->wheel_stale = 1;
    count_reasons(t, start);
    if (!(t->s[0].n + t->s[1].n) && reset(t) < 0)
        return PyErr_NoMemory();
    return PyLong_FromSize_t(t->nended);
}

/* --- handing flows over ------------------------------------------------------------------------- */

PyDoc_STRVAR(drain_doc,
"drain(key, packets, bytes, first, last, tcp_flags, ttl_min, ttl_max, vlan, inner_vlan, mpls, end_reason,\n"
"      mac) -> tuple\n\nCopy the waiting ended flows into the arrays (flowd.model.batch.FlowRecords columns, at\n"
"least that many rows; mac may be None) and return the statistics since the last drain: (packets,\n"
"bytes, created, freed, dropped, refused, idle, active, end_of_flow, forced, peak).");

static PyObject *Table_drain(Table *t, PyObject *args)
{
    PyObject *o[13];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO:drain", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7],
                          &o[8], &o[9], &o[10], &o[11], &o[12]))
        return NULL;
    Py_ssize_t n = (Py_ssize_t)t->nended;
    views a = {.n = 0};
    uint8_t *key = view(&a, o[0], n * KEY_BYTES, 1, 0, "key");
    uint64_t *packets = key ? view(&a, o[1], n * 8, 1, 0, "packets") : NULL;
    uint64_t *bytes = packets ? view(&a, o[2], n * 8, 1, 0, "bytes") : NULL;
    double *first = bytes ? view(&a, o[3], n * 8, 1, 0, "first") : NULL;
    double *last = first ? view(&a, o[4], n * 8, 1, 0, "last") : NULL;
    uint8_t *flags = last ? view(&a, o[5], n, 1, 0, "tcp_flags") : NULL;
    uint8_t *ttl_min = flags ? view(&a, o[6], n, 1, 0, "ttl_min") : NULL;
    uint8_t *ttl_max = ttl_min ? view(&a, o[7], n, 1, 0, "ttl_max") : NULL;
    uint16_t *vlan = ttl_max ? view(&a, o[8], n * 2, 1, 0, "vlan") : NULL;
    uint16_t *inner = vlan ? view(&a, o[9], n * 2, 1, 0, "inner_vlan") : NULL;
    uint32_t *mpls = inner ? view(&a, o[10], n * 12, 1, 0, "mpls") : NULL;
    uint8_t *reason = mpls ? view(&a, o[11], n, 1, 0, "end_reason") : NULL;
    uint8_t *mac = reason ? view(&a, o[12], n * MAC_BYTES, 1, 1, "mac") : NULL;
    if (!reason || (!mac && PyErr_Occurred())) {
        views_release(&a);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const record *r = &t->ended[i];
        memcpy(key + i * KEY_BYTES, r->key, KEY_BYTES);
        packets[i] = r->packets;
        bytes[i] = r->bytes;
        first[i] = r->first;
        last[i] = r->last;
        flags[i] = r->flags;
        ttl_min[i] = r->ttl_min;
        ttl_max[i] = r->ttl_max;
        vlan[i] = r->l2.vlan;
        inner[i] = r->l2.inner_vlan;
        memcpy(mpls + 3 * i, r->l2.mpls, sizeof r->l2.mpls);
        reason[i] = r->reason;
        if (mac)
            memcpy(mac + i * MAC_BYTES, r->mac, MAC_BYTES);
    }
    views_release(&a);
    t->nended = 0;
    if (t->endedcap > 65536) {  /* give back what a large expiry or flush took */
        free(t->ended);
        t->ended = NULL;
        t->endedcap = 0;
    }
    PyObject *out = PyTuple_New(NSTATS);
    if (!out)
        return NULL;
    for (int i = 0; i < NSTATS; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(t->stat[i]);
        if (!x) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, x);
        t->stat[i] = 0;
    }
    return out;
}

/* --- reading the cached flows ------------------------------------------------------------------- */

PyDoc_STRVAR(ids_doc, "ids(out) -> int\n\nWrite the id of every cached flow into out (int64); return the count.");

static PyObject *Table_ids(Table *t, PyObject *arg)
{
    views a = {.n = 0};
    Py_ssize_t n = (Py_ssize_t)t->s[0].n + t->s[1].n;
    int64_t *out = view(&a, arg, n * 8, 1, 0, "out");
    if (!out) {
        views_release(&a);
        return NULL;
    }
    Py_ssize_t w = 0;
    for (int f = 0; f < 2; f++)
        for (uint32_t s = 0; s < t->s[f].top; s++)
            if (val_of(&t->s[f], s)->live)
                out[w++] = (int64_t)(s | (f ? V6 : 0));
    views_release(&a);
    return PyLong_FromSsize_t(w);
}

PyDoc_STRVAR(read_doc,
"read(ids, key, packets, bytes, first, last, tcp_flags, ttl_min, ttl_max, vlan, inner_vlan, mpls, mac) -> None\n\n"
"Copy the given cached flows into the arrays; any output may be None.");

static PyObject *Table_read(Table *t, PyObject *args)
{
    PyObject *o[13];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO:read", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7],
                          &o[8], &o[9], &o[10], &o[11], &o[12]))
        return NULL;
    views a = {.n = 0};
    Py_buffer *b = &a.v[0];
    if (PyObject_GetBuffer(o[0], b, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    a.n = 1;
    Py_ssize_t n = b->len / 8;
    const int64_t *ids = b->buf;
    void *out[12];
    static const Py_ssize_t width[12] = {KEY_BYTES, 8, 8, 8, 8, 1, 1, 1, 2, 2, 12, MAC_BYTES};
    for (int j = 0; j < 12; j++) {
        out[j] = view(&a, o[j + 1], n * width[j], 1, 1, "output");
        if (!out[j] && PyErr_Occurred()) {
            views_release(&a);
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)ids[i];
        store *st = store_of(t, id);
        if ((id & SLOT) >= st->top || !val_of(st, id & SLOT)->live) {
            views_release(&a);
            PyErr_Format(PyExc_ValueError, "read: %lld is not a cached flow", (long long)ids[i]);
            return NULL;
        }
        const value *v = val_of(st, id & SLOT);
        layer2 l2;
        l2_get(t, v->l2, &l2);
        if (out[0])
            expand(row_of(st, id & SLOT), (id & V6) != 0, (uint8_t *)out[0] + i * KEY_BYTES);
        if (out[1]) ((uint64_t *)out[1])[i] = v->packets;
        if (out[2]) ((uint64_t *)out[2])[i] = v->bytes;
        if (out[3]) ((double *)out[3])[i] = v->first;
        if (out[4]) ((double *)out[4])[i] = v->last;
        if (out[5]) ((uint8_t *)out[5])[i] = v->flags;
        if (out[6]) ((uint8_t *)out[6])[i] = v->ttl_min;
        if (out[7]) ((uint8_t *)out[7])[i] = v->ttl_max;
        if (out[8]) ((uint16_t *)out[8])[i] = l2.vlan;
        if (out[9]) ((uint16_t *)out[9])[i] = l2.inner_vlan;
        if (out[10]) memcpy((uint32_t *)out[10] + 3 * i, l2.mpls, sizeof l2.mpls);
        if (out[11]) {
            uint8_t *m = (uint8_t *)out[11] + i * MAC_BYTES;
            if (st->macs)
                memcpy(m, st->macs + (size_t)(id & SLOT) * MAC_BYTES, MAC_BYTES);
            else
                memset(m, 0, MAC_BYTES);
        }
    }
    views_release(&a);
    Py_RETURN_NONE;
}

/* --- settings and sizes ------------------------------------------------------------------------- */

PyDoc_STRVAR(configure_doc,
"configure(max_flows, active_timeout, inactive_timeout) -> None\n\nNew limits (a reload keeps the flows).");

static PyObject *Table_configure(Table *t, PyObject *args)
{
    long long max_flows;
    double active, inactive;
    if (!PyArg_ParseTuple(args, "Ldd:configure", &max_flows, &active, &inactive))
        return NULL;
    t->max_flows = max_flows;
    if (active != t->active || inactive != t->inactive || !t->heads) {
        t->active = active;
        t->inactive = inactive;
        if (wheel_setup(t) < 0)
            return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(keep_macs_doc,
"keep_macs(on) -> None\n\nStart or stop keeping MAC addresses (a reload added or removed a bridge template);\n"
"flows cached before they were kept end with zeros.");

static PyObject *Table_keep_macs(Table *t, PyObject *arg)
{
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    for (int f = 0; f < 2; f++)
        if (store_macs(&t->s[f], on) < 0)
            return PyErr_NoMemory();
    t->macs = on;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(memory_doc, "memory() -> int\n\nBytes allocated for the cache (rows, indexes, pool, wheel; not the\n"
"scratch a call uses for the flows it ends).");

static PyObject *Table_memory(Table *t, PyObject *unused)
{
    (void)unused;
    size_t total = (size_t)t->nbuckets * 4 + (size_t)t->pool_cap * sizeof(layer2) + (size_t)t->pool_freecap * 4;
    for (int f = 0; f < 2; f++)
        total += (size_t)t->s[f].cap * (t->s[f].rowlen + (t->s[f].macs ? MAC_BYTES : 0))
                 + ((size_t)t->s[f].mask + 1) * 4 + (size_t)t->s[f].freecap * 4;
    return PyLong_FromSize_t(total);
}

static Py_ssize_t Table_len(Table *t) { return (Py_ssize_t)t->s[0].n + t->s[1].n; }

static int Table_init(Table *t, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"max_flows", "active_timeout", "inactive_timeout", "macs", NULL};
    long long max_flows;
    double active, inactive;
    int macs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ldd|p:Table", names, &max_flows, &active, &inactive, &macs))
        return -1;
    if (t->heads)  {
        PyErr_SetString(PyExc_RuntimeError, "Table is already initialised");
        return -1;
    }
    t->max_flows = max_flows;
    t->active = active;
    t->inactive = inactive;
    t->macs = macs;
    if (store_init(&t->s[0], V4_KEY, macs) < 0 || store_init(&t->s[1], KEY_BYTES, macs) < 0 || wheel_setup(t) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    t->wheel_stale = 0;
    return 0;
}

static void Table_dealloc(Table *t)
{
    store_free(&t->s[0]);
    store_free(&t->s[1]);
    free(t->pool);
    free(t->pool_free);
    free(t->heads);
    free(t->ended);
    free(t->fresh);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef Table_methods[] = {
    {"add", (PyCFunction)Table_add, METH_VARARGS, add_doc},
    {"expire", (PyCFunction)Table_expire, METH_O, expire_doc},
    {"next_deadline", (PyCFunction)Table_next_deadline, METH_NOARGS, next_deadline_doc},
    {"flush", (PyCFunction)Table_flush, METH_VARARGS, flush_doc},
    {"drain", (PyCFunction)Table_drain, METH_VARARGS, drain_doc},
    {"ids", (PyCFunction)Table_ids, METH_O, ids_doc},
    {"read", (PyCFunction)Table_read, METH_VARARGS, read_doc},
    {"configure", (PyCFunction)Table_configure, METH_VARARGS, configure_doc},
    {"keep_macs", (PyCFunction)Table_keep_macs, METH_O, keep_macs_doc},
    {"memory", (PyCFunction)Table_memory, METH_NOARGS, memory_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Table_sequence = {.sq_length = (lenfunc)Table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flowd.native._flowtable.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Table(max_flows, active_timeout, inactive_timeout, macs=False): the flow cache (see the module\n"
              "comment).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
    .tp_as_sequence = &Table_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowd.native._flowtable",
    "The flow cache in C (flowd/native/_flowtable.c, flowd/core/compiled_table.py) and the live ingest into it\n"
    "(flowd/native/_live.c, flowd/core/live_path.py).", -1, live_methods,
};

PyMODINIT_FUNC PyInit__flowtable(void)
{
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0
        || PyModule_AddIntConstant(m, "IDLE_TIMEOUT", IDLE) < 0
        || PyModule_AddIntConstant(m, "ACTIVE_TIMEOUT", ACTIVE) < 0
        || PyModule_AddIntConstant(m, "END_OF_FLOW", END_OF_FLOW) < 0
        || PyModule_AddIntConstant(m, "FORCED_END", FORCED) < 0
        || PyModule_AddIntConstant(m, "STATS", NSTATS) < 0 || live_constants(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
