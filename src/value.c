/*
 * value.c -- rs_value, the tree of plain data (null, bool, int, double, string, array, map)
 * that crosses runspace boundaries by copy.
 *
 * Each kind of node is a struct of its own that begins with the common header, as Lua's
 * collectable objects do, so an int takes 16 bytes and a string is a single allocation with
 * its bytes inline. null, true and false are static singletons that are never freed.
 *
 * A map keeps its entries in insertion order in a vector. Up to MAP_SCAN_MAX entries a
 * lookup scans them; beyond that the map also keeps an open-addressing index (linear
 * probing, load at most 1/2) of positions in the vector, so lookups stay O(1) on average;
 * keys are hashed with the process's secret key (hash.c), so input cannot defeat that.
 *
 * Trees can be arbitrarily deep (a script may nest a million tables), so nothing here
 * recurses: copy and equal walk with an explicit stack on the heap, and destroy threads the
 * containers it has still to empty through their own dead_next field, which needs no memory
 * and so cannot fail.
 */
#include "value.h"

#include "hash.h"

#include <string.h>

#define MAP_SCAN_MAX 8
#define NOT_FOUND ((size_t)-1)

struct rs_value {
    rs_type type;
};

typedef struct bool_value {
    rs_value base;
    bool b;
} bool_value;

typedef struct int_value {
    rs_value base;
    int64_t i;
} int_value;

typedef struct double_value {
    rs_value base;
    double d;
} double_value;

typedef struct string_value {
    rs_value base;
    size_t len;
    char bytes[]; /* len bytes and a NUL */
} string_value;

typedef struct array_value {
    rs_value base;
    rs_value **items;
    size_t len, cap;
    rs_value *dead_next; /* rs_value_destroy's list of containers still to empty */
} array_value;

typedef struct map_entry {
    char *key; /* keylen bytes and a NUL */
    size_t keylen;
    uint64_t hash;
    rs_value *value;
} map_entry;

typedef struct map_value {
    rs_value base;
    map_entry *entries;
    size_t len, cap;
    size_t *index; /* icap slots (a power of two): entry position + 1, or 0 when free */
    size_t icap;
    rs_value *dead_next;
} map_value;

static const rs_value null_value = {RS_TNULL};
static const bool_value false_value = {{RS_TBOOL}, false};
static const bool_value true_value = {{RS_TBOOL}, true};

/* The container views of v, or NULL when v is something else. The casts drop const so that
 * one helper serves readers and writers alike, as strchr does. */
static array_value *as_array(const rs_value *v)
{
    return v && v->type == RS_TARRAY ? (array_value *)v : NULL;
}

static map_value *as_map(const rs_value *v)
{
    return v && v->type == RS_TMAP ? (map_value *)v : NULL;
}

/* ---- sizes -------------------------------------------------------------------------------- */

/* What malloc adds to a block, and rounds it up to. */
#define BLOCK_OVERHEAD 16

static size_t block(size_t n)
{
    return (n + BLOCK_OVERHEAD + 15) & ~(size_t)15;
}

size_t rs__value_cost(rs_type t, size_t n)
{
    switch (t) {
    case RS_TNULL:
    case RS_TBOOL:
        return 0; /* singletons */
    case RS_TINT:
    case RS_TDOUBLE:
        return block(sizeof(int_value));
    case RS_TSTRING:
        return block(sizeof(string_value) + n + 1);
    case RS_TARRAY:
        return block(sizeof(array_value)) + (n ? block(n * sizeof(rs_value *)) : 0);
    case RS_TMAP:
        /* The entries, one key block each, and the index beyond MAP_SCAN_MAX entries. */
        return block(sizeof(map_value)) + (n ? block(n * sizeof(map_entry)) : 0) + n * block(1) +
               (n > MAP_SCAN_MAX ? block(4 * n * sizeof(size_t)) : 0);
    }
    return 0;
}

