/*
 * iss.c -- initial session state: the recipe a runspace is built from. Entries keep the order
 * they were added in, so every runspace applies them identically. An ISS is reference-counted:
 * each runspace holds a reference, and from the first one on the ISS is frozen.
 */
#include "iss.h"

#include "runspace_int.h"
#include "value.h"

#include <lua.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const lua_keywords[] = {
    "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
    "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
    "repeat",   "return", "then", "true", "until",  "while", NULL};

/* Globals a runspace defines itself; the ISS may not rebind them. */
static const char *const builtin_names[] = {"_",
                                            "params",
                                            "emit",
                                            "write_error",
                                            "write_warning",
                                            "write_verbose",
                                            "write_debug",
                                            "write_information",
                                            "write_progress",
                                            "sleep",
                                            "random",
                                            "random_seed",
                                            "shared",
                                            "json",
                                            "time",
                                            "runspace",
                                            "fs",
                                            "proc",
                                            "exec",
                                            "net",
                                            NULL};

bool rs__is_builtin_name(const char *name)
{
    for (size_t i = 0; builtin_names[i]; i++) {
        if (strcmp(name, builtin_names[i]) == 0)
            return true;
    }
    return false;
}

static bool is_identifier(const char *s)
{
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (const char *p = s + 1; *p; p++) {
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    }
    for (size_t i = 0; lua_keywords[i]; i++) {
        if (strcmp(s, lua_keywords[i]) == 0)
            return false;
    }
    return true;
}

int rs_iss_create(rs_profile profile, rs_iss **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    if (profile != RS_PROFILE_DEFAULT && profile != RS_PROFILE_RESTRICTED)
        return RS_EINVAL;
    rs_iss *iss = rs__calloc(1, sizeof *iss);
    if (!iss)
        return RS_ENOMEM;
    atomic_init(&iss->refs, 1);
    atomic_init(&iss->frozen, false);
    iss->profile = profile;
    *out = iss;
    return 0;
}

static void entry_free(rs__iss_entry *e)
{
    rs__free(e->name);
    rs__free(e->spec);
    rs_value_destroy(e->value);
    rs__free(e->source);
    rs__free(e->chunkname);
}

rs_iss *rs__iss_retain(const rs_iss *ciss)
{
    rs_iss *iss = (rs_iss *)ciss;
    atomic_fetch_add(&iss->refs, 1);
    atomic_store(&iss->frozen, true);
    return iss;
}

void rs__iss_release(rs_iss *iss)
{
    if (!iss || atomic_fetch_sub(&iss->refs, 1) != 1)
        return;
    for (size_t i = 0; i < iss->count; i++)
        entry_free(&iss->entries[i]);
    rs__free(iss->entries);
    rs__msg_free(&iss->msg);
    rs__free(iss);
}

int rs_iss_destroy(rs_iss *iss)
{
    rs__iss_release(iss);
    return 0;
}

const char *rs_iss_errmsg(const rs_iss *iss)
{
    return iss ? rs__msg_get(&iss->msg) : "";
}

/* Checks that the ISS may change and that name can be bound; returns 0 or an error code with
 * the message set on the ISS. */
static int check_new_name(rs_iss *iss, const char *name)
{
    if (atomic_load(&iss->frozen))
        return rs__msg_set(&iss->msg, RS_EBUSY,
                           "the session state is in use by a runspace and can no longer change");
    if (!is_identifier(name))
        return rs__msg_set(&iss->msg, RS_EINVAL, "'%s' is not a Lua identifier",
                           name ? name : "(null)");
    if (rs__is_builtin_name(name))
        return rs__msg_set(&iss->msg, RS_EEXIST, "'%s' is a runspace built-in", name);
    for (size_t i = 0; i < iss->count; i++) {
        if (strcmp(iss->entries[i].name, name) == 0)
            return rs__msg_set(&iss->msg, RS_EEXIST, "'%s' is already defined in the session state",
                               name);
    }
    return 0;
}

/* Appends a zeroed entry with a copy of name; NULL when out of memory. */
static rs__iss_entry *add_entry(rs_iss *iss, rs__iss_kind kind, const char *name)
{
    if (iss->count == iss->cap) {
        size_t cap = iss->cap ? iss->cap * 2 : 8;
        rs__iss_entry *e = rs__realloc(iss->entries, cap * sizeof *e);
        if (!e)
            return NULL;
        iss->entries = e;
        iss->cap = cap;
    }
    rs__iss_entry *e = &iss->entries[iss->count];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->name = rs__strdup(name);
    if (!e->name)
        return NULL;
    iss->count++;
    return e;
}

