/*
 * exec.c -- running an invocation's pipeline on a runspace, on the calling thread.
 *
 * DESIGN
 * Everything that touches the Lua state runs inside a "driver" C function called with
 * lua_pcall, because any Lua API call that allocates can raise a memory error, and a raise
 * outside a protected call would abort the process. C memory that must survive a raise lives
 * in the run structure (heap), never in a local of a function a raise can unwind.
 *
 * The driver resolves each stage once (a compiled script from the runspace's cache, a global
 * Lua function, or a native command) and keeps the functions on its stack. It then runs the
 * first stage once per input item (or once without an item), feeding each stage's outputs to
 * the next stage one by one. Each Lua call is a lua_pcall with a message handler that keeps
 * the error message, its source position and a traceback.
 *
 * Without RS_PS_ITEM_RESULTS the first terminating error ends the invocation. With it, every
 * item gets its own result, and only a stop or the invocation's own timeout ends the loop early
 * (the items left are reported cancelled). When Lua runs out of memory (the runspace's limit),
 * the driver returns, the interpreter is thrown away and reopened, and the remaining items run
 * on the fresh one.
 *
 * Stops and timeouts arrive through the execution context (interrupt.c): the hook raises, the
 * message handler records, and the run is classified from the context's `reason`.
 */
#include "exec.h"

#include "marshal.h"
#include "ps_int.h"
#include "timer.h"

#include <lauxlib.h>

#include <stdio.h>
#include <string.h>

typedef struct rs__run {
    rs_ps *ps;
    rs_runspace *rs;
    lua_State *L;
    bool item_mode;
    size_t nruns;    /* runs of the first stage */
    size_t next;     /* the next run to start */
    size_t cur;      /* the run in progress */
    bool in_run;     /* between begin_run and end_run */
    bool done;       /* the invocation is over (stopped, timed out, or failed) */
    bool need_reset; /* the interpreter ran out of memory and must be replaced */
    int64_t item_ns; /* per-item timeout, 0 = none */
    int64_t inv_deadline;
    int64_t run_start;
    int64_t last_end;   /* when the previous item of this driver ended; 0 at the first */
    double wall_offset; /* wall-clock seconds minus monotonic seconds, for items' start */
    rs__timer *timer;   /* watching this run's deadlines, or NULL */
    /* Driver state. */
    int g_idx;                     /* stack index of the globals table */
    int key_idx;                   /* stack index of the string "_" */
    int msgh;                      /* stack index of the message handler */
    int fn_base;                   /* stack index of stage 0's function (nil for native commands) */
    const rs__iss_entry **natives; /* per stage: the native command, or NULL */
    rs_value **tmp;                /* per stage but the last: its outputs, fed to the next stage */
    int bound;                     /* stage whose parameters are bound, -1 for none */
    rs_value *sink;                /* where the current stage's output goes */
    size_t sink_first;             /* length of sink when the current run began */
    /* Failure of the current run. */
    int code;
    char *err_msg;
    char *err_source;
    int err_line;
    char *err_tb;
    bool value_error;
    char *oom_detail; /* what did not fit, when the memory limit was hit converting a value */
    /* Outcome of the invocation. */
    int result;
    char *result_msg;
    bool setup_failed; /* the modules could not load: the result is every item's error */
} rs__run;

static const char saved_globals_key = 's';

/* Raises "prefix: msg" (or msg alone for an empty prefix), msg being a C string the caller owns
 * (NULL: out of memory): it is copied to the C stack and freed before anything that can
 * raise, so that it cannot leak. */
static int raise_owned(lua_State *L, const char *prefix, char *msg)
{
    char text[512];
    snprintf(text, sizeof text, "%s%s%s", prefix, *prefix ? ": " : "", msg ? msg : "out of memory");
    rs__free(msg);
    lua_pushstring(L, text);
    return lua_error(L);
}
static const char nil_sentinel_key = 'n';

/* ---- records ------------------------------------------------------------------------------ */

/* Appends a record to ps's stream; strings are copied into one block. Returns the stored
 * record (valid until the records are cleared), or NULL when out of memory. */
static rs_record *add_record(rs_ps *ps, rs_stream stream, const char *msg, size_t len,
                             const char *source, int line, const char *traceback, int code,
                             int64_t item, const char *activity, int percent)
{
    rs__records *recs = &ps->records[stream];
    if (recs->count == recs->cap) {
        size_t cap = recs->cap ? recs->cap * 2 : 8;
        rs_record *items = rs__realloc(recs->items, cap * sizeof *items);
        if (!items)
            return NULL;
        recs->items = items;
        recs->cap = cap;
    }
    size_t slen = source ? strlen(source) + 1 : 0;
    size_t tlen = traceback ? strlen(traceback) + 1 : 0;
    size_t alen = activity ? strlen(activity) + 1 : 0;
    char *blob = rs__malloc(len + 1 + slen + tlen + alen);
    if (!blob)
        return NULL;
    rs_record *r = &recs->items[recs->count++];
    memset(r, 0, sizeof *r);
    r->stream = stream;
    r->message = blob;
    r->message_len = len;
    memcpy(blob, msg, len);
    blob[len] = '\0';
    char *p = blob + len + 1;
    if (source) {
        memcpy(p, source, slen);
        r->source = p;
        p += slen;
    }
    if (traceback) {
        memcpy(p, traceback, tlen);
        r->traceback = p;
        p += tlen;
    }
    if (activity) {
        memcpy(p, activity, alen);
        r->activity = p;
    }
    r->line = line;
    r->code = code;
    r->item = item;
    r->percent = percent;
    r->time = rs__wall_time();
    if (stream == RS_STREAM_ERROR)
        ps->had_errors = true;
    if (ps->opts.on_record)
        ps->opts.on_record(ps, r, ps->opts.userdata);
    return r;
}