size_t rs__value_size(const rs_value *v)
{
    /* An explicit stack: trees can be arbitrarily deep. Out of memory for it, the answer is
     * SIZE_MAX: too big for any limit, never too small. */
    size_t total = 0, depth = 0, cap = 64;
    struct frame {
        const rs_value *v;
        size_t next;
    } small[64], *stack = small;
    stack[depth++] = (struct frame){v, 0};
    while (depth) {
        struct frame *f = &stack[depth - 1];
        const rs_value *cur = f->v;
        size_t n = cur->type == RS_TARRAY ? as_array(cur)->len
                   : cur->type == RS_TMAP ? as_map(cur)->len
                                          : 0;
        if (f->next == 0) {
            size_t len = cur->type == RS_TSTRING ? ((const string_value *)cur)->len : n;
            total += rs__value_cost(cur->type, len);
            for (size_t i = 0; cur->type == RS_TMAP && i < n; i++)
                total += as_map(cur)->entries[i].keylen;
        }
        if (f->next == n) {
            depth--;
            continue;
        }
        const rs_value *child = cur->type == RS_TARRAY ? as_array(cur)->items[f->next]
                                                       : as_map(cur)->entries[f->next].value;
        f->next++;
        if (depth == cap) {
            struct frame *grown = rs__malloc(2 * cap * sizeof *grown);
            if (!grown) {
                total = SIZE_MAX;
                break;
            }
            memcpy(grown, stack, depth * sizeof *grown);
            if (stack != small)
                rs__free(stack);
            stack = grown;
            cap *= 2;
        }
        stack[depth++] = (struct frame){child, 0};
    }
    if (stack != small)
        rs__free(stack);
    return total;
}

/* ---- scalars ----------------------------------------------------------------------------- */

rs_value *rs_value_null(void)
{
    return (rs_value *)&null_value;
}

rs_value *rs_value_bool(bool b)
{
    return (rs_value *)(b ? &true_value.base : &false_value.base);
}

rs_value *rs_value_int(int64_t i)
{
    int_value *v = rs__malloc(sizeof *v);
    if (!v)
        return NULL;
    v->base.type = RS_TINT;
    v->i = i;
    return &v->base;
}

rs_value *rs_value_double(double d)
{
    double_value *v = rs__malloc(sizeof *v);
    if (!v)
        return NULL;
    v->base.type = RS_TDOUBLE;
    v->d = d;
    return &v->base;
}

rs_value *rs_value_stringn(const char *s, size_t len)
{
    if ((!s && len) || len > (size_t)-1 - sizeof(string_value) - 1)
        return NULL;
    string_value *v = rs__malloc(sizeof *v + len + 1);
    if (!v)
        return NULL;
    v->base.type = RS_TSTRING;
    v->len = len;
    if (len)
        memcpy(v->bytes, s, len);
    v->bytes[len] = '\0';
    return &v->base;
}

rs_value *rs_value_string(const char *s)
{
    return s ? rs_value_stringn(s, strlen(s)) : NULL;
}

rs_value *rs_value_array(void)
{
    array_value *v = rs__calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->base.type = RS_TARRAY;
    return &v->base;
}

rs_value *rs_value_map(void)
{
    map_value *v = rs__calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->base.type = RS_TMAP;
    return &v->base;
}

rs_type rs_value_type(const rs_value *v)
{
    return v ? v->type : RS_TNULL;
}

const char *rs_type_name(rs_type t)
{
    static const char *const names[] = {"null", "bool", "int", "double", "string", "array", "map"};
    return (unsigned)t < RS__ARRAY_SIZE(names) ? names[t] : "unknown";
}

bool rs_value_get_bool(const rs_value *v)
{
    return v && v->type == RS_TBOOL && ((const bool_value *)v)->b;
}

int64_t rs_value_get_int(const rs_value *v)
{
    return v && v->type == RS_TINT ? ((const int_value *)v)->i : 0;
}

double rs_value_get_double(const rs_value *v)
{
    if (v && v->type == RS_TDOUBLE)
        return ((const double_value *)v)->d;
    return v && v->type == RS_TINT ? (double)((const int_value *)v)->i : 0.0;
}

