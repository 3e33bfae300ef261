/*
 * foreach_exec.c -- external commands per input item (rs_foreach_set_exec), in the style of
 * GNU parallel.
 *
 * The template is parsed once: without a shell it is split into words as a shell would
 * split it (blanks separate words; '...' keeps everything; "..." keeps everything but \",
 * \\, \$ and \` escapes; a backslash outside quotes escapes the next character) but with no
 * expansion of any kind, and each word becomes a list of segments: literal text and the
 * replacement strings {} {.} {/} {//} {/.} {#}. With a shell the template stays one text and
 * each replacement is single-quoted for `sh -c`. A template without any replacement string
 * gets the item as its last argument, as GNU parallel and xargs do.
 *
 * Per item the words are expanded into one buffer and the command is started with
 * posix_spawn (child.c: no page tables copied, a process group of its own). A literal command
 * name is looked up on PATH once, at parse time, so that starting a command is one execve,
 * not one per PATH entry. The worker waits for it on its own thread: no thread per item.
 */
#include "foreach_exec.h"

#include "child.h"
#include "exec.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum seg_kind {
    SEG_TEXT,       /* literal bytes */
    SEG_ITEM,       /* {}   the item */
    SEG_NOEXT,      /* {.}  the item without its extension */
    SEG_BASE,       /* {/}  its base name */
    SEG_DIR,        /* {//} its directory */
    SEG_BASE_NOEXT, /* {/.} its base name without extension */
    SEG_SEQ         /* {#}  the 1-based sequence number */
} seg_kind;

typedef struct seg {
    seg_kind kind;
    size_t off, len; /* SEG_TEXT: bytes of lit */
} seg;

typedef struct word {
    size_t first, n; /* its segments */
} word;

struct rs__cmdtpl {
    bool shell;
    char *name; /* "exec: TEMPLATE" */
    rs__buf lit;
    seg *segs;
    size_t nsegs, capsegs;
    word *words;
    size_t nwords, capwords;
    bool uses_item;    /* a replacement string of the item (all but {#}) */
    bool has_repl;     /* any replacement string */
    size_t word_start; /* the first segment of the word being parsed */
    bool literal0;     /* the command's name has no replacement string */
    char *path;        /* where a literal name was found on PATH (or the name, when it has a '/') */
};

/* The replacement strings, by the text between the braces. */
static const struct {
    const char *text;
    seg_kind kind;
} replacements[] = {{"", SEG_ITEM},  {".", SEG_NOEXT},       {"/", SEG_BASE},
                    {"//", SEG_DIR}, {"/.", SEG_BASE_NOEXT}, {"#", SEG_SEQ}};

/* Characters of GNU parallel's replacement strings: a brace group made only of them is meant
 * as one, and is refused when it is not one we know. Other braces (awk's '{print $1}', a
 * JSON text) are literal. */
#define REPLACEMENT_CHARS "./#%+=0123456789"

static int add_seg(rs__cmdtpl *t, seg s)
{
    if (t->nsegs == t->capsegs) {
        size_t cap = t->capsegs ? t->capsegs * 2 : 8;
        seg *n = rs__realloc(t->segs, cap * sizeof *n);
        if (!n)
            return RS_ENOMEM;
        t->segs = n;
        t->capsegs = cap;
    }
    t->segs[t->nsegs++] = s;
    if (s.kind != SEG_TEXT && s.kind != SEG_SEQ)
        t->uses_item = true;
    if (s.kind != SEG_TEXT)
        t->has_repl = true;
    return 0;
}

static int add_text(rs__cmdtpl *t, const char *s, size_t n)
{
    if (!n)
        return 0;
    size_t off = t->lit.len;
    if (rs__buf_append(&t->lit, s, n))
        return RS_ENOMEM;
    /* Consecutive text joins the previous segment. */
    if (t->nsegs > t->word_start && t->segs[t->nsegs - 1].kind == SEG_TEXT &&
        t->segs[t->nsegs - 1].off + t->segs[t->nsegs - 1].len == off) {
        t->segs[t->nsegs - 1].len += n;
        return 0;
    }
    return add_seg(t, (seg){.kind = SEG_TEXT, .off = off, .len = n});
}