/* Removes the entry add_entry returned last (used when filling it in fails). */
static int drop_last(rs_iss *iss, int code)
{
    entry_free(&iss->entries[--iss->count]);
    if (code == RS_ENOMEM)
        rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
    return code;
}

int rs_iss_set_variable(rs_iss *iss, const char *name, const rs_value *value)
{
    if (!iss)
        return RS_EMISUSE;
    if (!value)
        return rs__msg_set(&iss->msg, RS_EINVAL, "variable '%s' needs a value",
                           name ? name : "(null)");
    int rc = check_new_name(iss, name);
    if (rc)
        return rc;
    rs__iss_entry *e = add_entry(iss, RS__ISS_VARIABLE, name);
    if (!e)
        return rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
    e->value = rs_value_copy(value);
    return e->value ? 0 : drop_last(iss, RS_ENOMEM);
}

/* Compiles source in a scratch state to report syntax errors when the entry is added. */
static int check_syntax(rs_iss *iss, const char *source, size_t len, const char *chunkname)
{
    char *msg;
    int rc = rs__check_syntax(source, len, chunkname, &msg);
    if (rc)
        rs__msg_set(&iss->msg, rc, "%s", msg ? msg : "out of memory");
    rs__free(msg);
    return rc;
}

int rs_iss_add_function(rs_iss *iss, const char *name, const char *body)
{
    if (!iss)
        return RS_EMISUSE;
    if (!body)
        return rs__msg_set(&iss->msg, RS_EINVAL, "function '%s' needs a body",
                           name ? name : "(null)");
    int rc = check_new_name(iss, name);
    if (rc)
        return rc;
    char *chunkname = rs__format("=%s", name);
    if (!chunkname)
        return rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
    rc = check_syntax(iss, body, strlen(body), chunkname);
    if (rc) {
        rs__free(chunkname);
        return rc;
    }
    rs__iss_entry *e = add_entry(iss, RS__ISS_FUNCTION, name);
    if (!e) {
        rs__free(chunkname);
        return rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
    }
    e->chunkname = chunkname;
    e->source_len = strlen(body);
    e->source = rs__strndup(body, e->source_len);
    return e->source ? 0 : drop_last(iss, RS_ENOMEM);
}

int rs_iss_add_command(rs_iss *iss, const char *name, rs_command_fn fn, void *userdata)
{
    if (!iss)
        return RS_EMISUSE;
    if (!fn)
        return rs__msg_set(&iss->msg, RS_EINVAL, "command '%s' needs a function",
                           name ? name : "(null)");
    int rc = check_new_name(iss, name);
    if (rc)
        return rc;
    rs__iss_entry *e = add_entry(iss, RS__ISS_COMMAND, name);
    if (!e)
        return rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
    e->fn = fn;
    e->userdata = userdata;
    return 0;
}

/* Reads a whole file into a new buffer; 0, RS_ENOENT, RS_EIO or RS_ENOMEM with a message. */
/* The largest module file read (a script of that size is far beyond any real module; a
 * device such as /dev/zero would otherwise be read until memory runs out). */
#define RS__MODULE_MAX (64 << 20)

static int read_file(rs_iss *iss, const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rs__msg_set(&iss->msg, errno == ENOENT ? RS_ENOENT : RS_EIO,
                           "cannot open module '%s': %s", path, strerror(errno));
    rs__buf b = {0};
    char chunk[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > RS__MODULE_MAX) {
            rc = rs__msg_set(&iss->msg, RS_EIO, "module '%s' is larger than %d bytes", path,
                             RS__MODULE_MAX);
            break;
        }
        if (rs__buf_append(&b, chunk, n)) {
            rc = rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
            break;
        }
    }
    if (!rc && ferror(f))
        rc = rs__msg_set(&iss->msg, RS_EIO, "cannot read module '%s': %s", path, strerror(errno));
    fclose(f);
    if (rc) {
        rs__buf_free(&b);
        return rc;
    }
    *out = rs__buf_detach(&b, len);
    return *out ? 0 : rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
}

/* The global a module binds: the file's base name without ".lua", or the module name with
 * dots replaced by underscores. NULL when out of memory. */
static char *module_global(const char *spec, bool is_path)
{
    const char *base = spec;
    size_t len = strlen(spec);
    if (is_path) {
        const char *slash = strrchr(spec, '/');
        if (slash)
            base = slash + 1;
        len = strlen(base);
        if (len > 4 && strcmp(base + len - 4, ".lua") == 0)
            len -= 4;
    }
    char *g = rs__strndup(base, len);
    if (g) {
        for (char *p = g; *p; p++) {
            if (*p == '.' || *p == '-')
                *p = '_';
        }
    }
    return g;
}