const char *rs_value_get_string(const rs_value *v, size_t *len)
{
    const string_value *s = v && v->type == RS_TSTRING ? (const string_value *)v : NULL;
    if (len)
        *len = s ? s->len : 0;
    return s ? s->bytes : NULL;
}

/* ---- arrays ------------------------------------------------------------------------------ */

int rs__array_reserve(rs_value *arr, size_t n)
{
    array_value *a = as_array(arr);
    if (!a)
        return RS_EMISUSE;
    if (n <= a->cap - a->len)
        return 0;
    if (n > (size_t)-1 / 2 / sizeof(rs_value *) - a->len)
        return RS_ENOMEM;
    /* Doubling keeps a run of one-item reservations (every push) amortised O(1). */
    size_t need = a->len + n;
    size_t cap = a->cap ? a->cap : 4;
    while (cap < need)
        cap *= 2;
    rs_value **items = rs__realloc(a->items, cap * sizeof *items);
    if (!items)
        return RS_ENOMEM;
    a->items = items;
    a->cap = cap;
    return 0;
}

size_t rs_array_len(const rs_value *arr)
{
    const array_value *a = as_array(arr);
    return a ? a->len : 0;
}

rs_value *rs_array_get(const rs_value *arr, size_t index)
{
    const array_value *a = as_array(arr);
    return a && index < a->len ? a->items[index] : NULL;
}

int rs_array_push(rs_value *arr, rs_value *item)
{
    array_value *a = as_array(arr);
    int rc = !a ? RS_EMISUSE : !item ? RS_EINVAL : rs__array_reserve(arr, 1);
    if (rc) {
        rs_value_destroy(item);
        return rc;
    }
    a->items[a->len++] = item;
    return 0;
}

int rs_array_set(rs_value *arr, size_t index, rs_value *item)
{
    array_value *a = as_array(arr);
    int rc = !a ? RS_EMISUSE : !item || index >= a->len ? RS_EINVAL : 0;
    if (rc) {
        rs_value_destroy(item);
        return rc;
    }
    if (a->items[index] != item) {
        rs_value_destroy(a->items[index]);
        a->items[index] = item;
    }
    return 0;
}

rs_value *rs_array_take(rs_value *arr, size_t index)
{
    array_value *a = as_array(arr);
    if (!a || index >= a->len)
        return NULL;
    rs_value *item = a->items[index];
    memmove(&a->items[index], &a->items[index + 1], (a->len - index - 1) * sizeof *a->items);
    a->len--;
    return item;
}

/* ---- maps -------------------------------------------------------------------------------- */

/* Whether entry e has this key; the stored hash settles most mismatches without a memcmp. */
static bool key_matches(const map_entry *e, const char *key, size_t keylen, uint64_t hash)
{
    return e->hash == hash && e->keylen == keylen && (!keylen || !memcmp(e->key, key, keylen));
}

/* The position of key in m, or NOT_FOUND. */
static size_t map_find(const map_value *m, const char *key, size_t keylen, uint64_t hash)
{
    if (!m->index) {
        for (size_t i = 0; i < m->len; i++) {
            if (key_matches(&m->entries[i], key, keylen, hash))
                return i;
        }
        return NOT_FOUND;
    }
    size_t mask = m->icap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        size_t slot = m->index[i];
        if (!slot)
            return NOT_FOUND;
        if (key_matches(&m->entries[slot - 1], key, keylen, hash))
            return slot - 1;
    }
}

/* Records in the index that the entry with this hash is at position pos. */
static void index_insert(map_value *m, uint64_t hash, size_t pos)
{
    size_t mask = m->icap - 1;
    size_t i = (size_t)hash & mask;
    while (m->index[i])
        i = (i + 1) & mask;
    m->index[i] = pos + 1;
}

/* The index slot that holds entry position pos, which must be in the index. */
static size_t index_slot(const map_value *m, size_t pos)
{
    size_t mask = m->icap - 1;
    size_t i = (size_t)m->entries[pos].hash & mask;
    while (m->index[i] != pos + 1)
        i = (i + 1) & mask;
    return i;
}

