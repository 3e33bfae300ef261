/*
 * runspace.c -- one isolated Lua interpreter built from an initial session state.
 *
 * A runspace owns a lua_State whose allocator counts its bytes and refuses to pass the ISS's
 * memory limit; Lua turns the refusal into a memory error that unwinds the script, and the
 * runspace is then thrown away and reopened by its runner. Scripts are compiled once per
 * runspace and kept in a small cache keyed by their text.
 *
 * Thread confinement: the Lua state is used by one thread at a time (a pool's worker, the
 * caller of a synchronous invoke, or the thread of a begin-invoke); the getters read atomics.
 */
#include "runspace_int.h"

#include "arena.h"
#include "exec.h"
#include "lualib_int.h"
#include "marshal.h"
#include "shared.h"
#include "timer.h"

#include <lauxlib.h>

#include <stdio.h>
#include <string.h>

static atomic_uint_fast64_t next_id;

/* An allocation lua_alloc refuses (see there). */
static void *refuse(rs_runspace *rs)
{
    rs->oom = true;
    if (rs->exec.L && !rs->exec.reason) {
        rs->oom_armed = true;
        rs__exec_fail(&rs->exec, RS_ENOMEM);
    }
    return NULL;
}

int rs__charge(rs_runspace *rs, size_t bytes)
{
    if (!rs->mem_limit)
        return 0;
    size_t used = atomic_load_explicit(&rs->mem_used, memory_order_relaxed) + rs->c_held;
    if (used > rs->mem_limit || bytes > rs->mem_limit - used) {
        rs->oom = true;
        return RS_ENOMEM;
    }
    rs->c_held += bytes;
    return 0;
}

void rs__uncharge(rs_runspace *rs, size_t bytes)
{
    rs->c_held = bytes < rs->c_held ? rs->c_held - bytes : 0;
}

uint64_t rs__hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The lua_Alloc of a runspace: counts bytes, enforces the memory limit (the Lua heap and the
 * C memory held for the script, c_held, together), and serves small blocks from the
 * runspace's arena. Only the thread running the runspace allocates; mem_used is atomic so
 * that others may read it.
 *
 * A refusal during a run arms an RS_ENOMEM interruption (rs__exec_fail), so that a script
 * cannot pcall its way past its memory limit: the next instruction raises again. Lua answers
 * a refusal with an emergency collection and one more try, which runs no script code; if that
 * try succeeds, Lua raised nothing and the interruption is called off. */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    rs_runspace *rs = ud;
    size_t used = atomic_load_explicit(&rs->mem_used, memory_order_relaxed);
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag, not a size */
    if (nsize == 0) {
        if (ptr && ptr == rs->last_block)
            rs__exec_leave(&rs->exec); /* lua_close frees the state itself: unpublish it first */
        if (old > RS__ARENA_MAX)
            rs__free(ptr);
        else if (ptr)
            rs__arena_free(&rs->arena, ptr, old);
        atomic_store_explicit(&rs->mem_used, used - old, memory_order_relaxed);
        return NULL;
    }
    if (nsize > old && rs->mem_limit && used - old + nsize + rs->c_held > rs->mem_limit)
        return refuse(rs);
    void *p;
    if (old > RS__ARENA_MAX && nsize > RS__ARENA_MAX) {
        p = rs__realloc(ptr, nsize);
    } else if (ptr && old <= RS__ARENA_MAX && nsize <= RS__ARENA_MAX &&
               (old - 1) / 16 == (nsize - 1) / 16) {
        p = ptr; /* same size class */
    } else {
        p = nsize > RS__ARENA_MAX     ? rs__malloc(nsize)
            : rs__alloc_should_fail() ? NULL
                                      : rs__arena_alloc(&rs->arena, nsize);
        if (p && ptr) {
            memcpy(p, ptr, old < nsize ? old : nsize);
            if (old > RS__ARENA_MAX)
                rs__free(ptr);
            else
                rs__arena_free(&rs->arena, ptr, old);
        }
    }
    if (!p)
        return refuse(rs);
    if (rs->oom_armed && nsize > old) {
        rs->oom_armed = false; /* the retry after the emergency collection worked */
        rs__exec_fail(&rs->exec, 0);
    }
    atomic_store_explicit(&rs->mem_used, used - old + nsize, memory_order_relaxed);
    return p;
}

