/*
 * foreach.c -- `runspace foreach`: run a script once per input item, in parallel (docs/design.md
 * section 5). Inputs stream from stdin, a file or a range into the for-each engine; records
 * stream out as items finish, in the chosen format.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: runspace foreach [OPTIONS] SCRIPT\n"
    "       runspace foreach [OPTIONS] -f FILE\n"
    "       runspace foreach [OPTIONS] --exec 'COMMAND {}'\n"
    "Run a Lua script, or a command, once per input item, in parallel. The item is `_` (and\n"
    "`...`) in a script.\n"
    "\n"
    "Input (default: the lines of standard input):\n"
    "      --input FILE       the lines of FILE ('-': standard input); given again, each\n"
    "                         file is read in turn\n"
    "      --range A..B       the integers A to B\n"
    "      --json             each line is a JSON value (a malformed line is an error record;\n"
    "                         blank lines are skipped)\n"
    "  -0, --null             items end with a NUL byte, not a newline (find -print0)\n"
    "Command (instead of a script; no shell unless --shell):\n"
    "      --exec TEMPLATE    run TEMPLATE per item: {} the item, {.} without extension,\n"
    "                         {/} base name, {//} directory, {/.} base name without\n"
    "                         extension, {#} 1-based number; none of them: the item is the\n"
    "                         last argument. Its stdout lines are the outputs; a non-zero\n"
    "                         exit or a signal makes the item an error (with the exit code\n"
    "                         and the end of stderr)\n"
    "      --shell            run TEMPLATE with sh -c, each replacement single-quoted\n"
    "Script:\n"
    "  -f, --file PATH        read the script from PATH ('-': standard input; a #! first\n"
    "                         line is skipped; messages name PATH)\n"
    "      --var NAME=VALUE   a global in every runspace (VALUE is JSON, or else a string)\n"
    "      --param NAME=VALUE a named parameter (params.NAME and the global NAME)\n"
    "      --module PATH|NAME preload a Lua module\n"
    "      --restricted       the restricted profile (no io, os.execute, fs, exec, net, ...)\n"
    "      --memory-limit N   memory per runspace (default 1G; suffixes K, M, G)\n"
    "      --max-instructions N\n"
    "                         Lua instructions per item (default: no limit); past it the\n"
    "                         item is an error\n"
    "Execution:\n"
    "  -j, --throttle N       runspaces at once (default: the number of CPUs)\n"
    "      --timeout SECONDS  per item (fractional, up to 1e9); a late item has status timeout\n"
    "      --retries N        run failed or timed-out items again, up to N more times\n"
    "      --batch N          items per dispatch (default: automatic)\n"
    "      --ordered          output in input order (default: completion order)\n"
    "      --fail-fast        the first failure stops running items; the rest are cancelled\n"
    "Output:\n"
    "      --format FORMAT    raw (default: each output value on its own line, strings as\n"
    "                         they are, other values as JSON), jsonl (one record per item),\n"
    "                         csv, table\n"
    "      --progress, --no-progress\n"
    "                         progress bar on stderr (default: when stderr is a terminal)\n"
    "      --summary          totals on stderr at the end\n"
    "Journal (a crash loses at most the last 100 ms of records):\n"
    "      --joblog FILE      write every record to FILE as its item completes (JSON\n"
    "                         lines; also with --ordered, before it waits for earlier ones)\n"
    "      --resume           run only the inputs FILE has no record of (or a cancelled one),\n"
    "                         and append to it; the input must be the same again\n"
    "      --resume-failed    the same, and run again the inputs whose record is not ok\n"
    "      --force            resume a journal of another run (script, options, input), or\n"
    "                         start a journal that holds records anew\n"
    "Runs that span machines (Redis Streams; start `runspace worker --redis URL` anywhere):\n"
    "      --redis URL        run the items on the workers of this Redis instead of here:\n"
    "                         redis://[:PASSWORD@]HOST[:PORT][/DB] (or REDISCLI_AUTH). Plain\n"
    "                         TCP: for TLS, put stunnel or an SSH tunnel in front\n"
    "      --run NAME         the run's name (default: made up, and shown on stderr)\n"
    "      --resume           with --run: re-attach to the run after its submitter died\n"
    "                         (with --joblog, exactly one record per input across both)\n"
    "      --key-prefix P     the prefix of the run's keys (default: runspace:)\n"
    "                         Items run at least once (a dead worker's items run again after\n"
    "                         its lease); records are exactly once. --restricted and\n"
    "                         --memory-limit are the workers' own\n"
    "  -h, --help             this help\n"
    "\n"
    "Lines may be up to 64 MiB (without LF or CR LF); a longer one is an error record, and\n"
    "the input ends there.\n"
    "Items' print and write_information lines go to stderr as they are written, write_warning\n"
    "as WARNING: text, write_error as ERROR: text (verbose and debug are not shown); anything\n"
    "else scripts write to stdout (io.write, commands) goes to stderr too: stdout carries only\n"
    "the records.\n"
    "`runspace joblog FILE` prints a journal's final records (the latest line per index).\n"
    "\n"
    "Exit status: 0 every item ok; 1 some item failed, timed out or was cancelled, or the input\n"
    "could not be read, the output written or the journal written; 2 usage error, a script\n"
    "that does not compile, or a journal or a run on Redis refused; 3 Redis cannot be\n"
    "reached, refused the password, or was lost for too long; 130 interrupted (output a\n"
    "reader does not take within a second after an interrupt is dropped).\n";

/* The longest input line (without its newline). A longer line yields an error record, and
 * the input ends there: where it ends cannot be known without reading on (from /dev/zero,
 * forever). The run then exits with status 1. */
