/* flowd.native._lpm: longest-prefix match in C, behind flowd/routing/compiled_lpm.py.
 *
 * It answers what flowd/routing/lpm.py's numpy range table answers (the reference that
 * tests/routing/test_compiled_lpm.py holds it to): for each address of a column, the id and the length
 * of the longest announced prefix that contains it, and it takes the same loads and updates.
 *
 * Addresses are 128-bit integers; an IPv4 address fills the top 32 bits, so a prefix of length L is the
 * same top-L-bit pattern in both families and one code serves both.
 *
 * The table (DIR-24-8 generalised to both families):
 * - A direct table over the top B bits of the address: one uint32 entry per block of addresses (B = 24
 *   for a large IPv4 table, 20 for a large IPv6 one, 16 while a table is small). An entry is either the
 *   answer for its whole block, a value, or (top bit set) the number of a bucket. A value is the route
 *   id + 1 in the low 24 bits and the prefix length + 1 above them; 0 is "no route".
 * - A bucket splits one block into ranges on which the answer does not change: the sorted first address
 *   of each range (the first is the block's own) and each range's value. An address is answered by the
 *   last range start at or below it (a binary search). A block has a bucket only while a prefix longer
 *   than B lies inside it.
 * - The prefix index: open addressing (linear probing, deletion by backward shift, no tombstones) of
 *   (prefix, length) -> value. It answers exact finds, gives a withdrawn prefix its longest covering
 *   prefix (one probe per shorter length in use) and is what the table is rebuilt from.
 *
 * Changes paint with the reference's rules. Announcing P/L gives P's value to every block entry or range
 * inside P whose current length is <= L (an ancestor of P, nothing, or P itself re-announced); a prefix
 * longer than B first splits its block's ranges at its first address and after its last one.
 * Withdrawing P gives the entries and ranges still held by P (length == L) to its covering prefix; the
 * buckets it touched merge neighbouring ranges that now agree, and a bucket left with one range becomes
 * a value again. Loading builds the index, paints the direct table in increasing prefix length and
 * builds each bucket in one go from its block's prefixes. A small table that reaches `big_at` prefixes
 * is rebuilt with the large B.
 *
 * A lookup call answers a whole column of addresses (rows of 4 or 16 bytes, any row stride, so the
 * addresses can be read straight out of flow keys), a group of rows at a time: each step of the walk
 * (direct-table entry, bucket, ranges) is fetched for the whole group before any is used, so the
 * cache misses of a group overlap instead of following one another.
 * Arrays come in and go out through the buffer protocol (numpy allocates them; no numpy headers).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef unsigned __int128 u128;

#define ID_BITS 24
#define MAX_ID ((1u << ID_BITS) - 2)
#define BUCKET 0x80000000u   /* direct-table entry: the low bits are a bucket number */
#define SMALL_BITS 16
#define BIG_AT 65536         /* prefixes from which a table uses the large B */
#define GROUP 128            /* rows whose memory reads a lookup overlaps */
#define HUGE_FROM (4u << 20) /* direct tables this large ask for transparent huge pages (fewer TLB misses) */

static inline uint32_t value(int32_t id, int len) { return ((uint32_t)(len + 1) << ID_BITS) | (uint32_t)(id + 1); }
static inline int32_t value_id(uint32_t v) { return (int32_t)(v & ((1u << ID_BITS) - 1)) - 1; }
static inline int value_len(uint32_t v) { return (int)(v >> ID_BITS) - 1; }

typedef struct {
    uint64_t *hi;    /* one allocation: hi[cap], lo[cap], then the values as uint32_t[cap] */
    uint32_t n, cap;
} bucket;

typedef struct {
    uint32_t *key;  /* per slot, the prefix's top `words` 32-bit words (IPv4: 1, IPv6: 4) */
    uint32_t *val;  /* 0: a free slot */
    size_t cap, n;
    int words;
} pindex;

typedef struct {
    PyObject_HEAD
    int width, bits;          /* address width (32 or 128); B */
    Py_ssize_t big_at;
    uint32_t *top;
    size_t top_bytes;
    bucket *buckets;
    uint32_t nbuckets, bucket_cap;
    uint32_t *spare, nspare, spare_cap;  /* numbers of freed buckets */
    pindex ix;
    uint32_t per_len[129];    /* prefixes of each length */
} Table;

