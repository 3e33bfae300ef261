/*
 * common.c -- helpers of the `runspace` program: messages, option parsing, the standard
 * descriptors, buffered output whose failures are never silent (a closed pipe ends the
 * program quietly), JSON text that keeps a record's shape, stopping on interrupts through a
 * sigwait thread, and the progress bar.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool bar_erase(void);

static void vmessage(const char *fmt, va_list ap)
{
    bar_erase(); /* a message never shares its line with the progress bar */
    fputs("runspace: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'runspace %s%s--help' for more information.\n", cmd ? cmd : "",
            cmd ? " " : "");
    return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, char *const argv[], int opt)
{
    /* A long option is the argument that getopt just passed (up to a '='); a short one is
     * getopt's optopt, since argv[optind - 1] may be a cluster (-vz) or the next argument. */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    char name[64];
    if (strncmp(arg, "--", 2) == 0)
        snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    else if (optopt > 0 && optopt < 128)
        snprintf(name, sizeof name, "-%c", optopt);
    else
        snprintf(name, sizeof name, "%s", arg);
    if (opt == ':')
        return cli_usage(cmd, "option '%s' needs a value", name);
    return cli_usage(cmd, "unknown option '%s'", name);
}

int parse_choice(const char *s, const char *const choices[])
{
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0)
            return i;
    }
    return -1;
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- parsing ------------------------------------------------------------------------------ */

bool parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Whether s is a plain decimal number: digits and at most a point, an exponent and its sign
 * (no blanks, no sign in front, no hexadecimal, no "inf" or "nan"). */
static bool plain_decimal(const char *s)
{
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '.' && isdigit((unsigned char)s[1])))
        return false;
    return strspn(s, "0123456789.eE+-") == strlen(s);
}