#define LINE_MAX_BYTES ((size_t)64 << 20)

typedef struct cli {
    /* Input: lines of fd through our own buffer, so that the wait for data can also watch the
     * engine's stop descriptor (a stop must not leave the reader blocked in read()). The line
     * being read starts at pos; bytes pos..pos+scanned hold no newline. */
    int fd;
    const char *input_name; /* the --input file being read, or NULL for stdin */
    bool own_fd;
    bool eof;
    /* Several --input files are read in turn: fds[next_input..] are the ones to come. */
    int fds[64];
    const char *names[64];
    int ninputs, next_input;
    char sep; /* what ends an item: '\n', or '\0' with -0 */
    char *buf;
    size_t len, pos, scanned, cap;
    bool json;
    bool range;
    bool range_done;
    long long range_next, range_last;
    unsigned long long line_no;
    /* Why the input ended before its end (a read error, an over-long line), or NULL. Set on
     * the engine's reader thread, read once the run is over; the run then exits 1. */
    char *input_error;
    bool input_over;
    /* Output. */
    record_format format;
    progress_bar bar;
    bool heading; /* the csv or table heading is still to be written */
    unsigned long long failed_records;
    /* Raw format: cancelled records past the first few are counted, not each told on stderr
     * (a stop cancels everything read ahead: thousands of lines for one Ctrl-C). */
    unsigned long long cancelled_told, cancelled_untold;
    rs_foreach *fe;
} cli;

/* ---- inputs ------------------------------------------------------------------------------- */

static int next_range(void *ud, rs_value **item, char **error)
{
    (void)error;
    cli *c = ud;
    if (c->range_done)
        return 0;
    long long v = c->range_next;
    if (v == c->range_last)
        c->range_done = true; /* not ++: the range may end at LLONG_MAX */
    else
        c->range_next++;
    *item = rs_value_int(v);
    return *item ? 1 : 0;
}

/* A new string formatted like printf (NULL when out of memory). */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Ends the input with an error (kept for the end of the run). */
static void input_failed(cli *c, int err)
{
    if (c->input_error)
        return;
    if (err == ENOMEM)
        c->input_error = format("cannot read input: out of memory");
    else if (!c->input_name && err == EBADF && std_closed(STDIN_FILENO))
        c->input_error = format("cannot read input: standard input is closed");
    else if (c->input_name)
        c->input_error = format("cannot read '%s': %s", c->input_name, strerror(err));
    else
        c->input_error = format("cannot read input: %s", strerror(err));
    if (!c->input_error)
        c->input_error = strdup("cannot read input");
}

/* Whether a line of n bytes at start (or the start of one, while more is to come) is over
 * the limit, which is on the line without its line end: CR LF counts as one. */
static bool line_too_long(const cli *c, const char *start, size_t n)
{
    return n > LINE_MAX_BYTES &&
           !(c->sep == '\n' && n == LINE_MAX_BYTES + 1 && start[n - 1] == '\r');
}

/* The next line (without its newline) in c->buf, NUL-terminated, or NULL at the end of the
 * input, after a stop, after a read error (c->input_error) or when the line is longer than
 * LINE_MAX_BYTES (*len is then past the limit). */
