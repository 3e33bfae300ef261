/*
 * marshal.c -- Lua values <-> rs_value trees.
 *
 * Going from Lua to rs_value never raises a Lua error: it only uses API calls that do not
 * allocate Lua memory (lua_next, lua_rawgeti, lua_tolstring on actual strings, lua_checkstack,
 * which reports failure instead of raising), so the C allocations it holds can always be freed.
 * Going from rs_value to Lua allocates Lua objects and may raise, but holds no C memory.
 */
#include "marshal.h"

#include "ptrset.h"
#include "runspace_int.h"
#include "value.h"

#include <lauxlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char map_marker_key = 'm';

void rs__marshal_open(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, "map");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &map_marker_key);
}

void rs__lua_push_empty_map(lua_State *L)
{
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &map_marker_key);
    lua_setmetatable(L, -2);
}

/* ---- Lua -> rs_value ---------------------------------------------------------------------- */

typedef struct path_elem {
    const void *table; /* the table this level is inside, for cycle detection */
    bool is_key;
    lua_Integer index;
    const char *key;
    size_t keylen;
} path_elem;

typedef struct to_ctx {
    lua_State *L;
    rs_runspace *rs; /* charged for every node made, or NULL */
    rs__exec *ex;    /* the run to check for interruptions and charge work to, or NULL */
    size_t charged;  /* bytes charged to rs so far */
    size_t nodes;    /* nodes made so far */
    size_t tables;   /* tables met so far */
    const char *root;
    lua_Integer root_index;
    path_elem path[RS_MAX_DEPTH + 1];
    int depth;
    int code;
    char *msg;
    rs__ptrset seen; /* every table met, to tell a table met again (copied again) */
    int repeats;     /* how many of the tables being converted were met before */
    size_t made;     /* bytes of the copy so far */
    size_t distinct; /* of which made outside tables met before */
    bool as_text;    /* outputs: a value no copy carries becomes its text */
    size_t texts;    /* values passed as text so far */
    char *note;      /* what the first of them was, for the warning */
} to_ctx;