/* An allocator without limit for scratch states. */
static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    RS__UNUSED(ud);
    RS__UNUSED(osize);
    if (nsize == 0) {
        rs__free(ptr);
        return NULL;
    }
    return rs__realloc(ptr, nsize);
}

/* The message of a chunk that does not load, as a new string. Besides LUA_ERRSYNTAX, the
 * parser fails with a runtime error for nesting too deep for the C stack ("C stack overflow",
 * without a position): the chunk does not compile either, and the message names it. */
static char *load_error(const char *msg, int status, const char *chunkname)
{
    const char *name = chunkname && (*chunkname == '=' || *chunkname == '@') ? chunkname + 1
                       : chunkname                                           ? chunkname
                                                                             : "chunk";
    /* Lua's refusal of a binary chunk names no chunk: say which (a file given by path). */
    if (status == LUA_ERRSYNTAX && msg && strncmp(msg, "attempt to load a binary chunk", 30) == 0)
        return rs__format("%s: %s", name, msg);
    if (status == LUA_ERRSYNTAX || status == LUA_ERRMEM)
        return rs__strdup(msg ? msg : "error");
    return rs__format("%s: nested too deeply to compile (%s)", name, msg ? msg : "error");
}

int rs__check_syntax(const char *src, size_t len, const char *chunkname, char **msg)
{
    *msg = NULL;
    lua_State *L = lua_newstate(plain_alloc, NULL);
    if (!L)
        return RS_ENOMEM;
    int status = luaL_loadbufferx(L, src, len, chunkname, "t");
    int rc = 0;
    if (status != LUA_OK) {
        rc = status == LUA_ERRMEM ? RS_ENOMEM : RS_ESYNTAX;
        *msg = load_error(lua_tostring(L, -1), status, chunkname);
    }
    lua_close(L);
    return rc;
}

int rs__runspace_new(const rs_iss *iss, const char *name, rs_shared *shared, struct rs_pool *pool,
                     rs_runspace **out)
{
    *out = NULL;
    if (rs__interrupt_setup())
        return RS_ESYSTEM;
    rs_runspace *rs = rs__calloc(1, sizeof *rs);
    if (!rs)
        return RS_ENOMEM;
    if (rs__exec_init(&rs->exec)) {
        rs__free(rs);
        return RS_ESYSTEM;
    }
    if (rs__mutex_init(&rs->mu)) {
        rs__exec_destroy(&rs->exec);
        rs__free(rs);
        return RS_ESYSTEM;
    }
    rs->id = atomic_fetch_add(&next_id, 1) + 1;
    if (name)
        snprintf(rs->name, sizeof rs->name, "%s", name);
    else
        snprintf(rs->name, sizeof rs->name, "Runspace%llu", (unsigned long long)rs->id);
    rs->pool = pool;
    if (iss) {
        rs->iss = rs__iss_retain(iss);
    } else {
        rs_iss *def;
        if (rs_iss_create(RS_PROFILE_DEFAULT, &def) == 0) {
            rs->iss = rs__iss_retain(def);
            rs__iss_release(def);
        }
    }
    /* Without a store given, the runspace makes its own when a script first uses it. */
    if (shared)
        rs->shared = rs__shared_retain(shared);
    if (!rs->iss) {
        rs__runspace_free(rs);
        return RS_ENOMEM;
    }
    rs->mem_limit = rs->iss->limits.memory_bytes;
    atomic_init(&rs->state, RS_RUNSPACE_BEFORE_OPEN);
    atomic_init(&rs->busy, 0);
    atomic_init(&rs->mem_used, 0);
    *out = rs;
    return 0;
}