static char *read_line(cli *c, size_t *len)
{
    *len = 0;
    for (;;) {
        char *start = c->buf + c->pos;
        size_t have = c->len - c->pos;
        char *nl = have > c->scanned ? memchr(start + c->scanned, c->sep, have - c->scanned) : NULL;
        c->scanned = have;
        if (nl || (c->eof && have)) {
            size_t n = nl ? (size_t)(nl - start) : have;
            if (line_too_long(c, start, n)) {
                *len = n;
                return NULL;
            }
            c->pos += n + (nl ? 1 : 0);
            c->scanned = 0;
            start[n] = '\0';
            *len = n;
            return start;
        }
        if (line_too_long(c, start, have)) {
            *len = have;
            return NULL;
        }
        if (c->eof && c->next_input < c->ninputs) {
            /* The next --input file: its lines follow (the last line of the previous one
             * ended at its end of file). */
            if (c->own_fd)
                close(c->fd);
            c->fd = c->fds[c->next_input];
            c->input_name = c->names[c->next_input];
            c->own_fd = c->fd != STDIN_FILENO;
            c->fds[c->next_input++] = -1;
            c->eof = false;
            c->line_no = 0;
            c->pos = c->len = c->scanned = 0;
            continue;
        }
        if (c->eof)
            return NULL;
        /* Keep the partial line, make room, and wait for data or a stop. */
        if (c->pos) {
            memmove(c->buf, c->buf + c->pos, have);
            c->len = have;
            c->pos = 0;
        }
        if (c->cap - c->len < 65536 + 1) {
            /* Doubling, but never much past what the longest line needs. */
            size_t most = LINE_MAX_BYTES + 65536 + 2;
            size_t cap = c->cap ? c->cap * 2 : 131072;
            if (cap > most)
                cap = most > c->len + 65536 + 1 ? most : c->len + 65536 + 1;
            char *b = realloc(c->buf, cap);
            if (!b) {
                input_failed(c, ENOMEM);
                return NULL;
            }
            c->buf = b;
            c->cap = cap;
        }
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                              {.fd = rs_foreach_stop_fd(c->fe), .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            input_failed(c, errno);
            return NULL;
        }
        if (p[1].revents)
            return NULL; /* stopped */
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (n > 0) {
            c->len += (size_t)n;
        } else if (n == 0) {
            c->eof = true;
        } else if (errno != EINTR && errno != EAGAIN) {
            input_failed(c, errno);
            return NULL;
        }
    }
}

static int next_line(void *ud, rs_value **item, char **error)
{
    cli *c = ud;
    if (c->input_over)
        return 0;
again:;
    size_t n;
    char *line = read_line(c, &n);
    if (!line) {
        c->input_over = true;
        if (n == 0)
            return 0; /* the end, a stop or a read error */
        /* The over-long line gets its record; nothing after it is read. */
        c->line_no++;
        *error = c->input_name
                     ? format("line %llu of '%s' is longer than %zu bytes", c->line_no,
                              c->input_name, LINE_MAX_BYTES)
                     : format("line %llu is longer than %zu bytes", c->line_no, LINE_MAX_BYTES);
        c->input_error = format("line %llu of the input is longer than %zu bytes; the input "
                                "after it was not read",
                                c->line_no, LINE_MAX_BYTES);
        return RS_ELIMIT;
    }
    c->line_no++;
    if (c->sep == '\n' && n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    if (!c->json) {
        *item = rs_value_stringn(line, n);
        return *item ? 1 : 0;
    }
    if (strspn(line, " \t\r\n") == n)
        goto again; /* a blank line holds no JSON value: skipped */
    rs_errinfo err;
    if (rs_json_decode(line, n, item, &err) == 0)
        return 1;
    *item = rs_value_stringn(line, n);
    if (c->input_name)
        *error = format("invalid JSON on line %llu of '%s', column %d: %s", c->line_no,
                        c->input_name, err.column, err.message);
    else
        *error =
            format("invalid JSON on line %llu, column %d: %s", c->line_no, err.column, err.message);
    return RS_EJSON;
}

/* ---- records ------------------------------------------------------------------------------ */

#define CANCELLED_TOLD 10 /* raw format: cancelled records told one by one, then counted */

static void on_record(const rs_foreach_record *r, void *ud)
{
    cli *c = ud;
    if (r->status != RS_ITEM_OK)
        c->failed_records++;
    if (out_stopped())
        return; /* the run is stopping: its records can reach no one */
    if (c->heading) {
        c->heading = false;
        record_heading(c->format);
    }
    if (c->format == FMT_RAW && r->status == RS_ITEM_CANCELLED &&
        c->cancelled_told++ >= CANCELLED_TOLD) {
        c->cancelled_untold++;
        return;
    }
    record_write(c->format, r, &c->bar);
}

/* Notes of the library (a journal's torn last line dropped, say) go to stderr at once. */
static void on_notice(const char *message, void *ud)
{
    cli *c = ud;
    bar_line(&c->bar, "runspace: ", message, strlen(message));
}

/* The items' stream records, on the pool's workers as they are written: print and
 * write_information as they are, warnings and non-terminating errors (write_error) named as
 * such, all on stderr above the bar (bar_line's lock keeps lines whole). Verbose, debug and
 * progress records are not shown. */
static void on_stream(uint64_t index, const rs_record *r, void *ud)
{
    (void)index;
    cli *c = ud;
    const char *prefix;
    switch (r->stream) {
    case RS_STREAM_INFORMATION:
        prefix = "";
        break;
    case RS_STREAM_WARNING:
        prefix = "WARNING: ";
        break;
    case RS_STREAM_ERROR:
        if (r->code != 0)
            return; /* a terminating error: the item's record says it */
        prefix = "ERROR: ";
        break;
    default:
        return;
    }
    bar_line(&c->bar, prefix, r->message, r->message_len);
}

/* Called after each delivered batch of records: the batch goes out now (one write), so that
 * records stream to a pipe as items finish, and the bar is drawn below them. */
static void on_progress(const rs_foreach_progress *p, void *ud)
{
    cli *c = ud;
    out_flush();
    bar_draw(&c->bar, p->done + p->skipped, p->total, p->elapsed, false);
}

static void stop_run(void *ud)
{
    rs_foreach_stop(ud);
}

/* ---- options ------------------------------------------------------------------------------ */

enum {
    OPT_INPUT = 256,
    OPT_RANGE,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_RETRIES,
    OPT_ORDERED,
    OPT_FAIL_FAST,
    OPT_VAR,
    OPT_PARAM,
    OPT_MODULE,
    OPT_FORMAT,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_SUMMARY,
    OPT_BATCH,
    OPT_RESTRICTED,
    OPT_MEMORY,
    OPT_JOBLOG,
    OPT_RESUME,
    OPT_RESUME_FAILED,
    OPT_FORCE,
    OPT_EXEC,
    OPT_SHELL,
    OPT_MAX_INSTRUCTIONS,
    OPT_REDIS,
    OPT_RUN,
    OPT_PREFIX
};

static const struct option long_options[] = {
    {"input", required_argument, NULL, OPT_INPUT},
    {"range", required_argument, NULL, OPT_RANGE},
    {"json", no_argument, NULL, OPT_JSON},
    {"file", required_argument, NULL, 'f'},
    {"throttle", required_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"ordered", no_argument, NULL, OPT_ORDERED},
    {"fail-fast", no_argument, NULL, OPT_FAIL_FAST},
    {"var", required_argument, NULL, OPT_VAR},
    {"param", required_argument, NULL, OPT_PARAM},
    {"module", required_argument, NULL, OPT_MODULE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"summary", no_argument, NULL, OPT_SUMMARY},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"restricted", no_argument, NULL, OPT_RESTRICTED},
    {"memory-limit", required_argument, NULL, OPT_MEMORY},
    {"joblog", required_argument, NULL, OPT_JOBLOG},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"resume-failed", no_argument, NULL, OPT_RESUME_FAILED},
    {"force", no_argument, NULL, OPT_FORCE},
    {"exec", required_argument, NULL, OPT_EXEC},
    {"shell", no_argument, NULL, OPT_SHELL},
    {"max-instructions", required_argument, NULL, OPT_MAX_INSTRUCTIONS},
    {"null", no_argument, NULL, '0'},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"run", required_argument, NULL, OPT_RUN},
    {"key-prefix", required_argument, NULL, OPT_PREFIX},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* A name=value option collected for later. */