/* Whether s is an integer: an optional '-' and digits only. */
static bool plain_integer(const char *s, size_t len)
{
    size_t i = len && s[0] == '-' ? 1 : 0;
    if (i == len)
        return false;
    for (; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

bool parse_duration(const char *s, double max, double *out)
{
    if (!s || !plain_decimal(s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || isnan(v))
        return false;
    /* strtod says ERANGE for an overflow (then v is infinite, refused below) and for an
     * underflow, where v is 0 or subnormal with the sign of the text. */
    if (errno == ERANGE && fabs(v) < DBL_MIN && !signbit(v))
        v = DBL_MIN;
    if (!(v > 0) || !(v <= max))
        return false;
    *out = v;
    return true;
}

bool parse_bytes(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    unsigned long long mult = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mult = 1ull << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1ull << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1ull << 30;
        end++;
        break;
    default:
        break;
    }
    /* Then "B", or after a multiplier "iB" (1G, 1GB, 1GiB and 4096B all say bytes). */
    if (*end == 'B')
        end++;
    else if (mult > 1 && end[0] == 'i' && end[1] == 'B')
        end += 2;
    if (*end || v == 0 || v > SIZE_MAX / mult)
        return false;
    *out = (size_t)(v * mult);
    return true;
}

bool parse_range(const char *s, long long *a, long long *b)
{
    const char *dots = strstr(s, "..");
    if (!dots || !plain_integer(s, (size_t)(dots - s)) ||
        !plain_integer(dots + 2, strlen(dots + 2)))
        return false;
    char *end;
    errno = 0;
    *a = strtoll(s, &end, 10);
    if (errno || end != dots)
        return false;
    *b = strtoll(dots + 2, &end, 10);
    return !errno && !*end && *a <= *b;
}

rs_value *parse_value_text(const char *text)
{
    rs_value *v = NULL;
    if (rs_json_decode(text, strlen(text), &v, NULL) == 0)
        return v;
    return rs_value_string(text);
}

bool parse_assignment(const char *arg, char **name, rs_value **value)
{
    const char *eq = strchr(arg, '=');
    *name = NULL;
    *value = NULL;
    if (!eq || eq == arg)
        return false;
    *name = strndup(arg, (size_t)(eq - arg));
    *value = parse_value_text(eq + 1);
    if (*name && *value)
        return true;
    free(*name);
    rs_value_destroy(*value);
    *name = NULL;
    *value = NULL;
    return false;
}

size_t script_file_start(const char *text, size_t len)
{
    size_t at = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        at = 3;
    if (at < len && text[at] == '#') {
        const char *nl = memchr(text + at, '\n', len - at);
        at = nl ? (size_t)(nl - text) : len;
    }
    return at;
}

char *read_file(const char *path, size_t *len)
{
    bool std_in = strcmp(path, "-") == 0;
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    int err = 0;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n > SCRIPT_MAX_BYTES) {
            err = EFBIG; /* /dev/zero, say: never all of it */
            break;
        }
        if (cap - n - 1 == 0) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    if (!err && ferror(f))
        err = errno;
    if (!std_in)
        fclose(f);
    if (!buf || err) {
        free(buf);
        errno = err ? err : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

bool cli_modules_found(const char *const modules[], int n)
{
    for (int i = 0; i < n; i++) {
        const char *m = modules[i];
        size_t len = strlen(m);
        if (strchr(m, '/') || (len > 4 && strcmp(m + len - 4, ".lua") == 0))
            continue; /* a file: rs_iss_add_module reads it at once */
        /* A name: where a runspace would find it (package.path as it opens). */
        rs_ps *ps = NULL;
        rs_value *out = NULL;
        bool found = rs_ps_create(&ps) == 0 &&
                     rs_ps_add_script(ps, "return package.searchpath(..., package.path)", -1) == 0 &&
                     rs_ps_add_argument(ps, rs_value_string(m)) == 0 &&
                     rs_ps_invoke(ps, &out) == 0 &&
                     rs_value_type(rs_array_get(out, 0)) == RS_TSTRING;
        rs_value_destroy(out);
        rs_ps_destroy(ps);
        if (!found) {
            cli_error("cannot open module '%s': not found on package.path", m);
            return false;
        }
    }
    return true;
}

void script_file_hint(const char *script)
{
    struct stat st;
    if (!strchr(script, '\n') && stat(script, &st) == 0 && S_ISREG(st.st_mode))
        fprintf(stderr, "runspace: '%s' is a file: to run it, use -f %s\n", script, script);
}

bool range_overflows(const char *s)
{
    const char *dots = strstr(s, "..");
    if (!dots || !plain_integer(s, (size_t)(dots - s)) ||
        !plain_integer(dots + 2, strlen(dots + 2)))
        return false;
    errno = 0;
    strtoll(s, NULL, 10);
    bool over = errno == ERANGE;
    errno = 0;
    strtoll(dots + 2, NULL, 10);
    return over || errno == ERANGE;
}

void cli_read_error(const char *path, int err)
{
    if (err == EFBIG)
        cli_error("cannot read '%s': it is longer than %zu bytes, the most a script may be", path,
                  SCRIPT_MAX_BYTES);
    else
        cli_error("cannot read '%s': %s", path, strerror(err));
}

/* ---- standard descriptors ----------------------------------------------------------------- */

static bool closed_at_start[3];

void std_fds_reserve(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* The lower descriptors are open by now, so open() returns fd itself. No O_CLOEXEC:
         * commands that scripts start see the same closed-like stream. */
        int got = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
        if (got != fd) {
            static const char msg[] = "runspace: cannot open /dev/null in place of a closed "
                                      "standard descriptor\n";
            ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
            (void)ignored;
            _exit(1);
        }
        closed_at_start[fd] = true;
    }
}

bool std_closed(int fd)
{
    return fd >= 0 && fd <= 2 && closed_at_start[fd];
}

/* ---- stopping ------------------------------------------------------------------------------ */

static atomic_bool stop_requested;
static atomic_bool stop_armed; /* a command has set a stop function: it is past its setup */
static atomic_bool was_interrupted;
static void (*stop_fn)(void *);
static void *stop_ud;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;

/* Calls the stop function once, whoever asks first. */
static void request_stop(void)
{
    if (atomic_exchange(&stop_requested, true))
        return;
    pthread_mutex_lock(&stop_mu);
    if (stop_fn)
        stop_fn(stop_ud);
    pthread_mutex_unlock(&stop_mu);
}

void on_stop(void (*fn)(void *), void *userdata)
{
    if (fn)
        atomic_store(&stop_armed, true);
    pthread_mutex_lock(&stop_mu);
    stop_fn = fn;
    stop_ud = userdata;
    bool already = atomic_load(&stop_requested);
    pthread_mutex_unlock(&stop_mu);
    if (already && fn)
        fn(userdata);
}

/* ---- output ------------------------------------------------------------------------------- */

/* The buffer of stdout: our own rather than stdio's, so that a write that would block (a
 * non-blocking pipe whose reader is slow) waits in poll() instead of failing, and so that
 * what was written is always known. Used by one thread at a time (the command's). */
#define OUT_CAP ((size_t)1 << 20)
static char *out_buf;
static size_t out_used;
static atomic_int out_errno;

void out_init(void)
{
    /* SIGPIPE is ignored so that a closed pipe shows up as EPIPE here, where it ends the program
     * quietly once the current line is dropped. */
    signal(SIGPIPE, SIG_IGN);
    out_buf = malloc(OUT_CAP);
}

/* The reader of our output went away: leave as `yes | head -1` does. */
static void closed_pipe(void)
{
    fflush(stderr);
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    _exit(141);
}

/* A write failed with err: a closed pipe ends the program; anything else is kept, and stops
 * the command, since its records can no longer reach anyone. */
static void out_failed(int err)
{
    if (err == EPIPE)
        closed_pipe();
    int none = 0;
    if (atomic_compare_exchange_strong(&out_errno, &none, err ? err : EIO))
        request_stop();
}

/* Writes all of data[0..len) to stdout, waiting while it would block; false on an error. */
static bool write_all(const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                out_failed(errno);
                return false;
            }
        } else if (n < 0 && errno != EINTR) {
            out_failed(errno);
            return false;
        } else if (n == 0) {
            out_failed(EIO);
            return false;
        }
    }
    return true;
}