const char *rs__ps_add_error(rs_ps *ps, int code, const char *message)
{
    rs_record *rec = add_record(ps, RS_STREAM_ERROR, message, strlen(message), NULL, 0, NULL, code,
                                -1, NULL, -1);
    return rec ? rec->message : rs_strerror(code);
}

void rs__ps_clear_results(rs_ps *ps)
{
    rs_value_destroy(ps->output);
    ps->output = NULL;
    for (int s = 0; s < RS_STREAM_COUNT; s++) {
        rs__records *recs = &ps->records[s];
        for (size_t i = 0; i < recs->count; i++)
            rs__free((void *)recs->items[i].message);
        rs__free(recs->items);
        memset(recs, 0, sizeof *recs);
    }
    rs__free(ps->items);
    ps->items = NULL;
    ps->nitems = 0;
    ps->had_errors = false;
}

/* The input item the current run belongs to, or -1 (no run, or an invocation without input). */
static int64_t current_item(const rs__run *r)
{
    return r->in_run && r->ps->inputs && rs_array_len(r->ps->inputs) ? (int64_t)r->cur : -1;
}

/* About what a stream record of a script costs the memory limit: its slot (the array grows
 * by doubling) and its strings. */
static size_t record_cost(size_t len, const char *activity)
{
    return 2 * sizeof(rs_record) + len + (activity ? strlen(activity) : 0) + 64 + 16;
}

/* A record that is handed on and not kept: written while no invocation runs (a finalizer at
 * close: ps is NULL, it goes to the ISS's host), or under RS_PS_STREAM_RECORDS (to ps's
 * on_record). Its text is copied only to end it with a NUL; the rest is borrowed. */
static int pass_record(rs_runspace *rs, rs_ps *ps, int64_t item, rs_stream stream, const char *msg,
                       size_t len, const char *source, int line, const char *activity, int percent)
{
    char *text = rs__strndup(msg, len);
    if (!text)
        return RS_ENOMEM;
    rs_record rec = {.stream = stream,
                     .message = text,
                     .message_len = len,
                     .source = source,
                     .line = line,
                     .item = item,
                     .activity = activity,
                     .percent = percent,
                     .time = rs__wall_time()};
    if (ps)
        ps->opts.on_record(ps, &rec, ps->opts.userdata);
    else
        rs->iss->host(&rec, rs->iss->host_userdata);
    rs__free(text);
    return 0;
}

int rs__run_record(rs_runspace *rs, lua_State *L, rs_stream stream, const char *msg, size_t len,
                   const char *activity, int percent)
{
    rs__run *r = rs->run;
    /* Under RS_PS_STREAM_RECORDS, records but errors are passed on, never kept nor charged. */
    bool passed = r && (r->ps->opts.flags & RS_PS_STREAM_RECORDS) && stream != RS_STREAM_ERROR;
    if (r ? passed && !r->ps->opts.on_record : !rs->iss->host)
        return 0;
    if (r && !passed && rs__charge(rs, record_cost(len, activity))) {
        rs__free(r->oom_detail);
        r->oom_detail = rs__format("the %s records of this run do not fit in the runspace memory "
                                   "limit of %zu bytes",
                                   rs_stream_name(stream), rs->mem_limit);
        rs__exec_fail(&rs->exec, RS_ENOMEM);
        return RS_ENOMEM;
    }
    const char *source = NULL;
    int line = 0;
    lua_Debug ar;
    if (L && lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        source = ar.short_src;
        line = ar.currentline;
    }
    if (!r || passed)
        return pass_record(rs, r ? r->ps : NULL, r ? current_item(r) : -1, stream, msg, len, source,
                           line, activity, percent);
    return add_record(r->ps, stream, msg, len, source, line, NULL, 0, current_item(r), activity,
                      percent)
               ? 0
               : RS_ENOMEM;
}

/* ---- failures ----------------------------------------------------------------------------- */

static void clear_failure(rs__run *r)
{
    rs__free(r->err_msg);
    rs__free(r->err_source);
    rs__free(r->err_tb);
    rs__free(r->oom_detail);
    r->err_msg = r->err_source = r->err_tb = r->oom_detail = NULL;
    r->err_line = 0;
    r->code = 0;
    r->value_error = false;
}

/* Sets the current run's failure: code and a message (taken; NULL means "out of memory"). */
static int fail_with(rs__run *r, int code, char *msg)
{
    rs__free(r->err_msg);
    r->err_msg = msg;
    r->code = code;
    return code;
}

/* An error message as C text (a new string): NUL bytes, which would cut it short, are
 * written \0, and an empty message says so. NULL when out of memory. */
static char *message_text(const char *msg, size_t len)
{
    if (len == 0)
        return rs__strdup("(an error with an empty message)");
    if (!memchr(msg, '\0', len))
        return rs__strndup(msg, len);
    rs__buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < len; i++)
        rc |= msg[i] ? rs__buf_putc(&b, msg[i]) : rs__buf_puts(&b, "\\0");
    if (rc) {
        rs__buf_free(&b);
        return NULL;
    }
    return rs__buf_detach(&b, NULL);
}