typedef struct assign {
    char *name;
    rs_value *value;
} assign;

/* Everything cmd_foreach gathers from its options; freed in one place, whichever way the
 * command ends. */
typedef struct foreach_args {
    const char *script_file, *range_text, *joblog, *exec;
    const char *inputs[64];
    int ninputs;
    bool shell;
    unsigned long throttle, retries, batch, max_instructions;
    const char *redis, *run, *prefix;
    bool memory_set;
    double timeout;
    bool ordered, fail_fast, summary, restricted, force;
    rs_journal_mode journal_mode;
    bool resume, resume_failed;
    int progress;
    size_t memory;
    assign vars[64], params[64];
    const char *modules[64];
    int nvars, nparams, nmodules;
} foreach_args;

/* Parses the options into a and c. Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, foreach_args *a, cli *c)
{
    const char *cmd = "foreach";
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":f:j:h0", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            return 0;
        case 'f':
            a->script_file = optarg;
            break;
        case 'j':
            if (!parse_count(optarg, 1, 1024, &a->throttle))
                return cli_usage(
                    cmd, "-j/--throttle must be a whole number from 1 to 1024, not '%s'", optarg);
            break;
        case OPT_INPUT:
            if (a->ninputs == 64)
                return cli_usage(cmd, "too many --input options (at most 64)");
            if (!*optarg)
                return cli_usage(cmd, "--input needs a file name ('-' for standard input)");
            a->inputs[a->ninputs++] = optarg;
            break;
        case '0':
            c->sep = '\0';
            break;
        case OPT_EXEC:
            if (!*optarg)
                return cli_usage(cmd, "--exec needs a command template");
            a->exec = optarg;
            break;
        case OPT_SHELL:
            a->shell = true;
            break;
        case OPT_MAX_INSTRUCTIONS:
            if (!parse_count(optarg, 1, 1000000000000000000ul, &a->max_instructions))
                return cli_usage(cmd,
                                 "--max-instructions must be a whole number from 1 to 10^18, "
                                 "not '%s'",
                                 optarg);
            break;
        case OPT_RANGE:
            a->range_text = optarg;
            if (range_overflows(optarg))
                return cli_usage(cmd,
                                 "--range '%s' overflows: its bounds must be from %lld to %lld",
                                 optarg, (long long)INT64_MIN, (long long)INT64_MAX);
            if (!parse_range(optarg, &c->range_next, &c->range_last))
                return cli_usage(cmd, "invalid range '%s': expected A..B with integers A <= B",
                                 optarg);
            c->range = true;
            break;
        case OPT_JSON:
            c->json = true;
            break;
        case OPT_TIMEOUT:
            if (!parse_duration(optarg, DURATION_MAX, &a->timeout))
                return cli_usage(cmd,
                                 "--timeout must be a number of seconds above 0 and at most "
                                 "%.0f, not '%s'",
                                 DURATION_MAX, optarg);
            break;
        case OPT_RETRIES:
            if (!parse_count(optarg, 0, 1000, &a->retries))
                return cli_usage(cmd, "--retries must be a whole number from 0 to 1000, not '%s'",
                                 optarg);
            break;
        case OPT_BATCH:
            if (!parse_count(optarg, 1, 4096, &a->batch))
                return cli_usage(cmd, "--batch must be a whole number from 1 to 4096, not '%s'",
                                 optarg);
            break;
        case OPT_ORDERED:
            a->ordered = true;
            break;
        case OPT_FAIL_FAST:
            a->fail_fast = true;
            break;
        case OPT_VAR:
        case OPT_PARAM: {
            const char *what = opt == OPT_VAR ? "var" : "param";
            assign *list = opt == OPT_VAR ? a->vars : a->params;
            int *n = opt == OPT_VAR ? &a->nvars : &a->nparams;
            if (*n == 64)
                return cli_usage(cmd, "too many --%s options", what);
            if (!parse_assignment(optarg, &list[*n].name, &list[*n].value))
                return cli_usage(cmd, "--%s needs NAME=VALUE, not '%s'", what, optarg);
            (*n)++;
            if (opt == OPT_PARAM) {
                char *names[64];
                for (int i = 0; i < *n - 1; i++)
                    names[i] = list[i].name;
                if (!check_parameter(list[*n - 1].name, names, *n - 1))
                    return EXIT_USAGE;
            }
            break;
        }
        case OPT_MODULE:
            if (a->nmodules == 64)
                return cli_usage(cmd, "too many --module options");
            a->modules[a->nmodules++] = optarg;
            break;
        case OPT_FORMAT:
            if (!parse_record_format(optarg, &c->format))
                return cli_usage(cmd, "--format must be raw, jsonl, csv or table, not '%s'",
                                 optarg);
            break;
        case OPT_JOBLOG:
            if (!*optarg)
                return cli_usage(cmd, "--joblog needs a file name");
            a->joblog = optarg;
            break;
        case OPT_RESUME:
            a->resume = true;
            break;
        case OPT_RESUME_FAILED:
            a->resume_failed = true;
            break;
        case OPT_FORCE:
            a->force = true;
            break;
        case OPT_REDIS:
            a->redis = optarg;
            break;
        case OPT_RUN:
            a->run = optarg;
            break;
        case OPT_PREFIX:
            a->prefix = optarg;
            break;
        case OPT_PROGRESS:
            a->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            a->progress = 0;
            break;
        case OPT_SUMMARY:
            a->summary = true;
            break;
        case OPT_RESTRICTED:
            a->restricted = true;
            break;
        case OPT_MEMORY:
            if (!parse_bytes(optarg, &a->memory))
                return cli_usage(cmd, "--memory-limit must be a size such as 256M or 1G, not '%s'",
                                 optarg);
            a->memory_set = true;
            break;
        default:
            return cli_bad_option(cmd, argv, opt);
        }
    }
    int nargs = argc - optind;
    if (a->exec && (a->script_file || nargs > 0))
        return cli_usage(cmd, "give either a script or --exec, not both");
    if (a->shell && !a->exec)
        return cli_usage(cmd, "--shell needs --exec TEMPLATE");
    if (a->script_file && nargs > 0)
        return cli_usage(cmd, "give the script either as an argument or with -f, not both");
    if (!a->script_file && !a->exec && nargs == 0)
        return cli_usage(cmd, "no script given (a Lua script, -f FILE or --exec COMMAND)");
    if (nargs > 1)
        return cli_usage(cmd, "unexpected argument '%s' (quote the script as one argument)",
                         argv[optind + 1]);
    if (a->ninputs && a->range_text)
        return cli_usage(cmd, "--input and --range cannot be used together");
    int stdin_inputs = 0;
    for (int i = 0; i < a->ninputs; i++)
        stdin_inputs += strcmp(a->inputs[i], "-") == 0;
    if (stdin_inputs > 1)
        return cli_usage(cmd, "--input - (standard input) can be given only once");
    if (a->script_file && strcmp(a->script_file, "-") == 0 &&
        (stdin_inputs || (!a->ninputs && !a->range_text)))
        return cli_usage(cmd, "-f - reads the script from standard input, so the items must "
                              "come from --input FILE or --range");
    if (a->resume && a->resume_failed)
        return cli_usage(cmd, "--resume and --resume-failed cannot be used together");
    if (!a->redis && (a->run || a->prefix))
        return cli_usage(cmd, "--%s needs --redis URL", a->run ? "run" : "key-prefix");
    if (a->redis && (a->restricted || a->memory_set))
        return cli_usage(cmd, "--%s is the worker's to set in a run on Redis (runspace worker %s)",
                         a->restricted ? "restricted" : "memory-limit",
                         a->restricted ? "--restricted" : "--memory-limit N");
    if (a->redis && a->resume && !a->run)
        return cli_usage(cmd, "--resume of a run on Redis needs --run NAME");
    if (a->redis && a->resume_failed)
        return cli_usage(cmd, "--resume-failed cannot be used with --redis");
    if (!a->joblog && !a->redis && (a->resume || a->resume_failed || a->force))
        return cli_usage(cmd, "--%s needs --joblog FILE",
                         a->resume          ? "resume"
                         : a->resume_failed ? "resume-failed"
                                            : "force");
    a->journal_mode = a->resume          ? RS_JOURNAL_RESUME
                      : a->resume_failed ? RS_JOURNAL_RESUME_FAILED
                                         : RS_JOURNAL_NEW;
    return -1;
}

/* What the input is, for the journal's header: a resume must read the same. A new string
 * (free), NULL when out of memory. */