void out_write(const char *data, size_t len)
{
    if (!len || atomic_load(&out_errno))
        return;
    if (!out_buf || len > OUT_CAP - out_used) {
        out_flush();
        if (!out_buf || len >= OUT_CAP) {
            bar_erase_for_stdout();
            write_all(data, len);
            return;
        }
    }
    memcpy(out_buf + out_used, data, len);
    out_used += len;
}

void out_puts(const char *s)
{
    out_write(s, strlen(s));
}

void out_putc(char c)
{
    out_write(&c, 1);
}

void out_flush(void)
{
    size_t n = out_used;
    out_used = 0;
    if (n && !atomic_load(&out_errno)) {
        bar_erase_for_stdout();
        write_all(out_buf, n);
    }
}

int out_error(void)
{
    return atomic_load(&out_errno);
}

bool out_finish(void)
{
    out_flush();
    int err = atomic_load(&out_errno);
    if (!err)
        return true;
    if (err == EBADF && std_closed(STDOUT_FILENO))
        cli_error("cannot write output: standard output is closed");
    else
        cli_error("cannot write output: %s", strerror(err));
    return false;
}

/* ---- JSON text ---------------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (n > 0 bytes available), or 0 when the bytes
 * there are not one: a stray continuation byte, a truncated sequence, an overlong form, a
 * surrogate or a code point beyond U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        if (s[0] == 0xe0)
            lo = 0xa0; /* overlong below */
        else if (s[0] == 0xed)
            hi = 0x9f; /* surrogates above */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        if (s[0] == 0xf0)
            lo = 0x90; /* overlong below */
        else if (s[0] == 0xf4)
            hi = 0x8f; /* beyond U+10FFFF above */
    } else {
        return 0;
    }
    if (len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    return len;
}

static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, n; i < len; i += n) {
        if (!(n = utf8_sequence(p + i, len - i)))
            return false;
    }
    return true;
}