/* Takes entry pos out of the index and renumbers the entries after it, which the caller is
 * about to move one place down. Called while the entries are still in their old places.
 * The cost is that of the move itself: one probe per later entry. */
static void index_remove(map_value *m, size_t pos)
{
    size_t mask = m->icap - 1;
    size_t hole = index_slot(m, pos);
    /* Backward-shift deletion: pull later members of the probe run into the hole when their
     * home slot is not between the hole and where they sit, so no tombstones are needed. */
    for (size_t j = (hole + 1) & mask; m->index[j]; j = (j + 1) & mask) {
        size_t home = (size_t)m->entries[m->index[j] - 1].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->index[hole] = m->index[j];
            hole = j;
        }
    }
    m->index[hole] = 0;
    for (size_t k = pos + 1; k < m->len; k++)
        m->index[index_slot(m, k)] = k;
}

/* Makes room for n more entries and, once the map will hold more than MAP_SCAN_MAX, for
 * them in an index at most half full. 0 or RS_ENOMEM; the entries are unchanged either way. */
static int map_reserve(map_value *m, size_t n)
{
    /* The entry vector is the larger allocation, so bounding it bounds the index too. */
    if (n > (size_t)-1 / 4 / sizeof(map_entry) - m->len)
        return RS_ENOMEM;
    size_t need = m->len + n;
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 4;
        while (cap < need)
            cap *= 2;
        map_entry *entries = rs__realloc(m->entries, cap * sizeof *entries);
        if (!entries)
            return RS_ENOMEM;
        m->entries = entries;
        m->cap = cap;
    }
    if (need > MAP_SCAN_MAX && need * 2 > m->icap) {
        size_t icap = m->icap ? m->icap : 16;
        while (icap < need * 2)
            icap *= 2;
        size_t *index = rs__calloc(icap, sizeof *index);
        if (!index)
            return RS_ENOMEM;
        rs__free(m->index);
        m->index = index;
        m->icap = icap;
        for (size_t i = 0; i < m->len; i++)
            index_insert(m, m->entries[i].hash, i);
    }
    return 0;
}

int rs__map_reserve(rs_value *map, size_t n)
{
    map_value *m = as_map(map);
    return m ? map_reserve(m, n) : RS_EMISUSE;
}

size_t rs_map_len(const rs_value *map)
{
    const map_value *m = as_map(map);
    return m ? m->len : 0;
}

rs_value *rs_map_getn(const rs_value *map, const char *key, size_t keylen)
{
    const map_value *m = as_map(map);
    if (!m || (!key && keylen))
        return NULL;
    size_t pos = map_find(m, key, keylen, rs__hash_key(key, keylen));
    return pos == NOT_FOUND ? NULL : m->entries[pos].value;
}

rs_value *rs_map_get(const rs_value *map, const char *key)
{
    return key ? rs_map_getn(map, key, strlen(key)) : NULL;
}

int rs_map_setn(rs_value *map, const char *key, size_t keylen, rs_value *value)
{
    map_value *m = as_map(map);
    int rc = !m ? RS_EMISUSE : !value || (!key && keylen) ? RS_EINVAL : 0;
    if (rc) {
        rs_value_destroy(value);
        return rc;
    }
    uint64_t hash = rs__hash_key(key, keylen);
    size_t pos = map_find(m, key, keylen, hash);
    if (pos != NOT_FOUND) {
        if (m->entries[pos].value != value) {
            rs_value_destroy(m->entries[pos].value);
            m->entries[pos].value = value;
        }
        return 0;
    }
    char *copy = NULL;
    if (map_reserve(m, 1) || !(copy = rs__strndup(key, keylen))) {
        rs_value_destroy(value);
        return RS_ENOMEM;
    }
    m->entries[m->len] = (map_entry){copy, keylen, hash, value};
    if (m->index)
        index_insert(m, hash, m->len);
    m->len++;
    return 0;
}

