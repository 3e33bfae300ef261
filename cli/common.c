/*
 * common.c -- helpers of the `runspace` program: messages, option parsing, buffered output
 * that ends quietly on a closed pipe, interrupt handling through a sigwait thread, and the
 * progress bar.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void vmessage(const char *fmt, va_list ap)
{
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
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool parse_seconds(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v <= 0)
        return false;
    *out = v;
    return true;
}

bool parse_bytes(const char *s, size_t *out)
{
    if (!s || !*s || *s == '-')
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
    if (*end == 'i' || *end == 'B')
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    if (*end || v == 0 || v > SIZE_MAX / mult)
        return false;
    *out = (size_t)(v * mult);
    return true;
}

bool parse_range(const char *s, long long *a, long long *b)
{
    const char *dots = strstr(s, "..");
    if (!dots || dots == s || !dots[2])
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
    if (!eq || eq == arg)
        return false;
    *name = strndup(arg, (size_t)(eq - arg));
    *value = parse_value_text(eq + 1);
    return *name && *value;
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
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
    int err = ferror(f) ? errno : 0;
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

/* ---- output ------------------------------------------------------------------------------- */

static char *out_buf;

void out_init(void)
{
    /* SIGPIPE is ignored so that a closed pipe shows up as EPIPE here, where it ends the program
     * quietly once the current line is dropped. */
    signal(SIGPIPE, SIG_IGN);
    out_buf = malloc(1 << 20);
    if (out_buf)
        setvbuf(stdout, out_buf, _IOFBF, 1 << 20);
}

/* The reader of our output went away: leave as `yes | head -1` does. */
static void closed_pipe(void)
{
    fflush(stderr);
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    _exit(141);
}

void out_write(const char *data, size_t len)
{
    if (len && fwrite(data, 1, len, stdout) != len) {
        if (errno == EPIPE)
            closed_pipe();
        cli_error("cannot write output: %s", strerror(errno));
        exit(1);
    }
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
    if (fflush(stdout) != 0) {
        if (errno == EPIPE)
            closed_pipe();
        cli_error("cannot write output: %s", strerror(errno));
        exit(1);
    }
}

char *json_text(const rs_value *v)
{
    char *lib = NULL;
    size_t len;
    if (rs_json_encode(v, 0, &lib, &len, NULL) == 0) {
        char *text = malloc(len + 1);
        if (text)
            memcpy(text, lib, len + 1);
        rs_free(lib);
        return text;
    }
    /* Not representable as JSON: say so readably rather than lose the record. */
    if (rs_value_type(v) == RS_TDOUBLE) {
        double d = rs_value_get_double(v);
        return strdup(isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
    }
    return strdup(rs_value_type(v) == RS_TSTRING ? "\"<bytes that are not UTF-8>\""
                                                 : "\"<a value JSON cannot carry>\"");
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

static atomic_bool was_interrupted;
static void (*interrupt_fn)(void *);
static void *interrupt_ud;
static pthread_mutex_t interrupt_mu = PTHREAD_MUTEX_INITIALIZER;

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        if (atomic_exchange(&was_interrupted, true)) {
            /* A second interrupt: do not wait for a clean stop. */
            fputs("\nrunspace: interrupted\n", stderr);
            _exit(EXIT_INTERRUPTED);
        }
        pthread_mutex_lock(&interrupt_mu);
        if (interrupt_fn)
            interrupt_fn(interrupt_ud);
        pthread_mutex_unlock(&interrupt_mu);
    }
    return NULL;
}

void signals_init(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, &set) == 0)
        pthread_detach(t);
}

void signals_on_interrupt(void (*fn)(void *), void *userdata)
{
    pthread_mutex_lock(&interrupt_mu);
    interrupt_fn = fn;
    interrupt_ud = userdata;
    bool already = atomic_load(&was_interrupted);
    pthread_mutex_unlock(&interrupt_mu);
    if (already && fn)
        fn(userdata);
}

bool interrupted(void)
{
    return atomic_load(&was_interrupted);
}

/* ---- progress bar ------------------------------------------------------------------------- */

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

void bar_draw(progress_bar *b, uint64_t done, uint64_t total, double elapsed, bool force)
{
    if (!b->enabled)
        return;
    double now = now_seconds();
    if (!force && now - b->last_draw < 0.1)
        return;
    b->last_draw = now;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char rate_text[32];
    if (rate >= 1e6)
        snprintf(rate_text, sizeof rate_text, "%.1fM/s", rate / 1e6);
    else if (rate >= 1e3)
        snprintf(rate_text, sizeof rate_text, "%.1fk/s", rate / 1e3);
    else
        snprintf(rate_text, sizeof rate_text, "%.0f/s", rate);
    char line[160];
    if (total) {
        double frac = (double)done / (double)total;
        if (frac > 1)
            frac = 1;
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        char eta[32] = "-";
        if (rate > 0 && done < total)
            format_duration(eta, sizeof eta, (double)(total - done) / rate);
        else if (done >= total)
            snprintf(eta, sizeof eta, "0:00");
        snprintf(line, sizeof line, "%s [%s] %llu/%llu %3.0f%% %s ETA %s", b->label, bar,
                 (unsigned long long)done, (unsigned long long)total, frac * 100, rate_text, eta);
    } else {
        char el[32];
        format_duration(el, sizeof el, elapsed);
        snprintf(line, sizeof line, "%s %llu done %s elapsed %s", b->label,
                 (unsigned long long)done, rate_text, el);
    }
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
}

void bar_clear(progress_bar *b)
{
    if (b->enabled && b->last_draw > 0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}