/* s[0..len) with each byte that is not part of valid UTF-8 replaced by U+FFFD, in a new
 * NUL-terminated string (free); *out_len gets its length. NULL when out of memory. */
static char *utf8_repair(const char *s, size_t len, size_t *out_len)
{
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *r = malloc(3 * len + 1);
    if (!r)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_sequence(p + i, len - i);
        if (k) {
            memcpy(r + n, s + i, k);
            n += k;
            i += k;
        } else {
            memcpy(r + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        }
    }
    r[n] = '\0';
    *out_len = n;
    return r;
}

char *utf8_text(const char *s)
{
    size_t len = strlen(s), n;
    return utf8_valid(s, len) ? strdup(s) : utf8_repair(s, len, &n);
}

/* rs_json_encode (repairing what JSON cannot carry) into a malloc'ed string; RS_E* on
 * failure. */
static int encode(const rs_value *v, char **text)
{
    char *lib = NULL;
    size_t len;
    int rc = rs_json_encode(v, RS_JSON_REPAIR, &lib, &len, NULL);
    *text = NULL;
    if (rc)
        return rc;
    *text = malloc(len + 1);
    if (*text)
        memcpy(*text, lib, len + 1);
    rs_free(lib);
    return *text ? 0 : RS_ENOMEM;
}

char *json_text(const rs_value *v)
{
    char *text;
    if (encode(v, &text) == RS_EVALUE)
        text = strdup("null"); /* nested deeper than JSON may be: nothing to keep */
    return text;
}

void out_value_raw(const rs_value *v)
{
    char num[32];
    if (rs_value_type(v) == RS_TSTRING) {
        size_t len;
        const char *s = rs_value_get_string(v, &len);
        out_write(s, len);
    } else if (rs_value_type(v) == RS_TINT) {
        /* By hand: this is the hot path of raw output. */
        int64_t x = rs_value_get_int(v);
        uint64_t u = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
        char *p = num + sizeof num;
        do
            *--p = (char)('0' + u % 10);
        while (u /= 10);
        if (x < 0)
            *--p = '-';
        out_write(p, (size_t)(num + sizeof num - p));
    } else {
        char *text = json_text(v);
        out_puts(text ? text : "null");
        free(text);
    }
    out_putc('\n');
}

/* ---- interrupts --------------------------------------------------------------------------- */

static atomic_bool resized = true; /* the terminal's width is to be read (again) */

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGWINCH) {
            atomic_store(&resized, true); /* the bar reads the new width when it next draws */
            continue;
        }
        /* A second interrupt: do not wait for a clean stop. An interrupt during the setup
         * (options, reading a script from a FIFO, opening a runspace): there is nothing to
         * stop cleanly and nothing written yet, and the read that blocks may never end. */
        if (atomic_exchange(&was_interrupted, true) || !atomic_load(&stop_armed)) {
            /* On a line of its own: in place of the bar, or below the echoed ^C. */
            fputs(bar_erase() ? "runspace: interrupted\n" : "\nrunspace: interrupted\n", stderr);
            _exit(EXIT_INTERRUPTED);
        }
        request_stop();
    }
    return NULL;
}

void signals_init(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGWINCH); /* a resized terminal: the progress bar fits itself again */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, &set) == 0)
        pthread_detach(t);
}

bool interrupted(void)
{
    return atomic_load(&was_interrupted);
}

/* ---- progress bar ------------------------------------------------------------------------- */

/* The bar is one line on stderr that each draw rewrites in place ("\r...\033[K"). It never
 * reaches the terminal's last column, so it never wraps (a wrapped bar would leave a line of
 * debris at each draw), and it is erased before anything else is written to the terminal: a
 * message on stderr, and a line on stdout when stdout is a terminal too (the same screen, in
 * practice). The width is read with TIOCGWINSZ when the first bar is drawn and again after
 * each SIGWINCH, which the signal thread turns into the `resized` flag. Drawn and erased on
 * the command's thread; `bar_shown` lets a message from another thread erase it too. */
static atomic_bool bar_shown;
static int bar_columns = 80;
static int stdout_tty = -1; /* unknown until the first write after a bar was drawn */