void rs__set_global(lua_State *L, const char *name)
{
    lua_pushglobaltable(L);
    lua_pushstring(L, name);
    lua_rotate(L, -3, -1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static bool is_module(const rs__iss_entry *e)
{
    return e->kind == RS__ISS_MODULE_FILE || e->kind == RS__ISS_MODULE_NAME;
}

/* Binds the ISS's entries in a state (protected mode): with modules false, everything but the
 * modules, while the state opens; with modules true, the modules, which run script code and
 * so load inside the first invocation (rs__runspace_load_modules). */
static void apply_iss(lua_State *L, rs_runspace *rs, bool modules)
{
    for (size_t i = 0; i < rs->iss->count; i++) {
        const rs__iss_entry *e = &rs->iss->entries[i];
        if (is_module(e) != modules)
            continue;
        switch (e->kind) {
        case RS__ISS_VARIABLE:
            rs__lua_push_value(L, e->value);
            break;
        case RS__ISS_FUNCTION:
            if (luaL_loadbufferx(L, e->source, e->source_len, e->chunkname, "t") != LUA_OK)
                lua_error(L);
            break;
        case RS__ISS_COMMAND:
            lua_pushlightuserdata(L, rs);
            lua_pushlightuserdata(L, (void *)e);
            lua_pushcclosure(L, rs__lua_call_command, 2);
            break;
        case RS__ISS_MODULE_FILE:
            if (luaL_loadbufferx(L, e->source, e->source_len, e->chunkname, "t") != LUA_OK)
                lua_error(L);
            lua_pushstring(L, e->name);
            lua_call(L, 1, 1);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushboolean(L, 1);
            }
            luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, e->name);
            lua_pop(L, 1);
            break;
        case RS__ISS_MODULE_NAME:
            rs__lualib_require(L, e->spec);
            break;
        case RS__ISS_LIBRARY:
            /* Sets package.loaded[spec], so that require finds it in every profile. */
            luaL_requiref(L, e->spec, e->open, 0);
            break;
        }
        rs__set_global(L, e->name);
    }
}

static int open_protected(lua_State *L)
{
    rs_runspace *rs = lua_touserdata(L, 1);
    rs__lualib_open(L, rs);
    apply_iss(L, rs, false);
    return 0;
}

static int load_modules_protected(lua_State *L)
{
    apply_iss(L, lua_touserdata(L, 1), true);
    return 0;
}

int rs__runspace_load_modules(rs_runspace *rs, int msgh)
{
    if (rs->modules_loaded)
        return LUA_OK;
    lua_State *L = rs->L;
    lua_pushcfunction(L, load_modules_protected);
    lua_pushlightuserdata(L, rs);
    int status = lua_pcall(L, 1, 0, msgh);
    if (status == LUA_OK)
        rs->modules_loaded = true;
    return status;
}

/* Lua's warnings (warn(), and errors in finalizers, which Lua reports as warnings) become
 * records of the warning stream of the invocation running, if any. A message may come in
 * pieces; it is cut at WARNING_MAX bytes. "@off" and "@on" turn them off and on, as in lua.c
 * (but they start on: a runspace has a stream for them). */
#define WARNING_MAX 4096

static void on_warning(void *ud, const char *msg, int tocont)
{
    rs_runspace *rs = ud;
    if (!tocont && rs->warning.len == 0 && msg[0] == '@') {
        if (strcmp(msg, "@off") == 0)
            rs->warnings_off = true;
        else if (strcmp(msg, "@on") == 0)
            rs->warnings_off = false;
        return;
    }
    size_t len = strlen(msg);
    if (rs->warning.len + len > WARNING_MAX)
        len = WARNING_MAX - rs->warning.len;
    if (!rs->warnings_off && len)
        rs__buf_append(&rs->warning, msg, len); /* out of memory: the piece is dropped */
    if (tocont)
        return;
    if (!rs->warnings_off && rs->warning.len)
        rs__run_record(rs, NULL, RS_STREAM_WARNING, rs->warning.data, rs->warning.len, NULL, -1);
    rs->warning.len = 0;
}

int rs__runspace_open_state(rs_runspace *rs)
{
    rs->oom = false;
    rs->oom_armed = false;
    rs->c_held = 0;
    rs->exec.tainted = false;
    rs->modules_loaded = false;
    lua_State *L = lua_newstate(lua_alloc, rs);
    if (!L) {
        atomic_store(&rs->state, RS_RUNSPACE_BROKEN);
        if (!rs->mem_limit)
            return rs__msg_set(&rs->msg, RS_ENOMEM, "out of memory");
        return rs__msg_set(&rs->msg, RS_ENOMEM,
                           "cannot open a runspace within a memory limit of %zu bytes",
                           rs->mem_limit);
    }
    *(rs_runspace **)lua_getextraspace(L) = rs; /* rs__lua_runspace; threads inherit it */
    /* Opening allocates a few hundred small objects that all stay alive: collecting while
     * doing so is wasted work. */
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, open_protected);
    lua_pushlightuserdata(L, rs);
    int status = lua_pcall(L, 1, 0, 0);
    if (status != LUA_OK) {
        int rc = status == LUA_ERRMEM ? RS_ENOMEM : RS_ERUNTIME;
        if (rc == RS_ENOMEM && rs->mem_limit)
            rs__msg_set(&rs->msg, rc, "cannot open a runspace within a memory limit of %zu bytes",
                        rs->mem_limit);
        else
            rs__msg_set(&rs->msg, rc, "runspace %s could not open: %s", rs->name,
                        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
        lua_close(L);
        atomic_store(&rs->state, RS_RUNSPACE_BROKEN);
        return rc;
    }
    lua_gc(L, LUA_GCRESTART);
    lua_setwarnf(L, on_warning, rs);
    rs->warnings_off = false;
    rs->warning.len = 0;
    rs->L = L;
    atomic_store(&rs->state, RS_RUNSPACE_OPENED);
    return 0;
}