/* --- addresses ---------------------------------------------------------------------------------- */

static inline u128 mask_of(int len) { return len ? ~(u128)0 << (128 - len) : 0; }
static inline uint64_t hi_of(u128 a) { return (uint64_t)(a >> 64); }
static inline uint64_t lo_of(u128 a) { return (uint64_t)a; }
static inline u128 join(uint64_t hi, uint64_t lo) { return (u128)hi << 64 | lo; }

static inline uint32_t be32(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return __builtin_bswap32(x);
}

static inline uint64_t be64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return __builtin_bswap64(x);
}

static inline u128 address(const uint8_t *p, int width)
{
    return width == 32 ? (u128)be32(p) << 96 : join(be64(p), be64(p + 8));
}

static inline uint32_t block_of(const Table *t, u128 a) { return (uint32_t)(a >> (128 - t->bits)); }
static inline u128 block_first(const Table *t, uint32_t i) { return (u128)i << (128 - t->bits); }
static inline u128 block_last(const Table *t, uint32_t i) { return block_first(t, i) | ~mask_of(t->bits); }

/* --- the direct table ---------------------------------------------------------------------------- */

/* Zeroed pages straight from the kernel: pages no prefix touches cost nothing. */
static uint32_t *top_new(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_FROM)
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* --- buckets ------------------------------------------------------------------------------------ */

static inline uint64_t *b_lo(const bucket *b) { return b->hi + b->cap; }
static inline uint32_t *b_val(const bucket *b) { return (uint32_t *)(b->hi + 2 * (size_t)b->cap); }
static inline u128 b_key(const bucket *b, uint32_t i) { return join(b->hi[i], b_lo(b)[i]); }

/* The range holding (hi, lo): the last start at or below it (the first start is the block's). */
static inline uint32_t b_find(const bucket *b, uint64_t hi, uint64_t lo)
{
    const uint64_t *H = b->hi, *L = b_lo(b);
    uint32_t base = 0, n = b->n;
    while (n > 1) {
        uint32_t half = n >> 1, mid = base + half;
        base = (H[mid] < hi || (H[mid] == hi && L[mid] <= lo)) ? mid : base;
        n -= half;
    }
    return base;
}

static int b_resize(bucket *b, uint32_t cap)
{
    uint64_t *mem = malloc((size_t)cap * 20);
    if (!mem) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->hi) {
        memcpy(mem, b->hi, (size_t)b->n * 8);
        memcpy(mem + cap, b_lo(b), (size_t)b->n * 8);
        memcpy((uint32_t *)(mem + 2 * (size_t)cap), b_val(b), (size_t)b->n * 4);
        free(b->hi);
    }
    b->hi = mem;
    b->cap = cap;
    return 0;
}

/* A new bucket for block `i` of the direct table, room for `n` ranges (filled by the caller). */
static bucket *b_new(Table *t, uint32_t i, uint32_t n)
{
    bucket fresh = {NULL, 0, 0};
    if (b_resize(&fresh, n) < 0)
        return NULL;
    uint32_t num;
    if (t->nspare) {
        num = t->spare[--t->nspare];
    } else {
        if (t->nbuckets == t->bucket_cap) {
            uint32_t cap = t->bucket_cap ? t->bucket_cap * 2 : 64;
            bucket *more = cap < BUCKET ? realloc(t->buckets, (size_t)cap * sizeof(bucket)) : NULL;
            if (!more) {
                free(fresh.hi);
                PyErr_NoMemory();
                return NULL;
            }
            t->buckets = more;
            t->bucket_cap = cap;
        }
        num = t->nbuckets++;
    }
    fresh.n = n;
    t->buckets[num] = fresh;
    t->top[i] = BUCKET | num;
    return &t->buckets[num];
}

static int b_free(Table *t, uint32_t num)
{
    if (t->nspare == t->spare_cap) {
        uint32_t cap = t->spare_cap ? t->spare_cap * 2 : 64;
        uint32_t *more = realloc(t->spare, (size_t)cap * 4);
        if (!more) {
            PyErr_NoMemory();
            return -1;
        }
        t->spare = more;
        t->spare_cap = cap;
    }
    free(t->buckets[num].hi);
    t->buckets[num].hi = NULL;
    t->buckets[num].n = t->buckets[num].cap = 0;
    t->spare[t->nspare++] = num;
    return 0;
}

