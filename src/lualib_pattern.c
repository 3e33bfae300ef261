/*
 * lualib_pattern.c -- string.find, string.match, string.gmatch and string.gsub, with Lua 5.4's
 * pattern language and results (reference manual section 6.4.1), in every profile.
 *
 * Why not the standard library's: its matcher is C code that runs without ever returning to
 * the VM, and a pattern can take time polynomial or exponential in the subject
 * (("a"):rep(3000):find(".-.-.-.-b") runs for hours). No hook fires in C code, so neither a
 * stop nor a timeout could end such a call, and a runspace, its pool and a for-each run would
 * hang. This matcher counts its steps and every CHECK_EVERY of them charges them to the
 * instruction budget and asks whether the invocation is due to end (rs__exec_charge); if so
 * it raises the interruption as the hook does.
 * A plain find uses memmem, which is linear where the standard library's search is
 * O(subject x needle).
 *
 * Results, error messages and limits (32 captures, recursion depth 200) are those of Lua 5.4;
 * tests/test_pattern.c checks that by comparing both on a large random corpus.
 *
 * DESIGN: match() walks the pattern as Lua's does: a single-character class followed by no
 * quantifier advances in a loop; '*', '+', '?' and '-' try the rest of the pattern by
 * recursion at each candidate length; captures are recorded in the state and undone when the
 * rest fails. Subject positions are pointers into the Lua string, which does not move while
 * its value is on the stack.
 */
#include "lualib_int.h"

#include <lauxlib.h>

#include <ctype.h>
#include <string.h>

#define MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MAX_DEPTH 200   /* MAXCCALLS of lstrlib.c: how deep match() may recurse */
#define CHECK_EVERY 4096
#define ESC '%'
#define SPECIALS "^$*+?.([%-"

#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

typedef struct match_state {
    const char *src_init, *src_end; /* the subject */
    const char *p_end;              /* end of the pattern */
    lua_State *L;
    rs__exec *ex; /* the running invocation, or NULL */
    int depth;    /* recursion left */
    int steps;    /* steps left until the next interruption check */
    int level;    /* captures open or closed */
    struct {
        const char *init;
        ptrdiff_t len; /* or CAP_UNFINISHED, CAP_POSITION */
    } capture[MAX_CAPTURES];
} match_state;

static const char *match(match_state *ms, const char *s, const char *p);

/* One step of work; every CHECK_EVERY steps, charges them to the run's instruction budget (a
 * step counts as one instruction) and raises the interruption that is due, if any. */
static inline void step(match_state *ms)
{
    if (--ms->steps > 0)
        return;
    ms->steps = CHECK_EVERY;
    int why = ms->ex ? rs__exec_charge(ms->ex, CHECK_EVERY) : 0;
    if (why)
        rs__exec_raise(ms->L, ms->ex, why);
}

static void prepare(match_state *ms, lua_State *L, const char *s, size_t ls, const char *p,
                    size_t lp)
{
    ms->L = L;
    rs__exec *ex = rs__exec_current();
    ms->ex = ex && ex->L ? ex : NULL;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = CHECK_EVERY;
}

/* Before each attempt at a new subject position. */
static void restart(match_state *ms)
{
    ms->level = 0;
    ms->depth = MAX_DEPTH;
}

/* ---- single characters -------------------------------------------------------------------- */

/* Whether c is in class %cl. (cl | 0x20 lowers exactly the letters; no other byte becomes one,
 * so this is tolower() of the C locale, the only one a runspace allows.) */
static inline bool class_matches(int c, int cl)
{
    bool res;
    switch (cl | 0x20) {
    case 'a':
        res = isalpha(c);
        break;
    case 'c':
        res = iscntrl(c);
        break;
    case 'd':
        res = isdigit(c);
        break;
    case 'g':
        res = isgraph(c);
        break;
    case 'l':
        res = islower(c);
        break;
    case 'p':
        res = ispunct(c);
        break;
    case 's':
        res = isspace(c);
        break;
    case 'u':
        res = isupper(c);
        break;
    case 'w':
        res = isalnum(c);
        break;
    case 'x':
        res = isxdigit(c);
        break;
    case 'z': /* the zero byte; deprecated, but Lua 5.4 still has it */
        res = c == 0;
        break;
    default:
        return cl == c; /* an escaped character stands for itself */
    }
    return cl <= 'Z' ? !res : res; /* an upper-case class is the complement */
}