static char *input_source(const cli *c, const foreach_args *a)
{
    char *where;
    if (c->range) {
        where = format("range:%lld..%lld", c->range_next, c->range_last);
    } else if (a->ninputs) {
        where = strdup("");
        for (int i = 0; where && i < a->ninputs; i++) {
            const char *f = a->inputs[i];
            bool in = strcmp(f, "-") == 0;
            char *full = in ? NULL : realpath(f, NULL); /* the same file from any directory */
            char *more = format("%s%s%s%s", where, i ? "," : "", in ? "stdin" : "file:",
                                in     ? ""
                                : full ? full
                                       : f);
            free(full);
            free(where);
            where = more;
        }
    } else {
        where = strdup("stdin");
    }
    if (where && c->sep == '\0') {
        char *nul = format("%s, null", where);
        free(where);
        where = nul;
    }
    if (where && c->json) {
        char *json = format("%s, json", where);
        free(where);
        where = json;
    }
    return where;
}

/* Why the journal could not be used, with the option that would get past it. */
static void journal_refused(int rc, const char *message)
{
    if (rc == RS_EEXIST)
        cli_error("%s (--resume continues it, --force starts it anew)", message);
    else if (rc == RS_EINVAL && strstr(message, "belongs to another run"))
        cli_error("%s (--force resumes it anyway)", message);
    else
        cli_error("%s", message);
}