/* Splits the text of one word (quotes already removed) into segments. */
static int add_segments(rs__cmdtpl *t, const char *w, size_t n, char **msg)
{
    size_t text_from = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] != '{')
            continue;
        const char *close = memchr(w + i + 1, '}', n - i - 1);
        if (!close)
            break;
        size_t clen = (size_t)(close - (w + i + 1));
        const char *inner = w + i + 1;
        int found = -1;
        for (size_t r = 0; r < RS__ARRAY_SIZE(replacements); r++) {
            if (strlen(replacements[r].text) == clen &&
                memcmp(replacements[r].text, inner, clen) == 0)
                found = (int)r;
        }
        if (found < 0) {
            bool looks_like_one = clen > 0;
            for (size_t k = 0; k < clen; k++)
                looks_like_one = looks_like_one && inner[k] && strchr(REPLACEMENT_CHARS, inner[k]);
            if (looks_like_one) {
                *msg = rs__format("unknown replacement string '{%.*s}' in the command "
                                  "template (known: {} {.} {/} {//} {/.} {#})",
                                  (int)clen, inner);
                return RS_EINVAL;
            }
            continue;
        }
        if (add_text(t, w + text_from, i - text_from) ||
            add_seg(t, (seg){.kind = replacements[found].kind}))
            return RS_ENOMEM;
        i += clen + 1;
        text_from = i + 1;
    }
    return add_text(t, w + text_from, n - text_from);
}

static int add_word(rs__cmdtpl *t, const char *w, size_t n, char **msg)
{
    if (t->nwords == t->capwords) {
        size_t cap = t->capwords ? t->capwords * 2 : 8;
        word *nw = rs__realloc(t->words, cap * sizeof *nw);
        if (!nw)
            return RS_ENOMEM;
        t->words = nw;
        t->capwords = cap;
    }
    size_t first = t->word_start = t->nsegs;
    int rc = add_segments(t, w, n, msg);
    if (rc)
        return rc;
    t->words[t->nwords++] = (word){.first = first, .n = t->nsegs - first};
    return 0;
}

/* Splits text into words (see the top of the file). */
static int split_words(rs__cmdtpl *t, const char *text, char **msg)
{
    rs__buf cur = {0};
    bool in_word = false;
    int rc = 0;
    for (const char *p = text;; p++) {
        char ch = *p;
        if (ch == '\0' || ch == ' ' || ch == '\t' || ch == '\n') {
            if (in_word)
                rc = add_word(t, cur.data ? cur.data : "", cur.len, msg);
            cur.len = 0;
            in_word = false;
            if (rc || ch == '\0')
                break;
            continue;
        }
        in_word = true;
        if (ch == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end) {
                *msg = rs__strdup("the command template has an unterminated ' quote");
                rc = RS_EINVAL;
                break;
            }
            rc = rs__buf_append(&cur, p + 1, (size_t)(end - p - 1));
            p = end;
        } else if (ch == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1] && strchr("\\\"$`\n", p[1]))
                    p++;
                if ((rc = rs__buf_putc(&cur, *p)))
                    break;
            }
            if (!rc && !*p) {
                *msg = rs__strdup("the command template has an unterminated \" quote");
                rc = RS_EINVAL;
            }
        } else if (ch == '\\') {
            if (!p[1]) {
                *msg = rs__strdup("the command template ends with a backslash");
                rc = RS_EINVAL;
                break;
            }
            p++;
            rc = rs__buf_putc(&cur, *p);
        } else {
            rc = rs__buf_putc(&cur, ch);
        }
        if (rc)
            break;
    }
    rs__buf_free(&cur);
    return rc;
}

/* Where name is found on PATH, as execvp would find it (a new string), or NULL. */
static char *find_on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *dir = path;;) {
        const char *colon = strchr(dir, ':');
        size_t dlen = colon ? (size_t)(colon - dir) : strlen(dir);
        char *full = dlen ? rs__format("%.*s/%s", (int)dlen, dir, name) : rs__format("./%s", name);
        struct stat st;
        if (full && access(full, X_OK) == 0 && stat(full, &st) == 0 && S_ISREG(st.st_mode))
            return full;
        rs__free(full);
        if (!colon)
            return NULL;
        dir = colon + 1;
    }
}

void rs__cmdtpl_free(rs__cmdtpl *t)
{
    if (!t)
        return;
    rs__free(t->name);
    rs__buf_free(&t->lit);
    rs__free(t->segs);
    rs__free(t->words);
    rs__free(t->path);
    rs__free(t);
}