static bool is_ident(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* The longest path a message shows; a longer one keeps its head and tail around "...". */
#define PATH_MAX_SHOWN 160

/* Cuts the path in b to PATH_MAX_SHOWN bytes, at UTF-8 character boundaries. */
static void shorten_path(rs__buf *b)
{
    if (b->len <= PATH_MAX_SHOWN)
        return;
    size_t head = 48, tail = b->len - (PATH_MAX_SHOWN - 48 - 3);
    while (head > 0 && ((unsigned char)b->data[head] & 0xc0) == 0x80)
        head--;
    while (tail < b->len && ((unsigned char)b->data[tail] & 0xc0) == 0x80)
        tail++;
    memcpy(b->data + head, "...", 3);
    memmove(b->data + head + 3, b->data + tail, b->len - tail);
    b->len = head + 3 + (b->len - tail);
    b->data[b->len] = '\0';
}

/* Writes the path of the value being converted ("output[3].conn") to b, shortened to
 * PATH_MAX_SHOWN bytes. Returns 0 or -1 (out of memory). */
static int put_path(const to_ctx *c, rs__buf *b)
{
    int rc = rs__buf_puts(b, c->root);
    if (c->root_index)
        rc |= rs__buf_printf(b, "[%lld]", (long long)c->root_index);
    for (int i = 0; i < c->depth; i++) {
        const path_elem *e = &c->path[i];
        if (!e->is_key) {
            rc |= rs__buf_printf(b, "[%lld]", (long long)e->index);
        } else if (is_ident(e->key, e->keylen)) {
            rc |= rs__buf_putc(b, '.');
            rc |= rs__buf_append(b, e->key, e->keylen);
        } else {
            rc |= rs__buf_puts(b, "[\"");
            for (size_t k = 0; k < e->keylen; k++) {
                unsigned char ch = (unsigned char)e->key[k];
                if (ch == '"' || ch == '\\')
                    rc |= rs__buf_printf(b, "\\%c", ch);
                else if (ch < 0x20 || ch == 0x7f)
                    rc |= rs__buf_printf(b, "\\%u", ch);
                else
                    rc |= rs__buf_putc(b, (char)ch);
            }
            rc |= rs__buf_puts(b, "\"]");
        }
    }
    if (!rc)
        shorten_path(b);
    return rc ? -1 : 0;
}

/* Records the first failure: code and "path: message". */
static rs_value *fail(to_ctx *c, int code, const char *what)
{
    if (c->code)
        return NULL;
    c->code = code;
    rs__buf b = {0};
    int rc = put_path(c, &b);
    rc |= rs__buf_printf(&b, ": %s", what);
    c->msg = rc ? NULL : rs__buf_detach(&b, NULL);
    if (rc)
        rs__buf_free(&b);
    return NULL;
}

static rs_value *oom(to_ctx *c)
{
    if (!c->code) {
        c->code = RS_ENOMEM;
        c->msg = rs__strdup("out of memory");
    }
    return NULL;
}

/* How many nodes are made between two looks at the run's stop, timeout and budget. */
#define CHECK_EVERY 1024

/* Accounts for a node about to be made, costing `bytes`: charges the runspace's memory limit
 * and, every CHECK_EVERY nodes, the run's budget (a node counting as an instruction). Returns
 * false, with the failure recorded, when the node must not be made. */
static bool account(to_ctx *c, size_t bytes)
{
    c->made += bytes;
    c->distinct += c->repeats == 0 ? bytes : 0;
    if (c->made > RS_COPY_SLACK && c->made / RS_COPY_FACTOR > c->distinct) {
        char what[200];
        snprintf(what, sizeof what,
                 "the copy would be more than %d times the value's own %zu bytes (a table or long "
                 "string referenced from several places is copied for each reference)",
                 RS_COPY_FACTOR, c->distinct);
        fail(c, RS_EVALUE, what);
        return false;
    }
    if (c->rs) {
        if (rs__charge(c->rs, bytes)) {
            char what[192];
            snprintf(what, sizeof what,
                     "the copy does not fit in the runspace memory limit of %zu bytes%s",
                     c->rs->mem_limit,
                     c->tables > 1 ? " (a table referenced more than once is copied for each "
                                     "reference)"
                                   : "");
            fail(c, RS_ENOMEM, what);
            return false;
        }
        c->charged += bytes;
    }
    if (c->ex && ++c->nodes % CHECK_EVERY == 0) {
        int why = rs__exec_charge(c->ex, CHECK_EVERY);
        if (why) {
            fail(c, why, rs_strerror(why));
            return false;
        }
    }
    return true;
}

static rs_value *convert(to_ctx *c, int idx);

/* An entry of a table that becomes a map: its key (kept for sorting) and converted value. */
typedef struct map_entry {
    int kind; /* 0 integer, 1 float, 2 string */
    lua_Integer i;
    lua_Number f;
    const char *s; /* a key string of the table: alive while the table is */
    size_t len;
    rs_value *value;
} map_entry;

static int compare_entries(const void *pa, const void *pb)
{
    const map_entry *a = pa, *b = pb;
    if (a->kind != 2 && b->kind != 2) {
        if (a->kind == 0 && b->kind == 0)
            return a->i < b->i ? -1 : a->i > b->i;
        lua_Number x = a->kind == 0 ? (lua_Number)a->i : a->f;
        lua_Number y = b->kind == 0 ? (lua_Number)b->i : b->f;
        return x < y ? -1 : x > y;
    }
    if (a->kind != b->kind)
        return a->kind != 2 ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(a->s, b->s, n);
    return r ? r : (a->len < b->len ? -1 : a->len > b->len);
}

/* Formats a numeric key as map key text; returns its length. A float gets the shortest text
 * that reads back as the same number (Lua's %.14g would show 0.1 + 0.2 and 0.3 both as 0.3,
 * and two keys would become one). */
static size_t number_key(const map_entry *e, char *buf, size_t size)
{
    if (e->kind == 0)
        return (size_t)snprintf(buf, size, LUA_INTEGER_FMT, (LUAI_UACINT)e->i);
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, (double)e->f);
        if (strtod(buf, NULL) == (double)e->f)
            break;
    }
    return n < 0 ? 0 : (size_t)n;
}

