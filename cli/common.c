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
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool bar_erase(void);
static bool bar_erase_now(void);

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

bool check_parameter(const char *name, char *const names[], int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            cli_error("'%s' is already given as a parameter", name);
            return false;
        }
    }
    /* The rule --var follows, from the library itself: a fresh session state refuses a
     * built-in name (RS_EEXIST), and only that (other names are the parameter's own). */
    rs_iss *iss = NULL;
    rs_value *v = rs_value_null();
    int rc = v && rs_iss_create(RS_PROFILE_DEFAULT, &iss) == 0 ? rs_iss_set_variable(iss, name, v)
                                                               : RS_ENOMEM;
    if (rc == RS_EEXIST)
        cli_error("%s", rs_iss_errmsg(iss));
    rs_iss_destroy(iss);
    rs_value_destroy(v);
    return rc != RS_EEXIST;
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
        bool found =
            rs_ps_create(&ps) == 0 &&
            rs_ps_add_script(ps, "return package.searchpath(..., package.path)", -1) == 0 &&
            rs_ps_add_argument(ps, rs_value_string(m)) == 0 && rs_ps_invoke(ps, &out) == 0 &&
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

/* The buffer of stdout: our own rather than stdio's, so that a write that would block waits
 * in poll(), where an interrupt can end the wait, and so that what was written is always
 * known. Used by one thread at a time (the command's).
 *
 * Where it goes: out_fd is a descriptor of the output of its own (a pipe or terminal opened
 * anew through /proc, non-blocking; a socket is written with MSG_DONTWAIT), so that no write
 * blocks and none changes the flags of a description other processes share; a regular file
 * is written through fd 1 itself (it never blocks, and its offset is shared with the shell). */
#define OUT_CAP ((size_t)1 << 20)
/* Once interrupted, how long a write waits for a reader that takes nothing before the
 * output is dropped (ms): a reader that reads gets the records of finished items; one that
 * does not (`| sleep 60`, a pager left open) does not hold the program. */
#define OUT_INTERRUPT_GRACE_MS 1000
static char *out_buf;
static size_t out_used;
static atomic_int out_errno;
static int out_fd = STDOUT_FILENO;
static bool out_socket;
static atomic_bool out_dropped; /* interrupted while the reader took nothing: output dropped */
static int interrupt_fd = -1;   /* readable once a signal came (read end of a pipe) */
static bool out_is_private;     /* out_private ran: fd 1 is stderr's copy */
static int interrupt_wfd = -1;

/* Lines that workers write to stderr (bar_line) go through a description of its own too, so
 * that a stderr nobody reads cannot hold a worker, and with it the end of an interrupted run,
 * for ever; once interrupted, what such a reader does not take is dropped as on stdout. */
static int err_fd = STDERR_FILENO;
static atomic_bool err_dropped;

/* A non-blocking description of our own of standard descriptor fd (0-2) when it is a pipe
 * or a terminal: O_NONBLOCK on it is seen by no one else. Else (a pipe whose reader is gone,
 * ENXIO; a system without /proc; a file, which never blocks) fd itself. */
static int own_description(int fd, const struct stat *st)
{
    if (!S_ISFIFO(st->st_mode) && !isatty(fd))
        return fd;
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int own = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat again;
    if (own >= 0 && fstat(own, &again) == 0 && again.st_dev == st->st_dev &&
        again.st_ino == st->st_ino)
        return own;
    if (own >= 0)
        close(own);
    return fd;
}

void out_init(void)
{
    /* SIGPIPE is ignored so that a closed pipe shows up as EPIPE here, where it ends the program
     * quietly once the current line is dropped. */
    signal(SIGPIPE, SIG_IGN);
    out_buf = malloc(OUT_CAP);
    struct stat st;
    if (!std_closed(STDERR_FILENO) && fstat(STDERR_FILENO, &st) == 0)
        err_fd = own_description(STDERR_FILENO, &st);
    if (std_closed(STDOUT_FILENO) || fstat(STDOUT_FILENO, &st) != 0)
        return;
    if (S_ISSOCK(st.st_mode))
        out_socket = true;
    else
        out_fd = own_description(STDOUT_FILENO, &st);
}

int out_descriptor(void)
{
    return out_fd;
}

void out_private(void)
{
    if (std_closed(STDOUT_FILENO))
        return;
    if (out_fd == STDOUT_FILENO) {
        int fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return; /* no descriptor left: records and stray writes share fd 1 */
        out_fd = fd;
    }
    fflush(stdout);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    out_is_private = true;
}

/* What the process wrote through stdio's stdout (a script's io.write in `run`) goes out
 * before what is written here, so that stdout keeps the order things were written in, as
 * print and io.write share one buffer in lua5.4. Not once out_private ran: fd 1 is stderr's
 * copy then, and a script's writes are kept apart from the records. A flush may wait for the
 * reader as long as the script's own io.write would have. */