int rs_map_set(rs_value *map, const char *key, rs_value *value)
{
    if (!key) {
        rs_value_destroy(value);
        return as_map(map) ? RS_EINVAL : RS_EMISUSE;
    }
    return rs_map_setn(map, key, strlen(key), value);
}

int rs_map_remove(rs_value *map, const char *key, size_t keylen)
{
    map_value *m = as_map(map);
    if (!m)
        return RS_EMISUSE;
    if (!key && keylen)
        return RS_EINVAL;
    size_t pos = map_find(m, key, keylen, rs__hash_key(key, keylen));
    if (pos == NOT_FOUND)
        return RS_ENOENT;
    rs__free(m->entries[pos].key);
    rs_value_destroy(m->entries[pos].value);
    if (m->index)
        index_remove(m, pos);
    memmove(&m->entries[pos], &m->entries[pos + 1], (m->len - pos - 1) * sizeof *m->entries);
    m->len--;
    return 0;
}

const char *rs_map_key(const rs_value *map, size_t index, size_t *keylen)
{
    const map_value *m = as_map(map);
    const map_entry *e = m && index < m->len ? &m->entries[index] : NULL;
    if (keylen)
        *keylen = e ? e->keylen : 0;
    return e ? e->key : NULL;
}

rs_value *rs_map_value(const rs_value *map, size_t index)
{
    const map_value *m = as_map(map);
    return m && index < m->len ? m->entries[index].value : NULL;
}

/* ---- destroy ----------------------------------------------------------------------------- */

/* Frees v at once when it owns no other node, or pushes it onto *dead, the list of
 * containers whose children rs_value_destroy has still to free. Singletons stay. */
static void drop(rs_value *v, rs_value **dead)
{
    if (!v)
        return;
    switch (v->type) {
    case RS_TNULL:
    case RS_TBOOL:
        return;
    case RS_TARRAY:
        ((array_value *)v)->dead_next = *dead;
        *dead = v;
        return;
    case RS_TMAP:
        ((map_value *)v)->dead_next = *dead;
        *dead = v;
        return;
    default:
        rs__free(v);
    }
}

void rs_value_destroy(rs_value *v)
{
    rs_value *dead = NULL;
    drop(v, &dead);
    while (dead) {
        rs_value *c = dead;
        if (c->type == RS_TARRAY) {
            array_value *a = (array_value *)c;
            dead = a->dead_next;
            for (size_t i = 0; i < a->len; i++)
                drop(a->items[i], &dead);
            rs__free(a->items);
        } else {
            map_value *m = (map_value *)c;
            dead = m->dead_next;
            for (size_t i = 0; i < m->len; i++) {
                rs__free(m->entries[i].key);
                drop(m->entries[i].value, &dead);
            }
            rs__free(m->entries);
            rs__free(m->index);
        }
        rs__free(c);
    }
}

/* ---- walking: copy and equal ------------------------------------------------------------- */

/* The number of children of v: 0 for scalars. */
static size_t child_count(const rs_value *v)
{
    const array_value *a = as_array(v);
    const map_value *m = as_map(v);
    return a ? a->len : m ? m->len : 0;
}

/* Child i of the container v, in order (a map's values in insertion order). */
static rs_value *child_at(const rs_value *v, size_t i)
{
    const array_value *a = as_array(v);
    return a ? a->items[i] : ((const map_value *)v)->entries[i].value;
}

/* One container being walked. */
typedef struct frame {
    const rs_value *src;  /* the container whose children are visited */
    const rs_value *peer; /* its copy being filled (copy), or its counterpart (equal) */
    size_t next;          /* the index of the next child to visit */
} frame;

/* The explicit stack of a walk: in the walk's own frame while shallow, on the heap beyond. */
typedef struct walk {
    frame *frames;
    size_t len, cap;
    frame local[32];
} walk;

/* Starts an empty walk that uses its local frames. */
static void walk_init(walk *w)
{
    w->frames = w->local;
    w->len = 0;
    w->cap = RS__ARRAY_SIZE(w->local);
}