/* Makes the run one on Redis: the variables and module files go to the workers. */
static int set_redis(rs_foreach *fe, const foreach_args *a)
{
    rs_value *vars = rs_value_map();
    for (int i = 0; vars && i < a->nvars; i++) {
        if (rs_map_set(vars, a->vars[i].name, rs_value_copy(a->vars[i].value))) {
            rs_value_destroy(vars);
            vars = NULL;
        }
    }
    if (!vars)
        return RS_ENOMEM;
    rs_redis_opts ro = {.url = a->redis,
                        .prefix = a->prefix,
                        .run = a->run,
                        .resume = a->resume,
                        .variables = vars,
                        .modules = a->modules,
                        .nmodules = (size_t)a->nmodules};
    int rc = rs_foreach_set_redis(fe, &ro);
    rs_value_destroy(vars);
    return rc;
}

/* Whether the journal is a file the run also reads or writes otherwise: standard output
 * (the records and the journal would overwrite each other), an input file or standard input
 * when read (the run would read its own journal). Says so and returns true. A journal that
 * does not exist yet is none of them. */
static bool journal_is_in_use(const cli *c, const foreach_args *a)
{
    struct stat j, other;
    if (stat(a->joblog, &j) != 0)
        return false;
    bool reads_stdin = !c->range && !a->ninputs;
    for (int i = 0; !c->range && i < a->ninputs; i++)
        reads_stdin = reads_stdin || strcmp(a->inputs[i], "-") == 0;
    const char *what = NULL;
    /* Where the records go (fd 1 is stderr's copy once out_private has run). */
    if (fstat(out_descriptor(), &other) == 0 && other.st_dev == j.st_dev &&
        other.st_ino == j.st_ino)
        what = "the standard output";
    else if (reads_stdin && fstat(0, &other) == 0 && other.st_dev == j.st_dev &&
             other.st_ino == j.st_ino)
        what = "the standard input";
    for (int i = 0; !what && !c->range && i < a->ninputs; i++) {
        if (strcmp(a->inputs[i], "-") != 0 && stat(a->inputs[i], &other) == 0 &&
            other.st_dev == j.st_dev && other.st_ino == j.st_ino) {
            cli_error("the journal '%s' is also the input file '%s'; choose another file for "
                      "the journal",
                      a->joblog, a->inputs[i]);
            return true;
        }
    }
    if (what)
        cli_error("the journal '%s' is also %s; choose another file for the journal", a->joblog,
                  what);
    return what != NULL;
}

