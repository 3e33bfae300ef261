/*
 * runspace.h -- the public API of librunspace.
 *
 * librunspace brings the PowerShell runspace model to C. A runspace is an isolated Lua 5.4
 * interpreter built from an initial session state (ISS). A pool runs script blocks on many
 * runspaces in parallel under a throttle. An invocation (the PowerShell instance, rs_ps) holds
 * a pipeline of scripts and commands, its input, its streams and its state; it is invoked
 * synchronously or with begin/end and a wait handle (rs_async).
 *
 * Conventions that hold for every function below unless its comment says otherwise:
 *
 *  - Handles are opaque. Lifecycle verbs are _create and _destroy; destroying NULL is a no-op
 *    that returns 0. Destroying a handle that still has live children returns RS_EBUSY and
 *    changes nothing.
 *  - Functions that can fail return int: 0 on success or a negative RS_E* code. The human
 *    message, when there is one, is on the handle (rs_pool_errmsg, rs_ps_errmsg, ...) and stays
 *    valid until the next call on that handle. Functions without a handle take an optional
 *    rs_errinfo pointer instead.
 *  - A NULL handle where a handle is required is RS_EMISUSE; a bad argument value is RS_EINVAL.
 *  - Ownership is stated in each prototype: "taken" means the library owns the argument from
 *    the call on, also when the call fails; "copied" means the caller keeps ownership;
 *    "borrowed" results stay owned by the library and are valid for the stated time.
 *  - Nothing is thread-safe unless its comment says so. rs_value trees are plain data: one
 *    thread at a time.
 *  - No function polls or sleeps in a loop; every wait blocks on a condition variable or a
 *    file descriptor.
 */
#ifndef RUNSPACE_H
#define RUNSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RS_BUILDING_LIBRARY) && defined(__GNUC__)
#define RS_EXTERN __attribute__((visibility("default")))
#else
#define RS_EXTERN
#endif

#define RS_VERSION_MAJOR 0
#define RS_VERSION_MINOR 1
#define RS_VERSION_PATCH 0
#define RS_VERSION_STRING "0.1.0"

/* The library's version as "MAJOR.MINOR.PATCH". Thread-safe. */
RS_EXTERN const char *rs_version(void);

/* ============================================================================================
 * Errors
 * ========================================================================================= */

/* X(name, value, description): the one list from which codes, names and messages come. */
#define RS_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(EMISUSE, -2, "library misuse")                                                               \
    X(ENOMEM, -3, "out of memory")                                                                 \
    X(EBUSY, -4, "resource busy")                                                                  \
    X(ETIMEDOUT, -5, "timed out")                                                                  \
    X(ECLOSED, -6, "closed")                                                                       \
    X(ECANCELED, -7, "cancelled")                                                                  \
    X(ESTOPPED, -8, "stopped")                                                                     \
    X(ESYNTAX, -9, "script does not compile")                                                      \
    X(ERUNTIME, -10, "script error")                                                               \
    X(ELIMIT, -11, "limit exceeded")                                                               \
    X(EVALUE, -12, "value cannot pass between runspaces")                                          \
    X(EJSON, -13, "invalid JSON")                                                                  \
    X(ENOENT, -14, "not found")                                                                    \
    X(EEXIST, -15, "already exists")                                                               \
    X(EIO, -16, "input/output error")                                                              \
    X(ESYSTEM, -17, "operating system error")

typedef enum rs_errno {
#define RS__ERRNO_ENUM(name, value, text) RS_##name = (value),
    RS_ERRNO_MAP(RS__ERRNO_ENUM)
#undef RS__ERRNO_ENUM
} rs_errno;

/* A short description of an RS_E* code ("timed out"); "success" for 0, "unknown error"
 * for anything else. Thread-safe, never NULL, static storage. */
RS_EXTERN const char *rs_strerror(int code);

/* The code's name ("RS_ETIMEDOUT"); "RS_OK" for 0, "RS_E?" for unknown codes. Thread-safe. */
RS_EXTERN const char *rs_err_name(int code);

/* Detail for functions that have no handle to keep a message on (JSON, values). */
typedef struct rs_errinfo {
    int code;          /* the RS_E* code also returned */
    int line;          /* 1-based line of the problem in a text input, 0 if not applicable */
    int column;        /* 1-based column (bytes), 0 if not applicable */
    size_t position;   /* byte offset in a text input */
    char message[256]; /* NUL-terminated, never empty when code != 0 */
} rs_errinfo;

/* ============================================================================================
 * Memory
 * ========================================================================================= */

/* Replaces the allocator used for every allocation the library makes, Lua states included,
 * with one exception: the short-lived parse tree jansson builds inside rs_json_decode (jansson's
 * allocator is process-wide, and the library leaves it to the application). Must be called
 * before any other function of the library, or not at all; returns RS_EBUSY once the library
 * has allocated. All three functions must be given. Thread-safe. */
RS_EXTERN int rs_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                               void (*free_fn)(void *));

/* Frees a buffer the library returned (for example rs_json_encode's text). NULL is a no-op. */
RS_EXTERN void rs_free(void *ptr);

/* ============================================================================================
 * Values (docs/design.md section 2)
 *
 * Data crosses runspace boundaries by copy. A value is a tree of null, bool, int (int64),
 * double, string (length-counted bytes, may hold NULs and need not be UTF-8), array, and map
 * (string keys, insertion order kept, keys unique). Each node has exactly one owner; a node
 * added to an array or map is owned by it. Constructors return NULL when out of memory.
 *
 * A script's outputs are converted from Lua by the same rules. A function, coroutine or
 * userdata among them (at any depth) becomes a string, the text Lua's tostring shows for it
 * without calling a __tostring ("function: 0x55d0c0a0"), and the invocation gets a warning
 * record naming where it was ("output[2].cb: a function cannot cross between runspaces; it is
 * passed as the text ..."); a table that contains itself fails the invocation with
 * RS_EVALUE, naming the path.
 * ========================================================================================= */

typedef struct rs_value rs_value;

typedef enum rs_type {
    RS_TNULL = 0,
    RS_TBOOL,
    RS_TINT,
    RS_TDOUBLE,
    RS_TSTRING,
    RS_TARRAY,
    RS_TMAP
} rs_type;

RS_EXTERN rs_value *rs_value_null(void);
RS_EXTERN rs_value *rs_value_bool(bool b);
RS_EXTERN rs_value *rs_value_int(int64_t i);
RS_EXTERN rs_value *rs_value_double(double d);
/* Copies the NUL-terminated string s. */
RS_EXTERN rs_value *rs_value_string(const char *s);
/* Copies len bytes from s (len may be 0 and s NULL then). */
RS_EXTERN rs_value *rs_value_stringn(const char *s, size_t len);
RS_EXTERN rs_value *rs_value_array(void);
RS_EXTERN rs_value *rs_value_map(void);

/* Frees v and everything it owns. NULL is a no-op. */
RS_EXTERN void rs_value_destroy(rs_value *v);
/* A deep copy of v, or NULL when out of memory (or v is NULL). */
RS_EXTERN rs_value *rs_value_copy(const rs_value *v);
/* Deep equality: same types (int 1 and double 1.0 differ), same strings byte for byte, same
 * arrays in order, same maps with the same keys in the same order. */
RS_EXTERN bool rs_value_equal(const rs_value *a, const rs_value *b);

/* The type of v; RS_TNULL for a NULL pointer. */
RS_EXTERN rs_type rs_value_type(const rs_value *v);
/* A static name for a type: "null", "bool", "int", "double", "string", "array", "map". */
RS_EXTERN const char *rs_type_name(rs_type t);
/* Scalar getters return the value, or false / 0 / 0.0 / NULL when v has another type.
 * rs_value_get_string's result is borrowed, NUL-terminated after len bytes, and valid while v
 * lives; len may be NULL. */
RS_EXTERN bool rs_value_get_bool(const rs_value *v);
RS_EXTERN int64_t rs_value_get_int(const rs_value *v);
RS_EXTERN double rs_value_get_double(const rs_value *v); /* an int is converted */
RS_EXTERN const char *rs_value_get_string(const rs_value *v, size_t *len);

/* Arrays. rs_array_push and rs_array_set take item (also on failure). Errors: RS_EMISUSE when
 * arr is not an array, RS_EINVAL for a NULL item or an index out of range, RS_ENOMEM. */
RS_EXTERN size_t rs_array_len(const rs_value *arr);
RS_EXTERN rs_value *rs_array_get(const rs_value *arr, size_t index); /* borrowed; NULL if OOB */
RS_EXTERN int rs_array_push(rs_value *arr, rs_value *item);
RS_EXTERN int rs_array_set(rs_value *arr, size_t index, rs_value *item); /* frees the old item */
/* Removes and returns the item at index (now owned by the caller), or NULL if out of range. */
RS_EXTERN rs_value *rs_array_take(rs_value *arr, size_t index);

/* Maps. Keys are byte strings (the *n forms take a length; the others a NUL-terminated key).
 * Setting an existing key replaces its value in place and keeps its position. rs_map_set
 * takes value (also on failure). Lookup is O(1) on average. */