/* Make `x` (inside the bucket's block) the start of a range, splitting the range that holds it; its index. */
static int64_t b_split(bucket *b, u128 x)
{
    uint32_t i = b_find(b, hi_of(x), lo_of(x));
    if (b_key(b, i) == x)
        return i;
    if (b->n == b->cap && b_resize(b, b->cap + b->cap / 2 + 2) < 0)
        return -1;
    uint64_t *lo = b_lo(b);
    uint32_t *val = b_val(b), k = b->n - i - 1;
    memmove(b->hi + i + 2, b->hi + i + 1, (size_t)k * 8);
    memmove(lo + i + 2, lo + i + 1, (size_t)k * 8);
    memmove(val + i + 2, val + i + 1, (size_t)k * 4);
    b->hi[i + 1] = hi_of(x);
    lo[i + 1] = lo_of(x);
    val[i + 1] = val[i];
    b->n++;
    return i + 1;
}

/* Merge neighbouring ranges that agree; a bucket left with one range becomes block i's value again. */
static int b_tidy(Table *t, uint32_t i)
{
    uint32_t num = t->top[i] & ~BUCKET;
    bucket *b = &t->buckets[num];
    uint64_t *lo = b_lo(b);
    uint32_t *val = b_val(b), w = 1;
    for (uint32_t r = 1; r < b->n; r++) {
        if (val[r] == val[w - 1])
            continue;
        b->hi[w] = b->hi[r];
        lo[w] = lo[r];
        val[w++] = val[r];
    }
    b->n = w;
    if (w > 1)
        return 0;
    t->top[i] = val[0];
    return b_free(t, num);
}

/* Paint ranges [a, z) of values: announcing (withdraw = 0) takes those of length <= len, withdrawing
 * those of length == len. */
static inline void paint_values(uint32_t *val, uint32_t a, uint32_t z, int len, uint32_t v, int withdraw)
{
    for (uint32_t k = a; k < z; k++) {
        int l = value_len(val[k]);
        if (withdraw ? l == len : l <= len)
            val[k] = v;
    }
}

/* Apply one announcement (v = its value) or withdrawal (v = the covering prefix's value) of s/len. */
static int paint(Table *t, u128 s, int len, uint32_t v, int withdraw)
{
    u128 last = s | ~mask_of(len);
    if (len <= t->bits) {
        uint32_t i1 = block_of(t, last);
        for (uint32_t i = block_of(t, s);; i++) {
            uint32_t e = t->top[i];
            if (e & BUCKET) {
                bucket *b = &t->buckets[e & ~BUCKET];
                paint_values(b_val(b), 0, b->n, len, v, withdraw);
                if (withdraw && b_tidy(t, i) < 0)
                    return -1;
            } else if (withdraw ? value_len(e) == len : value_len(e) <= len) {
                t->top[i] = v;
            }
            if (i == i1)
                break;
        }
        return 0;
    }
    uint32_t i = block_of(t, s), e = t->top[i];
    if (!(e & BUCKET)) {
        bucket *b = b_new(t, i, 1);
        if (!b)
            return -1;
        u128 first = block_first(t, i);
        b->hi[0] = hi_of(first);
        b_lo(b)[0] = lo_of(first);
        b_val(b)[0] = e;
    }
    bucket *b = &t->buckets[t->top[i] & ~BUCKET];
    int64_t a = b_split(b, s), z = b->n;
    if (a >= 0 && last != block_last(t, i))
        z = b_split(b, last + 1);
    if (a < 0 || z < 0)
        return -1;
    paint_values(b_val(b), (uint32_t)a, (uint32_t)z, len, v, withdraw);
    return withdraw ? b_tidy(t, i) : 0;
}

/* --- the prefix index ---------------------------------------------------------------------------- */

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static inline size_t ix_home(const pindex *x, u128 s, int len)
{
    uint64_t h = mix(hi_of(s) ^ mix(lo_of(s) + (uint64_t)len));
    return (size_t)(((u128)h * x->cap) >> 64);
}

static inline u128 ix_key(const pindex *x, size_t j)
{
    const uint32_t *k = x->key + j * x->words;
    u128 s = 0;
    for (int w = 0; w < x->words; w++)
        s |= (u128)k[w] << (96 - 32 * w);
    return s;
}