/* Runs the for-each once everything is parsed and open; returns the exit status. */
static int run_foreach(cli *c, foreach_args *a, rs_iss *iss, const char *script, size_t script_len)
{
    if (a->joblog && journal_is_in_use(c, a))
        return EXIT_USAGE;
    char *source = a->joblog ? input_source(c, a) : NULL;
    if (a->joblog && !source) {
        cli_error("out of memory");
        return EXIT_ITEMS_FAILED;
    }
    rs_foreach_opts o = {.iss = iss,
                         .throttle = (unsigned)a->throttle,
                         .batch = (unsigned)a->batch,
                         .timeout = a->timeout,
                         .retries = (unsigned)a->retries,
                         .ordered = a->ordered,
                         .fail_fast = a->fail_fast,
                         /* 0 (unknown) for the one range whose size does not fit */
                         .total =
                             c->range ? (uint64_t)c->range_last - (uint64_t)c->range_next + 1 : 0,
                         .next = c->range ? next_range : next_line,
                         .input_userdata = c,
                         .on_record = on_record,
                         .on_progress = on_progress,
                         .userdata = c,
                         .journal = a->joblog,
                         .journal_mode = a->joblog ? a->journal_mode : RS_JOURNAL_NEW,
                         .journal_force = a->force,
                         .journal_source = source,
                         .on_notice = on_notice,
                         .on_stream = on_stream};
    int rc = rs_foreach_create(&o, &c->fe);
    free(source); /* copied */
    if (rc) {
        cli_error("%s", rs_strerror(rc));
        return EXIT_USAGE;
    }
    rs_foreach *fe = c->fe;
    if (a->exec) {
        rc = rs_foreach_set_exec(fe, a->exec, a->shell ? RS_EXEC_SHELL : 0);
        if (rc) {
            cli_usage("foreach", "--exec: %s", rs_foreach_errmsg(fe));
            return EXIT_USAGE;
        }
    } else if (a->script_file) {
        size_t at = script_file_start(script, script_len);
        rc = rs_foreach_set_script_named(fe, script + at, script_len - at, a->script_file);
    } else {
        rc = rs_foreach_set_script(fe, script, script_len);
        if (rc == RS_ESYNTAX) {
            cli_error("%s", rs_foreach_errmsg(fe));
            script_file_hint(script);
            return EXIT_USAGE;
        }
    }
    for (int i = 0; !rc && i < a->nparams; i++) {
        rc = rs_foreach_add_parameter(fe, a->params[i].name, a->params[i].value);
        a->params[i].value = NULL; /* taken */
    }
    if (!rc && a->redis)
        rc = set_redis(fe, a);
    if (rc) {
        cli_error("%s", rs_foreach_errmsg(fe));
        return EXIT_USAGE;
    }
    if (a->redis && !a->run)
        cli_error("run '%s' on Redis (if this submitter dies: --resume --run %s)",
                  rs_foreach_run_name(fe), rs_foreach_run_name(fe));

    bar_init(&c->bar, a->progress, "foreach");
    on_stop(stop_run, fe);
    /* The heading only once the run has started: a journal refused writes nothing. */
    c->heading = true;
    rs_foreach_summary sum;
    int run = rs_foreach_run(fe, &sum);
    on_stop(NULL, NULL);
    bool started = run == 0 || run == RS_ESTOPPED || run == RS_EIO;
    if (started)
        bar_draw(&c->bar, sum.total + sum.skipped, o.total, sum.elapsed, true);
    bar_clear(&c->bar);
    if (started && c->heading)
        record_heading(c->format); /* no record came, and so no heading yet */
    out_flush();
    if (a->redis && run == RS_EIO) {
        /* Redis could not be reached, refused the password, or was lost for too long. */
        cli_error("%s", rs_foreach_errmsg(fe));
        return EXIT_UNAVAILABLE;
    }
    if (!started) {
        /* The run could not start (a module failed to load, a journal was refused, a run on
         * Redis refused): a setup error, before anything was read. */
        journal_refused(run, rs_foreach_errmsg(fe));
        return EXIT_USAGE;
    }
    if (c->input_error)
        cli_error("%s", c->input_error);
    if (c->cancelled_untold)
        cli_error("%llu more input%s cancelled, for the same reason as %s",
                  c->cancelled_untold, c->cancelled_untold == 1 ? " was" : "s were",
                  CANCELLED_TOLD == 1 ? "the one above" : "those above");
    if (run == RS_EIO)
        cli_error("%s; %llu record%s of this run %s not in it (their items run again on "
                  "--resume), but every record was written here",
                  rs_foreach_errmsg(fe), (unsigned long long)sum.unjournaled,
                  sum.unjournaled == 1 ? "" : "s", sum.unjournaled == 1 ? "is" : "are");
    if (a->summary) {
        fprintf(stderr,
                "Processing Summary:\n"
                "  Total items:  %llu\n"
                "  Successful:   %llu\n"
                "  Errors:       %llu\n"
                "  Timed out:    %llu\n"
                "  Cancelled:    %llu\n"
                "  Success rate: %.2f%%\n"
                "  Elapsed:      %.3f s\n",
                (unsigned long long)sum.total, (unsigned long long)sum.succeeded,
                (unsigned long long)sum.failed, (unsigned long long)sum.timed_out,
                (unsigned long long)sum.cancelled, sum.success_rate, sum.elapsed);
        if (a->joblog)
            fprintf(stderr, "  Skipped:      %llu (already done, in the journal)\n",
                    (unsigned long long)sum.skipped);
    }
    if (run == RS_EIO)
        return EXIT_ITEMS_FAILED; /* the journal failed: whatever else happened */
    if (interrupted())
        return EXIT_INTERRUPTED;
    /* A stop that no signal sent came from failed output: main reports it. */
    if (run == RS_ESTOPPED && !out_error())
        return EXIT_INTERRUPTED;
    return c->failed_records || c->input_error || run == RS_ESTOPPED ? EXIT_ITEMS_FAILED : 0;
}

