/*
 * test_terminal.c -- the progress bar on a real pseudo-terminal (forkpty): the program's
 * stdout and stderr are both the terminal, as in an interactive shell. What reaches the
 * terminal is replayed through a small model of a screen line (carriage return, erase to end
 * of line, newline), which shows what a user would see: every line written (records on stdout,
 * messages on stderr) stands alone, never sharing its line with bar debris; the bar never
 * reaches the last column (so it never wraps); and after the terminal is resized (SIGWINCH)
 * the bar fits the new width.
 */
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* A running program on a terminal of its own, and what it wrote there. */
typedef struct term {
    pid_t pid;
    int master;
    char *buf;
    size_t len;
} term;

static void term_start(term *t, char *const argv[], int cols)
{
    struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
    memset(t, 0, sizeof *t);
    t->pid = forkpty(&t->master, NULL, NULL, &ws);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
}

/* Reads what the program writes for at most `seconds`; false once it has closed the terminal
 * (it exited). */
static bool term_read(term *t, double seconds)
{
    double end = rs_test_now() + seconds;
    for (;;) {
        double left = end - rs_test_now();
        if (left <= 0)
            return true;
        struct pollfd p = {.fd = t->master, .events = POLLIN};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        char chunk[65536];
        ssize_t got = read(t->master, chunk, sizeof chunk);
        if (got <= 0)
            return false; /* EIO: the last descriptor of the terminal's other side closed */
        t->buf = realloc(t->buf, t->len + (size_t)got + 1);
        memcpy(t->buf + t->len, chunk, (size_t)got);
        t->len += (size_t)got;
        t->buf[t->len] = '\0';
    }
}

/* Reads until the program exits (at most `limit` seconds); returns its exit status. */
static int term_finish(term *t, double limit)
{
    double end = rs_test_now() + limit;
    while (term_read(t, 0.2)) {
        if (rs_test_now() > end) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, NULL, 0);
            fail_msg("the program did not finish within %.0f s", limit);
        }
    }
    int st;
    waitpid(t->pid, &st, 0);
    close(t->master);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A model of the terminal's current line. */
typedef struct screen {
    char line[4096];
    size_t len, cursor;
    size_t widest; /* the furthest column the cursor reached (columns written, counted from 1) */
    size_t bar_widest; /* the same for the bar's own text */
    size_t lines;      /* lines completed */
    size_t bars;       /* lines that were erased or overwritten while holding a bar */
    bool (*line_ok)(const char *line);
    const char *bar_label;
} screen;

/* Replays bytes [from, to) of what the program wrote. */
static void replay(screen *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\033') {
            /* The program writes one escape sequence: ESC [ K, erase to end of line. */
            if (i + 2 >= n || p[i + 1] != '[' || p[i + 2] != 'K')
                fail_msg("unexpected escape sequence at byte %zu", i);
            i += 2;
            s->line[s->len] = '\0';
            if (s->len && strstr(s->line, s->bar_label))
                s->bars++;
            /* A draw ends with this erase, right after the bar's text. */
            if (s->cursor && strncmp(s->line, s->bar_label, strlen(s->bar_label)) == 0 &&
                s->cursor > s->bar_widest)
                s->bar_widest = s->cursor;
            s->len = s->cursor;
            continue;
        }
        if (c == '\r') {
            s->cursor = 0;
            continue;
        }
        if (c == '\n') {
            s->line[s->len] = '\0';
            if (!s->line_ok(s->line))
                fail_msg("line %zu is \"%s\": not a line the program writes whole (bar debris?)",
                         s->lines + 1, s->line);
            s->lines++;
            s->len = s->cursor = 0;
            continue;
        }
        if (s->cursor >= sizeof s->line - 1)
            fail_msg("a line longer than %zu bytes", sizeof s->line - 1);
        s->line[s->cursor++] = c;
        if (s->cursor > s->len)
            s->len = s->cursor;
        if (s->cursor > s->widest)
            s->widest = s->cursor;
    }
}

/* A record of `foreach 'return _'` or an item's error message. */
static bool foreach_line(const char *line)
{
    if (strncmp(line, "runspace: input ", 16) == 0)
        return strstr(line, ": error: ") != NULL;
    if (!*line)
        return false;
    return strspn(line, "0123456789") == strlen(line);
}

/* Records on stdout and messages on stderr, both on the terminal, while the bar is drawn: no
 * line shares its row with the bar, and the bar stays clear of the last column. */