/* Erases the bar when it is on the screen; true if it was. */
static bool bar_erase(void)
{
    if (!atomic_exchange(&bar_shown, false))
        return false;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    return true;
}

void bar_erase_for_stdout(void)
{
    if (!atomic_load(&bar_shown))
        return;
    if (stdout_tty < 0)
        stdout_tty = isatty(STDOUT_FILENO);
    if (stdout_tty)
        bar_erase();
}

void bar_init(progress_bar *b, int mode, const char *label)
{
    b->enabled = mode > 0 || (mode < 0 && isatty(STDERR_FILENO));
    b->last_draw = 0;
    b->label = label;
}

static void format_duration(char *buf, size_t size, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

/* The columns of the terminal on stderr (80 when it is not one), read again after a SIGWINCH. */
static int terminal_columns(void)
{
    if (atomic_exchange(&resized, false)) {
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
            bar_columns = ws.ws_col;
    }
    return bar_columns;
}

/* The bar's line, at most `width` bytes: with everything when it fits, else with a shorter
 * bar, then without the bar, the rate, the ETA, and at last cut short. */
static void bar_line(char *line, size_t size, int width, const progress_bar *b, uint64_t done,
                     uint64_t total, double elapsed)
{
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char rate_text[32];
    if (rate >= 1e6)
        snprintf(rate_text, sizeof rate_text, "%.1fM/s", rate / 1e6);
    else if (rate >= 1e3)
        snprintf(rate_text, sizeof rate_text, "%.1fk/s", rate / 1e3);
    else
        snprintf(rate_text, sizeof rate_text, "%.0f/s", rate);
    if (!total) {
        char el[32];
        format_duration(el, sizeof el, elapsed);
        int n = snprintf(line, size, "%s %llu done %s elapsed %s", b->label,
                         (unsigned long long)done, rate_text, el);
        if (n > width)
            snprintf(line, size, "%s %llu done", b->label, (unsigned long long)done);
    } else {
        double frac = (double)done / (double)total;
        if (frac > 1)
            frac = 1;
        char eta[32] = "-";
        if (rate > 0 && done < total)
            format_duration(eta, sizeof eta, (double)(total - done) / rate);
        else if (done >= total)
            snprintf(eta, sizeof eta, "0:00");
        char counts[64];
        snprintf(counts, sizeof counts, "%llu/%llu %3.0f%%", (unsigned long long)done,
                 (unsigned long long)total, frac * 100);
        /* Without the bar, then the longest bar that fits, from 30 down to 10 cells. */
        int bare = snprintf(line, size, "%s %s %s ETA %s", b->label, counts, rate_text, eta);
        int cells = width - bare - 3; /* " [" and "]" */
        if (cells > 30)
            cells = 30;
        if (cells >= 10) {
            char bar[31];
            int fill = (int)(frac * cells);
            for (int i = 0; i < cells; i++)
                bar[i] = i < fill ? '#' : '.';
            bar[cells] = '\0';
            snprintf(line, size, "%s [%s] %s %s ETA %s", b->label, bar, counts, rate_text, eta);
        } else if (bare > width) {
            int n = snprintf(line, size, "%s %s ETA %s", b->label, counts, eta);
            if (n > width)
                snprintf(line, size, "%s %s", b->label, counts);
        }
    }
    if (width >= 0 && strlen(line) > (size_t)width)
        line[width] = '\0';
}

void bar_draw(progress_bar *b, uint64_t done, uint64_t total, double elapsed, bool force)
{
    if (!b->enabled)
        return;
    double now = now_seconds();
    if (!force && now - b->last_draw < 0.1)
        return;
    b->last_draw = now;
    /* One column short of the edge: writing the last column would wrap on some terminals. */
    int width = terminal_columns() - 1;
    char line[256];
    bar_line(line, sizeof line, width < (int)sizeof line - 1 ? width : (int)sizeof line - 1, b,
             done, total, elapsed);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    atomic_store(&bar_shown, true);
}

void bar_clear(progress_bar *b)
{
    if (b->enabled)
        bar_erase();
}