/* A table raised as an error, as JSON text (a new string), or NULL when it cannot be one (a
 * function inside, a cycle, out of memory): the message then names its type. */
static char *error_json(lua_State *L, rs__run *r)
{
    int code;
    char *why = NULL;
    size_t charged = 0;
    rs_value *v = rs__lua_to_value(L, r->rs, 1, "error", 0, &charged, &code, &why);
    rs__free(why);
    if (!v)
        return NULL;
    char *text = NULL;
    if (rs_json_encode(v, RS_JSON_REPAIR, &text, NULL, NULL))
        text = NULL;
    rs_value_destroy(v);
    rs__uncharge(r->rs, charged);
    char *copy = text ? rs__strdup(text) : NULL;
    rs_free(text);
    return copy;
}

/* The message handler of every script call: keeps the message, the position of the innermost
 * Lua frame and a traceback, all as C strings in the run. */
static int msgh(lua_State *L)
{
    rs__run *r = lua_touserdata(L, lua_upvalueindex(1));
    const char *msg;
    size_t len;
    char *json = NULL;
    if (lua_type(L, 1) == LUA_TSTRING)
        msg = lua_tolstring(L, 1, &len);
    else if (lua_type(L, 1) == LUA_TNUMBER) /* error(42) shows 42, as lua.c's handler does */
        lua_pushvalue(L, 1), msg = lua_tolstring(L, -1, &len);
    else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
        msg = lua_tolstring(L, -1, &len);
    else if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) /* it gave no string: as lua.c */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1)), len = 0;
    else if (lua_type(L, 1) == LUA_TTABLE && (json = error_json(L, r)))
        msg = lua_pushstring(L, json), len = 0; /* error({code = 5}) shows {"code":5} */
    else
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1)), len = 0;
    rs__free(json);
    rs__free(r->err_msg);
    r->err_msg = message_text(msg, len ? len : strlen(msg));
    if (r->err_msg)
        msg = r->err_msg;
    rs__free(r->err_source);
    r->err_source = NULL;
    r->err_line = 0;
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            r->err_source = rs__strdup(ar.short_src);
            r->err_line = ar.currentline;
            break;
        }
    }
    luaL_traceback(L, L, msg, 1);
    rs__free(r->err_tb);
    r->err_tb = rs__strdup(lua_tostring(L, -1));
    return 1;
}

/* Classifies a failed protected call of the current run. */
static int classify(rs__run *r, int status)
{
    rs__exec *ex = &r->rs->exec;
    if (ex->reason)
        return ex->reason;
    if (status == LUA_ERRMEM || (r->rs->oom && status != LUA_OK && r->rs->mem_limit))
        return RS_ENOMEM;
    if (r->value_error)
        return RS_EVALUE;
    return RS_ERUNTIME;
}

/* Whether a timeout is the invocation's own (rather than the item's). */
static bool invocation_timed_out(const rs__run *r)
{
    return r->inv_deadline && rs__now_ns() >= r->inv_deadline;
}

/* The message for a failure of the current run, as a new string. */
static char *failure_message(rs__run *r, int code)
{
    switch (code) {
    case RS_ESTOPPED:
        return rs__strdup("the invocation was stopped");
    case RS_ETIMEDOUT:
        if (invocation_timed_out(r))
            return rs__format("the invocation timed out after %g s", r->ps->opts.timeout);
        return rs__format("timed out after %g s", r->ps->opts.item_timeout);
    case RS_ELIMIT:
        return rs__format("instruction budget of %llu exceeded",
                          (unsigned long long)r->rs->exec.budget);
    case RS_ENOMEM:
        if (r->oom_detail)
            return rs__format("out of memory: %s", r->oom_detail);
        if (r->rs->mem_limit)
            return rs__format("out of memory: the runspace memory limit of %zu bytes was exceeded",
                              r->rs->mem_limit);
        return rs__strdup("out of memory");
    default:
        return r->err_msg ? rs__strdup(r->err_msg) : rs__strdup(rs_strerror(code));
    }
}

/* ---- parameters ---------------------------------------------------------------------------- */

/* Puts back the globals that parameters replaced and empties `params`. */
static void unbind_params(rs__run *r)
{
    lua_State *L = r->L;
    r->bound = -1;
    lua_pushglobaltable(L);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &saved_globals_key) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) { /* G saved k old */
            if (lua_islightuserdata(L, -1) && lua_touserdata(L, -1) == &nil_sentinel_key) {
                lua_pop(L, 1);
                lua_pushnil(L);
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5); /* G[k] = old */
        }
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &saved_globals_key);
    }
    lua_pop(L, 2);
    lua_newtable(L);
    rs__set_global(L, "params");
}

/* Makes stage s's named parameters visible: in `params` and as globals (the globals they
 * replace are saved and put back by unbind_params). */