RS_EXTERN size_t rs_map_len(const rs_value *map);
RS_EXTERN rs_value *rs_map_get(const rs_value *map, const char *key); /* borrowed or NULL */
RS_EXTERN rs_value *rs_map_getn(const rs_value *map, const char *key, size_t keylen);
RS_EXTERN int rs_map_set(rs_value *map, const char *key, rs_value *value);
RS_EXTERN int rs_map_setn(rs_value *map, const char *key, size_t keylen, rs_value *value);
/* Removes key; returns 0, or RS_ENOENT when absent. Later entries keep their order. */
RS_EXTERN int rs_map_remove(rs_value *map, const char *key, size_t keylen);
/* Entry i in insertion order (borrowed; NULL when out of range). keylen may be NULL. */
RS_EXTERN const char *rs_map_key(const rs_value *map, size_t index, size_t *keylen);
RS_EXTERN rs_value *rs_map_value(const rs_value *map, size_t index);

/* ============================================================================================
 * JSON (jansson underneath). Integers stay integers; doubles print in the shortest form that
 * reads back to the same value.
 * ========================================================================================= */

enum {
    RS_JSON_PRETTY = 1 << 0, /* encode: indent by two spaces, one member per line */
    RS_JSON_ASCII = 1 << 1,  /* encode: escape everything outside ASCII as \uXXXX */
    /* encode: repair what JSON cannot carry, value by value, so that the text keeps the
     * value's shape: NaN and infinities become null (as JavaScript's JSON.stringify does),
     * and each byte of a string or map key that is not part of valid UTF-8 becomes U+FFFD (a
     * repaired key that meets another key of its map gets more U+FFFD until it is unique). */
    RS_JSON_REPAIR = 1 << 2,
};

/* Encodes v as JSON text into a new NUL-terminated buffer *out (free with rs_free); *len (may
 * be NULL) gets its length. Errors: RS_EVALUE for a NaN or infinite double or a string (or
 * key) that is not valid UTF-8 (unless RS_JSON_REPAIR), or for nesting deeper than
 * RS_MAX_DEPTH, with err->message naming the path, as "value[2].name: string is not valid
 * UTF-8"; RS_ENOMEM. */
RS_EXTERN int rs_json_encode(const rs_value *v, unsigned flags, char **out, size_t *len,
                             rs_errinfo *err);

/* Receives the next piece of an encoding's text (len > 0 bytes, not NUL-terminated, borrowed
 * for the call). Returns 0 to go on, anything else to stop the encoding. */
typedef int (*rs_json_sink_fn)(const char *data, size_t len, void *userdata);

/* Encodes v as rs_json_encode does, but hands the text to sink piece by piece as it is made
 * (pieces of about 64 KiB; a long run of a string that needs no escape is passed without a
 * copy), so that the text of a large value is never held whole: memory stays small whatever
 * the value's size. Nesting deeper than RS_MAX_DEPTH is refused (RS_EVALUE) before any text
 * is written; a value that cannot be encoded without RS_JSON_REPAIR (NaN, a string that is
 * not UTF-8) fails with RS_EVALUE when it is reached, after the text before it was handed
 * on. RS_ESTOPPED when sink asked to stop; RS_EINVAL without v or sink, or for unknown
 * flags; RS_ENOMEM. Thread-safe for distinct sinks; calls sink on the caller's thread. */
RS_EXTERN int rs_json_encode_stream(const rs_value *v, unsigned flags, rs_json_sink_fn sink,
                                    void *userdata, rs_errinfo *err);

/* Decodes exactly one JSON value from len bytes of text (which need not be NUL-terminated).
 * On success *out is a new value. Errors are RS_EJSON with err's line, column, position and
 * message filled: syntax errors, trailing garbage, invalid UTF-8, numbers that overflow
 * (1e400, integers beyond int64), nesting deeper than 512, and "\u0000" inside object keys.
 * "\u0000" in string values is kept (strings are length-counted). */
RS_EXTERN int rs_json_decode(const char *text, size_t len, rs_value **out, rs_errinfo *err);

/* The maximum nesting depth of values that JSON and the Lua bridge accept. */
#define RS_MAX_DEPTH 512

/* Seconds the finalizers of a closing runspace may take in all (rs_runspace_close). */
#define RS_CLOSE_GRACE 1.0

/* ============================================================================================
 * Initial session state: the recipe for a runspace.
 * ========================================================================================= */

typedef struct rs_iss rs_iss;
typedef struct rs_call rs_call;
struct lua_State; /* lua.h's, for rs_iss_add_library */

typedef enum rs_profile {
    /* Lua's standard libraries (os.exit excepted) and every runspace built-in. */
    RS_PROFILE_DEFAULT = 0,
    /* No io, os.execute/remove/rename/exit/getenv/tmpname, loadfile/dofile, debug, package
     * C loaders, nor the system built-ins that later layers add (net, exec, fs, proc). */
    RS_PROFILE_RESTRICTED = 1
} rs_profile;

typedef struct rs_limits {
    /* Maximum bytes per runspace; 0 = unlimited. It covers the Lua heap and what the running
     * script makes the library hold in C: its outputs and stream records (per input item with
     * RS_PS_ITEM_RESULTS, else per invocation), and values being copied (for emit, shared.*,
     * json.*, native commands; a table referenced n times is copied n times). An invocation
     * that needs more fails with RS_ENOMEM, which no pcall in the script can catch, and its
     * runspace is discarded and replaced. The shared store that scripts of such runspaces
     * write to holds at most this many bytes too (a write past it is a catchable error). */
    size_t memory_bytes;
    /* Maximum Lua VM instructions per invocation (per input item with RS_PS_ITEM_RESULTS),
     * steps of the pattern matcher (string.find etc.) and values copied counting as
     * instructions, finalizers' instructions too; 0 = unlimited. Exceeding it fails with
     * RS_ELIMIT. A budget keeps a count hook on while scripts run, which slows tight loops;
     * prefer timeouts to stop runaway scripts. */
    uint64_t instructions;
} rs_limits;

/* A native command: fn(call, userdata). It is called on the thread of the runspace running
 * it, possibly on many threads at once, so it must be thread-safe. It returns 0, or a
 * negative code (usually from rs_call_fail) to raise a Lua error in the calling script. */
typedef int (*rs_command_fn)(rs_call *call, void *userdata);

/* Creates an empty ISS with the given profile. */
RS_EXTERN int rs_iss_create(rs_profile profile, rs_iss **out);
/* Releases the caller's reference. Runspaces and pools created from the ISS keep their own
 * reference, so destroying it right after rs_pool_create is fine. */
RS_EXTERN int rs_iss_destroy(rs_iss *iss);

/* The mutators below return RS_EBUSY once a runspace has been created from the ISS (it is
 * immutable from then on), RS_EINVAL for a name that is not a Lua identifier or is a Lua
 * keyword, and RS_EEXIST for a name already defined in the ISS or reserved by a built-in
 * (_, params, emit, write_*, sleep, random, random_seed, shared, json, time, runspace, fs, proc,
 * exec, net). */

/* Defines a global variable holding a copy of value in every runspace. */
RS_EXTERN int rs_iss_set_variable(rs_iss *iss, const char *name, const rs_value *value);
/* Preloads a Lua module in every runspace. spec is either a file path (it contains '/' or
 * ends in ".lua"), read and compiled now (RS_ENOENT / RS_EIO / RS_ESYNTAX on failure) and
 * bound to the global named after the file's base name; or a module name, found on
 * package.path as the runspace opened with it (in the restricted profile too, where scripts
 * cannot load files) and bound to the global of that name (dots become '_'). The module's
 * value is also stored in package.loaded. A module's code runs in each runspace's first
 * invocation, before its script, under that invocation's stop, timeouts (the item timeout
 * included) and budget; if it fails, the invocation fails with "loading the modules: ..."
 * (every item with it, under RS_PS_ITEM_RESULTS) and the next invocation tries again on a
 * fresh interpreter. */
RS_EXTERN int rs_iss_add_module(rs_iss *iss, const char *spec);
/* Defines a global Lua function from the source of a chunk body; its arguments arrive as
 * "...". The body is compiled now (RS_ESYNTAX). Example: ("twice", "local x = ... return 2*x"). */
RS_EXTERN int rs_iss_add_function(rs_iss *iss, const char *name, const char *body);
/* Registers a native command, callable from Lua as the global `name(...)` and usable as a
 * pipeline command with rs_ps_add_command. */
RS_EXTERN int rs_iss_add_command(rs_iss *iss, const char *name, rs_command_fn fn, void *userdata);
/* Registers a C library, as a luaL_Reg-style open function (luaopen_cjson, say), in every
 * runspace made from the ISS, in either profile: when a runspace opens, after the standard
 * libraries and the built-ins, among the variables, functions and commands in the order they
 * were added, it is opened as luaL_requiref(L, name, open, 0) does. Its value is then in
 * package.loaded[name], so that `require(name)` returns it also in the restricted profile (whose
 * require loads nothing from files), and in the global of that name (dots and dashes become '_', as
 * for modules). open runs once per runspace, on the thread opening it, possibly on many threads at
 * once, outside the runspace's stop, timeouts and budget (as the standard libraries' own open
 * functions do): it must be thread-safe and should only build its table. Its allocations
 * count against the memory limit. The restricted profile does not filter what the library
 * offers: registering it is the application's decision. An error it raises fails the
 * runspace's opening (RS_ERUNTIME with its message). RS_EINVAL for a NULL open or a name
 * that is empty or does not give a Lua identifier. */
