/*
 * iss.h -- the internal view of an initial session state, read by runspaces when they open.
 */
#ifndef RS_ISS_H
#define RS_ISS_H

#include "common.h"

#include <stdatomic.h>

typedef enum rs__iss_kind {
    RS__ISS_VARIABLE,
    RS__ISS_FUNCTION,    /* a Lua chunk body bound to a global */
    RS__ISS_COMMAND,     /* a native C command */
    RS__ISS_MODULE_FILE, /* Lua source read from a file when it was added */
    RS__ISS_MODULE_NAME  /* loaded with require when a runspace opens */
} rs__iss_kind;

typedef struct rs__iss_entry {
    rs__iss_kind kind;
    char *name;      /* the global it binds; for MODULE_NAME the require name is `spec` */
    char *spec;      /* module: the path or name as given */
    rs_value *value; /* variable */
    char *source;    /* function body or module file contents */
    size_t source_len;
    char *chunkname;  /* "=name" (function) or "@path" (module file) */
    rs_command_fn fn; /* command */
    void *userdata;
} rs__iss_entry;

struct rs_iss {
    atomic_int refs;
    atomic_bool frozen; /* set when the first runspace is created from it */
    rs_profile profile;
    rs_limits limits;
    rs_host_fn host; /* records written while no invocation runs, or NULL */
    void *host_userdata;
    rs__iss_entry *entries;
    size_t count;
    size_t cap;
    rs__msg msg;
};

/* Takes a reference and freezes the ISS. */
rs_iss *rs__iss_retain(const rs_iss *iss);
void rs__iss_release(rs_iss *iss);
/* The entry of a native command named name, or NULL. */
const rs__iss_entry *rs__iss_find_command(const rs_iss *iss, const char *name);
/* The digest of everything in iss that changes what its scripts compute (profile, limits,
 * and every entry: variables, functions, modules' sources, command names), as "sha256:..."
 * into out (72 bytes), for a journal's header. 0 or RS_ENOMEM. */
int rs__iss_digest(const rs_iss *iss, char out[72]);
/* True when name is reserved by a runspace built-in. */
bool rs__is_builtin_name(const char *name);

#endif