static void bind_params(rs__run *r, size_t s)
{
    if (r->bound == (int)s)
        return;
    if (r->bound >= 0)
        unbind_params(r);
    r->bound = (int)s;
    const rs_value *params = r->ps->stages[s].params;
    size_t n = params ? rs_map_len(params) : 0;
    if (n == 0)
        return;
    lua_State *L = r->L;
    lua_pushglobaltable(L);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &saved_globals_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &saved_globals_key);
    }
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = rs_map_key(params, i, &klen);
        lua_pushlstring(L, k, klen); /* key */
        rs__lua_push_value(L, rs_map_value(params, i));
        /* params[k] = v */
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, -5);
        /* save the global once, then set it */
        lua_pushvalue(L, -2);
        if (lua_rawget(L, -5) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            if (lua_rawget(L, -6) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushlightuserdata(L, (void *)&nil_sentinel_key);
            }
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, -6);
        } else {
            lua_pop(L, 1);
        }
        lua_rawset(L, -5); /* _G[k] = v */
    }
    rs__set_global(L, "params");
    lua_pop(L, 2);
}

/* ---- stages ------------------------------------------------------------------------------- */

/* Records why a value could not be converted (msg taken); returns the code. An interruption
 * or the memory limit reported by the conversion becomes the run's failure like any other. */
static int conversion_failed(rs__run *r, int code, char *msg)
{
    if (code == RS_ENOMEM && msg) {
        rs__free(r->oom_detail);
        r->oom_detail = msg;
        return fail_with(r, code, NULL);
    }
    if (code != RS_EVALUE) {
        rs__free(msg);
        return fail_with(r, code, failure_message(r, code));
    }
    return fail_with(r, code, msg);
}

/* Writes the warning that an output was passed as text (note, taken; NULL: none). Returns 0
 * or RS_ENOMEM (the records no longer fit the memory limit; the run is failing). */
static int output_note(rs_runspace *rs, lua_State *L, char *note)
{
    if (!note)
        return 0;
    int rc = rs__run_record(rs, L, RS_STREAM_WARNING, note, strlen(note), NULL, -1);
    rs__free(note);
    return rc;
}

/* Appends the Lua value at idx to the sink, naming it output[k] in errors. Its charge to the
 * memory limit stays with it until the item ends. */
static int append_output(rs__run *r, int idx)
{
    int code;
    char *msg;
    char *note;
    lua_Integer k = (lua_Integer)(rs_array_len(r->sink) - r->sink_first + 1);
    rs_value *v = rs__lua_to_output(r->L, r->rs, idx, k, &code, &msg, &note);
    if (!v)
        return conversion_failed(r, code, msg);
    if (rs_array_push(r->sink, v)) {
        rs__free(note);
        return fail_with(r, RS_ENOMEM, NULL);
    }
    return output_note(r->rs, NULL, note) ? fail_with(r, RS_ENOMEM, NULL) : 0;
}

int rs__run_raise(lua_State *L, rs_runspace *rs, const char *what, int code, char *msg)
{
    rs__run *r = rs->run;
    if (code == RS_EVALUE || !rs->exec.L)
        return raise_owned(L, what, msg);
    if (code == RS_ENOMEM && r) {
        rs__free(r->oom_detail);
        r->oom_detail = msg ? rs__format("%s: %s", what, msg) : NULL;
    }
    rs__free(msg);
    return rs__exec_raise(L, &rs->exec, code);
}

void rs__run_emit(lua_State *L, rs_runspace *rs, int idx)
{
    rs__run *r = rs->run;
    if (!r || !r->sink) {
        luaL_error(L, "emit is only available while a script runs");
        return;
    }
    int code;
    char *msg, *note;
    lua_Integer k = (lua_Integer)(rs_array_len(r->sink) - r->sink_first + 1);
    rs_value *v = rs__lua_to_output(L, rs, idx, k, &code, &msg, &note);
    if (v && rs_array_push(r->sink, v) == 0) {
        if (output_note(rs, L, note))
            luaL_error(L, "out of memory"); /* the limit's failure is already the run's */
        return;
    }
    rs__free(note); /* a v that could not be pushed was freed by rs_array_push */
    if (!v && code != RS_EVALUE) {
        /* The memory limit or an interruption: raised so that no pcall can swallow it. */
        rs__run_raise(L, rs, "emit", code, msg);
        return;
    }
    r->value_error = v == NULL && code == RS_EVALUE;
    raise_owned(L, "", msg);
}

static int run_lua_stage(rs__run *r, size_t s, const rs_value *item, bool has_item)
{
    lua_State *L = r->L;
    const rs__stage *st = &r->ps->stages[s];
    int base = lua_gettop(L);
    size_t nargs = st->args ? rs_array_len(st->args) : 0;
    luaL_checkstack(L, (int)(nargs + 4), "too many arguments");
    lua_pushvalue(L, r->fn_base + (int)s);
    if (has_item)
        rs__lua_push_value(L, item); /* the first argument */
    /* _ = item, through the globals table and key kept on the driver's stack: per item this
     * skips the string lookup lua_setglobal would make. */
    lua_pushvalue(L, r->key_idx);
    if (has_item)
        lua_pushvalue(L, -2);
    else
        lua_pushnil(L);
    lua_rawset(L, r->g_idx);
    for (size_t i = 0; i < nargs; i++)
        rs__lua_push_value(L, rs_array_get(st->args, i));
    int status = lua_pcall(L, (int)nargs + (has_item ? 1 : 0), LUA_MULTRET, r->msgh);
    int due = status == LUA_OK ? rs__exec_due(&r->rs->exec) : 0;
    if (due) {
        /* The script swallowed an interruption and returned before another instruction could
         * raise it again (`return pcall(sleep, 10)` is a tail call), or its last act was a C
         * function that returned after the deadline or the stop (`return os.execute(...)`,
         * also a tail call, so no instruction of the script ran after it): it still counts. */
        lua_settop(L, base);
        return fail_with(r, due, failure_message(r, due));
    }
    if (status != LUA_OK) {
        lua_settop(L, base);
        int code = classify(r, status);
        return fail_with(r, code, failure_message(r, code));
    }
    int top = lua_gettop(L);
    int rc = 0;
    for (int i = base + 1; i <= top && !rc; i++)
        rc = append_output(r, i);
    lua_settop(L, base);
    return rc;
}