/* Pushes a frame; false when out of memory. Invalidates pointers into the stack. */
static bool walk_push(walk *w, const rs_value *src, const rs_value *peer)
{
    if (w->len == w->cap) {
        if (w->cap > (size_t)-1 / 2 / sizeof(frame))
            return false;
        frame *frames =
            rs__realloc(w->frames == w->local ? NULL : w->frames, 2 * w->cap * sizeof *frames);
        if (!frames)
            return false;
        if (w->frames == w->local)
            memcpy(frames, w->local, sizeof w->local);
        w->frames = frames;
        w->cap *= 2;
    }
    w->frames[w->len++] = (frame){src, peer, 0};
    return true;
}

/* Releases the frames, if the walk had to move them to the heap. */
static void walk_free(walk *w)
{
    if (w->frames != w->local)
        rs__free(w->frames);
}

/* A copy of v without its children: scalars are complete, containers are empty but have room
 * for all of v's children (a map's index included), so filling them cannot fail except for
 * the key copies. NULL when out of memory. */
static rs_value *copy_node(const rs_value *v)
{
    rs_value *c;
    switch (v->type) {
    case RS_TINT:
        return rs_value_int(((const int_value *)v)->i);
    case RS_TDOUBLE:
        return rs_value_double(((const double_value *)v)->d);
    case RS_TSTRING:
        return rs_value_stringn(((const string_value *)v)->bytes, ((const string_value *)v)->len);
    case RS_TARRAY:
        c = rs_value_array();
        break;
    case RS_TMAP:
        c = rs_value_map();
        break;
    default:
        return (rs_value *)v; /* a singleton */
    }
    size_t n = child_count(v);
    if (c && (v->type == RS_TARRAY ? rs__array_reserve(c, n) : rs__map_reserve(c, n))) {
        rs_value_destroy(c);
        c = NULL;
    }
    return c;
}

/* Appends child, the copy of child i of src, to dst (made by copy_node). Only a map key's
 * copy can fail: false then, and child is still the caller's. */
static bool attach(rs_value *dst, const rs_value *src, size_t i, rs_value *child)
{
    array_value *a = as_array(dst);
    if (a) {
        a->items[a->len++] = child;
        return true;
    }
    map_value *m = (map_value *)dst;
    const map_entry *e = &((const map_value *)src)->entries[i];
    char *key = rs__strndup(e->key, e->keylen);
    if (!key)
        return false;
    m->entries[m->len] = (map_entry){key, e->keylen, e->hash, child};
    if (m->index)
        index_insert(m, e->hash, m->len);
    m->len++;
    return true;
}

rs_value *rs_value_copy(const rs_value *v)
{
    if (!v)
        return NULL;
    rs_value *root = copy_node(v);
    if (!root || !child_count(v))
        return root;
    /* Every copied node is attached to its parent before its own children are copied, so the
     * partial copy is always one well-formed tree that a single destroy frees on failure. */
    walk w;
    walk_init(&w);
    bool ok = walk_push(&w, v, root);
    while (ok && w.len) {
        frame *f = &w.frames[w.len - 1];
        if (f->next == child_count(f->src)) {
            w.len--;
            continue;
        }
        size_t i = f->next++;
        const rs_value *src = child_at(f->src, i);
        rs_value *child = copy_node(src);
        if (!child || !attach((rs_value *)f->peer, f->src, i, child)) {
            rs_value_destroy(child);
            ok = false;
        } else if (child_count(src)) {
            ok = walk_push(&w, src, child);
        }
    }
    walk_free(&w);
    if (!ok) {
        rs_value_destroy(root);
        return NULL;
    }
    return root;
}

/* Whether a and b match without looking at their children: the same scalar, or containers
 * of the same type and length. */