RS_EXTERN int rs_iss_add_library(rs_iss *iss, const char *name, int (*open)(struct lua_State *L));
/* Sets the limits (copied). */
RS_EXTERN int rs_iss_set_limits(rs_iss *iss, const rs_limits *limits);
/* Where a runspace's stream records go when it writes them while no invocation runs: the
 * finalizers that run when its Lua state closes (rs_runspace_destroy, rs_pool_destroy, a
 * runspace replaced after a failure between invocations) may print or warn, as in Lua at
 * lua_close. fn gets each such record (borrowed for the call; item is -1); it is called on
 * the thread that closes the runspace, possibly on many threads at once, so it must be
 * thread-safe, and must not call back into the runspace or its pool. Without a host such
 * records are dropped. Records written during an invocation always go to it. NULL fn: none. */
struct rs_record; /* below, with the streams */
typedef void (*rs_host_fn)(const struct rs_record *record, void *userdata);
RS_EXTERN int rs_iss_set_host(rs_iss *iss, rs_host_fn fn, void *userdata);
RS_EXTERN const char *rs_iss_errmsg(const rs_iss *iss);

/* ---- the call context a native command receives (valid only during the call) ---- */

/* Positional arguments: the Lua arguments when called as a function, the rs_ps_add_argument
 * values when run as a pipeline command. Borrowed. */
RS_EXTERN size_t rs_call_argc(const rs_call *call);
RS_EXTERN const rs_value *rs_call_arg(const rs_call *call, size_t index);
/* The pipeline input item, or NULL when there is none (always NULL when called from Lua). */
RS_EXTERN const rs_value *rs_call_input(const rs_call *call);
/* A named parameter (rs_ps_add_parameter), or NULL. */
RS_EXTERN const rs_value *rs_call_param(const rs_call *call, const char *name);
/* Produces an output value (taken): a return value when called from Lua, an item of the output
 * stream when run as a pipeline command. */
RS_EXTERN int rs_call_emit(rs_call *call, rs_value *value);
/* Writes a record to a stream other than output; RS_STREAM_ERROR is a non-terminating error. */
RS_EXTERN int rs_call_write(rs_call *call, int stream, const char *message);
/* Sets the message of the error the command is about to raise and returns RS_ERUNTIME, so a
 * command can end with `return rs_call_fail(call, "no such user: %s", name);`. */
