/*
 * lualib_fs.c -- `fs`, the file system built-ins of the default profile:
 *
 *   fs.list(path [, {recursive = true}]) -> array of entries
 *   fs.stat(path)                        -> entry
 *
 * An entry is {name =, path =, type = "file"|"dir"|"link"|"other", size =, mtime =}. Symbolic
 * links are reported as links and never followed, so a recursive listing cannot loop. An
 * error on the path asked for is a Lua error with the OS reason; in a recursive listing, a
 * subdirectory that cannot be read is reported on the error stream (non-terminating, as
 * Get-ChildItem -Recurse does) and the listing goes on. Long listings check for a stop.
 *
 * The walk's C state (pending directories, the open DIR) lives in a userdata whose __gc frees
 * it, so a Lua error in the middle leaks nothing.
 */
#include "exec.h"
#include "syslib.h"

#include <lauxlib.h>

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define WALK_MT "runspace.fs.walk"

typedef struct walk {
    char **pending; /* directories still to list (recursive walks) */
    size_t npending;
    size_t cap;
    DIR *dir;
    char *dir_path; /* the directory `dir` lists */
    char *cur;      /* the entry being pushed, when nothing else owns its path */
} walk;

static int walk_gc(lua_State *L)
{
    walk *w = luaL_checkudata(L, 1, WALK_MT);
    for (size_t i = 0; i < w->npending; i++)
        rs__free(w->pending[i]);
    rs__free(w->pending);
    if (w->dir)
        closedir(w->dir);
    rs__free(w->dir_path);
    rs__free(w->cur);
    memset(w, 0, sizeof *w);
    return 0;
}

static const char *type_name(mode_t m)
{
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "link" : "other";
}

/* Pushes the entry table for path (already lstat'ed into st). */
static void push_entry(lua_State *L, const char *path, const struct stat *st)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash && slash[1] ? slash + 1 : path;
    lua_createtable(L, 0, 5);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, type_name(st->st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st->st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st->st_mtim.tv_sec + (lua_Number)st->st_mtim.tv_nsec * 1e-9);
    lua_setfield(L, -2, "mtime");
}

static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0)
        return luaL_error(L, "fs.stat: %s: %s", path, strerror(errno));
    push_entry(L, path, &st);
    return 1;
}

/* Joins dir and name into a new string (NULL when out of memory). */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    return n && dir[n - 1] == '/' ? rs__format("%s%s", dir, name) : rs__format("%s/%s", dir, name);
}

static int l_list(lua_State *L)
{
    const char *root = luaL_checkstring(L, 1);
    bool recursive = false;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "recursive");
        recursive = lua_toboolean(L, -1);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
    }
    rs_runspace *rs = rs__lua_runspace(L);
    struct stat st;
    if (stat(root, &st) != 0)
        return luaL_error(L, "fs.list: %s: %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return luaL_error(L, "fs.list: %s: Not a directory", root);

    walk *w = lua_newuserdatauv(L, sizeof *w, 0);
    memset(w, 0, sizeof *w);
    rs__gc_metatable(L, WALK_MT, walk_gc);
    int wi = lua_gettop(L);
    lua_newtable(L); /* the result */
    lua_Integer n = 0;
    w->pending = rs__malloc(sizeof *w->pending);
    if (!w->pending || !(w->pending[0] = rs__strdup(root)))
        return luaL_error(L, "fs.list: out of memory");
    w->npending = 1;
    w->cap = 1;
    bool first = true;
    while (w->npending) {
        rs__free(w->dir_path);
        w->dir_path = w->pending[--w->npending];
        w->dir = opendir(w->dir_path);
        if (!w->dir) {
            if (first)
                return luaL_error(L, "fs.list: %s: %s", w->dir_path, strerror(errno));
            char *msg = rs__format("fs.list: %s: %s", w->dir_path, strerror(errno));
            int rc = msg ? rs__run_record(rs, L, RS_STREAM_ERROR, msg, strlen(msg), NULL, -1)
                         : RS_ENOMEM;
            rs__free(msg);
            if (rc)
                return luaL_error(L, "fs.list: out of memory");
            continue;
        }
        first = false;
        struct dirent *d;
        while ((d = readdir(w->dir)) != NULL) {
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            char *path = w->cur = join(w->dir_path, d->d_name);
            if (!path)
                return luaL_error(L, "fs.list: out of memory");
            if (lstat(path, &st) != 0) { /* vanished meanwhile */
                rs__free(path);
                w->cur = NULL;
                continue;
            }
            if (recursive && S_ISDIR(st.st_mode)) {
                if (w->npending == w->cap) {
                    size_t cap = w->cap * 2;
                    char **p = rs__realloc(w->pending, cap * sizeof *p);
                    if (!p)
                        return luaL_error(L, "fs.list: out of memory");
                    w->pending = p;
                    w->cap = cap;
                }
                w->pending[w->npending++] = path; /* the pending list owns it now */
                w->cur = NULL;
            }
            push_entry(L, path, &st);
            rs__free(w->cur);
            w->cur = NULL;
            lua_rawseti(L, -2, ++n);
            if (n % 1024 == 0) {
                rs__exec *ex = rs__exec_current();
                int why = ex && ex->L ? rs__exec_due(ex) : 0;
                if (why)
                    return rs__exec_raise(L, ex, why);
            }
        }
        closedir(w->dir);
        w->dir = NULL;
    }
    lua_remove(L, wi);
    return 1;
}

void rs__open_fs(lua_State *L)
{
    static const luaL_Reg fns[] = {{"list", l_list}, {"stat", l_stat}, {NULL, NULL}};
    lua_createtable(L, 0, 2);
    luaL_setfuncs(L, fns, 0);
    lua_setglobal(L, "fs");
}