static void test_bar_cleared_before_every_line(void **state)
{
    (void)state;
    char *argv[] = {RS_CLI,       "foreach",
                    "--range",    "1..300",
                    "-j",         "2",
                    "--progress", "if _ % 25 == 0 then error('no ' .. _) end sleep(0.005) return _",
                    NULL};
    term t;
    term_start(&t, argv, 60);
    int status = term_finish(&t, 60);
    assert_int_equal(status, 1); /* the failed items */
    screen s = {.line_ok = foreach_line, .bar_label = "foreach"};
    replay(&s, t.buf, t.len);
    assert_int_equal(s.lines, 300); /* 288 records, 12 messages */
    if (s.bars < 2)
        fail_msg("the bar was drawn %zu times: nothing was tested", s.bars);
    if (s.widest >= 60)
        fail_msg("a line reached column %zu of 60: it wraps", s.widest);
    free(t.buf);
}

/* A scan's result lines on the terminal with the bar. */
static bool scan_line(const char *line)
{
    return strncmp(line, "host,address,port,", 18) == 0 ||
           strncmp(line, "127.0.0.1,127.0.0.1,", 20) == 0 || strcmp(line, "Scan Summary:") == 0 ||
           strncmp(line, "  ", 2) == 0 || !*line;
}

static void test_bar_with_scan_results(void **state)
{
    (void)state;
    char *argv[] = {RS_CLI,     "scan", "-p",        "1-10000", "--max-inflight", "2", "--progress",
                    "--format", "csv",  "127.0.0.1", NULL};
    term t;
    term_start(&t, argv, 45);
    assert_int_equal(term_finish(&t, 60), 0);
    screen s = {.line_ok = scan_line, .bar_label = "scan "};
    replay(&s, t.buf, t.len);
    assert_true(s.lines >= 10001);
    if (s.bars < 1)
        fail_msg("the bar was never drawn: nothing was tested");
    if (s.bar_widest >= 45)
        fail_msg("the bar reached column %zu of 45: it wraps", s.bar_widest);
    free(t.buf);
}

/* A narrow terminal, and a resize while the bar runs: every bar drawn after the resize fits
 * the new width. */
static void test_bar_fits_and_follows_resize(void **state)
{
    (void)state;
    char *argv[] = {RS_CLI, "foreach",    "--range",       "1..100000", "-j",
                    "1",    "--progress", "sleep(0.0002)", NULL};
    term t;
    term_start(&t, argv, 100);
    /* Until the first bar is on the screen. */
    for (int i = 0; i < 100 && !(t.buf && strstr(t.buf, "foreach [")); i++)
        assert_true(term_read(&t, 0.1));
    assert_non_null(t.buf);
    assert_contains(t.buf, "foreach [");
    struct winsize ws = {.ws_row = 24, .ws_col = 32};
    assert_int_equal(ioctl(t.master, TIOCSWINSZ, &ws), 0); /* the kernel sends SIGWINCH */
    assert_true(term_read(&t, 0.5));
    size_t mark = t.len;
    assert_true(term_read(&t, 1.0));
    kill(t.pid, SIGINT);
    term_finish(&t, 30);
    /* Measure from the first bar drawn after the mark. */
    const char *from = memchr(t.buf + mark, '\r', t.len - mark);
    assert_non_null(from);
    size_t rest = t.len - (size_t)(from - t.buf);
    size_t widest = 0, draws = 0;
    for (const char *p = from; p < from + rest;) {
        const char *cr = memchr(p + 1, '\r', (size_t)(from + rest - p - 1));
        size_t len = cr ? (size_t)(cr - p) : (size_t)(from + rest - p);
        /* One draw: "\r" TEXT "\033[K". */
        const char *esc = memchr(p, '\033', len);
        if (esc && esc - p > 1 && memmem(p, len, "foreach", 7)) {
            size_t w = (size_t)(esc - p) - 1;
            widest = w > widest ? w : widest;
            draws++;
        }
        p += len;
    }
    if (draws < 2)
        fail_msg("%zu bars drawn after the resize: nothing was tested", draws);
    if (widest >= 32)
        fail_msg("a bar of %zu columns after the terminal shrank to 32", widest);
    free(t.buf);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bar_cleared_before_every_line),
    cmocka_unit_test(test_bar_with_scan_results),
    cmocka_unit_test(test_bar_fits_and_follows_resize),
};

RS_TEST_MAIN(tests)