RS_EXTERN int rs_call_fail(rs_call *call, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* True once the invocation running the command has been asked to stop or has timed out; a
 * long-running command should check it and return. Thread-safe. */
RS_EXTERN bool rs_call_stopping(const rs_call *call);
RS_EXTERN uint64_t rs_call_runspace_id(const rs_call *call);

/* ============================================================================================
 * Shared store: the pool-wide synchronized hashtable (`shared` in scripts). All functions are
 * thread-safe. Values are copied in and out.
 * ========================================================================================= */

typedef struct rs_shared rs_shared;

RS_EXTERN int rs_shared_create(rs_shared **out);
/* Releases the caller's reference; pools and runspaces using the store keep theirs. */
RS_EXTERN int rs_shared_destroy(rs_shared *shared);
/* *out gets a copy of the value, or RS_ENOENT when the key is absent. */
RS_EXTERN int rs_shared_get(rs_shared *shared, const char *key, rs_value **out);
/* Stores a copy of value; NULL value removes the key. */
RS_EXTERN int rs_shared_set(rs_shared *shared, const char *key, const rs_value *value);
/* Adds delta to an integer (an absent key counts as 0) and stores the result in *out (may be
 * NULL). RS_EINVAL when the current value is not an integer, RS_ELIMIT on overflow. */
RS_EXTERN int rs_shared_incr(rs_shared *shared, const char *key, int64_t delta, int64_t *out);
/* The same with keys of keylen bytes, which may hold zero bytes (as scripts' keys may). */
RS_EXTERN int rs_shared_getn(rs_shared *shared, const char *key, size_t keylen, rs_value **out);
RS_EXTERN int rs_shared_setn(rs_shared *shared, const char *key, size_t keylen,
                             const rs_value *value);
RS_EXTERN int rs_shared_incrn(rs_shared *shared, const char *key, size_t keylen, int64_t delta,
                              int64_t *out);
/* An array of the keys in insertion order (new value, caller destroys). */
RS_EXTERN rs_value *rs_shared_keys(rs_shared *shared);

/* ============================================================================================
 * Runspaces
 * ========================================================================================= */

typedef struct rs_runspace rs_runspace;

typedef enum rs_runspace_state {
    RS_RUNSPACE_BEFORE_OPEN = 0,
    RS_RUNSPACE_OPENED,
    RS_RUNSPACE_BROKEN, /* its interpreter failed to open or was discarded */
    RS_RUNSPACE_CLOSED
} rs_runspace_state;

typedef enum rs_availability {
    RS_AVAILABILITY_NONE = 0, /* not open */
    RS_AVAILABILITY_AVAILABLE,
    RS_AVAILABILITY_BUSY
} rs_availability;

typedef struct rs_runspace_opts {
    const rs_iss *iss; /* NULL: a default-profile ISS with nothing added */
    const char *name;  /* NULL: "Runspace<id>" */
    rs_shared *shared; /* NULL: the runspace gets a store of its own */
} rs_runspace_opts;

/* Creates a runspace (state before-open). opts may be NULL. Ids are unique in the process. */
RS_EXTERN int rs_runspace_create(const rs_runspace_opts *opts, rs_runspace **out);
/* Builds the interpreter from the ISS: standard libraries per profile, built-ins, variables,
 * functions, commands (modules load in the first invocation: rs_iss_add_module). Errors
 * leave the runspace broken, with the message on it. */
RS_EXTERN int rs_runspace_open(rs_runspace *rs);
/* Closes the interpreter. RS_EBUSY while an invocation runs on it. Lua then runs the
 * finalizers (__gc) of the objects still alive: they get at most RS_CLOSE_GRACE seconds in
 * all, after which they are stopped like a script that timed out, and no other runs. The same
 * holds wherever a runspace closes (pool close, trimming, the replacement of a runspace that
 * ran out of memory), and in rs_runspace_destroy. */
RS_EXTERN int rs_runspace_close(rs_runspace *rs);
/* RS_EBUSY while invocations (rs_ps) are bound to it. */
RS_EXTERN int rs_runspace_destroy(rs_runspace *rs);
/* The getters are thread-safe. */
RS_EXTERN uint64_t rs_runspace_id(const rs_runspace *rs);
RS_EXTERN const char *rs_runspace_name(const rs_runspace *rs);
RS_EXTERN rs_runspace_state rs_runspace_get_state(const rs_runspace *rs);
RS_EXTERN rs_availability rs_runspace_availability(const rs_runspace *rs);
/* Bytes of Lua memory in use. */
RS_EXTERN size_t rs_runspace_memory(const rs_runspace *rs);
RS_EXTERN const char *rs_runspace_errmsg(const rs_runspace *rs);

/* One row of Get-Runspace. */
typedef struct rs_runspace_info {
    uint64_t id;
    char name[64];
    rs_runspace_state state;
    rs_availability availability;
    size_t memory_bytes;
} rs_runspace_info;

/* ============================================================================================
 * Pools
 * ========================================================================================= */

typedef struct rs_pool rs_pool;

typedef enum rs_pool_state {
    RS_POOL_BEFORE_OPEN = 0,
    RS_POOL_OPENED,
    RS_POOL_CLOSING,
    RS_POOL_CLOSED,
    RS_POOL_BROKEN /* opening failed; see rs_pool_errmsg */
} rs_pool_state;

typedef struct rs_pool_opts {
    const rs_iss *iss;      /* NULL: default profile */
    unsigned min_runspaces; /* 0: 1 */
    unsigned max_runspaces; /* 0: the number of online CPUs */
    double idle_timeout;    /* seconds an idle runspace above min lives; 0: 60; < 0: never trim */
    rs_shared *shared;      /* NULL: the pool gets a store of its own */
} rs_pool_opts;

/* Creates a pool (state before-open); opts may be NULL. RS_EINVAL when min > max. */
RS_EXTERN int rs_pool_create(const rs_pool_opts *opts, rs_pool **out);
/* Opens min runspaces, each on a worker thread of its own; blocks until they are open. On
 * failure the pool is broken and the message says which runspace failed and why. */
RS_EXTERN int rs_pool_open(rs_pool *pool);
/* Refuses new work (RS_ECLOSED), cancels queued invocations (they end stopped with
 * RS_ECANCELED), waits for running ones to finish and closes every runspace. Thread-safe;
 * blocks. Closing a closed pool returns 0. */
RS_EXTERN int rs_pool_close(rs_pool *pool);
/* RS_EBUSY while invocations are bound to the pool (destroy them first); otherwise closes the
 * pool if needed and frees it. */
RS_EXTERN int rs_pool_destroy(rs_pool *pool);
/* Changes the limits of an open pool; thread-safe. Lowering max retires idle runspaces at
 * once and busy ones when they finish; raising min opens runspaces in the background.
 * RS_EINVAL when the new value would make min > max or max == 0. */
RS_EXTERN int rs_pool_set_max(rs_pool *pool, unsigned max);
RS_EXTERN int rs_pool_set_min(rs_pool *pool, unsigned min);
/* Thread-safe getters. available = max - busy runspaces (GetAvailableRunspaces). */
RS_EXTERN unsigned rs_pool_get_max(rs_pool *pool);
RS_EXTERN unsigned rs_pool_get_min(rs_pool *pool);
RS_EXTERN unsigned rs_pool_available(rs_pool *pool);
RS_EXTERN rs_pool_state rs_pool_get_state(rs_pool *pool);
/* Fills up to cap rows describing the pool's runspaces and returns how many there are
 * (which may exceed cap). Thread-safe. */
RS_EXTERN size_t rs_pool_runspaces(rs_pool *pool, rs_runspace_info *rows, size_t cap);
/* The pool's shared store (borrowed, valid while the pool lives). */
RS_EXTERN rs_shared *rs_pool_shared(rs_pool *pool);
RS_EXTERN const char *rs_pool_errmsg(const rs_pool *pool);

/* ============================================================================================
 * Invocations (the PowerShell instance) and wait handles
 * ========================================================================================= */

typedef struct rs_ps rs_ps;
typedef struct rs_async rs_async;

typedef enum rs_ps_state {
    RS_PS_NOT_STARTED = 0,
    RS_PS_RUNNING,  /* queued or executing */
    RS_PS_STOPPING, /* a stop was requested and the script has not yet unwound */
    RS_PS_STOPPED,  /* stopped, or cancelled before it ran (pool closed) */
    RS_PS_COMPLETED,
    RS_PS_FAILED
} rs_ps_state;

typedef enum rs_stream {
    RS_STREAM_OUTPUT = 0,
    RS_STREAM_ERROR,
    RS_STREAM_WARNING,
    RS_STREAM_VERBOSE,
    RS_STREAM_DEBUG,
    RS_STREAM_INFORMATION,
    RS_STREAM_PROGRESS,
    RS_STREAM_COUNT
} rs_stream;

/* A record of a stream other than output. Its strings are borrowed from the invocation and
 * valid until it is invoked again, cleared or destroyed (or, in a callback, until the
 * callback returns). */
typedef struct rs_record {
    rs_stream stream;
    const char *message; /* NUL-terminated; for progress, the status text */
    size_t message_len;
    const char *source;    /* chunk name ("script", a module name) or NULL */
    int line;              /* 0 when unknown */
    const char *traceback; /* Lua traceback of a terminating error, else NULL */
    int code;              /* error records: RS_ERUNTIME, RS_ESTOPPED, ...; else 0 */
    int64_t item;          /* index of the input item being run when it was written (with or
                            * without RS_PS_ITEM_RESULTS), or -1 (no input) */
    const char *activity;  /* progress only, else NULL */
    int percent;           /* progress only: 0..100, or -1 */
    double time;           /* when it was written, seconds since the Unix epoch */
} rs_record;

typedef enum rs_item_status {
    RS_ITEM_OK = 0,
    RS_ITEM_ERROR,
    RS_ITEM_TIMEOUT,
    RS_ITEM_CANCELLED
} rs_item_status;

/* The outcome of one input item under RS_PS_ITEM_RESULTS. */
typedef struct rs_item_result {
    rs_item_status status;
    size_t output_first; /* this item's values are output[output_first .. +output_count) */
    size_t output_count;
    int code;             /* 0, or the RS_E* cause of an error / timeout / cancellation */
    const char *error;    /* borrowed message, or NULL when ok */
    double duration;      /* seconds */
    uint64_t runspace_id; /* the runspace it ran on; 0 when it never started */
    double start;         /* when it started, seconds since the Unix epoch; 0 when it never did */
} rs_item_result;

/* Called on the worker thread for every record as it is written; the record is borrowed for
 * the call (under RS_PS_STREAM_RECORDS it is gone when the call returns). */
typedef void (*rs_record_fn)(rs_ps *ps, const rs_record *record, void *userdata);
/* Called on the worker thread when an invocation has finished, before waiters are woken and
 * before rs_async_is_completed turns true. Results may be read; it must not block, and must
 * not begin, end, stop, clear or destroy this invocation. */
typedef void (*rs_complete_fn)(rs_ps *ps, rs_ps_state state, void *userdata);
/* Under RS_PS_ITEM_RESULTS: called on the thread executing the invocation right after the
 * result of input item `index` is set, for every item that ran (items cancelled or failed
 * before they started get no call). result is borrowed for the call. It must not block. It
 * may call rs_ps_begin_stop on this invocation (the items after this one are then cancelled)
 * and thread-safe functions of other handles, but no other function on this invocation: its
 * results are readable only once it has ended. */
typedef void (*rs_item_fn)(rs_ps *ps, size_t index, const rs_item_result *result, void *userdata);

enum {
    /* Each input item is processed on its own: a failing or timed-out item is recorded in its
     * rs_item_result and the next item runs (ForEach-Object with non-terminating errors).
     * Without it, a terminating error fails the whole invocation. */
    RS_PS_ITEM_RESULTS = 1 << 0,
    /* Records of streams other than error are handed to on_record as they are written and
     * then dropped: neither kept nor charged to the runspace's memory limit, so a script that
     * prints without end runs in constant memory (a CLI echoing them, a host that only logs).
     * Without on_record they are dropped. Error records (write_error, terminating errors) are
     * still kept and charged: rs_ps_errmsg, rs_ps_had_errors and the items' errors rely on
     * them. rs_ps_record_count then returns 0 for every stream but output and error, and
     * rs_ps_record finds no record of those streams. */
    RS_PS_STREAM_RECORDS = 1 << 1,
};

typedef struct rs_ps_opts {
    unsigned flags;
    double timeout;      /* seconds for the whole invocation; 0: none. Fails with RS_ETIMEDOUT */
    double item_timeout; /* seconds per input item; 0: none */
    rs_record_fn on_record;
    rs_complete_fn on_complete;
    rs_item_fn on_item; /* optional, RS_PS_ITEM_RESULTS only */
    void *userdata;
} rs_ps_opts;

/* Creates an empty invocation. */
RS_EXTERN int rs_ps_create(rs_ps **out);
/* Frees it. RS_EBUSY while it is running or stopping. */
RS_EXTERN int rs_ps_destroy(rs_ps *ps);
/* Binds it to a pool (RunspacePool) or to a single runspace (Runspace); either replaces the
 * other. Without either, the first invocation opens a private default runspace. RS_EBUSY
 * while running. */
RS_EXTERN int rs_ps_set_pool(rs_ps *ps, rs_pool *pool);
RS_EXTERN int rs_ps_set_runspace(rs_ps *ps, rs_runspace *rs);
/* Sets options (copied). RS_EBUSY while running; RS_EINVAL for negative or NaN timeouts. */
RS_EXTERN int rs_ps_set_opts(rs_ps *ps, const rs_ps_opts *opts);

/* Building the pipeline. Each added script or command is a stage whose output is the next
 * stage's input; a stage runs once per input item (or once with no item when it has none).
 * Arguments and parameters apply to the last added stage. All return RS_EBUSY while running.
 *
 * add_script checks the script's syntax at once (RS_ESYNTAX with "script:LINE: message" on the
 * handle); a script that does not compile is still recorded so that invoking fails the same
 * way and nothing runs. len may be (size_t)-1 for a NUL-terminated src. */
RS_EXTERN int rs_ps_add_script(rs_ps *ps, const char *src, size_t len);
/* The same, naming the script as a file is named in Lua: messages say "NAME:LINE: ..." and
 * debug.getinfo's source is "@NAME" (rs_ps_add_script's scripts are "script"). RS_EINVAL for
 * an empty name. */
RS_EXTERN int rs_ps_add_script_named(rs_ps *ps, const char *src, size_t len, const char *name);
/* A native command of the ISS, or a global Lua function of that name (checked at invoke). */
RS_EXTERN int rs_ps_add_command(rs_ps *ps, const char *name);
RS_EXTERN int rs_ps_add_argument(rs_ps *ps, rs_value *value);                    /* taken */
RS_EXTERN int rs_ps_add_parameter(rs_ps *ps, const char *name, rs_value *value); /* taken */
/* Appends an input item (taken). Inputs stay until rs_ps_clear_input or rs_ps_clear. */
RS_EXTERN int rs_ps_add_input(rs_ps *ps, rs_value *value);
RS_EXTERN int rs_ps_clear_input(rs_ps *ps);
/* Hands the input items to the caller as an array (NULL when there are none, or while the
 * invocation runs) and leaves the invocation without input: how a caller gets its inputs back
 * after a run, to report or retry them, without copying. */
RS_EXTERN rs_value *rs_ps_take_inputs(rs_ps *ps);
/* Removes the positional arguments and named parameters of every stage and keeps the stages:
 * how a caller reuses an invocation, whose script was checked once, with new arguments. */
RS_EXTERN int rs_ps_clear_arguments(rs_ps *ps);
/* Removes stages, arguments, parameters, inputs, outputs and records. */
RS_EXTERN int rs_ps_clear(rs_ps *ps);

/* Runs the pipeline and blocks until it ends. On a runspace-bound invocation it runs on the
 * calling thread; on a pool it runs on a worker. *output (may be NULL) gets the output array
 * (caller destroys), also partial output when the invocation fails or stops.
 * Returns 0 when completed (write_error does not fail an invocation: see rs_ps_had_errors),
 * RS_ESYNTAX, RS_ERUNTIME, RS_ENOMEM (memory limit), RS_ELIMIT (instruction budget),
 * RS_ETIMEDOUT, RS_ESTOPPED, RS_ECANCELED (pool closed), RS_ECLOSED (pool or runspace not
 * open), RS_EMISUSE (already running), RS_EBUSY (runspace busy with another invocation). */
RS_EXTERN int rs_ps_invoke(rs_ps *ps, rs_value **output);
/* Starts the pipeline and returns at once. *async is the invocation's wait handle, owned by it
 * and valid until it is destroyed. Errors as rs_ps_invoke for what can be known at start. */
RS_EXTERN int rs_ps_begin_invoke(rs_ps *ps, rs_async **async);
/* Blocks until the invocation started with begin-invoke ends, then hands over its output as
 * rs_ps_invoke does and returns its result code. RS_EMISUSE when async is not this
 * invocation's, or when the invocation was already ended or never begun. */
RS_EXTERN int rs_ps_end_invoke(rs_ps *ps, rs_async *async, rs_value **output);
/* Stops the invocation and blocks until it has stopped (or finished on its own). A queued
 * invocation is dequeued; a running script is interrupted within about a millisecond, in a
 * tight loop, a deep recursion or a sleep(). Returns 0 also when there was nothing to stop.
 * Thread-safe with respect to the worker running the invocation. */
RS_EXTERN int rs_ps_stop(rs_ps *ps);
/* Requests the stop and returns at once; wait on the async handle. Thread-safe. */
RS_EXTERN int rs_ps_begin_stop(rs_ps *ps);

/* Thread-safe. */
RS_EXTERN rs_ps_state rs_ps_get_state(rs_ps *ps);
/* After the invocation ended: whether any error record was written. */
RS_EXTERN bool rs_ps_had_errors(rs_ps *ps);
/* The result code of the last invocation (0 while not ended) and its message. */
RS_EXTERN int rs_ps_result(rs_ps *ps);
RS_EXTERN const char *rs_ps_errmsg(const rs_ps *ps);

/* Results of an ended invocation, borrowed until the next invoke, clear or destroy. The output
 * array is empty after rs_ps_end_invoke or rs_ps_invoke handed it over. */
RS_EXTERN const rs_value *rs_ps_output(rs_ps *ps);
/* The records kept of stream (for output, the number of values). Under RS_PS_STREAM_RECORDS
 * only error records are kept: 0 for the other streams. */
RS_EXTERN size_t rs_ps_record_count(rs_ps *ps, rs_stream stream);
/* Fills *out with record index of stream; RS_EINVAL when out of range. */
RS_EXTERN int rs_ps_record(rs_ps *ps, rs_stream stream, size_t index, rs_record *out);
/* Under RS_PS_ITEM_RESULTS: one result per input item, in input order. */
RS_EXTERN size_t rs_ps_item_count(rs_ps *ps);
RS_EXTERN int rs_ps_item(rs_ps *ps, size_t index, rs_item_result *out);

/* Wait handles: thread-safe. */
RS_EXTERN bool rs_async_is_completed(rs_async *async);
/* Blocks until completion or timeout seconds (< 0: forever). 0 or RS_ETIMEDOUT. */
RS_EXTERN int rs_async_wait(rs_async *async, double timeout);
/* A file descriptor that polls readable once the invocation has completed, for waiting on
 * many with poll/epoll; owned by the handle (do not close or read it). -1 with errno set if
 * it cannot be created. */
RS_EXTERN int rs_async_fd(rs_async *async);

/* ============================================================================================
 * Parallel for-each (rs_foreach): Invoke-ParallelProcessing, ForEach-Object -Parallel and the
 * seed's batch processing in one. A script (or command) runs once per input item on a pool,
 * under a throttle, with batching, a per-item timeout, retries, ordered or completion-order
 * delivery and fail-fast; every input yields exactly one record. Inputs are pulled from an
 * iterator as they are needed, never all at once: memory is bounded by throttle x batch plus
 * the reorder window, not by the number of inputs.
 * ========================================================================================= */

typedef struct rs_foreach rs_foreach;

/* Produces the next input item. Returns 1 with *item set (taken by the engine); 0 at the end of
 * the input; or a negative RS_E* code for an input that could not be read as an item (a
 * malformed JSON line, say): *error (a new string, freed by the engine) says why and *item
 * (may stay NULL) stands for the input in its record, which has status error; the run goes on.
 * Called on a reader thread of the engine, never concurrently with itself. After a stop, the
 * reader ends once the iterator's current call returns: an iterator that may block should also
 * wait on rs_foreach_stop_fd and return 0 when it turns readable. */
typedef int (*rs_input_fn)(void *userdata, rs_value **item, char **error);

/* One input's outcome. Everything is borrowed for the duration of the callback. */
typedef struct rs_foreach_record {
    uint64_t index;        /* 0-based position in the input */
    const rs_value *input; /* the item (null for an input that could not be read) */
    rs_item_status status;
    const rs_value *output; /* array of the item's output values (empty unless ok) */
    const char *error;      /* NULL when ok */
    double duration;        /* seconds, of the last attempt */
    uint64_t runspace_id;   /* 0 when it never ran */
    int attempts;           /* 0 when it never ran */
    double start; /* when its last attempt started, seconds since the Unix epoch; 0 when it
                   * never ran */
} rs_foreach_record;

typedef struct rs_foreach_progress {
    uint64_t done;      /* records delivered */
    uint64_t total;     /* opts.total, or 0 when unknown */
    uint64_t succeeded; /* ok records */
    uint64_t failed;    /* error, timeout and cancelled records */
    double elapsed;     /* seconds since the run started */
    double rate;        /* records per second so far */
    uint64_t skipped;   /* inputs skipped so far: their record is in the journal (resume) */
} rs_foreach_progress;

typedef struct rs_foreach_summary {
    uint64_t total; /* records delivered by this run */
    uint64_t succeeded;
    uint64_t failed; /* status error */
    uint64_t timed_out;
    uint64_t cancelled;
    double success_rate;  /* percent of total, 100 when there were no inputs */
    double elapsed;       /* seconds */
    uint64_t skipped;     /* inputs not run because the journal holds their record (resume) */
    uint64_t unjournaled; /* records delivered but not durably in the journal (RS_EIO) */
} rs_foreach_summary;

typedef void (*rs_foreach_record_fn)(const rs_foreach_record *record, void *userdata);
typedef void (*rs_foreach_progress_fn)(const rs_foreach_progress *progress, void *userdata);
/* Something the caller may want to tell its user that is not a failure (a journal's torn
 * last line dropped, say): a message in full sentences, borrowed for the call. */
typedef void (*rs_foreach_notice_fn)(const char *message, void *userdata);
/* A stream record of an item (see rs_foreach_opts.on_stream); borrowed for the call. */
typedef void (*rs_foreach_stream_fn)(uint64_t index, const rs_record *record, void *userdata);

/* The journal of a run (opts.journal): a file of JSON lines that survives a crash of the
 * process, so that a later run can resume it and run only what is missing.
 *
 * Format. The first line is a header naming the run:
 *   {"runspace_journal":1,"created":T,"source":S,"script":D,"command":C,"arguments":D,
 *    "parameters":D,"session":D,"timeout":F,"retries":N}
 * where S is opts.journal_source (or null), each D a "sha256:..." digest (or null when
 * absent) of the script's text, of the positional arguments, of the named parameters and of
 * the session state (profile, limits, variables, functions, modules and command names of the
 * ISS), C the command's name (or null), and T the creation time. Then one line per delivered
 * record, written as the record is delivered:
 *   {"index":N,"status":"ok","start":T,"input":...,"output":[...],"error":null,
 *    "duration_ms":F,"attempts":N,"runspace":N}
 * (start is null for an item that never ran; values JSON cannot carry are repaired as
 * RS_JSON_REPAIR does). The latest line for an index is its record: a resumed run appends
 * the new records of indexes it runs again.
 *
 * Durability. Lines are written in batches by a thread of the journal and synced with
 * fdatasync about every 50 ms while records arrive, and at the end: a crash loses at most
 * the records of about the last 100 ms, and a resume runs those items again. A record is
 * delivered to on_record whether or not it could be journaled.
 *
 * Modes (opts.journal_mode):
 *  - RS_JOURNAL_NEW: a new journal. A missing file is created; an empty file, or a journal
 *    with no record yet, is started anew. A journal that holds records is refused with
 *    RS_EEXIST (resume it, or set journal_force to start it anew, losing them).
 *  - RS_JOURNAL_RESUME: inputs whose latest record is anything but cancelled are skipped
 *    (the reader still reads them, in order, to keep the indexes: inputs must be
 *    re-readable, the same items in the same order); the others run, and their records are
 *    appended. A missing or empty file is a new journal.
 *  - RS_JOURNAL_RESUME_FAILED: as RESUME, but only inputs whose latest record is ok are
 *    skipped: failed, timed-out and cancelled ones run again.
 * Resuming drops a torn last line (one cut short by a crash; on_notice says so) and
 * refuses, with RS_EINVAL, a journal whose header names another run (another script,
 * arguments, parameters, session state, timeout, retries or input source), unless
 * journal_force: its records then count as this run's, and its header stays. Every mode
 * refuses with RS_EINVAL a file that is not a journal (no header; a complete line that is
 * not a record) or not a regular file, whatever journal_force says, and with RS_EBUSY a
 * journal another run holds (an exclusive flock for the length of the run). Indexes above
 * 2^36 cannot be resumed. */
typedef enum rs_journal_mode {
    RS_JOURNAL_NEW = 0,
    RS_JOURNAL_RESUME,
    RS_JOURNAL_RESUME_FAILED
} rs_journal_mode;

typedef struct rs_foreach_opts {
    rs_pool *pool;     /* an open pool to run on, or NULL: the run opens its own */
    const rs_iss *iss; /* for the run's own pool (NULL: default profile) */
    unsigned throttle; /* runspaces at once; 0: the number of CPUs */
    unsigned batch;    /* items per dispatch; 0: automatic (grows for tiny items) */
    double timeout;    /* seconds per item attempt; 0: none */
    unsigned retries;  /* further attempts for items that fail or time out */
    bool ordered;      /* deliver records in input order (default: completion order) */
    bool fail_fast;    /* the first failure stops running items; the rest are cancelled */
    uint64_t total;    /* number of inputs when known (for progress), else 0 */
    rs_input_fn next;  /* the input (required) */
    void *input_userdata;
    rs_foreach_record_fn on_record;     /* one call per input, on the thread of rs_foreach_run */
    rs_foreach_progress_fn on_progress; /* after each delivered batch of records, same thread */
    void *userdata;
    /* The journal (see rs_journal_mode): a path (copied), or NULL for none. */
    const char *journal;
    rs_journal_mode journal_mode;
    bool journal_force; /* resume a journal of another run; start one with records anew */
    /* What the input is, for the journal's header (copied): "file:/data/in.txt",
     * "range:1..100", "stdin"... A resume must give the same. NULL: not named. */
    const char *journal_source;
    rs_foreach_notice_fn on_notice; /* optional; on the thread of rs_foreach_run */
    /* Optional: the items' stream records (print and write_information, write_warning,
     * write_error, write_verbose, write_debug, write_progress, Lua's warnings) as they are
     * written, with the input index of the item that wrote them (UINT64_MAX while no item
     * runs: modules loading). A terminating error is not among them: it is the item's record.
     * Called on the pool's worker threads, possibly many at once, so it must be thread-safe;
     * it must not block for long (the item waits) nor call into this run. */
    rs_foreach_stream_fn on_stream;
} rs_foreach_opts;

/* Creates a run (copies opts, the journal's path and source included; the session state of
 * the ISS or pool is digested now for the journal's header). RS_EINVAL without opts->next,
 * for a negative or NaN timeout, or for a journal mode or source without a journal. */
RS_EXTERN int rs_foreach_create(const rs_foreach_opts *opts, rs_foreach **out);
RS_EXTERN int rs_foreach_destroy(rs_foreach *fe); /* RS_EBUSY while it runs */
/* What runs per item: a script (RS_ESYNTAX with "script:LINE: message" if it does not
 * compile: nothing will run), or a command of the ISS or a global Lua function. One of them,
 * set before the run. The item is `_` and the first vararg. */
RS_EXTERN int rs_foreach_set_script(rs_foreach *fe, const char *src, size_t len);
/* The same for a script read from a file: name (copied; NULL is rs_foreach_set_script) is
 * its chunk name, as rs_ps_add_script_named, so messages read "NAME:LINE: message". The
 * journal's digest is of the text alone: a script moved to another path still resumes. */
RS_EXTERN int rs_foreach_set_script_named(rs_foreach *fe, const char *src, size_t len,
                                          const char *name);
RS_EXTERN int rs_foreach_set_command(rs_foreach *fe, const char *name);
/* An external command per item, in the style of GNU parallel (and instead of a script or
 * command). The template is split into words once, as a shell splits them ('...', "...",
 * backslash), but without any expansion, and runs without a shell; in each word, {} is the
 * item (a string as it is, other values as JSON), {.} the item without its extension, {/}
 * its base name, {//} its directory, {/.} its base name without extension, and {#} its
 * 1-based sequence number (index + 1). A template with none of them gets {} as its last
 * word. With RS_EXEC_SHELL the template is run by `sh -c`, each replacement single-quoted so
 * that the item is never read as shell syntax. The command (found on PATH once, when set)
 * runs in a process group of its own with stdin on /dev/null; the lines of its stdout are
 * the item's outputs (strings). A non-zero exit or a signal fails the item with
 * "NAME: exit code N: <the end of its stderr>" or "NAME: killed by signal N (SIGNAME): ...";
 * a command that cannot start fails every item ("NAME: command not found"). A timeout or a
 * stop kills the command's whole process group; stdout and stderr together may take at most
 * the runspace memory limit. RS_EINVAL, with the message on fe, for an empty template, an
 * unterminated quote, a trailing backslash, or a brace group made of the characters of GNU
 * parallel's replacement strings (. / # % + = and digits) that is not one of the above. */
enum { RS_EXEC_SHELL = 1 << 0 };
RS_EXTERN int rs_foreach_set_exec(rs_foreach *fe, const char *tmpl, unsigned flags);
/* Positional arguments and named parameters for every item (taken). */
RS_EXTERN int rs_foreach_add_argument(rs_foreach *fe, rs_value *value);
RS_EXTERN int rs_foreach_add_parameter(rs_foreach *fe, const char *name, rs_value *value);
/* Runs to the end of the input and blocks until every record has been delivered. Returns 0
 * (whatever the items' statuses: see the summary), RS_ESTOPPED when rs_foreach_stop ended it
 * (inputs not yet read are not read), RS_EIO when the journal could not be written or
 * synced (the run was stopped then, as by rs_foreach_stop; every record was still
 * delivered, and summary->unjournaled counts those that are not durably in the journal:
 * a resume runs their items again), or an error that kept it from starting, before any
 * input was read: the pool could not open, or the journal could not be used (RS_ESYSTEM:
 * it cannot be opened, read, locked or written; RS_EINVAL, RS_EEXIST, RS_EBUSY: see
 * rs_journal_mode). The message says which. summary may be NULL; it is filled whenever the
 * run started. */
RS_EXTERN int rs_foreach_run(rs_foreach *fe, rs_foreach_summary *summary);
/* Stops a run: running items are stopped and reported cancelled, as is everything already
 * read; no more input is read. A stop requested while no run is in progress ends the next run
 * at once: it reads no input and returns RS_ESTOPPED. Thread-safe (not async-signal-safe); does
 * not block. */
RS_EXTERN int rs_foreach_stop(rs_foreach *fe);
/* A file descriptor that polls readable from a stop until the end of the run it stopped, for
 * iterators that block (poll it with the input). Owned by fe; do not read or close it. */
RS_EXTERN int rs_foreach_stop_fd(rs_foreach *fe);
RS_EXTERN const char *rs_foreach_errmsg(const rs_foreach *fe);

/* ============================================================================================
 * Runs that span machines (the Redis queue). A run given rs_foreach_set_redis does not run on
 * a local pool: its script, arguments, parameters, ISS variables and module sources, timeout
 * and retries are stored in Redis, its inputs are streamed into a Redis Stream in batches
 * (never more than a window of undelivered items at once), and `runspace worker` processes
 * (rs_worker_run) on any machine run them and store the records, which come back to
 * on_record as in a local run: one per input, with the same ordering, journal, progress and
 * summary.
 *
 * Delivery: each run's stream has one consumer group; a worker acknowledges a batch only
 * after its records are stored. A worker that dies or is cut off holds its batches for at
 * most the lease (rs_worker_opts.lease); then other workers reclaim them (XAUTOCLAIM) and
 * run them again. Execution is therefore at least once: an item may run twice (a script with
 * side effects must tolerate that), while records are exactly once: the submitter keeps the
 * first record of each index and drops later ones.
 *
 * Keys (PREFIX defaults to "runspace:"): PREFIX run:NAME (a hash: the run), PREFIX
 * run:NAME:work (the inputs), PREFIX run:NAME:results (the records), PREFIX run:NAME:shared
 * (the run's shared store), PREFIX runs (the set of run names). A finished run's keys expire
 * after ttl seconds. Everything read back from Redis is validated: an entry that is not what
 * this version writes is dropped with a notice (or its item gets an error record), never
 * trusted.
 *
 * Redis: 6.2 or later. The library speaks plain TCP (no TLS): put stunnel or an SSH tunnel
 * in front of a Redis that is not on a private network. For no loss across a restart of
 * Redis itself, run it with appendonly yes and appendfsync always.
 * ========================================================================================= */

typedef struct rs_redis_opts {
    /* redis://[:PASSWORD@]HOST[:PORT][/DB] (copied). Without a password in it, the variable
     * REDISCLI_AUTH gives one. No message ever shows the password. */
    const char *url;
    const char *prefix;        /* key prefix (copied); NULL: "runspace:" */
    const char *run;           /* the run's name (copied; letters, digits, . _ -, at most 64); NULL:
                                * one is made, see rs_foreach_run_name */
    bool resume;               /* re-attach to the run of that name after its submitter died */
    double retry_for;          /* seconds to keep reconnecting after Redis is lost; 0: 60 */
    double ttl;                /* seconds a finished run's keys live; 0: 86400 (a day) */
    const rs_value *variables; /* map of ISS variables for the workers (copied), or NULL */
    const char *const *modules; /* module files: their source goes to the workers */
    size_t nmodules;
} rs_redis_opts;

/* Makes fe a run on Redis (see above). Reads the module files now (RS_ENOENT / RS_EIO) and
 * parses the URL (RS_EINVAL, with the reason in the message, never the password). The
 * connection is made by rs_foreach_run, which then also returns RS_EIO when Redis cannot be
 * reached, refuses the password or stays lost past retry_for, RS_EEXIST for a new run whose
 * name is taken, and RS_ENOENT / RS_EINVAL for a resume of a run that does not exist or is
 * another run (another script, arguments, parameters or variables). An ordered run cannot
 * be resumed (RS_EINVAL from this call). With a resume, inputs
 * must be re-readable, as for a journal: every input gets exactly one record across both
 * submitters when a journal (opts.journal, RS_JOURNAL_RESUME) keeps what the first one
 * delivered; without one, the records the first submitter delivered more than about 2
 * seconds before it died are not delivered again. The ISS of opts (profile, memory limit) does
 * not go to the workers: each worker runs under its own. */
RS_EXTERN int rs_foreach_set_redis(rs_foreach *fe, const rs_redis_opts *opts);
/* The name of the run on Redis (borrowed, valid while fe lives); NULL for a local run. */
RS_EXTERN const char *rs_foreach_run_name(const rs_foreach *fe);

typedef struct rs_worker rs_worker;

typedef struct rs_worker_opts {
    const char *url;    /* as in rs_redis_opts (copied) */
    const char *prefix; /* NULL: "runspace:" */
    const char *name;   /* the consumer's name; NULL: HOST-PID */
    unsigned throttle;  /* runspaces at once; 0: the number of CPUs */
    /* The worker's own profile and memory limit: whatever a run asks, its items run under
     * these (a run cannot lift them). */
    rs_profile profile;
    size_t memory_limit; /* bytes per runspace; 0: 1 GiB */
    double lease;        /* seconds a batch stays with a worker that does not answer; 0: 30 */
    double retry_for;    /* as in rs_redis_opts */
    rs_foreach_notice_fn on_notice; /* what the worker does and drops (may be NULL); on the
                                     * thread of rs_worker_run */
    void *userdata;
} rs_worker_opts;

/* Creates a worker (copies opts). RS_EINVAL for a URL that does not parse, a bad prefix or a
 * negative lease: *out is then still set, so that rs_worker_errmsg can say why (without the
 * password); destroy it (rs_worker_run refuses it with RS_EINVAL). RS_ENOMEM, RS_ESYSTEM. */
RS_EXTERN int rs_worker_create(const rs_worker_opts *opts, rs_worker **out);
RS_EXTERN int rs_worker_destroy(rs_worker *w); /* RS_EBUSY while it runs */
/* Serves runs until rs_worker_stop: blocks. Returns 0 after a stop (every batch it held was
 * finished and acknowledged), RS_EIO when Redis cannot be reached at the start or is lost for
 * longer than retry_for. */
RS_EXTERN int rs_worker_run(rs_worker *w);
/* Asks the worker to take no more items, finish those it holds, and return. A second call
 * stops the items it holds at once; they go back to Redis unacknowledged and other workers
 * reclaim them after the lease. Thread-safe; does not block (not async-signal-safe). */
RS_EXTERN int rs_worker_stop(rs_worker *w);
RS_EXTERN const char *rs_worker_errmsg(const rs_worker *w);

/* One run on Redis, as rs_redis_runs lists it (borrowed for the callback). */
typedef struct rs_redis_run_info {
    const char *name;
    const char *state;               /* "running", "stopped", "done" */
    uint64_t submitted, done, total; /* total: 0 while the input is still being read */
    double created;                  /* seconds since the Unix epoch */
    int64_t ttl;                     /* seconds until the keys expire; -1: no expiry yet */
} rs_redis_run_info;

/* Lists the runs under the prefix (url and prefix as in rs_redis_opts), calling fn once per
 * run. RS_EINVAL for a bad URL, RS_EIO when Redis cannot be reached. */
RS_EXTERN int rs_redis_runs(const char *url, const char *prefix,
                            void (*fn)(const rs_redis_run_info *run, void *userdata),
                            void *userdata, rs_errinfo *err);
/* Deletes a run's keys (its workers drop it). RS_ENOENT when there is no such run. */
RS_EXTERN int rs_redis_delete_run(const char *url, const char *prefix, const char *run,
                                  rs_errinfo *err);

/* What rs_journal_read found. */
typedef struct rs_journal_summary {
    uint64_t records; /* final records: one per index that has any */
    uint64_t succeeded, failed, timed_out, cancelled; /* the final records by status */
    uint64_t lines;                                   /* record lines, superseded ones included */
    uint64_t missing; /* indexes below the highest one that have no record */
    bool torn;        /* the last line was cut short (a crash while it was written): ignored */
} rs_journal_summary;

/* Reads the journal at path (see rs_journal_mode) and calls on_record (may be NULL) once per
 * index with its final record, the latest line for that index, in the order of those lines
 * in the file. The record is borrowed for the call; its duration and start are as written
 * (milliseconds and microseconds). summary (may be NULL) gets the counts. The file is not
 * changed: a torn last line is reported in summary->torn, not removed. Errors (err may be
 * NULL): RS_ESYSTEM when the file cannot be opened or read, RS_EINVAL when it is not a
 * journal or a line is not a record (the message names the line), RS_ENOMEM. Blocks on the
 * file (it reads it twice); memory follows the highest index (a bit each) and the indexes
 * that have more than one line, not the records. Thread-safe. */
RS_EXTERN int rs_journal_read(const char *path, rs_foreach_record_fn on_record, void *userdata,
                              rs_journal_summary *summary, rs_errinfo *err);

/* ============================================================================================
 * Job manager (rs_jobs): the seed's RunspaceJobManager. Named background jobs on a pool; every
 * function is thread-safe, and waits block until a job ends (no polling).
 * ========================================================================================= */

typedef struct rs_jobs rs_jobs;

typedef enum rs_job_state {
    RS_JOB_RUNNING = 0,
    RS_JOB_COMPLETED,
    RS_JOB_COMPLETED_WITH_ERRORS, /* completed, but wrote error records */
    RS_JOB_FAILED,                /* a terminating error */
    RS_JOB_STOPPED
} rs_job_state;

typedef enum rs_job_filter { RS_JOBS_ALL = 0, RS_JOBS_RUNNING, RS_JOBS_COMPLETED } rs_job_filter;

/* A job's state. Borrowed strings and values stay valid until the job is removed. */
typedef struct rs_job_info {
    const char *name;
    rs_job_state state;
    const rs_value *result; /* the output array once ended, else NULL */
    size_t error_count;     /* error records */
    const char *error;      /* the terminating error, else the first error record, or NULL */
    double start;           /* seconds since the epoch */
    double end;             /* 0 while running */
    double duration;        /* seconds: so far while running */
} rs_job_info;

/* Called on the worker thread for every record a job writes while it runs (print, warnings,
 * ...), as it is written; job is the job's name, borrowed for the call. It must not block, nor
 * call the manager. A job keeps only its error records (for rs_job_info): the others are seen
 * here or nowhere. What a finalizer prints as the manager's runspaces close goes to the
 * session state's host (rs_iss_set_host), as for any runspace. */
typedef void (*rs_job_record_fn)(const char *job, const rs_record *record, void *userdata);

typedef struct rs_jobs_opts {
    rs_pool *pool;              /* an open pool, or NULL: the manager opens its own */
    const rs_iss *iss;          /* for its own pool (NULL: default profile) */
    unsigned max_jobs;          /* jobs running at once in its own pool; 0: the number of CPUs */
    rs_job_record_fn on_record; /* optional */
    void *userdata;             /* for on_record */
} rs_jobs_opts;

RS_EXTERN int rs_jobs_create(const rs_jobs_opts *opts, rs_jobs **out);
/* Stops every running job, waits for them, and frees everything. */
RS_EXTERN int rs_jobs_destroy(rs_jobs *jobs);
/* Starts a job running script with named parameters (a map, copied; may be NULL). name NULL
 * or "" picks "Job_xxxxxxxx" (8 hex digits). *assigned (may be NULL) gets the name, valid until
 * the job is removed. RS_EEXIST for a name in use, RS_ESYNTAX if the script does not compile
 * (nothing runs), RS_EINVAL for a params value that is not a map. */
RS_EXTERN int rs_jobs_start(rs_jobs *jobs, const char *name, const char *script,
                            const rs_value *params, const char **assigned);
/* RS_ENOENT for an unknown name. */
RS_EXTERN int rs_jobs_get(rs_jobs *jobs, const char *name, rs_job_info *out);
/* Fills up to cap names (borrowed) of the jobs matching filter, in start order; returns how
 * many match. RS_JOBS_COMPLETED means ended in any way. */
RS_EXTERN size_t rs_jobs_list(rs_jobs *jobs, rs_job_filter filter, const char **names, size_t cap);
/* Blocks until the job ends, or timeout seconds (< 0: forever). RS_ETIMEDOUT ("job 'x' is
 * still running after 30 s"), RS_ENOENT. */
RS_EXTERN int rs_jobs_wait(rs_jobs *jobs, const char *name, double timeout);
/* Blocks until every job has ended. RS_ETIMEDOUT with "timed out waiting for N job(s) to
 * complete". */
RS_EXTERN int rs_jobs_wait_all(rs_jobs *jobs, double timeout);
/* Stops the job if it runs, waits for it to stop, and forgets it. RS_ENOENT. */
RS_EXTERN int rs_jobs_remove(rs_jobs *jobs, const char *name);
/* The message of the calling thread's last failing call on a job manager (kept per thread,
 * since a manager is shared between threads); valid until that thread's next such call. */
RS_EXTERN const char *rs_jobs_errmsg(const rs_jobs *jobs);
/* "Running", "Completed", "CompletedWithErrors", "Failed", "Stopped". */
RS_EXTERN const char *rs_job_state_name(rs_job_state s);

/* ============================================================================================
 * Network scanner (docs/design.md section 1, rs_scan): TCP connect probes of hosts x ports,
 * non-blocking and multiplexed with epoll, results streamed as they are decided.
 *
 * States are nmap's: open (the connection was established), closed (refused: a TCP reset or
 * ICMP port-unreachable), filtered (no answer after every attempt, or ICMP host/net-unreachable
 * or administratively prohibited), error (the probe could not be made: an unknown name, no
 * route, ...). A connection of a loopback socket to itself is not an open port.
 * ========================================================================================= */

typedef struct rs_scan rs_scan;

typedef enum rs_port_state {
    RS_PORT_OPEN = 0,
    RS_PORT_CLOSED,
    RS_PORT_FILTERED,
    RS_PORT_ERROR
} rs_port_state;

/* One decided probe. Strings are valid during the callback only. */
typedef struct rs_scan_result {
    const char *host;    /* the name as given, or the address text for address targets */
    const char *address; /* the numeric address probed; "" when a name did not resolve */
    int port;            /* 0 for a target that failed as a whole (a name that did not resolve) */
    rs_port_state state;
    const char *reason; /* open: "syn-ack"; closed: "conn-refused", "port-unreach",
                         * "self-connect" (a loopback socket connected to itself); filtered:
                         * "no-response", "host-unreach", "net-unreach", "admin-prohibited",
                         * "proto-unreach", "time-exceeded"; error: what went wrong
                         * ("unknown host", "Network is unreachable", ...) */
    double rtt;         /* seconds from the deciding attempt's start to its answer; -1 if none */
    int attempts;       /* attempts made */
} rs_scan_result;

/* Called on the thread running rs_scan_run, once per probe, as soon as it is decided. */
typedef void (*rs_scan_fn)(const rs_scan_result *result, void *userdata);

typedef struct rs_scan_opts {
    double timeout;        /* seconds an attempt waits for an answer; 0: 1.0 */
    int tries;             /* attempts for probes that get no answer; 0: 2 (one retry) */
    unsigned max_inflight; /* probes in flight at once; 0: up to 16,384 within RLIMIT_NOFILE
                            * (the soft limit raised towards the hard one as needed, 256
                            * descriptors left to the application) */
    bool force;            /* allow more than 16,777,216 probes */
    rs_scan_fn on_result;
    void *userdata;
} rs_scan_opts;

typedef struct rs_scan_summary {
    uint64_t hosts;  /* addresses scanned (a name counts once, when it resolved) */
    uint64_t probes; /* results reported */
    uint64_t open;
    uint64_t closed;
    uint64_t filtered;
    uint64_t errors;
    double elapsed; /* seconds */
} rs_scan_summary;

/* Creates a scan; opts may be NULL. RS_EINVAL for a negative or NaN timeout or tries < 0. */
RS_EXTERN int rs_scan_create(const rs_scan_opts *opts, rs_scan **out);
/* RS_EBUSY while it runs. */
RS_EXTERN int rs_scan_destroy(rs_scan *scan);
/* Adds targets: a host name, an IPv4 or IPv6 address, a CIDR block ("192.0.2.0/24",
 * "fd00::/120"), or an IPv4 range ("127.0.0.1-20" or "10.0.0.1-10.0.1.255"). RS_EINVAL with a
 * message for a malformed or NULL spec; RS_ELIMIT past 16,777,216 targets in a scan. Names are
 * resolved when the scan runs (the first address returned is probed); one that does not
 * resolve yields one error result and the scan goes on. */
RS_EXTERN int rs_scan_add_target(rs_scan *scan, const char *spec);
/* Adds the targets of a file, one spec per line of at most 1024 bytes; blank lines and '#'
 * comments are skipped, and the last line needs no newline. RS_ENOENT or RS_EIO with the OS
 * reason; RS_EINVAL (NULL path, or naming the line) for a malformed spec, a NUL byte or a
 * longer line; RS_ELIMIT past 16,777,216 targets. On any error nothing of the file is added.
 * Blocks while the file has no data (a FIFO); rs_scan_stop from another thread ends the
 * reading with RS_ESTOPPED, and that stop, like any other, also ends the next run at once. */
RS_EXTERN int rs_scan_add_targets_file(rs_scan *scan, const char *path);
/* Adds ports: "22,80,1000-2000". RS_EINVAL for 0, numbers above 65535, reversed or malformed
 * ranges ("a-b", "5-", ""), or a NULL spec. Without any call, the seed's list: 22,80,135,139,
 * 443,445,3389,5985,5986. A port given twice is probed once. */
RS_EXTERN int rs_scan_add_ports(rs_scan *scan, const char *spec);
/* Leaves addresses out of the scan: spec is what rs_scan_add_target takes. An address, block
 * or range excludes those addresses wherever targets include them; a name excludes a target of
 * that name (compared without regard to case) and every address it resolves to now (this
 * blocks for as long as the resolver takes; a name that does not resolve excludes only
 * targets of that name). RS_EINVAL with a message for a malformed or NULL spec, RS_ENOMEM.
 * An excluded address yields no result at all. */
RS_EXTERN int rs_scan_add_exclude(rs_scan *scan, const char *spec);
/* The exclusions of a file, read as rs_scan_add_targets_file reads targets (same limits and
 * errors; messages say "exclusions file"). On any error nothing of the file is excluded. */
RS_EXTERN int rs_scan_add_excludes_file(rs_scan *scan, const char *path);
/* The number of probes the scan will make (addresses x ports, a name counting as one), less
 * the excluded addresses. A name target that resolves, when the scan runs, to an excluded
 * address still counts here. */
RS_EXTERN uint64_t rs_scan_probe_count(const rs_scan *scan);
/* The smallest port the scan probes above `after` (0 for the first), or 0 when there is none:
 * `for (unsigned p = 0; (p = rs_scan_next_port(scan, p));)` walks them in order. */
RS_EXTERN unsigned rs_scan_next_port(const rs_scan *scan, unsigned after);
/* The lengths of the longest host and address texts this scan's results can carry, for the
 * columns of a table. A range of more than 65,536 addresses counts as the longest text of its
 * family; a name not resolved yet as the longest address of any family (39) until the scan
 * has resolved it, which it has by the first result: on_result may call this. */
RS_EXTERN void rs_scan_text_widths(const rs_scan *scan, size_t *host, size_t *address);
/* Runs the scan until every probe is decided; results stream to on_result, always on the
 * calling thread (scans of 4,096 probes or more also run helper threads, one event loop per CPU
 * up to 8), and summary (may be NULL) gets the totals. Names are resolved (blocking) before the
 * first probe. RS_ELIMIT when there are more than
 * 16,777,216 probes and force is off; RS_EINVAL when there are no targets; RS_ESTOPPED when
 * rs_scan_stop ended it early (the summary counts what was decided). Memory stays constant in
 * the number of probes. Running out of descriptors or local ports shrinks the window of
 * probes in flight and retries; it never loses a probe. */
RS_EXTERN int rs_scan_run(rs_scan *scan, rs_scan_summary *summary);
/* Ends a running scan soon; thread-safe, does not block. A stop requested while no scan runs
 * ends the next run at once, so that a stop sent just before the run starts is not lost. While
 * a scan runs, the add functions return RS_EBUSY and another rs_scan_run RS_EMISUSE. */
RS_EXTERN int rs_scan_stop(rs_scan *scan);
RS_EXTERN const char *rs_scan_errmsg(const rs_scan *scan);
/* "open", "closed", "filtered", "error". */
RS_EXTERN const char *rs_port_state_name(rs_port_state s);

/* ============================================================================================
 * Names of enums (static strings, thread-safe).
 * ========================================================================================= */
RS_EXTERN const char *rs_ps_state_name(rs_ps_state s);       /* "NotStarted", "Running", ... */
RS_EXTERN const char *rs_stream_name(rs_stream s);           /* "output", "error", ... */
RS_EXTERN const char *rs_item_status_name(rs_item_status s); /* "ok", "error", ... */
RS_EXTERN const char *rs_runspace_state_name(rs_runspace_state s); /* "BeforeOpen", ... */
RS_EXTERN const char *rs_availability_name(rs_availability a);     /* "None", ... */

#ifdef __cplusplus
}
#endif
#endif /* RUNSPACE_H */