int rs__cmdtpl_parse(const char *text, bool shell, rs__cmdtpl **out, char **msg)
{
    *out = NULL;
    *msg = NULL;
    rs__cmdtpl *t = rs__calloc(1, sizeof *t);
    if (!t)
        return RS_ENOMEM;
    t->shell = shell;
    t->name = rs__format("exec%s: %s", shell ? " --shell" : "", text);
    int rc = t->name ? 0 : RS_ENOMEM;
    if (!rc && shell) {
        if (strspn(text, " \t\n") == strlen(text)) {
            *msg = rs__strdup("the command template is empty");
            rc = RS_EINVAL;
        }
        if (!rc)
            rc = add_word(t, text, strlen(text), msg);
        if (!rc && !t->has_repl && (add_text(t, " ", 1) || add_seg(t, (seg){.kind = SEG_ITEM})))
            rc = RS_ENOMEM;
        if (!rc)
            t->words[0].n = t->nsegs;
    } else if (!rc) {
        rc = split_words(t, text, msg);
        if (!rc && t->nwords == 0) {
            *msg = rs__strdup("the command template is empty");
            rc = RS_EINVAL;
        }
        if (!rc && !t->has_repl) {
            /* No replacement string: the item is the last argument. */
            rc = add_word(t, "{}", 2, msg);
        }
        if (!rc) {
            word w0 = t->words[0];
            t->literal0 = w0.n == 0 || (w0.n == 1 && t->segs[w0.first].kind == SEG_TEXT);
        }
        if (!rc && t->literal0) {
            const seg *s0 = t->words[0].n ? &t->segs[t->words[0].first] : NULL;
            char *name = s0 ? rs__strndup(t->lit.data + s0->off, s0->len) : rs__strdup("");
            if (!name)
                rc = RS_ENOMEM;
            else if (strchr(name, '/'))
                t->path = name;
            else {
                t->path = *name ? find_on_path(name) : NULL; /* NULL: not found, per item */
                rs__free(name);
            }
        }
    }
    if (rc) {
        if (rc == RS_ENOMEM && !*msg)
            *msg = rs__strdup("out of memory");
        rs__cmdtpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

const char *rs__cmdtpl_name(const rs__cmdtpl *t)
{
    return t->name;
}

/* ---- expansion ---------------------------------------------------------------------------- */

/* The item's text without its extension: GNU parallel's s:\.[^/.]+$:: */
static size_t without_ext(const char *s, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (s[i] == '/')
            return n;
        if (s[i] == '.')
            return i + 1 < n ? i : n;
    }
    return n;
}

/* The part after the last '/'. */
static const char *base_name(const char *s, size_t n, size_t *len)
{
    size_t i = n;
    while (i > 0 && s[i - 1] != '/')
        i--;
    *len = n - i;
    return s + i;
}

/* The directory, as dirname(1) gives it. */
static const char *dir_name(const char *s, size_t n, size_t *len)
{
    while (n > 1 && s[n - 1] == '/')
        n--;
    size_t i = n;
    while (i > 0 && s[i - 1] != '/')
        i--;
    if (i == 0) {
        *len = 1;
        return n && s[0] == '/' ? "/" : ".";
    }
    n = i - 1; /* drop the slash and any before it */
    while (n > 1 && s[n - 1] == '/')
        n--;
    *len = n ? n : 1;
    return n ? s : "/";
}

/* Appends text to b, single-quoted for sh when quote is set. */
static int put_text(rs__buf *b, const char *s, size_t n, bool quote)
{
    if (!quote)
        return rs__buf_append(b, s, n);
    int rc = rs__buf_putc(b, '\'');
    for (size_t i = 0; !rc && i < n; i++)
        rc = s[i] == '\'' ? rs__buf_puts(b, "'\\''") : rs__buf_putc(b, s[i]);
    return rc ? rc : rs__buf_putc(b, '\'');
}

static int expand_word(const rs__cmdtpl *t, const word *w, const char *item, size_t n, uint64_t seq,
                       rs__buf *b)
{
    int rc = 0;
    for (size_t k = 0; !rc && k < w->n; k++) {
        const seg *s = &t->segs[w->first + k];
        const char *p = item;
        size_t len = n;
        switch (s->kind) {
        case SEG_TEXT:
            rc = rs__buf_append(b, t->lit.data + s->off, s->len);
            continue;
        case SEG_SEQ:
            rc = rs__buf_printf(b, "%llu", (unsigned long long)seq);
            continue;
        case SEG_ITEM:
            break;
        case SEG_NOEXT:
            len = without_ext(p, n);
            break;
        case SEG_BASE:
            p = base_name(item, n, &len);
            break;
        case SEG_DIR:
            p = dir_name(item, n, &len);
            break;
        case SEG_BASE_NOEXT:
            p = base_name(item, n, &len);
            len = without_ext(p, len);
            break;
        }
        rc = put_text(b, p, len, t->shell);
    }
    return rc;
}

/* ---- running ------------------------------------------------------------------------------ */

/* The outputs of an item whose command succeeded: one string per line of stdout (a last line
 * without a newline too). */
static int emit_lines(rs_call *call, const rs__buf *out)
{
    const char *s = out->data ? out->data : "";
    size_t n = out->len;
    while (n) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl ? (size_t)(nl - s) : n;
        rs_value *v = rs_value_stringn(s, len);
        if (!v || rs_call_emit(call, v))
            return rs_call_fail(call, "out of memory");
        s += len + (nl ? 1 : 0);
        n -= len + (nl ? 1 : 0);
    }
    return 0;
}