/* Closes the Lua state under a deadline: lua_close runs the finalizers of everything still
 * alive, which is script code like any other (interrupt.c). A state whose hooks-off code was
 * cut short runs none of them. */
static void close_lua(rs_runspace *rs)
{
    lua_State *L = rs->L;
    rs__exec *ex = &rs->exec;
    if (ex->tainted)
        rs__lualib_disarm_finalizers(L);
    /* Closing inside a run (the state is being replaced) keeps the run's stop, deadlines and
     * budget, and the run's limits bound the close too; the thread's own context (a native
     * command may close another runspace) is put back after. */
    rs__exec *outer = rs__exec_current();
    bool in_run = rs->run != NULL;
    int64_t item_deadline = ex->item_deadline, inv_deadline = ex->inv_deadline;
    uint64_t budget = ex->budget;
    if (!in_run)
        atomic_store(&ex->stop, 0);
    int64_t deadline = rs__now_ns() + RS__CLOSE_GRACE_NS;
    if (in_run && item_deadline && item_deadline < deadline)
        deadline = item_deadline;
    sigset_t set, old;
    sigemptyset(&set);
    rs__interrupt_sigset(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, &old);
    rs__exec_enter_close(ex, L, deadline, in_run ? inv_deadline : 0);
    rs->last_block = lua_getextraspace(L); /* the block lua_close frees last */
    lua_close(L);
    rs->last_block = NULL;
    rs__exec_leave(ex); /* done already by the allocator; harmless again */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ex->budget = budget;
    rs__exec_set_deadlines(ex, in_run ? item_deadline : 0, in_run ? inv_deadline : 0);
    rs__exec_set_current(outer);
}

void rs__runspace_close_state(rs_runspace *rs)
{
    for (size_t i = 0; i < RS__ARRAY_SIZE(rs->cache); i++) {
        rs__free(rs->cache[i].src);
        rs->cache[i].src = NULL;
    }
    if (rs->L) {
        close_lua(rs);
        rs->L = NULL;
    }
    rs__arena_release(&rs->arena);
    rs__buf_free(&rs->scratch);
    rs__buf_free(&rs->warning);
    rs_value_destroy(rs->scratch_value);
    rs_value_destroy(rs->call_args);
    rs_value_destroy(rs->call_out);
    rs->scratch_value = rs->call_args = rs->call_out = NULL;
}

int rs__runspace_compiled(rs_runspace *rs, const char *src, size_t len, const char *chunkname,
                          uint64_t hash, char **msg)
{
    lua_State *L = rs->L;
    const char *name = chunkname ? chunkname : "=script";
    size_t nlen = strlen(name);
    struct rs__cached *c = &rs->cache[hash % RS__ARRAY_SIZE(rs->cache)];
    if (c->src && c->hash == hash && c->len == len && memcmp(c->src, src, len) == 0 &&
        strcmp(c->src + len + 1, name) == 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
        return 0;
    }
    int status = luaL_loadbufferx(L, src, len, name, "t");
    if (status != LUA_OK) {
        *msg = load_error(lua_tostring(L, -1), status, name);
        lua_pop(L, 1);
        return status == LUA_ERRMEM ? RS_ENOMEM : RS_ESYNTAX;
    }
    /* luaL_ref may raise: take the reference before holding any C memory. */
    lua_pushvalue(L, -1);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    char *copy = rs__malloc(len + 1 + nlen + 1); /* the source, then the chunk name */
    if (copy) {
        memcpy(copy, src, len);
        copy[len] = '\0';
        memcpy(copy + len + 1, name, nlen + 1);
    }
    if (!copy) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        return 0; /* compiled, just not cached */
    }
    if (c->src) {
        luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
        rs__free(c->src);
    }
    c->src = copy;
    c->len = len;
    c->hash = hash;
    c->ref = ref;
    return 0;
}