static void stdio_first(void)
{
    if (!out_is_private)
        fflush(stdout);
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

/* Waits until fd takes data; false when the program was interrupted and the reader took
 * nothing for OUT_INTERRUPT_GRACE_MS (*err stays 0: the output is to be dropped), or on a
 * poll error (*err set). */
static bool wait_writable(int fd, int *err)
{
    *err = 0;
    double give_up = 0; /* once interrupted: when the wait ends (a signal may cut poll short,
                         * as the library's interruption signals do on worker threads) */
    for (;;) {
        bool late = interrupted();
        int ms = -1;
        if (late) {
            double now = now_seconds();
            if (!give_up)
                give_up = now + OUT_INTERRUPT_GRACE_MS / 1000.0;
            if (now >= give_up)
                return false;
            ms = (int)((give_up - now) * 1000) + 1;
        }
        struct pollfd p[2] = {{.fd = fd, .events = POLLOUT},
                              {.fd = late ? -1 : interrupt_fd, .events = POLLIN}};
        int n = poll(p, 2, ms);
        if (n < 0 && errno != EINTR) {
            *err = errno;
            return false;
        }
        if (n > 0 && p[0].revents)
            return true; /* writable, or an error the write will report */
    }
}

/* Writes all of data[0..len) to stdout, waiting while it would block; false on an error or
 * once the output was dropped after an interrupt. */
static bool write_all(const char *data, size_t len)
{
    while (len) {
        if (atomic_load(&out_dropped))
            return false;
        ssize_t n = out_socket ? send(out_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                               : write(out_fd, data, len);
        if (n < 0 && out_socket && errno == ENOTSOCK) {
            out_socket = false;
            continue;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int err;
            if (!wait_writable(out_fd, &err)) {
                if (err)
                    out_failed(err);
                else
                    atomic_store(&out_dropped, true);
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
    if (!len || atomic_load(&out_errno) || atomic_load(&out_dropped))
        return;
    if (!out_buf || len > OUT_CAP - out_used) {
        out_flush();
        if (!out_buf || len >= OUT_CAP) {
            bar_erase_for_stdout();
            stdio_first();
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
    if (n && !atomic_load(&out_errno) && !atomic_load(&out_dropped)) {
        bar_erase_for_stdout();
        stdio_first();
        write_all(out_buf, n);
    }
}

int out_error(void)
{
    return atomic_load(&out_errno);
}

bool out_stopped(void)
{
    return atomic_load(&out_errno) || atomic_load(&out_dropped);
}

bool out_finish(void)
{
    out_flush();
    if (atomic_load(&out_dropped)) {
        cli_error("output not written in full: interrupted while its reader took nothing");
        return true; /* the command's status (130) says it */
    }
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

/* Hands encoded text to the output; asks the encoder to stop once output has stopped. */
static int out_sink(const char *data, size_t len, void *ud)
{
    (void)ud;
    out_write(data, len);
    return out_stopped();
}

int json_stream(const rs_value *v, rs_json_sink_fn sink, void *ud)
{
    int rc = rs_json_encode_stream(v, RS_JSON_REPAIR, sink, ud, NULL);
    if (rc == RS_EVALUE)
        rc = sink("null", 4, ud); /* nested deeper than JSON may be: refused before any text */
    return rc;
}

void out_json(const rs_value *v)
{
    json_stream(v, out_sink, NULL);
}

/* Collects the first bytes of a text, up to cap, then asks to stop. */
typedef struct json_head {
    char *buf;
    size_t len, cap;
} json_head;

static int prefix_sink(const char *data, size_t len, void *ud)
{
    json_head *p = ud;
    size_t take = len < p->cap - p->len ? len : p->cap - p->len;
    memcpy(p->buf + p->len, data, take);
    p->len += take;
    return p->len == p->cap;
}

char *json_prefix(const rs_value *v, size_t max, bool *cut)
{
    json_head p = {malloc(max + 2), 0, max + 1};
    if (!p.buf)
        return NULL;
    json_stream(v, prefix_sink, &p);
    *cut = p.len > max;
    p.buf[p.len > max ? max : p.len] = '\0';
    return p.buf;
}

char *display_text(const char *s, size_t len, size_t max)
{
    /* At most 8 bytes per input byte ("\u{9B}" stands for 2 bytes; "\x1B" for 1). */
    if (!max && len > (SIZE_MAX - 16) / 8)
        return NULL;
    char *r = malloc(max ? max + 16 : 8 * len + 16);
    if (!r)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0, fit = 0; /* fit: the longest text so far that leaves room for "..." */
    bool cut = false;
    for (size_t i = 0; i < len;) {
        char piece[8];
        size_t m, k = utf8_sequence(p + i, len - i);
        if (k == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            const char *esc = p[i] == '\n'   ? "\\n"
                              : p[i] == '\r' ? "\\r"
                              : p[i] == '\t' ? "\\t"
                                             : NULL;
            m = esc ? (size_t)snprintf(piece, sizeof piece, "%s", esc)
                    : (size_t)snprintf(piece, sizeof piece, "\\x%02X", p[i]);
        } else if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            m = (size_t)snprintf(piece, sizeof piece, "\\u{%X}", p[i + 1]); /* C1 control */
        } else if (k) {
            memcpy(piece, s + i, k);
            m = k;
        } else {
            memcpy(piece, "\xef\xbf\xbd", 3);
            m = 3;
            k = 1;
        }
        if (max && n + m > max) {
            cut = true;
            break;
        }
        memcpy(r + n, piece, m);
        n += m;
        if (!max || n + 3 <= max)
            fit = n;
        i += k;
    }
    if (cut) {
        n = fit;
        memcpy(r + n, "...", 3);
        n += 3;
    }
    r[n] = '\0';
    return r;
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
        out_json(v);
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
            fputs(bar_erase_now() ? "runspace: interrupted\n" : "\nrunspace: interrupted\n",
                  stderr);
            _exit(EXIT_INTERRUPTED);
        }
        /* A write waiting for a reader now waits only a little (wait_writable). */
        if (interrupt_wfd >= 0) {
            ssize_t ignored = write(interrupt_wfd, "x", 1);
            (void)ignored;
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
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
        interrupt_fd = p[0];
        interrupt_wfd = p[1];
    }
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
 * each SIGWINCH, which the signal thread turns into the `resized` flag.
 *
 * stderr is written by the command's thread (the bar, messages) and, in foreach, by the
 * pool's workers (stream lines, see bar_line): stderr_mu keeps each line whole and the bar
 * below them; bar_shown (read without it for a fast "no bar" answer) and bar_last change
 * under it. */
static pthread_mutex_t stderr_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool bar_shown;
static char bar_last[256]; /* the line the bar showed last */
static int bar_columns = 80;
static int stdout_tty = -1; /* unknown until the first write after a bar was drawn */

/* Erases the bar when it is on the screen; true if it was. stderr_mu held. */
static bool erase_locked(void)
{
    if (!atomic_exchange(&bar_shown, false))
        return false;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    return true;
}

static bool bar_erase(void)
{
    if (!atomic_load(&bar_shown))
        return false;
    pthread_mutex_lock(&stderr_mu);
    bool was = erase_locked();
    pthread_mutex_unlock(&stderr_mu);
    return was;
}

/* bar_erase for the signal thread on its way out: it must not wait for a writer that holds
 * the lock (one waiting for a reader of stderr), so it erases only when the lock is free. */
static bool bar_erase_now(void)
{
    if (!atomic_load(&bar_shown) || pthread_mutex_trylock(&stderr_mu) != 0)
        return false;
    bool was = erase_locked();
    pthread_mutex_unlock(&stderr_mu);
    return was;
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
static void bar_text(char *line, size_t size, int width, const progress_bar *b, uint64_t done,
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
    pthread_mutex_lock(&stderr_mu);
    int width = terminal_columns() - 1;
    bar_text(bar_last, sizeof bar_last,
             width < (int)sizeof bar_last - 1 ? width : (int)sizeof bar_last - 1, b, done, total,
             elapsed);
    fprintf(stderr, "\r%s\033[K", bar_last);
    fflush(stderr);
    atomic_store(&bar_shown, true);
    pthread_mutex_unlock(&stderr_mu);
}

void bar_clear(progress_bar *b)
{
    if (b->enabled)
        bar_erase();
}

void bar_line(progress_bar *b, const char *prefix, const char *text, size_t len)
{
    (void)b; /* one bar at a time: its state is the module's */
    /* One write for all of it: other processes (commands that scripts start) write to the
     * same stderr, and a line must not be split by theirs. */
    size_t plen = strlen(prefix);
    char *line = len < SIZE_MAX - plen - sizeof bar_last - 16
                     ? malloc(plen + len + sizeof bar_last + 16)
                     : NULL;
    pthread_mutex_lock(&stderr_mu);
    bool was_shown = atomic_load(&bar_shown);
    if (!line) {
        erase_locked();
        fputs(prefix, stderr);
        fwrite(text, 1, len, stderr);
        fputc('\n', stderr);
        fflush(stderr);
    } else {
        size_t n = 0;
        if (was_shown) {
            memcpy(line, "\r\033[K", 4);
            n = 4;
        }
        memcpy(line + n, prefix, plen);
        n += plen;
        memcpy(line + n, text, len);
        n += len;
        line[n++] = '\n';
        if (was_shown)
            n += (size_t)snprintf(line + n, sizeof bar_last + 8, "%s\033[K", bar_last);
        fflush(stderr);
        for (size_t at = 0; at < n && !atomic_load(&err_dropped);) {
            ssize_t w = write(err_fd, line + at, n - at);
            int err;
            if (w > 0) {
                at += (size_t)w;
            } else if (w < 0 && errno == EAGAIN) {
                if (!wait_writable(err_fd, &err)) {
                    if (!err)
                        atomic_store(&err_dropped, true); /* a reader that takes nothing */
                    break;
                }
            } else if (w < 0 && errno != EINTR) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&stderr_mu);
    free(line);
}