static void free_entries(map_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rs_value_destroy(entries[i].value);
    rs__free(entries);
}

/* Converts the table at absolute index t, which has count entries, into a map: values are
 * converted in one traversal, then the entries are sorted by key. */
static rs_value *convert_map(to_ctx *c, int t, size_t count)
{
    lua_State *L = c->L;
    map_entry *entries = rs__calloc(count, sizeof *entries);
    if (!entries)
        return oom(c);
    path_elem *pe = &c->path[c->depth - 1];
    char numbuf[64];
    size_t n = 0;
    lua_pushnil(L);
    while (n < count && lua_next(L, t)) {
        map_entry *e = &entries[n];
        int kt = lua_type(L, -2);
        if (kt == LUA_TNUMBER && lua_isinteger(L, -2)) {
            e->kind = 0;
            e->i = lua_tointeger(L, -2);
            pe->is_key = false;
            pe->index = e->i;
        } else if (kt == LUA_TNUMBER) {
            e->kind = 1;
            e->f = lua_tonumber(L, -2);
            pe->is_key = true;
            pe->keylen = number_key(e, numbuf, sizeof numbuf);
            pe->key = numbuf;
        } else if (kt == LUA_TSTRING) {
            e->kind = 2;
            e->s = lua_tolstring(L, -2, &e->len);
            pe->is_key = true;
            pe->key = e->s;
            pe->keylen = e->len;
            if (!account(c, e->len)) {
                lua_pop(L, 2);
                free_entries(entries, n);
                return NULL;
            }
        } else {
            lua_pop(L, 2);
            free_entries(entries, n);
            char what[96];
            snprintf(what, sizeof what, "cannot use a %s as a map key", lua_typename(L, kt));
            c->depth--; /* the path ends at the table itself */
            fail(c, RS_EVALUE, what);
            c->depth++;
            return NULL;
        }
        e->value = convert(c, lua_gettop(L));
        lua_pop(L, 1);
        if (!e->value) {
            lua_pop(L, 1);
            free_entries(entries, n);
            return NULL;
        }
        n++;
    }
    if (n == count)
        lua_pop(L, 1); /* the key lua_next left when the loop stopped on the count */
    qsort(entries, n, sizeof *entries, compare_entries);
    rs_value *map = rs_value_map();
    for (size_t i = 0; map && i < n; i++) {
        map_entry *e = &entries[i];
        const char *ks = e->s;
        size_t kl = e->len;
        if (e->kind != 2) {
            kl = number_key(e, numbuf, sizeof numbuf);
            ks = numbuf;
        }
        if (rs_map_getn(map, ks, kl)) {
            /* 1 and "1": a number key and a string key with its text. */
            char what[160];
            snprintf(what, sizeof what,
                     "two keys of this table become the same key \"%.*s\" (a number and its "
                     "text)",
                     (int)(kl < 64 ? kl : 64), ks);
            rs_value_destroy(map);
            free_entries(entries, n);
            c->depth--; /* the path ends at the table itself */
            fail(c, RS_EVALUE, what);
            c->depth++;
            return NULL;
        }
        rs_value *v = e->value;
        e->value = NULL;
        if (rs_map_setn(map, ks, kl, v)) {
            rs_value_destroy(map);
            map = NULL;
        }
    }
    free_entries(entries, n);
    return map ? map : oom(c);
}

static rs_value *convert_table_body(to_ctx *c, int t);

