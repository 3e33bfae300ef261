/*
 * lualib_proc.c -- `proc`, the process built-ins of the default profile:
 *
 *   proc.list() -> array of {pid =, ppid =, name =, state =, cpu =, rss =}
 *
 * read from /proc (the seed's `Get-Process | Where CPU -gt 100`): cpu is user plus system time
 * in seconds, rss the resident set in bytes. A process that exits while the list is read is
 * left out.
 */
#include "syslib.h"

#include <lauxlib.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_MT "runspace.proc.dir"

typedef struct proc_info {
    long pid, ppid;
    char name[64];
    char state;
    double cpu;
    long long rss;
} proc_info;

/* Reads /proc/<pid>/stat; false when the process is gone or the file is not as expected. */
static bool read_stat(const char *pid, proc_info *p)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so it ends at the
     * last ')'. */
    char *open = strchr(buf, '(');
    char *close = strrchr(buf, ')');
    if (!open || !close || close < open)
        return false;
    size_t len = (size_t)(close - open - 1);
    if (len >= sizeof p->name)
        len = sizeof p->name - 1;
    memcpy(p->name, open + 1, len);
    p->name[len] = '\0';
    unsigned long long utime, stime;
    long long rss;
    /* Fields after comm: 3 state, 4 ppid, ..., 14 utime, 15 stime, ..., 24 rss. */
    int got = sscanf(close + 2,
                     "%c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                     "%*u %*u %lld",
                     &p->state, &p->ppid, &utime, &stime, &rss);
    if (got != 5)
        return false;
    long ticks = sysconf(_SC_CLK_TCK);
    p->pid = strtol(pid, NULL, 10);
    p->cpu = (double)(utime + stime) / (double)(ticks > 0 ? ticks : 100);
    p->rss = rss * (long long)sysconf(_SC_PAGESIZE);
    return true;
}

static int dir_gc(lua_State *L)
{
    DIR **d = luaL_checkudata(L, 1, DIR_MT);
    if (*d)
        closedir(*d);
    *d = NULL;
    return 0;
}

static int l_list(lua_State *L)
{
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
    *d = NULL;
    rs__gc_metatable(L, DIR_MT, dir_gc);
    int di = lua_gettop(L);
    *d = opendir("/proc");
    if (!*d)
        return luaL_error(L, "proc.list: /proc: %s", strerror(errno));
    lua_newtable(L);
    lua_Integer n = 0;
    struct dirent *e;
    while ((e = readdir(*d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        proc_info p;
        if (!read_stat(e->d_name, &p))
            continue;
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, p.pid);
        lua_setfield(L, -2, "pid");
        lua_pushinteger(L, p.ppid);
        lua_setfield(L, -2, "ppid");
        lua_pushstring(L, p.name);
        lua_setfield(L, -2, "name");
        lua_pushlstring(L, &p.state, 1);
        lua_setfield(L, -2, "state");
        lua_pushnumber(L, p.cpu);
        lua_setfield(L, -2, "cpu");
        lua_pushinteger(L, p.rss);
        lua_setfield(L, -2, "rss");
        lua_rawseti(L, -2, ++n);
    }
    closedir(*d);
    *d = NULL;
    lua_remove(L, di);
    return 1;
}

void rs__open_proc(lua_State *L)
{
    static const luaL_Reg fns[] = {{"list", l_list}, {NULL, NULL}};
    lua_createtable(L, 0, 1);
    luaL_setfuncs(L, fns, 0);
    lua_setglobal(L, "proc");
}