/* The slot of s/len, or of the free slot where it would go. */
static size_t ix_slot(const pindex *x, u128 s, int len)
{
    size_t j = ix_home(x, s, len);
    while (x->val[j] && (value_len(x->val[j]) != len || ix_key(x, j) != s))
        j = j + 1 == x->cap ? 0 : j + 1;
    return j;
}

static uint32_t ix_get(const pindex *x, u128 s, int len)
{
    return x->cap ? x->val[ix_slot(x, s, len)] : 0;
}

static void ix_free(pindex *x)
{
    int words = x->words;
    free(x->key);
    free(x->val);
    memset(x, 0, sizeof(*x));
    x->words = words;
}

static void ix_set(pindex *x, size_t j, u128 s, uint32_t v)
{
    uint32_t *k = x->key + j * x->words;
    for (int w = 0; w < x->words; w++)
        k[w] = (uint32_t)(s >> (96 - 32 * w));
    x->val[j] = v;
}

/* Room for `want` prefixes at a load of at most 3/4 (rehashing into `want` * 5/3 slots when short). */
static int ix_reserve(pindex *x, size_t want)
{
    if (want * 4 <= x->cap * 3)
        return 0;
    pindex old = *x, y = {.words = x->words};
    y.cap = want * 5 / 3 + 16;
    y.key = malloc(y.cap * 4 * y.words);
    y.val = calloc(y.cap, 4);
    if (!y.key || !y.val) {
        ix_free(&y);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t j = 0; j < old.cap; j++) {
        if (old.val[j]) {
            u128 s = ix_key(&old, j);
            ix_set(&y, ix_slot(&y, s, value_len(old.val[j])), s, old.val[j]);
        }
    }
    y.n = old.n;
    ix_free(&old);
    *x = y;
    return 0;
}

/* Insert or replace s/len -> v; the value it replaced (0: none). */
static int ix_put(pindex *x, u128 s, uint32_t v, uint32_t *old)
{
    if (ix_reserve(x, x->n + 1) < 0)
        return -1;
    size_t j = ix_slot(x, s, value_len(v));
    *old = x->val[j];
    x->n += !*old;
    ix_set(x, j, s, v);
    return 0;
}

static void ix_delete(pindex *x, u128 s, int len)
{
    size_t i = ix_slot(x, s, len), j = i;
    if (!x->val[i])
        return;
    for (;;) {
        j = j + 1 == x->cap ? 0 : j + 1;
        if (!x->val[j])
            break;
        size_t k = ix_home(x, ix_key(x, j), value_len(x->val[j]));
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;  /* its home lies between the hole and it: it stays */
        ix_set(x, i, ix_key(x, j), x->val[j]);
        i = j;
    }
    x->val[i] = 0;
    x->n--;
}

/* The longest prefix shorter than `len` that contains s: its value, or 0. */
static uint32_t covering(const Table *t, u128 s, int len)
{
    for (int l = len - 1; l >= 0; l--) {
        if (!t->per_len[l])
            continue;
        uint32_t v = ix_get(&t->ix, s & mask_of(l), l);
        if (v)
            return v;
    }
    return 0;
}

/* --- building ------------------------------------------------------------------------------------ */

typedef struct {
    u128 s;
    uint32_t v;
} item;

static int by_block_then_length(const void *pa, const void *pb, void *bits)
{
    const item *a = pa, *b = pb;
    int shift = 128 - *(int *)bits;
    u128 x = a->s >> shift, y = b->s >> shift;
    if (x != y)
        return x < y ? -1 : 1;
    if (a->v >> ID_BITS != b->v >> ID_BITS)
        return a->v >> ID_BITS < b->v >> ID_BITS ? -1 : 1;
    return a->s < b->s ? -1 : a->s > b->s;
}

static int by_address(const void *pa, const void *pb)
{
    u128 a = *(const u128 *)pa, b = *(const u128 *)pb;
    return a < b ? -1 : a > b;
}

static void drop_structure(Table *t)
{
    for (uint32_t k = 0; k < t->nbuckets; k++)
        free(t->buckets[k].hi);
    free(t->buckets);
    free(t->spare);
    if (t->top)
        munmap(t->top, t->top_bytes);
    t->buckets = NULL;
    t->spare = NULL;
    t->top = NULL;
    t->nbuckets = t->bucket_cap = t->nspare = t->spare_cap = 0;
    t->top_bytes = 0;
}