int cmd_foreach(int argc, char **argv)
{
    cli c = {.format = FMT_RAW, .fd = STDIN_FILENO, .sep = '\n'};
    foreach_args a = {.progress = -1, .memory = 1ull << 30};
    char *script = NULL;
    size_t script_len = 0;
    rs_iss *iss = NULL;
    int rc = parse_options(argc, argv, &a, &c);
    if (rc >= 0)
        goto done;

    /* The script. */
    if (a.exec) {
        /* An external command per item: no script. */
    } else if (a.script_file) {
        script = read_file(a.script_file, &script_len);
        if (!script) {
            cli_read_error(a.script_file, errno);
            rc = EXIT_USAGE;
            goto done;
        }
    } else {
        script = strdup(argv[optind]);
        if (!script) {
            cli_error("out of memory");
            rc = EXIT_ITEMS_FAILED;
            goto done;
        }
        script_len = strlen(script);
    }

    /* The input. Non-blocking: the reader polls it, and a FIFO without a writer yet must not
     * keep open() from returning (a stop could not end that wait). */
    for (int i = 0; i < a.ninputs; i++) {
        const char *f = a.inputs[i];
        int fd = strcmp(f, "-") == 0 ? STDIN_FILENO : open(f, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            cli_error("cannot open '%s': %s", f, strerror(errno));
            rc = EXIT_USAGE;
            goto done;
        }
        c.names[c.ninputs] = fd == STDIN_FILENO ? NULL : f;
        c.fds[c.ninputs++] = fd;
    }
    if (c.ninputs) {
        /* The first one is read from the start; the others when it ends. */
        c.fd = c.fds[0];
        c.input_name = c.names[0];
        c.own_fd = c.fd != STDIN_FILENO;
        c.fds[0] = -1;
        c.next_input = 1;
    }

    /* The session state. */
    rc = rs_iss_create(a.restricted ? RS_PROFILE_RESTRICTED : RS_PROFILE_DEFAULT, &iss);
    rs_limits limits = {.memory_bytes = a.memory, .instructions = a.max_instructions};
    if (!rc)
        rc = rs_iss_set_limits(iss, &limits);
    for (int i = 0; !rc && i < a.nvars; i++)
        rc = rs_iss_set_variable(iss, a.vars[i].name, a.vars[i].value);
    for (int i = 0; !rc && i < a.nmodules; i++)
        rc = rs_iss_add_module(iss, a.modules[i]);
    if (!rc && !cli_modules_found(a.modules, a.nmodules)) {
        rc = EXIT_USAGE;
        goto done;
    }
    if (rc) {
        cli_error("%s", iss ? rs_iss_errmsg(iss) : rs_strerror(rc));
        rc = EXIT_USAGE;
        goto done;
    }
    /* Items typed at a terminal: say once where they are read from, and how to end. */
    if (!c.range && c.fd == STDIN_FILENO && isatty(STDIN_FILENO))
        cli_error("reading items from the terminal, one per line; end with Ctrl-D");
    /* Records get a descriptor of their own; what scripts write to fd 1 goes to stderr. */
    out_private();
    rc = run_foreach(&c, &a, iss, script, script_len);
done:
    rs_foreach_destroy(c.fe);
    rs_iss_destroy(iss);
    for (int i = 0; i < a.nvars; i++) {
        free(a.vars[i].name);
        rs_value_destroy(a.vars[i].value);
    }
    for (int i = 0; i < a.nparams; i++) {
        free(a.params[i].name);
        rs_value_destroy(a.params[i].value);
    }
    if (c.own_fd)
        close(c.fd);
    for (int i = c.next_input; i < c.ninputs; i++) {
        if (c.fds[i] > STDIN_FILENO)
            close(c.fds[i]);
    }
    free(c.buf);
    free(c.input_error);
    free(script);
    return rc;
}
