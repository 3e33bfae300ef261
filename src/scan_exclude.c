/*
 * scan_exclude.c -- the addresses and names a scan leaves out (--exclude, --excludefile): a
 * sorted list of disjoint address spans per family, and a list of names.
 *
 * Spans are kept sorted and merged after every batch of additions, so that the feed finds the
 * span holding an address by binary search and skips a whole excluded block at once, and the
 * probe count subtracts the overlap of each target with the spans in O(log n + overlaps).
 * IPv4 and IPv6 addresses are both held as 128-bit numbers (an IPv4 address is its 32-bit value
 * with family AF_INET), ordered by family first.
 */
#include "scan_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

void rs__excl_free(rs__excludes *x)
{
    rs__free(x->spans);
    for (size_t i = 0; i < x->nnames; i++)
        rs__free(x->names[i]);
    rs__free(x->names);
    memset(x, 0, sizeof *x);
}

/* Orders spans by family, then by first address. */
static int span_cmp(const void *pa, const void *pb)
{
    const rs__span *a = pa, *b = pb;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorts the spans and merges those that overlap or touch. */
static void normalize(rs__excludes *x)
{
    if (x->nspans < 2)
        return;
    qsort(x->spans, x->nspans, sizeof *x->spans, span_cmp);
    size_t k = 0;
    for (size_t i = 1; i < x->nspans; i++) {
        rs__span *last = &x->spans[k];
        const rs__span *s = &x->spans[i];
        if (s->family == last->family && (last->hi == ~(rs__u128)0 || s->lo <= last->hi + 1)) {
            if (s->hi > last->hi)
                last->hi = s->hi;
        } else {
            x->spans[++k] = *s;
        }
    }
    x->nspans = k + 1;
}

int rs__excl_add_spans(rs__excludes *x, const rs__span *spans, size_t n)
{
    if (!n)
        return 0;
    if (x->nspans + n > x->cap) {
        size_t cap = x->cap ? x->cap : 8;
        while (cap < x->nspans + n)
            cap *= 2;
        rs__span *grown = rs__realloc(x->spans, cap * sizeof *grown);
        if (!grown)
            return RS_ENOMEM;
        x->spans = grown;
        x->cap = cap;
    }
    memcpy(x->spans + x->nspans, spans, n * sizeof *spans);
    x->nspans += n;
    normalize(x);
    return 0;
}

int rs__excl_add_name(rs__excludes *x, const char *name)
{
    if (rs__excl_has_name(x, name))
        return 0;
    char **grown = rs__realloc(x->names, (x->nnames + 1) * sizeof *grown);
    if (!grown)
        return RS_ENOMEM;
    x->names = grown;
    if (!(x->names[x->nnames] = rs__strdup(name)))
        return RS_ENOMEM;
    x->nnames++;
    return 0;
}

bool rs__excl_has_name(const rs__excludes *x, const char *name)
{
    for (size_t i = 0; i < x->nnames; i++) {
        if (strcasecmp(x->names[i], name) == 0)
            return true;
    }
    return false;
}

/* The index of the first span of family whose end is at or after a (nspans when none). */
static size_t first_from(const rs__excludes *x, int family, rs__u128 a)
{
    size_t lo = 0, hi = x->nspans;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rs__span *s = &x->spans[mid];
        if (s->family < family || (s->family == family && s->hi < a))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const rs__span *rs__excl_find(const rs__excludes *x, int family, rs__u128 a)
{
    size_t i = first_from(x, family, a);
    if (i < x->nspans && x->spans[i].family == family && x->spans[i].lo <= a)
        return &x->spans[i];
    return NULL;
}

uint64_t rs__excl_overlap(const rs__excludes *x, int family, rs__u128 first, uint64_t count)
{
    if (!count || !x->nspans)
        return 0;
    rs__u128 last = first + (count - 1);
    uint64_t n = 0;
    for (size_t i = first_from(x, family, first);
         i < x->nspans && x->spans[i].family == family && x->spans[i].lo <= last; i++) {
        rs__u128 lo = x->spans[i].lo > first ? x->spans[i].lo : first;
        rs__u128 hi = x->spans[i].hi < last ? x->spans[i].hi : last;
        rs__u128 k = hi - lo + 1;
        /* A span of 2^64 or more within a saturated IPv6 count covers all of it. */
        if (k == 0 || k > UINT64_MAX - n)
            return count;
        n += (uint64_t)k;
    }
    return n < count ? n : count;
}