struct rs__timer *rs__runspace_timer(rs_runspace *rs)
{
    rs__mutex_lock(&rs->mu);
    if (!rs->timer)
        rs__timer_create(&rs->timer);
    struct rs__timer *t = rs->timer;
    rs__mutex_unlock(&rs->mu);
    return t;
}

void rs__runspace_free(rs_runspace *rs)
{
    if (!rs)
        return;
    rs__runspace_close_state(rs);
    rs__timer_destroy(rs->timer);
    rs__iss_release(rs->iss);
    rs__shared_release(rs->shared);
    rs__msg_free(&rs->msg);
    rs__mutex_destroy(&rs->mu);
    rs__exec_destroy(&rs->exec);
    rs__free(rs);
}

void rs__runspace_info(rs_runspace *rs, rs_runspace_info *row)
{
    memset(row, 0, sizeof *row);
    row->id = rs->id;
    snprintf(row->name, sizeof row->name, "%s", rs->name);
    row->state = (rs_runspace_state)atomic_load(&rs->state);
    row->availability = rs_runspace_availability(rs);
    row->memory_bytes = atomic_load_explicit(&rs->mem_used, memory_order_relaxed);
}

/* ---- public API --------------------------------------------------------------------------- */

int rs_runspace_create(const rs_runspace_opts *opts, rs_runspace **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    rs_runspace_opts o = opts ? *opts : (rs_runspace_opts){0};
    return rs__runspace_new(o.iss, o.name, o.shared, NULL, out);
}

int rs_runspace_open(rs_runspace *rs)
{
    if (!rs)
        return RS_EMISUSE;
    int state = atomic_load(&rs->state);
    if (state == RS_RUNSPACE_OPENED)
        return rs__msg_set(&rs->msg, RS_EMISUSE, "runspace %s is already open", rs->name);
    if (state == RS_RUNSPACE_CLOSED)
        return rs__msg_set(&rs->msg, RS_ECLOSED, "runspace %s is closed", rs->name);
    return rs__runspace_open_state(rs);
}

int rs_runspace_close(rs_runspace *rs)
{
    if (!rs)
        return RS_EMISUSE;
    if (atomic_load(&rs->busy))
        return rs__msg_set(&rs->msg, RS_EBUSY, "runspace %s is running an invocation", rs->name);
    rs__runspace_close_state(rs);
    atomic_store(&rs->state, RS_RUNSPACE_CLOSED);
    return 0;
}

int rs_runspace_destroy(rs_runspace *rs)
{
    if (!rs)
        return 0;
    rs__mutex_lock(&rs->mu);
    int bound = rs->nbound;
    rs__mutex_unlock(&rs->mu);
    if (bound || atomic_load(&rs->busy))
        return rs__msg_set(&rs->msg, RS_EBUSY, "%d invocation(s) are still bound to runspace %s",
                           bound, rs->name);
    rs__runspace_free(rs);
    return 0;
}

uint64_t rs_runspace_id(const rs_runspace *rs)
{
    return rs ? rs->id : 0;
}

const char *rs_runspace_name(const rs_runspace *rs)
{
    return rs ? rs->name : "";
}

rs_runspace_state rs_runspace_get_state(const rs_runspace *rs)
{
    return rs ? (rs_runspace_state)atomic_load(&((rs_runspace *)rs)->state) : RS_RUNSPACE_CLOSED;
}

rs_availability rs_runspace_availability(const rs_runspace *crs)
{
    rs_runspace *rs = (rs_runspace *)crs;
    if (!rs || atomic_load(&rs->state) != RS_RUNSPACE_OPENED)
        return RS_AVAILABILITY_NONE;
    return atomic_load(&rs->busy) ? RS_AVAILABILITY_BUSY : RS_AVAILABILITY_AVAILABLE;
}

size_t rs_runspace_memory(const rs_runspace *rs)
{
    return rs ? atomic_load_explicit(&((rs_runspace *)rs)->mem_used, memory_order_relaxed) : 0;
}

const char *rs_runspace_errmsg(const rs_runspace *rs)
{
    return rs ? rs__msg_get(&rs->msg) : "";
}