int rs__cmdtpl_run(rs_call *call, const rs__cmdtpl *t, uint64_t seq)
{
    const rs_value *item = rs_call_input(call);
    char *json = NULL;
    const char *text = "";
    size_t n = 0;
    if (rs_value_type(item) == RS_TSTRING) {
        text = rs_value_get_string(item, &n);
    } else if (item) {
        if (rs_json_encode(item, RS_JSON_REPAIR, &json, &n, NULL))
            return rs_call_fail(call, "the item cannot be written as text");
        text = json;
    }
    if (t->uses_item && memchr(text, '\0', n)) {
        rs_free(json);
        return rs_call_fail(call, "the item holds a NUL byte, which no argument can carry");
    }
    size_t nargs = t->shell ? 3 : t->nwords;
    size_t *ends = rs__malloc(nargs * sizeof *ends);
    const char **argv = rs__malloc((nargs + 1) * sizeof *argv);
    rs__buf b = {0};
    int rc = ends && argv ? 0 : RS_ENOMEM;
    if (t->shell) {
        rc = rc ? rc : rs__buf_append(&b, "sh\0-c", 6); /* both with their NUL */
        if (!rc)
            ends[0] = 2, ends[1] = 5;
    }
    for (size_t w = 0; !rc && w < t->nwords; w++) {
        rc = expand_word(t, &t->words[w], text, n, seq, &b);
        if (!rc) {
            ends[t->shell ? 2 : w] = b.len;
            rc = rs__buf_putc(&b, '\0');
        }
    }
    rs_free(json);
    if (rc) {
        rs__free(ends);
        rs__free(argv);
        rs__buf_free(&b);
        return rs_call_fail(call, "out of memory");
    }
    for (size_t w = 0; w < nargs; w++)
        argv[w] = b.data + (w ? ends[w - 1] + 1 : 0);
    argv[nargs] = NULL;
    rs__free(ends);

    rs__child c;
    rs__child_init(&c);
    c.err_keep = 4096;
    const char *name = argv[0];
    int err;
    if (t->literal0 && !t->path)
        err = ENOENT; /* not on PATH: known since the template was parsed */
    else {
        rs__child_spec spec = {.argv = argv, .path = t->shell ? "/bin/sh" : t->path};
        err = rs__child_start(&c, &spec);
    }
    if (err) {
        rc = err == ENOENT && !strchr(name, '/')
                 ? rs_call_fail(call, "%s: command not found", name)
                 : rs_call_fail(call, "%s: cannot run it: %s", name, strerror(err));
    } else {
        rs__exec *ex = rs__exec_current();
        int why = 0;
        bool timed_out = false;
        size_t limit = call->rs->mem_limit;
        int failure = rs__child_wait(&c, ex, NULL, 0, 0, limit, &why, &timed_out);
        const char *tail;
        size_t tail_len;
        rs__child_stderr_tail(&c, &tail, &tail_len);
        if (why) /* the invocation's stop or timeout: the caller reports it as such */
            rc = rs_call_fail(call, "%s", rs_strerror(why));
        else if (failure == EFBIG)
            rc = rs_call_fail(call, "%s: its output exceeds the runspace memory limit of %zu bytes",
                              name, limit);
        else if (failure)
            rc = rs_call_fail(call, "%s: %s", name, strerror(failure));
        else if (WIFSIGNALED(c.status))
            rc = rs_call_fail(
                call, "%s: killed by signal %d (SIG%s)%s%.*s", name, WTERMSIG(c.status),
                sigabbrev_np(WTERMSIG(c.status)) ? sigabbrev_np(WTERMSIG(c.status)) : "?",
                tail_len ? ": " : "", (int)tail_len, tail);
        else if (WEXITSTATUS(c.status))
            rc = rs_call_fail(call, "%s: exit code %d%s%.*s", name, WEXITSTATUS(c.status),
                              tail_len ? ": " : "", (int)tail_len, tail);
        else
            rc = emit_lines(call, &c.obuf);
    }
    rs__child_free(&c);
    rs__free(argv);
    rs__buf_free(&b);
    return rc;
}