/* One block's bucket from its prefixes (all longer than B, in increasing length): the ranges they
 * bound, each valued by the longest of them that holds it (or the block's value). */
static int build_bucket(Table *t, const item *g, size_t k, u128 **bounds, size_t *room)
{
    uint32_t i = block_of(t, g[0].s), base = t->top[i];
    if (*room < 2 * k + 1) {
        free(*bounds);
        *room = 2 * k + 1;
        *bounds = malloc(*room * sizeof(u128));
        if (!*bounds) {
            PyErr_NoMemory();
            return -1;
        }
    }
    u128 *at = *bounds, end = block_last(t, i);
    size_t m = 0;
    at[m++] = block_first(t, i);
    for (size_t j = 0; j < k; j++) {
        u128 last = g[j].s | ~mask_of(value_len(g[j].v));
        at[m++] = g[j].s;
        if (last != end)
            at[m++] = last + 1;
    }
    qsort(at, m, sizeof(u128), by_address);
    size_t n = 1;
    for (size_t j = 1; j < m; j++)
        if (at[j] != at[n - 1])
            at[n++] = at[j];
    bucket *b = b_new(t, i, (uint32_t)n);
    if (!b)
        return -1;
    uint64_t *lo = b_lo(b);
    uint32_t *val = b_val(b);
    for (size_t j = 0; j < n; j++) {
        b->hi[j] = hi_of(at[j]);
        lo[j] = lo_of(at[j]);
        val[j] = base;
    }
    for (size_t j = 0; j < k; j++) {
        u128 last = g[j].s | ~mask_of(value_len(g[j].v));
        uint32_t a = b_find(b, hi_of(g[j].s), lo_of(g[j].s));
        uint32_t z = last == end ? b->n : b_find(b, hi_of(last + 1), lo_of(last + 1));
        for (uint32_t r = a; r < z; r++)
            val[r] = g[j].v;
    }
    return b_tidy(t, i);
}

/* The direct table and buckets again, from the prefix index. */
static int rebuild(Table *t)
{
    drop_structure(t);
    t->bits = (Py_ssize_t)t->ix.n >= t->big_at ? (t->width == 32 ? 24 : 20) : SMALL_BITS;
    t->top_bytes = ((size_t)1 << t->bits) * 4;
    t->top = top_new(t->top_bytes);
    if (!t->top) {
        t->top_bytes = 0;
        PyErr_NoMemory();
        return -1;
    }
    const pindex *x = &t->ix;
    size_t longer = 0;
    for (int len = 0; len <= t->width; len++) {
        if (!t->per_len[len])
            continue;
        if (len > t->bits) {
            longer += t->per_len[len];
            continue;
        }
        for (size_t j = 0; j < x->cap; j++) {  /* shorter first: a longer prefix paints over a shorter one */
            if (x->val[j] && value_len(x->val[j]) == len) {
                u128 s = ix_key(x, j);
                uint32_t i1 = block_of(t, s | ~mask_of(len));
                for (uint32_t i = block_of(t, s);; i++) {
                    t->top[i] = x->val[j];
                    if (i == i1)
                        break;
                }
            }
        }
    }
    if (!longer)
        return 0;
    item *items = malloc(longer * sizeof(item));
    if (!items) {
        PyErr_NoMemory();
        return -1;
    }
    size_t k = 0;
    for (size_t j = 0; j < x->cap; j++)
        if (x->val[j] && value_len(x->val[j]) > t->bits)
            items[k++] = (item){ix_key(x, j), x->val[j]};
    qsort_r(items, k, sizeof(item), by_block_then_length, &t->bits);
    u128 *bounds = NULL;
    size_t room = 0;
    int rc = 0;
    for (size_t g = 0, h; g < k && rc == 0; g = h) {
        for (h = g + 1; h < k && block_of(t, items[h].s) == block_of(t, items[g].s); h++)
            ;
        rc = build_bucket(t, items + g, h - g, &bounds, &room);
    }
    free(bounds);
    free(items);
    return rc;
}

/* --- the Python type ----------------------------------------------------------------------------- */

static int check_length(const Table *t, long len)
{
    if (len >= 0 && len <= t->width)
        return 0;
    PyErr_Format(PyExc_ValueError, "prefix length outside 0..%d", t->width);
    return -1;
}