/* A table met before (referenced from several places) is copied again, and what it makes
 * counts against the copy's growth (account). */
static rs_value *convert_table(to_ctx *c, int t)
{
    int fresh = rs__ptrset_add(&c->seen, lua_topointer(c->L, t));
    if (fresh < 0)
        return oom(c);
    c->repeats += !fresh;
    rs_value *v = convert_table_body(c, t);
    c->repeats -= !fresh;
    return v;
}

static rs_value *convert_table_body(to_ctx *c, int t)
{
    lua_State *L = c->L;
    const void *self = lua_topointer(L, t);
    for (int i = 0; i < c->depth; i++) {
        if (c->path[i].table == self)
            return fail(c, RS_EVALUE, "cannot pass a table that contains itself (a cycle)");
    }
    if (c->depth >= RS_MAX_DEPTH)
        return fail(c, RS_EVALUE, "nested deeper than 512 levels");
    if (!lua_checkstack(L, 4))
        return oom(c);
    /* Count the entries and see whether the keys are exactly 1..n. */
    size_t count = 0;
    lua_Integer max = 0;
    bool ints = true;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        count++;
        if (c->ex && count % (16 * CHECK_EVERY) == 0) {
            int why = rs__exec_due(c->ex);
            if (why) {
                lua_pop(L, 1);
                return fail(c, why, rs_strerror(why));
            }
        }
        if (ints && lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k < 1)
                ints = false;
            else if (k > max)
                max = k;
        } else {
            ints = false;
        }
    }
    bool is_map = false;
    if (count == 0) {
        if (lua_getmetatable(L, t)) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &map_marker_key);
            is_map = lua_rawequal(L, -1, -2);
            lua_pop(L, 2);
        }
    } else {
        is_map = !(ints && (size_t)max == count);
    }
    c->tables++;
    if (!account(c, rs__value_cost(is_map ? RS_TMAP : RS_TARRAY, count)))
        return NULL; /* the path ends at this table */
    path_elem *e = &c->path[c->depth++];
    e->table = self;
    rs_value *out;
    if (is_map) {
        out = convert_map(c, t, count);
    } else {
        out = rs_value_array();
        if (!out) {
            c->depth--;
            return oom(c);
        }
        for (size_t i = 1; i <= count; i++) {
            e->is_key = false;
            e->index = (lua_Integer)i;
            lua_rawgeti(L, t, (lua_Integer)i);
            rs_value *v = convert(c, lua_gettop(L));
            lua_pop(L, 1);
            if (!v || rs_array_push(out, v)) {
                rs_value_destroy(out);
                out = v ? oom(c) : NULL;
                break;
            }
        }
    }
    c->depth--;
    return out;
}

/* The name a userdata's metatable gives its type (its "__name" string, as luaL_newmetatable
 * sets it), copied to out; false when it has none. Reads with lua_next, which allocates
 * nothing, so it cannot raise. */
static bool userdata_name(lua_State *L, int idx, char *out, size_t size)
{
    if (!lua_checkstack(L, 3) || !lua_getmetatable(L, idx))
        return false;
    bool found = false;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t n;
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
            strcmp(lua_tostring(L, -2), "__name") == 0) {
            const char *name = lua_tolstring(L, -1, &n);
            snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), name);
            found = strlen(out) == n && n > 0; /* no NUL inside, not empty */
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return found;
}

/* An output no copy can carry (what: "a function"...) becomes the text Lua's tostring shows
 * for it when no __tostring is called: "function: 0x55d0c0a0", "FILE*: 0x7f93..." (a
 * userdata's __name). The first one is described in c->note, for the caller's warning. */