static bool node_equal(const rs_value *a, const rs_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case RS_TNULL:
        return true;
    case RS_TBOOL:
        return ((const bool_value *)a)->b == ((const bool_value *)b)->b;
    case RS_TINT:
        return ((const int_value *)a)->i == ((const int_value *)b)->i;
    case RS_TDOUBLE:
        return ((const double_value *)a)->d == ((const double_value *)b)->d;
    case RS_TSTRING: {
        const string_value *x = (const string_value *)a, *y = (const string_value *)b;
        return x->len == y->len && !memcmp(x->bytes, y->bytes, x->len);
    }
    default:
        return child_count(a) == child_count(b);
    }
}

/* A NULL pointer compares as null, matching rs_value_type. The walk needs heap memory only
 * for trees deeper than its local frames; should that allocation fail, the trees are
 * reported unequal, as there is no other way to fail. */
bool rs_value_equal(const rs_value *a, const rs_value *b)
{
    a = a ? a : &null_value;
    b = b ? b : &null_value;
    if (a == b)
        return true;
    if (!node_equal(a, b))
        return false;
    if (!child_count(a))
        return true;
    walk w;
    walk_init(&w);
    bool eq = walk_push(&w, a, b);
    while (eq && w.len) {
        frame *f = &w.frames[w.len - 1];
        if (f->next == child_count(f->src)) {
            w.len--;
            continue;
        }
        size_t i = f->next++;
        const map_value *ma = as_map(f->src);
        if (ma) {
            const map_entry *x = &ma->entries[i], *y = &((const map_value *)f->peer)->entries[i];
            if (!key_matches(x, y->key, y->keylen, y->hash)) {
                eq = false;
                break;
            }
        }
        const rs_value *x = child_at(f->src, i), *y = child_at(f->peer, i);
        if (x == y)
            continue;
        if (!node_equal(x, y))
            eq = false;
        else if (child_count(x))
            eq = walk_push(&w, x, y);
    }
    walk_free(&w);
    return eq;
}

/* ---- digest ------------------------------------------------------------------------------ */

/* Feeds a 64-bit number to s, little-endian. */
static void digest_u64(rs__sha256 *s, uint64_t x)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(x >> (8 * i));
    rs__sha256_update(s, b, sizeof b);
}

/* Feeds one node without its children: its type, then its content or its child count. */
static void digest_node(rs__sha256 *s, const rs_value *v)
{
    uint8_t type = (uint8_t)v->type;
    rs__sha256_update(s, &type, 1);
    switch (v->type) {
    case RS_TBOOL:
        digest_u64(s, ((const bool_value *)v)->b);
        break;
    case RS_TINT:
        digest_u64(s, (uint64_t)((const int_value *)v)->i);
        break;
    case RS_TDOUBLE: {
        uint64_t bits;
        memcpy(&bits, &((const double_value *)v)->d, sizeof bits);
        digest_u64(s, bits);
        break;
    }
    case RS_TSTRING: {
        const string_value *sv = (const string_value *)v;
        digest_u64(s, sv->len);
        rs__sha256_update(s, sv->bytes, sv->len);
        break;
    }
    case RS_TARRAY:
    case RS_TMAP:
        digest_u64(s, child_count(v));
        break;
    default:
        break;
    }
}

int rs__value_digest(rs__sha256 *s, const rs_value *v)
{
    /* Depth first, with an explicit stack: values built in C may nest without bound. Every
     * length is fed before its bytes, so the serialisation reads back one way only. */
    digest_node(s, v);
    walk w;
    walk_init(&w);
    if (child_count(v) && !walk_push(&w, v, NULL))
        return RS_ENOMEM;
    while (w.len) {
        frame *f = &w.frames[w.len - 1];
        if (f->next == child_count(f->src)) {
            w.len--;
            continue;
        }
        size_t i = f->next++;
        const map_value *m = as_map(f->src);
        if (m) {
            digest_u64(s, m->entries[i].keylen);
            rs__sha256_update(s, m->entries[i].key, m->entries[i].keylen);
        }
        const rs_value *c = child_at(f->src, i);
        digest_node(s, c);
        if (child_count(c) && !walk_push(&w, c, NULL)) {
            walk_free(&w);
            return RS_ENOMEM;
        }
    }
    walk_free(&w);
    return 0;
}