static int check_id(long id, int withdrawal_allowed)
{
    if ((id >= 0 && id <= (long)MAX_ID) || (withdrawal_allowed && id == -1))
        return 0;
    PyErr_Format(PyExc_ValueError, "route id %ld outside 0..%u", id, MAX_ID);
    return -1;
}

static int get_view(Py_buffer *b, PyObject *obj, Py_ssize_t bytes, int writable, const char *name)
{
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (b->len >= bytes)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected at least %zd", name, b->len, bytes);
    PyBuffer_Release(b);
    return -1;
}

PyDoc_STRVAR(load_doc,
"load(n, nets, lengths, ids) -> None\n\n"
"Replace the whole content: nets is n rows of 4 or 16 bytes, lengths uint8[n], ids int32[n]; of\n"
"duplicate prefixes the last one counts. Host bits are cleared.");

static PyObject *Table_load(Table *t, PyObject *args)
{
    PyObject *o[3];
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "nOOO:load", &n, &o[0], &o[1], &o[2]))
        return NULL;
    Py_buffer v[3];
    int nb = t->width / 8;
    if (get_view(&v[0], o[0], n * nb, 0, "nets") < 0)
        return NULL;
    if (get_view(&v[1], o[1], n, 0, "lengths") < 0) {
        PyBuffer_Release(&v[0]);
        return NULL;
    }
    if (get_view(&v[2], o[2], n * 4, 0, "ids") < 0) {
        PyBuffer_Release(&v[0]);
        PyBuffer_Release(&v[1]);
        return NULL;
    }
    const uint8_t *nets = v[0].buf, *lens = v[1].buf;
    const int32_t *ids = v[2].buf;
    int rc = 0;
    for (Py_ssize_t r = 0; r < n && rc == 0; r++)
        rc = check_length(t, lens[r]) < 0 || check_id(ids[r], 0) < 0 ? -1 : 0;
    if (rc == 0) {
        ix_free(&t->ix);
        memset(t->per_len, 0, sizeof(t->per_len));
        rc = ix_reserve(&t->ix, (size_t)n);
    }
    for (Py_ssize_t r = 0; r < n && rc == 0; r++) {
        uint32_t old;
        u128 s = address(nets + r * nb, t->width) & mask_of(lens[r]);
        rc = ix_put(&t->ix, s, value(ids[r], lens[r]), &old);
        t->per_len[lens[r]] += rc == 0 && !old;
    }
    if (rc == 0)
        rc = rebuild(t);
    for (int k = 0; k < 3; k++)
        PyBuffer_Release(&v[k]);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lookup_doc,
"lookup(addrs, ids, lengths) -> None\n\n"
"For each row of addrs (a 2-D uint8 buffer of 4- or 16-byte rows, any row stride): the route id and\n"
"prefix length of the longest match into ids (int32[n]) and lengths (int16[n]); -1 and -1 for none.");

/* Where a lookup writes: each row's route id and length. */
typedef struct {
    int32_t *ids;
    int16_t *lens;
} answers;

/* Answer rows [0, m) of a group: every step first issues the group's memory reads (its direct-table
 * entries, then the buckets they name, then the buckets' ranges), so that they overlap. */
static inline __attribute__((always_inline)) void answer_group(const Table *t, const uint8_t *row, Py_ssize_t stride,
                                                               int m, int width, const answers *to, Py_ssize_t at)
{
    uint64_t hi[GROUP], lo[GROUP];
    uint32_t e[GROUP], any = 0;
    int shift = 64 - t->bits;
    for (int j = 0; j < m; j++) {
        const uint8_t *p = row + j * stride;
        hi[j] = width == 32 ? (uint64_t)be32(p) << 32 : be64(p);
        __builtin_prefetch(&t->top[hi[j] >> shift]);
    }
    for (int j = 0; j < m; j++) {
        e[j] = t->top[hi[j] >> shift];
        any |= e[j];
        if (e[j] & BUCKET)
            __builtin_prefetch(&t->buckets[e[j] & ~BUCKET]);
    }
    if (any & BUCKET) {
        for (int j = 0; j < m; j++) {
            if (e[j] & BUCKET) {
                const bucket *b = &t->buckets[e[j] & ~BUCKET];
                __builtin_prefetch(b->hi + b->n / 2);
                __builtin_prefetch(b_val(b) + b->n / 2);
            }
        }
        for (int j = 0; j < m; j++) {
            if (e[j] & BUCKET) {
                const bucket *b = &t->buckets[e[j] & ~BUCKET];
                lo[j] = width == 32 ? 0 : be64(row + j * stride + 8);
                e[j] = b_val(b)[b_find(b, hi[j], lo[j])];
            }
        }
    }
    for (int j = 0; j < m; j++) {
        to->ids[at + j] = value_id(e[j]);
        to->lens[at + j] = (int16_t)value_len(e[j]);
    }
}