/* Whether c is in the set that starts at p ('[') and whose ']' is at last. */
static bool set_matches(int c, const char *p, const char *last)
{
    bool in = true;
    if (p[1] == '^') {
        in = false;
        p++;
    }
    while (++p < last) {
        if (*p == ESC) {
            p++;
            if (class_matches(c, (unsigned char)*p))
                return in;
        } else if (p[1] == '-' && p + 2 < last) {
            p += 2;
            if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p)
                return in;
        } else if ((unsigned char)*p == c) {
            return in;
        }
    }
    return !in;
}

/* The end of the single-character class that starts at p. */
static const char *class_end(match_state *ms, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p == ms->p_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character, even ']', belongs to the set */
            if (p == ms->p_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == ESC && p < ms->p_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

/* Whether the subject character at s matches the class p..ep. */
static inline bool single_matches(match_state *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case ESC:
        return class_matches(c, (unsigned char)p[1]);
    case '[':
        return set_matches(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the matcher -------------------------------------------------------------------------- */

/* %bxy at p (pointing at x): the balanced run starting at s, or NULL. */
static const char *match_balance(match_state *ms, const char *s, const char *p)
{
    if (p >= ms->p_end - 1)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < ms->src_end) {
        step(ms);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* Class p..ep repeated as often as possible, then as few times as the rest needs. */
static const char *max_expand(match_state *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_matches(ms, s + i, p, ep)) {
        step(ms);
        i++;
    }
    for (; i >= 0; i--) {
        const char *res = match(ms, s + i, ep + 1);
        if (res)
            return res;
    }
    return NULL;
}

/* Class p..ep repeated as few times as the rest of the pattern needs. */
static const char *min_expand(match_state *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *res = match(ms, s, ep + 1);
        if (res)
            return res;
        if (!single_matches(ms, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(match_state *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= MAX_CAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = match(ms, s, p);
    if (!res)
        ms->level--;
    return res;
}

static const char *end_capture(match_state *ms, const char *s, const char *p)
{
    int l = ms->level - 1;
    while (l >= 0 && ms->capture[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(ms->L, "invalid pattern capture");
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = match(ms, s, p);
    if (!res)
        ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

/* %1..%9: the text of a closed capture again. */
static const char *match_backref(match_state *ms, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    ptrdiff_t len = ms->capture[l].len;
    if (len < 0) /* a position capture has no text, so it never matches */
        return NULL;
    if (ms->src_end - s >= len && memcmp(ms->capture[l].init, s, (size_t)len) == 0)
        return s + len;
    return NULL;
}

/* Matches the pattern from p against the subject from s; the end of the match, or NULL. */
static const char *match(match_state *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0)
        luaL_error(ms->L, "pattern too complex");
    for (;;) {
        step(ms);
        if (p == ms->p_end)
            break;
        if (*p == '(') {
            s = p + 1 < ms->p_end && p[1] == ')' ? start_capture(ms, s, p + 2, CAP_POSITION)
                                                 : start_capture(ms, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = end_capture(ms, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == ms->p_end) {
            s = s == ms->src_end ? s : NULL;
            break;
        }
        if (*p == ESC && p + 1 < ms->p_end && p[1] == 'b') {
            s = match_balance(ms, s, p + 2);
            if (!s)
                break;
            p += 4;
            continue;
        }
        if (*p == ESC && p + 1 < ms->p_end && p[1] == 'f') {
            p += 2;
            if (p == ms->p_end || *p != '[')
                luaL_error(ms->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(ms, p);
            int prev = s == ms->src_init ? 0 : (unsigned char)s[-1];
            int cur = s < ms->src_end ? (unsigned char)*s : 0;
            if (!set_matches(prev, p, ep - 1) && set_matches(cur, p, ep - 1)) {
                p = ep;
                continue;
            }
            s = NULL;
            break;
        }
        if (*p == ESC && p + 1 < ms->p_end && isdigit((unsigned char)p[1])) {
            s = match_backref(ms, s, (unsigned char)p[1]);
            if (!s)
                break;
            p += 2;
            continue;
        }
        /* A single-character class, perhaps with a quantifier. */
        const char *ep = class_end(ms, p);
        char q = ep < ms->p_end ? *ep : '\0';
        if (!single_matches(ms, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') { /* zero repetitions are allowed */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *res = match(ms, s + 1, ep + 1);
            if (res) {
                s = res;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = max_expand(ms, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = max_expand(ms, s, p, ep);
            break;
        }
        if (q == '-') {
            s = min_expand(ms, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    ms->depth++;
    return s;
}

/* ---- captures ----------------------------------------------------------------------------- */

/* Pushes capture i; with no captures at all, capture 0 is the whole match s..e. */
static void push_capture(match_state *ms, int i, const char *s, const char *e)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = ms->capture[i].len;
    if (len == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    else
        lua_pushlstring(ms->L, ms->capture[i].init, (size_t)len);
}

/* Pushes every capture (the whole match when there are none and s is given); their count. */
static int push_captures(match_state *ms, const char *s, const char *e)
{
    int n = ms->level == 0 && s ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(ms, i, s, e);
    return n;
}

/* ---- find, match, gmatch, gsub ------------------------------------------------------------ */

/* A relative initial position made absolute (1-based; 1 when before the start). */
static size_t start_position(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0)
        return 1;
    if (pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

/* Whether the pattern has none of the special characters (it may hold zeros). */
static bool is_plain(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++) {
        if (p[i] && strchr(SPECIALS, p[i]))
            return false;
    }
    return true;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || is_plain(p, lp))) {
        const char *at = memmem(s + init, ls - init, p, lp);
        if (!at) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(at - s) + 1);
        lua_pushinteger(L, (lua_Integer)(at - s + lp));
        return 2;
    }
    match_state ms;
    bool anchor = lp > 0 && *p == '^';
    if (anchor)
        p++, lp--;
    prepare(&ms, L, s, ls, p, lp);
    const char *s1 = s + init;
    do {
        restart(&ms);
        const char *e = match(&ms, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&ms, NULL, NULL) + 2;
            }
            return push_captures(&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int l_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* The state of a gmatch iterator: offsets into its subject (upvalue 1). */
typedef struct gmatch_state {
    size_t pos;       /* where the next search starts */
    size_t lastmatch; /* end of the last match, or SIZE_MAX: an empty match may not end there */
} gmatch_state;

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    match_state ms;
    prepare(&ms, L, s, ls, p, lp);
    for (const char *src = s + gm->pos; src <= ms.src_end; src++) {
        restart(&ms);
        const char *e = match(&ms, src, p);
        if (e && (size_t)(e - s) != gm->lastmatch) {
            gm->pos = gm->lastmatch = (size_t)(e - s);
            return push_captures(&ms, src, e);
        }
    }
    gm->pos = ls + 1; /* exhausted: later calls return nothing at once */
    return 0;
}

static int l_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls)
        init = ls + 1;
    lua_settop(L, 2);
    gmatch_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    gm->pos = init;
    gm->lastmatch = SIZE_MAX;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement string (index 3) for the match s..e, expanding %0..%9 and %%. */
static void add_string(match_state *ms, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = ms->L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *end = r + l;
    for (;;) {
        const char *esc = memchr(r, ESC, (size_t)(end - r));
        if (!esc) {
            luaL_addlstring(b, r, (size_t)(end - r));
            return;
        }
        luaL_addlstring(b, r, (size_t)(esc - r));
        r = esc + 1; /* the character after '%' (the string's terminating zero at the end) */
        if (*r == ESC) {
            luaL_addchar(b, ESC);
        } else if (isdigit((unsigned char)*r)) {
            if (*r == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                /* A string capture is copied from the subject directly; only a position
                 * capture needs a Lua value (its number, as text). */
                int i = *r - '1';
                if (i < ms->level && ms->capture[i].len >= 0) {
                    luaL_addlstring(b, ms->capture[i].init, (size_t)ms->capture[i].len);
                } else {
                    push_capture(ms, i, s, e);
                    luaL_tolstring(L, -1, NULL);
                    lua_remove(L, -2);
                    luaL_addvalue(b);
                }
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        r++;
    }
}

/* Appends the replacement of the match s..e, by the kind of repl (index 3). Returns false
 * when the match was kept as it was (a nil or false replacement). */
static bool add_value(match_state *ms, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = ms->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string(ms, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

static int l_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    bool anchor = lp > 0 && *p == '^';
    if (anchor)
        p++, lp--;
    match_state ms;
    prepare(&ms, L, src, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *lastmatch = NULL;
    lua_Integer n = 0;
    bool changed = false;
    while (n < max) {
        restart(&ms);
        const char *e = match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, kind) || changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            step(&ms);
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (changed) {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    } else {
        lua_pushvalue(L, 1); /* nothing replaced: the subject itself, as Lua returns it */
    }
    lua_pushinteger(L, n);
    return 2;
}

void rs__open_pattern(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
    lua_getglobal(L, "string");
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