static int run_native_stage(rs__run *r, size_t s, const rs_value *item, bool has_item)
{
    const rs__stage *st = &r->ps->stages[s];
    const rs__iss_entry *e = r->natives[s];
    struct rs_call call = {.rs = r->rs,
                           .name = e->name,
                           .args = st->args,
                           .input = has_item ? item : NULL,
                           .params = st->params,
                           .sink = r->sink,
                           .L = NULL,
                           .item = current_item(r)};
    int rc = e->fn(&call, e->userdata);
    int due = rs__exec_due(&r->rs->exec);
    if (due) {
        rs__free(call.error);
        return fail_with(r, due, failure_message(r, due));
    }
    if (rc == 0) {
        rs__free(call.error);
        return 0;
    }
    if (rc > 0 || strcmp(rs_err_name(rc), "RS_E?") == 0) /* not an RS_E* code */
        rc = RS_ERUNTIME;
    const char *why = call.error ? call.error : rs_strerror(rc);
    char *msg = *e->name ? rs__format("%s: %s", e->name, why) : rs__strdup(why);
    rs__free(call.error);
    return fail_with(r, rc, msg);
}

/* Runs stage s on one item; its outputs go to the next stage, or to the run's sink when s is
 * the last stage. */
static int run_chain(rs__run *r, size_t s, const rs_value *item, bool has_item)
{
    size_t last = r->ps->nstages - 1;
    rs_value *final_sink = r->sink;
    size_t final_first = r->sink_first;
    if (s < last) {
        r->sink = r->tmp[s];
        r->sink_first = rs_array_len(r->tmp[s]);
    }
    bind_params(r, s);
    int rc = r->natives[s] ? run_native_stage(r, s, item, has_item)
                           : run_lua_stage(r, s, item, has_item);
    r->sink = final_sink;
    r->sink_first = final_first;
    if (s == last)
        return rc;
    rs_value *tmp = r->tmp[s];
    for (size_t i = 0; !rc && i < rs_array_len(tmp); i++)
        rc = run_chain(r, s + 1, rs_array_get(tmp, i), true);
    while (rs_array_len(tmp))
        rs_value_destroy(rs_array_take(tmp, rs_array_len(tmp) - 1));
    return rc;
}

/* ---- runs --------------------------------------------------------------------------------- */

static void begin_run(rs__run *r, size_t i)
{
    clear_failure(r);
    /* Outputs a stage left when an error unwound the driver must not feed the next item. */
    for (size_t s = 0; s + 1 < r->ps->nstages; s++) {
        while (rs_array_len(r->tmp[s]))
            rs_value_destroy(rs_array_take(r->tmp[s], rs_array_len(r->tmp[s]) - 1));
    }
    r->rs->oom = false;
    if (r->item_mode) {
        /* Each item has the whole budget and memory limit (its predecessors' outputs are
         * delivered with the batch, not held by the script). */
        r->rs->c_held = 0;
        r->rs->scratch_charge = 0; /* part of what was just reset */
        rs__exec_new_item(&r->rs->exec);
    }
    r->cur = i;
    r->in_run = true;
    /* The previous item's end is this one's start: one clock read per item. */
    r->run_start = r->last_end ? r->last_end : rs__now_ns();
    if (r->item_ns) {
        rs__exec_set_deadlines(&r->rs->exec, r->run_start + r->item_ns, r->inv_deadline);
        if (r->timer)
            rs__timer_moved(r->timer, &r->rs->exec);
    }
    r->sink = r->ps->output;
    r->sink_first = rs_array_len(r->ps->output);
    if (r->item_mode) {
        rs_item_result *it = &r->ps->items[i];
        it->output_first = r->sink_first;
        it->runspace_id = r->rs->id;
        it->start = r->wall_offset + (double)r->run_start * 1e-9;
    }
}

/* Records a whole-invocation failure once. msg is taken. */
static void set_result(rs__run *r, int code, char *msg)
{
    if (r->result) {
        rs__free(msg);
        return;
    }
    r->result = code;
    r->result_msg = msg;
}