static void answer_rows(const Table *t, const uint8_t *row, Py_ssize_t stride, Py_ssize_t n, const answers *to)
{
    for (Py_ssize_t r = 0; r < n; r += GROUP) {
        int m = n - r < GROUP ? (int)(n - r) : GROUP;
        if (t->width == 32)
            answer_group(t, row + r * stride, stride, m, 32, to, r);
        else
            answer_group(t, row + r * stride, stride, m, 128, to, r);
    }
}

static PyObject *Table_lookup(Table *t, PyObject *args)
{
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO:lookup", &o[0], &o[1], &o[2]))
        return NULL;
    Py_buffer v[3];
    int held = 0, nb = t->width / 8;
    if (PyObject_GetBuffer(o[0], &v[held], PyBUF_STRIDES) < 0)
        return NULL;
    held++;
    answers to = {0};
    PyObject *result = NULL;
    if (v[0].ndim != 2 || v[0].shape[1] != nb || v[0].strides[1] != 1 || v[0].itemsize != 1) {
        PyErr_Format(PyExc_ValueError, "addrs: expected rows of %d bytes", nb);
        goto done;
    }
    Py_ssize_t n = v[0].shape[0];
    if (get_view(&v[held], o[1], n * 4, 1, "ids") < 0)
        goto done;
    to.ids = v[held++].buf;
    if (get_view(&v[held], o[2], n * 2, 1, "lengths") < 0)
        goto done;
    to.lens = v[held++].buf;
    answer_rows(t, v[0].buf, v[0].strides[0], n, &to);
    result = Py_NewRef(Py_None);
done:
    while (held > 0)
        PyBuffer_Release(&v[--held]);
    return result;
}

static int parse_prefix(const Table *t, PyObject *net, long len, u128 *s)
{
    char *raw;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(net, &raw, &size) < 0)
        return -1;
    if (size != t->width / 8) {
        PyErr_Format(PyExc_ValueError, "prefix of %zd bytes, expected %d", size, t->width / 8);
        return -1;
    }
    if (check_length(t, len) < 0)
        return -1;
    *s = address((const uint8_t *)raw, t->width) & mask_of((int)len);
    return 0;
}

PyDoc_STRVAR(find_doc, "find(net, length) -> int\n\nThe route id of exactly this prefix, or -1.");

static PyObject *Table_find(Table *t, PyObject *args)
{
    PyObject *net;
    long len;
    u128 s;
    if (!PyArg_ParseTuple(args, "Sl:find", &net, &len) || parse_prefix(t, net, len, &s) < 0)
        return NULL;
    return PyLong_FromLong(value_id(ix_get(&t->ix, s, (int)len)));
}

PyDoc_STRVAR(apply_doc,
"apply(changes) -> int\n\n"
"Apply announcements (net, length, id) and withdrawals (net, length, -1) in order; return how many\n"
"changed the table (re-announcing the same id or withdrawing an unknown prefix changes nothing).\n"
"Every change is checked before the first is applied.");