static rs_value *as_text(to_ctx *c, int idx, const char *what)
{
    lua_State *L = c->L;
    char name[64];
    if (lua_type(L, idx) != LUA_TUSERDATA || !userdata_name(L, idx, name, sizeof name))
        snprintf(name, sizeof name, "%s", luaL_typename(L, idx));
    char text[128];
    int n = snprintf(text, sizeof text, "%s: %p", name, lua_topointer(L, idx));
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    if (!account(c, rs__value_cost(RS_TSTRING, len)))
        return NULL;
    rs_value *v = rs_value_stringn(text, len);
    if (!v)
        return oom(c);
    if (c->texts++ == 0) {
        rs__buf b = {0};
        if (put_path(c, &b) ||
            rs__buf_printf(&b,
                           ": %s cannot cross between runspaces; it is passed as the text "
                           "\"%s\"",
                           what, text)) {
            rs__buf_free(&b);
            rs_value_destroy(v);
            return oom(c);
        }
        c->note = rs__buf_detach(&b, NULL);
    }
    return v;
}

static rs_value *convert(to_ctx *c, int idx)
{
    lua_State *L = c->L;
    rs_value *v;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return rs_value_null();
    case LUA_TBOOLEAN:
        return rs_value_bool(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (!account(c, rs__value_cost(RS_TINT, 0)))
            return NULL;
        v = lua_isinteger(L, idx) ? rs_value_int(lua_tointeger(L, idx))
                                  : rs_value_double(lua_tonumber(L, idx));
        return v ? v : oom(c);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        /* A long string met before is a copy again, as a table met before is. */
        int fresh = len < RS_COPY_LONG_STRING ? 1 : rs__ptrset_add(&c->seen, s);
        if (fresh < 0)
            return oom(c);
        c->repeats += !fresh;
        bool ok = account(c, rs__value_cost(RS_TSTRING, len));
        c->repeats -= !fresh;
        if (!ok)
            return NULL;
        v = rs_value_stringn(s, len);
        return v ? v : oom(c);
    }
    case LUA_TTABLE:
        return convert_table(c, lua_absindex(L, idx));
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return rs_value_null(); /* json.null */
        if (c->as_text)
            return as_text(c, idx, "a userdata");
        return fail(c, RS_EVALUE, "cannot pass a userdata between runspaces");
    case LUA_TFUNCTION:
        if (c->as_text)
            return as_text(c, idx, "a function");
        return fail(c, RS_EVALUE, "cannot pass a function between runspaces");
    case LUA_TUSERDATA:
        if (c->as_text)
            return as_text(c, idx, "a userdata");
        return fail(c, RS_EVALUE, "cannot pass a userdata between runspaces");
    case LUA_TTHREAD:
        if (c->as_text)
            return as_text(c, idx, "a coroutine");
        return fail(c, RS_EVALUE, "cannot pass a coroutine between runspaces");
    default:
        return fail(c, RS_EVALUE, "cannot pass this value between runspaces");
    }
}

static rs_value *to_value(lua_State *L, rs_runspace *rs, int idx, const char *root,
                          lua_Integer root_index, size_t *charged, int *code, char **msg,
                          char **note)
{
    if (charged)
        *charged = 0;
    /* The path is large (RS_MAX_DEPTH entries): keep it off small thread stacks. */
    to_ctx *c = rs__malloc(sizeof *c);
    if (!c) {
        *code = RS_ENOMEM;
        *msg = NULL;
        return NULL;
    }
    c->L = L;
    c->rs = rs && rs->mem_limit ? rs : NULL;
    c->ex = rs && rs->exec.L ? &rs->exec : NULL;
    c->charged = 0;
    c->nodes = 0;
    c->tables = 0;
    c->root = root;
    c->root_index = root_index;
    c->depth = 0;
    c->code = 0;
    c->msg = NULL;
    c->seen = (rs__ptrset){0};
    c->repeats = 0;
    c->made = c->distinct = 0;
    c->as_text = note != NULL;
    c->texts = 0;
    c->note = NULL;
    rs_value *v = convert(c, lua_absindex(L, idx));
    *code = c->code;
    *msg = c->msg;
    if (!v && !c->code)
        *code = RS_ENOMEM;
    if (!v && c->rs)
        rs__uncharge(c->rs, c->charged); /* what was made is gone */
    else if (charged)
        *charged = c->charged;
    if (note && v && c->note && c->texts > 1) {
        char *more = rs__format("%s (and %zu more such value%s in it)", c->note, c->texts - 1,
                                c->texts > 2 ? "s" : "");
        rs__free(c->note);
        c->note = more; /* NULL when out of memory: the warning is then the bare count */
        if (!more)
            c->note = rs__format("%s: %zu values cannot cross between runspaces and are "
                                 "passed as text",
                                 root, c->texts);
    }
    if (note)
        *note = v ? c->note : NULL;
    if (!v || !note)
        rs__free(c->note);
    rs__ptrset_free(&c->seen);
    rs__free(c);
    return v;
}