/* Ends run i with outcome rc. Returns true when the driver loop must stop. */
static bool end_run(rs__run *r, int rc)
{
    rs_ps *ps = r->ps;
    rs__exec *ex = &r->rs->exec;
    size_t i = r->cur;
    int64_t item = current_item(r);
    r->in_run = false;
    bool inv_timeout = rc == RS_ETIMEDOUT && invocation_timed_out(r);
    const char *message = NULL;
    if (rc && rc != RS_ESTOPPED) {
        const char *msg = r->err_msg ? r->err_msg : rs_strerror(rc);
        rs_record *rec = add_record(ps, RS_STREAM_ERROR, msg, strlen(msg), r->err_source,
                                    r->err_line, r->err_tb, rc, item, NULL, -1);
        message = rec ? rec->message : rs_strerror(rc);
    }
    if (r->item_mode) {
        rs_item_result *it = &ps->items[i];
        it->output_count = rs_array_len(ps->output) - it->output_first;
        r->last_end = rs__now_ns();
        it->duration = (double)(r->last_end - r->run_start) * 1e-9;
        it->code = rc;
        it->error = rc == RS_ESTOPPED ? "cancelled: the invocation was stopped" : message;
        it->status = rc == 0              ? RS_ITEM_OK
                     : rc == RS_ETIMEDOUT ? RS_ITEM_TIMEOUT
                     : rc == RS_ESTOPPED  ? RS_ITEM_CANCELLED
                                          : RS_ITEM_ERROR;
        if (ps->opts.on_item)
            ps->opts.on_item(ps, i, it, ps->opts.userdata);
    }
    if (ex->reason)
        rs__exec_reset_hooks(ex);
    r->rs->oom_armed = false;
    if (rc == RS_ENOMEM || ex->tainted)
        r->need_reset = true;
    if (rc == RS_ESTOPPED || inv_timeout || (!r->item_mode && rc)) {
        set_result(r, rc,
                   r->err_msg && rc != RS_ESTOPPED && !inv_timeout ? rs__strdup(r->err_msg)
                                                                   : failure_message(r, rc));
        r->done = true;
    }
    return r->done || r->need_reset;
}

/* Pushes the function of each stage (nil for native commands) from base on. Returns 0, or
 * a failure code with the run's failure message set. */
static int resolve_stages(rs__run *r)
{
    lua_State *L = r->L;
    rs_ps *ps = r->ps;
    luaL_checkstack(L, (int)ps->nstages + 8, "too many stages");
    for (size_t s = 0; s < ps->nstages; s++) {
        const rs__stage *st = &ps->stages[s];
        r->natives[s] = NULL;
        if (st->kind == RS__STAGE_NATIVE) {
            r->natives[s] = &st->native;
            lua_pushnil(L);
            continue;
        }
        if (st->kind == RS__STAGE_SCRIPT) {
            char *msg = NULL;
            int rc = rs__runspace_compiled(r->rs, st->text, st->len, st->chunkname, st->hash, &msg);
            if (rc)
                return fail_with(r, rc, msg);
            continue;
        }
        const rs__iss_entry *e = rs__iss_find_command(r->rs->iss, st->text);
        if (e) {
            r->natives[s] = e;
            lua_pushnil(L);
            continue;
        }
        lua_pushstring(L, st->text);
        if (lua_rawget(L, r->g_idx) != LUA_TFUNCTION) {
            lua_pop(L, 1);
            return fail_with(r, RS_ENOENT,
                             rs__format("no command or function named '%s'", st->text));
        }
    }
    return 0;
}

static int driver(lua_State *L)
{
    rs__run *r = lua_touserdata(L, 1);
    r->last_end = 0;
    /* One wall-clock read per invocation: items' start times follow the monotonic clock. */
    r->wall_offset = rs__wall_time() - (double)rs__now_ns() * 1e-9;
    lua_pushglobaltable(L);
    r->g_idx = lua_gettop(L);
    lua_pushliteral(L, "_");
    r->key_idx = lua_gettop(L);
    lua_pushlightuserdata(L, r);
    lua_pushcclosure(L, msgh, 1);
    r->msgh = lua_gettop(L);
    r->fn_base = r->msgh + 1;
    int status = rs__runspace_load_modules(r->rs, r->msgh);
    if (status != LUA_OK) {
        /* The state is half set up: have it replaced; every item fails with this. */
        int code = classify(r, status);
        char *why = (code == RS_ERUNTIME || code == RS_EVALUE) && r->err_msg
                        ? rs__strdup(r->err_msg)
                        : failure_message(r, code);
        set_result(r, code, rs__format("loading the modules: %s", why ? why : "out of memory"));
        rs__free(why);
        r->setup_failed = code != RS_ESTOPPED;
        r->need_reset = true;
        r->done = true;
        return 0;
    }
    lua_settop(L, r->fn_base - 1);
    int rc = resolve_stages(r);
    if (rc) {
        set_result(r, rc, r->err_msg ? rs__strdup(r->err_msg) : NULL);
        r->done = true;
        return 0;
    }
    rs__exec *ex = &r->rs->exec;
    const rs_value *inputs = r->ps->inputs;
    while (r->next < r->nruns) {
        size_t i = r->next++;
        begin_run(r, i);
        const rs_value *item = inputs ? rs_array_get(inputs, i) : NULL;
        int due = rs__exec_due(ex);
        if (due == RS_ESTOPPED && r->item_mode)
            r->ps->items[i].runspace_id = 0; /* cancelled before it started: it never ran */
        rc = due ? fail_with(r, due, failure_message(r, due)) : run_chain(r, 0, item, item != NULL);
        if (end_run(r, rc))
            break;
    }
    return 0;
}

/* Puts parameters' globals back and clears `_`; in protected mode (it may allocate). */
static int cleanup(lua_State *L)
{
    rs__run *r = lua_touserdata(L, 1);
    if (r->bound >= 0)
        unbind_params(r);
    lua_pushnil(L);
    rs__set_global(L, "_");
    return 0;
}