static PyObject *Table_apply(Table *t, PyObject *changes)
{
    PyObject *seq = PySequence_Fast(changes, "apply: expected a sequence of (net, length, id)");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *net;
    long len, id;
    u128 s;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (!PyArg_ParseTuple(items[r], "Sll:apply", &net, &len, &id) || parse_prefix(t, net, len, &s) < 0
            || check_id(id, 1) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_ssize_t changed = 0;
    int rc = 0;
    for (Py_ssize_t r = 0; r < n && rc == 0; r++) {
        PyArg_ParseTuple(items[r], "Sll", &net, &len, &id);
        parse_prefix(t, net, len, &s);
        uint32_t old = ix_get(&t->ix, s, (int)len);
        if (id == -1) {
            if (!old)
                continue;
            ix_delete(&t->ix, s, (int)len);
            t->per_len[len]--;
            rc = paint(t, s, (int)len, covering(t, s, (int)len), 1);
        } else {
            uint32_t v = value((int32_t)id, (int)len);
            if (old == v)
                continue;
            rc = ix_put(&t->ix, s, v, &old);
            if (rc == 0) {
                t->per_len[len] += !old;
                rc = paint(t, s, (int)len, v, 0);
            }
            if (rc == 0 && t->bits == SMALL_BITS && (Py_ssize_t)t->ix.n >= t->big_at)
                rc = rebuild(t);  /* the table became large: the rest of the batch paints the large one */
        }
        changed++;
    }
    Py_DECREF(seq);
    if (rc < 0)
        return NULL;
    return PyLong_FromSsize_t(changed);
}

PyDoc_STRVAR(live_ids_doc, "live_ids(out) -> None\n\nThe route id of every prefix into out (int32[len(table)]).");

static PyObject *Table_live_ids(Table *t, PyObject *out)
{
    Py_buffer v;
    if (get_view(&v, out, (Py_ssize_t)t->ix.n * 4, 1, "out") < 0)
        return NULL;
    int32_t *ids = v.buf;
    for (size_t j = 0, k = 0; j < t->ix.cap; j++)
        if (t->ix.val[j])
            ids[k++] = value_id(t->ix.val[j]);
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(memory_doc, "memory() -> int\n\nBytes the table holds (direct table, buckets, prefix index).");

static PyObject *Table_memory(Table *t, PyObject *unused)
{
    (void)unused;
    size_t total = t->top_bytes + (size_t)t->bucket_cap * sizeof(bucket) + (size_t)t->spare_cap * 4
                   + t->ix.cap * (4 + 4 * (size_t)t->ix.words);
    for (uint32_t k = 0; k < t->nbuckets; k++)
        total += (size_t)t->buckets[k].cap * 20;
    return PyLong_FromSize_t(total);
}

PyDoc_STRVAR(shape_doc, "shape() -> (bits, buckets, ranges)\n\nB, the buckets in use and the ranges they hold.");

static PyObject *Table_shape(Table *t, PyObject *unused)
{
    (void)unused;
    size_t ranges = 0;
    for (uint32_t k = 0; k < t->nbuckets; k++)
        ranges += t->buckets[k].n;
    return Py_BuildValue("(inn)", t->bits, (Py_ssize_t)(t->nbuckets - t->nspare), (Py_ssize_t)ranges);
}

static Py_ssize_t Table_len(Table *t) { return (Py_ssize_t)t->ix.n; }

static int Table_init(Table *t, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"width", "big_at", NULL};
    int width;
    Py_ssize_t big_at = BIG_AT;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|n:Table", names, &width, &big_at))
        return -1;
    if (width != 32 && width != 128) {
        PyErr_Format(PyExc_ValueError, "address width %d: expected 32 or 128", width);
        return -1;
    }
    if (t->top) {
        PyErr_SetString(PyExc_RuntimeError, "Table is already initialised");
        return -1;
    }
    t->width = width;
    t->ix.words = width / 32;
    t->big_at = big_at;
    return rebuild(t);
}

static void Table_dealloc(Table *t)
{
    drop_structure(t);
    ix_free(&t->ix);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef Table_methods[] = {
    {"load", (PyCFunction)Table_load, METH_VARARGS, load_doc},
    {"lookup", (PyCFunction)Table_lookup, METH_VARARGS, lookup_doc},
    {"find", (PyCFunction)Table_find, METH_VARARGS, find_doc},
    {"apply", (PyCFunction)Table_apply, METH_O, apply_doc},
    {"live_ids", (PyCFunction)Table_live_ids, METH_O, live_ids_doc},
    {"memory", (PyCFunction)Table_memory, METH_NOARGS, memory_doc},
    {"shape", (PyCFunction)Table_shape, METH_NOARGS, shape_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Table_sequence = {.sq_length = (lenfunc)Table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flowd.native._lpm.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Table(width, big_at=65536): longest-prefix match for one family (see the module comment).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
    .tp_as_sequence = &Table_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowd.native._lpm",
    "Longest-prefix match in C: see flowd/native/_lpm.c and flowd/routing/compiled_lpm.py.", -1, NULL,
};

PyMODINIT_FUNC PyInit__lpm(void)
{
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0
        || PyModule_AddIntConstant(m, "MAX_ID", MAX_ID) < 0
        || PyModule_AddIntConstant(m, "BIG_AT", BIG_AT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