rs_value *rs__lua_to_value(lua_State *L, rs_runspace *rs, int idx, const char *root,
                           lua_Integer root_index, size_t *charged, int *code, char **msg)
{
    return to_value(L, rs, idx, root, root_index, charged, code, msg, NULL);
}

rs_value *rs__lua_to_output(lua_State *L, rs_runspace *rs, int idx, lua_Integer k, int *code,
                            char **msg, char **note)
{
    *note = NULL;
    return to_value(L, rs, idx, "output", k, NULL, code, msg, note);
}

/* ---- rs_value -> Lua ---------------------------------------------------------------------- */

typedef struct push_ctx {
    rs__exec *ex; /* the run of this thread, checked every CHECK_EVERY nodes, or NULL */
    size_t nodes;
} push_ctx;

static void push(lua_State *L, const rs_value *v, int depth, push_ctx *p)
{
    if (p->ex && ++p->nodes % CHECK_EVERY == 0) {
        int why = rs__exec_charge(p->ex, CHECK_EVERY);
        if (why)
            rs__exec_raise(L, p->ex, why);
    }
    if (depth > RS_MAX_DEPTH)
        luaL_error(L, "value nested deeper than %d levels", RS_MAX_DEPTH);
    luaL_checkstack(L, 3, "value nested too deeply");
    switch (rs_value_type(v)) {
    case RS_TNULL:
        if (depth == 0)
            lua_pushnil(L);
        else
            lua_pushlightuserdata(L, NULL);
        break;
    case RS_TBOOL:
        lua_pushboolean(L, rs_value_get_bool(v));
        break;
    case RS_TINT:
        lua_pushinteger(L, (lua_Integer)rs_value_get_int(v));
        break;
    case RS_TDOUBLE:
        lua_pushnumber(L, (lua_Number)rs_value_get_double(v));
        break;
    case RS_TSTRING: {
        size_t len;
        const char *s = rs_value_get_string(v, &len);
        lua_pushlstring(L, s, len);
        break;
    }
    case RS_TARRAY: {
        size_t n = rs_array_len(v);
        lua_createtable(L, n > INT32_MAX ? INT32_MAX : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push(L, rs_array_get(v, i), depth + 1, p);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case RS_TMAP: {
        size_t n = rs_map_len(v);
        if (n == 0) {
            rs__lua_push_empty_map(L);
            break;
        }
        lua_createtable(L, 0, n > INT32_MAX ? INT32_MAX : (int)n);
        for (size_t i = 0; i < n; i++) {
            size_t klen;
            const char *k = rs_map_key(v, i, &klen);
            lua_pushlstring(L, k, klen);
            push(L, rs_map_value(v, i), depth + 1, p);
            lua_rawset(L, -3);
        }
        break;
    }
    }
}

void rs__lua_push_value(lua_State *L, const rs_value *v)
{
    rs__exec *ex = rs__exec_current();
    push_ctx p = {.ex = ex && ex->L ? ex : NULL, .nodes = 0};
    push(L, v, 0, &p);
}