static void free_run(rs__run *r)
{
    clear_failure(r);
    if (r->tmp) {
        for (size_t s = 0; s + 1 < r->ps->nstages; s++)
            rs_value_destroy(r->tmp[s]);
    }
    rs__free(r->tmp);
    rs__free(r->natives);
    rs__free(r->result_msg);
    rs__free(r);
}

/* Replaces the interpreter after it ran out of memory. */
static int reset_interpreter(rs__run *r)
{
    rs__exec *ex = &r->rs->exec;
    rs__exec_leave(ex);
    rs__runspace_close_state(r->rs);
    int rc = rs__runspace_open_state(r->rs);
    r->L = r->rs->L;
    if (rc == 0)
        rs__exec_enter(ex, r->L);
    r->bound = -1;
    return rc;
}

int rs__ps_execute(rs_ps *ps, rs_runspace *rs, rs__timer *timer)
{
    rs__ps_clear_results(ps);
    rs__msg_clear(&ps->result_msg);
    size_t ninputs = ps->inputs ? rs_array_len(ps->inputs) : 0;
    bool item_mode = (ps->opts.flags & RS_PS_ITEM_RESULTS) != 0;
    rs__run *r = rs__calloc(1, sizeof *r);
    ps->output = rs_value_array();
    if (r) {
        r->ps = ps;
        r->natives = rs__calloc(ps->nstages, sizeof *r->natives);
        r->tmp = rs__calloc(ps->nstages, sizeof *r->tmp);
    }
    bool ok = r && ps->output && r->natives && r->tmp;
    for (size_t s = 0; ok && s + 1 < ps->nstages; s++)
        ok = (r->tmp[s] = rs_value_array()) != NULL;
    if (ok && item_mode && ninputs) {
        ps->items = rs__calloc(ninputs, sizeof *ps->items);
        ok = ps->items != NULL;
        ps->nitems = ok ? ninputs : 0;
    }
    if (!ok) {
        if (r)
            free_run(r);
        rs__ps_clear_results(ps);
        ps->output = rs_value_array();
        return rs__msg_set(&ps->result_msg, RS_ENOMEM, "out of memory");
    }
    r->rs = rs;
    r->L = rs->L;
    r->item_mode = item_mode;
    r->nruns = item_mode ? ninputs : (ninputs ? ninputs : 1);
    r->bound = -1;
    r->item_ns = rs__seconds_to_ns(ps->opts.item_timeout);
    int64_t now = rs__now_ns();
    r->inv_deadline = ps->opts.timeout > 0 ? now + rs__seconds_to_ns(ps->opts.timeout) : 0;

    rs__exec *ex = &rs->exec;
    ex->budget = rs->iss->limits.instructions;
    rs->c_held = 0;
    rs->scratch_charge = 0;
    rs->oom_armed = false;
    rs->run = r;
    rs__exec_enter(ex, r->L);
    rs__exec_set_deadlines(ex, r->item_ns ? now + r->item_ns : 0, r->inv_deadline);
    bool watched = timer && (r->item_ns || r->inv_deadline);
    if (watched) {
        r->timer = timer;
        rs__timer_watch(timer, ex);
    }

    while (!r->done) {
        lua_State *L = r->L;
        lua_pushcfunction(L, driver);
        lua_pushlightuserdata(L, r);
        int status = lua_pcall(L, 1, 0, 0);
        if (status != LUA_OK) {
            /* Raised outside a script call: memory, or an error of a value pushed in. */
            int code = classify(r, status);
            char *msg = code == RS_ERUNTIME && lua_type(L, -1) == LUA_TSTRING
                            ? rs__strdup(lua_tostring(L, -1))
                            : failure_message(r, code);
            lua_settop(L, 0);
            fail_with(r, code, msg);
            if (r->in_run) {
                end_run(r, code);
            } else {
                set_result(r, code, r->err_msg ? rs__strdup(r->err_msg) : NULL);
                r->done = true;
            }
        }
        if (ex->reason && !r->in_run)
            rs__exec_reset_hooks(ex); /* an interruption outside any item (the modules) */
        if (ex->tainted)
            r->need_reset = true; /* hooks-off code was cut short: finalizers are disarmed */
        if (!r->need_reset) {
            lua_pushcfunction(L, cleanup);
            lua_pushlightuserdata(L, r);
            lua_pcall(L, 1, 0, 0);
            lua_settop(L, 0);
        }
        if (r->need_reset) {
            r->need_reset = false;
            if (reset_interpreter(r)) {
                set_result(
                    r, RS_ENOMEM,
                    rs__format("the runspace could not be reopened: %s", rs__msg_get(&rs->msg)));
                break;
            }
            continue;
        }
        if (r->next >= r->nruns)
            break;
    }

    if (watched)
        rs__timer_unwatch(timer, ex);
    rs__exec_set_deadlines(ex, 0, 0);
    if (r->L)
        rs__exec_leave(ex);
    rs->run = NULL;

    /* Items that never ran: cancelled by the stop or timeout that ended the invocation, or
     * failed by what kept the pipeline from starting. */
    if (item_mode) {
        const char *why = "cancelled: the invocation was stopped";
        rs_item_status st = RS_ITEM_CANCELLED;
        int code = r->result ? r->result : RS_ECANCELED;
        if (r->result == RS_ETIMEDOUT && !r->setup_failed) {
            why = "cancelled: the invocation timed out";
        } else if (r->result && r->result != RS_ESTOPPED) {
            st = RS_ITEM_ERROR;
            why = r->result_msg ? r->result_msg : rs_strerror(r->result);
            rs_record *rec = add_record(ps, RS_STREAM_ERROR, why, strlen(why), NULL, 0, NULL,
                                        r->result, -1, NULL, -1);
            why = rec ? rec->message : rs_strerror(r->result);
        }
        for (size_t i = r->next; i < r->nruns; i++) {
            rs_item_result *it = &ps->items[i];
            it->status = st;
            it->code = code;
            it->error = why;
            it->output_first = rs_array_len(ps->output);
            it->runspace_id = 0; /* it never ran */
        }
    }
    int result = r->result;
    if (result) {
        rs__msg_set(&ps->result_msg, result, "%s",
                    r->result_msg ? r->result_msg : rs_strerror(result));
        if (item_mode && result != RS_ESTOPPED && result != RS_ETIMEDOUT)
            result = r->next == 0 ? result : 0;
    }
    /* With per-item results, failures of items are theirs; only a stop, a timeout of the whole
     * invocation, or a pipeline that could not start is the invocation's result. */
    free_run(r);
    return result;
}