int rs_iss_add_module(rs_iss *iss, const char *spec)
{
    if (!iss)
        return RS_EMISUSE;
    if (!spec || !*spec)
        return rs__msg_set(&iss->msg, RS_EINVAL, "a module needs a path or a name");
    size_t slen = strlen(spec);
    bool is_path = strchr(spec, '/') || (slen > 4 && strcmp(spec + slen - 4, ".lua") == 0);
    char *global = module_global(spec, is_path);
    if (!global)
        return rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
    int rc = check_new_name(iss, global);
    if (rc) {
        if (rc == RS_EINVAL)
            rc = rs__msg_set(&iss->msg, RS_EINVAL,
                             "module '%s' would bind '%s', which is not a Lua identifier", spec,
                             global);
        rs__free(global);
        return rc;
    }
    char *source = NULL, *chunkname = NULL;
    size_t source_len = 0;
    if (is_path) {
        rc = read_file(iss, spec, &source, &source_len);
        if (!rc) {
            chunkname = rs__format("@%s", spec);
            rc = chunkname ? check_syntax(iss, source, source_len, chunkname)
                           : rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
        }
    }
    rs__iss_entry *e =
        rc ? NULL : add_entry(iss, is_path ? RS__ISS_MODULE_FILE : RS__ISS_MODULE_NAME, global);
    if (!e) {
        if (!rc)
            rc = rs__msg_set(&iss->msg, RS_ENOMEM, "out of memory");
        rs__free(global);
        rs__free(source);
        rs__free(chunkname);
        return rc;
    }
    rs__free(global);
    e->source = source;
    e->source_len = source_len;
    e->chunkname = chunkname;
    e->spec = rs__strdup(spec);
    return e->spec ? 0 : drop_last(iss, RS_ENOMEM);
}

int rs_iss_set_limits(rs_iss *iss, const rs_limits *limits)
{
    if (!iss)
        return RS_EMISUSE;
    if (!limits)
        return RS_EINVAL;
    if (atomic_load(&iss->frozen))
        return rs__msg_set(&iss->msg, RS_EBUSY,
                           "the session state is in use by a runspace and can no longer change");
    iss->limits = *limits;
    return 0;
}

int rs_iss_set_host(rs_iss *iss, rs_host_fn fn, void *userdata)
{
    if (!iss)
        return RS_EMISUSE;
    if (atomic_load(&iss->frozen))
        return rs__msg_set(&iss->msg, RS_EBUSY,
                           "the session state is in use by a runspace and can no longer change");
    iss->host = fn;
    iss->host_userdata = fn ? userdata : NULL;
    return 0;
}

const rs__iss_entry *rs__iss_find_command(const rs_iss *iss, const char *name)
{
    for (size_t i = 0; iss && i < iss->count; i++) {
        if (iss->entries[i].kind == RS__ISS_COMMAND && strcmp(iss->entries[i].name, name) == 0)
            return &iss->entries[i];
    }
    return NULL;
}

/* Feeds a number to s, little-endian. */
static void digest_number(rs__sha256 *s, uint64_t x)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(x >> (8 * i));
    rs__sha256_update(s, b, sizeof b);
}

/* Feeds a string, or its absence, to s: a marker, then the length before the bytes. */
static void digest_text(rs__sha256 *s, const char *text, size_t len)
{
    uint8_t present = text != NULL;
    rs__sha256_update(s, &present, 1);
    digest_number(s, len);
    if (text)
        rs__sha256_update(s, text, len);
}

int rs__iss_digest(const rs_iss *iss, char out[72])
{
    rs__sha256 s;
    rs__sha256_init(&s);
    uint64_t head[4] = {(uint64_t)iss->profile, iss->limits.memory_bytes, iss->limits.instructions,
                        iss->count};
    for (size_t i = 0; i < RS__ARRAY_SIZE(head); i++)
        digest_number(&s, head[i]);
    for (size_t i = 0; i < iss->count; i++) {
        const rs__iss_entry *e = &iss->entries[i];
        digest_number(&s, (uint64_t)e->kind);
        digest_text(&s, e->name, e->name ? strlen(e->name) : 0);
        digest_text(&s, e->spec, e->spec ? strlen(e->spec) : 0);
        digest_text(&s, e->source, e->source ? e->source_len : 0);
        /* A native command is known by its name: its code has no stable identity. */
        digest_number(&s, e->value != NULL);
        if (e->value && rs__value_digest(&s, e->value))
            return RS_ENOMEM;
    }
    rs__sha256_final_hex(&s, out);
    return 0;
}