/* ---- native commands called from Lua ------------------------------------------------------ */

int rs__lua_call_command(lua_State *L)
{
    rs_runspace *rs = lua_touserdata(L, lua_upvalueindex(1));
    const rs__iss_entry *e = lua_touserdata(L, lua_upvalueindex(2));
    int n = lua_gettop(L);
    rs_value_destroy(rs->call_args);
    rs_value_destroy(rs->call_out);
    rs->call_args = rs_value_array();
    rs->call_out = rs_value_array();
    if (!rs->call_args || !rs->call_out)
        return luaL_error(L, "%s: out of memory", e->name);
    size_t charged = 0;
    for (int i = 1; i <= n; i++) {
        int code;
        char *msg;
        size_t c;
        rs_value *v = rs__lua_to_value(L, rs, i, "argument", i, &c, &code, &msg);
        if (!v && code != RS_EVALUE) {
            rs__uncharge(rs, charged);
            return rs__run_raise(L, rs, e->name, code, msg);
        }
        if (!v || rs_array_push(rs->call_args, v)) {
            rs__uncharge(rs, charged);
            return raise_owned(L, e->name, msg);
        }
        charged += c;
    }
    struct rs_call call = {.rs = rs,
                           .name = e->name,
                           .args = rs->call_args,
                           .input = NULL,
                           .params = NULL,
                           .sink = rs->call_out,
                           .L = L,
                           .item = -1};
    int rc = e->fn(&call, e->userdata);
    rs__uncharge(rs, charged); /* the arguments are dropped on the next call or at close */
    if (rc)
        return raise_owned(L, e->name, call.error ? call.error : rs__strdup(rs_strerror(rc)));
    rs__free(call.error);
    size_t nres = rs_array_len(rs->call_out);
    luaL_checkstack(L, (int)nres + 1, "too many results");
    for (size_t i = 0; i < nres; i++)
        rs__lua_push_value(L, rs_array_get(rs->call_out, i));
    return (int)nres;
}

/* ---- the call context of native commands -------------------------------------------------- */

size_t rs_call_argc(const rs_call *call)
{
    return call && call->args ? rs_array_len(call->args) : 0;
}

const rs_value *rs_call_arg(const rs_call *call, size_t index)
{
    return call && call->args ? rs_array_get(call->args, index) : NULL;
}

const rs_value *rs_call_input(const rs_call *call)
{
    return call ? call->input : NULL;
}

const rs_value *rs_call_param(const rs_call *call, const char *name)
{
    return call && call->params && name ? rs_map_get(call->params, name) : NULL;
}

int rs_call_emit(rs_call *call, rs_value *value)
{
    if (!call) {
        rs_value_destroy(value);
        return RS_EMISUSE;
    }
    if (!value)
        return RS_EINVAL;
    return rs_array_push(call->sink, value);
}

int rs_call_write(rs_call *call, int stream, const char *message)
{
    if (!call)
        return RS_EMISUSE;
    if (!message || stream <= RS_STREAM_OUTPUT || stream >= RS_STREAM_COUNT)
        return RS_EINVAL;
    return rs__run_record(call->rs, call->L, (rs_stream)stream, message, strlen(message),
                          stream == RS_STREAM_PROGRESS ? "" : NULL, -1);
}

int rs_call_fail(rs_call *call, const char *fmt, ...)
{
    if (!call)
        return RS_EMISUSE;
    char *msg;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        msg = rs__vformat(fmt, ap);
        va_end(ap);
    } else {
        msg = rs__strdup("failed");
    }
    rs__free(call->error);
    call->error = msg;
    return RS_ERUNTIME;
}

bool rs_call_stopping(const rs_call *call)
{
    if (!call)
        return false;
    rs__exec *ex = &call->rs->exec;
    if (atomic_load_explicit(&ex->stop, memory_order_acquire))
        return true;
    int64_t d = atomic_load_explicit(&ex->deadline, memory_order_relaxed);
    return d && rs__now_ns() >= d;
}

uint64_t rs_call_runspace_id(const rs_call *call)
{
    return call ? call->rs->id : 0;
}
