/*
 * foreach.c -- `runspace foreach`: run a script once per input item, in parallel (DESIGN.md
 * section 5). Inputs stream from stdin, a file or a range into the for-each engine; records
 * stream out as items finish, in the chosen format.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: runspace foreach [OPTIONS] SCRIPT\n"
    "       runspace foreach [OPTIONS] -f FILE\n"
    "Run a Lua script once per input item, in parallel. The item is `_` (and `...`).\n"
    "\n"
    "Input (default: the lines of standard input):\n"
    "      --input FILE       the lines of FILE\n"
    "      --range A..B       the integers A to B\n"
    "      --json             each line is a JSON value (a malformed line is an error record)\n"
    "Script:\n"
    "  -f, --file PATH        read the script from PATH\n"
    "      --var NAME=VALUE   a global in every runspace (VALUE is JSON, or else a string)\n"
    "      --param NAME=VALUE a named parameter (params.NAME and the global NAME)\n"
    "      --module PATH|NAME preload a Lua module\n"
    "      --restricted       the restricted profile (no io, os.execute, fs, exec, net, ...)\n"
    "      --memory-limit N   Lua memory per runspace (default 1G; suffixes K, M, G)\n"
    "Execution:\n"
    "  -j, --throttle N       runspaces at once (default: the number of CPUs)\n"
    "      --timeout SECONDS  per item (fractional); a late item has status timeout\n"
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
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 every item ok; 1 some item failed, timed out or was cancelled; 2 usage\n"
    "error or a script that does not compile; 130 interrupted.\n";

typedef enum { FMT_RAW, FMT_JSONL, FMT_CSV, FMT_TABLE } out_format;

typedef struct cli {
    /* Input: lines of fd through our own buffer, so that the wait for data can also watch the
     * engine's stop descriptor (a stop must not leave the reader blocked in read()). */
    int fd;
    bool own_fd;
    bool eof;
    char *buf;
    size_t len, pos, cap;
    bool json;
    bool range;
    bool range_done;
    long long range_next, range_last;
    unsigned long long line_no;
    /* Output. */
    out_format format;
    progress_bar bar;
    unsigned long long failed_records;
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

/* The next line (without its newline) in c->buf, NUL-terminated, or NULL at the end of the
 * input or after a stop. */
static char *read_line(cli *c, size_t *len)
{
    for (;;) {
        char *start = c->buf + c->pos;
        char *nl = c->len > c->pos ? memchr(start, '\n', c->len - c->pos) : NULL;
        if (nl || (c->eof && c->len > c->pos)) {
            size_t n = nl ? (size_t)(nl - start) : c->len - c->pos;
            c->pos += n + (nl ? 1 : 0);
            start[n] = '\0';
            *len = n;
            return start;
        }
        if (c->eof)
            return NULL;
        /* Keep the partial line, make room, and wait for data or a stop. */
        if (c->pos) {
            memmove(c->buf, c->buf + c->pos, c->len - c->pos);
            c->len -= c->pos;
            c->pos = 0;
        }
        if (c->cap - c->len < 65536 + 1) {
            size_t cap = c->cap ? c->cap * 2 : 131072;
            char *b = realloc(c->buf, cap);
            if (!b) {
                cli_error("cannot read input: out of memory");
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
            cli_error("cannot read input: %s", strerror(errno));
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
            cli_error("cannot read input: %s", strerror(errno));
            return NULL;
        }
    }
}

static int next_line(void *ud, rs_value **item, char **error)
{
    cli *c = ud;
    size_t n;
    char *line = read_line(c, &n);
    if (!line)
        return 0;
    c->line_no++;
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    if (!c->json) {
        *item = rs_value_stringn(line, n);
        return *item ? 1 : 0;
    }
    rs_errinfo err;
    if (rs_json_decode(line, n, item, &err) == 0)
        return 1;
    *item = rs_value_stringn(line, n);
    char *msg = malloc(strlen(err.message) + 96);
    if (msg)
        sprintf(msg, "invalid JSON on line %llu, column %d: %s", c->line_no, err.column,
                err.message);
    *error = msg;
    return RS_EJSON;
}

/* ---- records ------------------------------------------------------------------------------ */

/* Writes s as a JSON string. */
static void out_json_string(const char *s)
{
    rs_value *v = rs_value_string(s);
    char *text = v ? json_text(v) : NULL;
    out_puts(text ? text : "null");
    free(text);
    rs_value_destroy(v);
}

static void out_json_value(const rs_value *v)
{
    char *text = json_text(v);
    out_puts(text ? text : "null");
    free(text);
}

/* Writes s as a CSV field (RFC 4180). */
static void out_csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        out_puts(s);
        return;
    }
    out_putc('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            out_putc('"');
        out_putc(*p);
    }
    out_putc('"');
}

static void on_record(const rs_foreach_record *r, void *ud)
{
    cli *c = ud;
    char num[64];
    if (r->status != RS_ITEM_OK)
        c->failed_records++;
    switch (c->format) {
    case FMT_RAW:
        if (r->status == RS_ITEM_OK) {
            for (size_t i = 0; i < rs_array_len(r->output); i++)
                out_value_raw(rs_array_get(r->output, i));
        } else {
            bar_clear(&c->bar);
            fprintf(stderr, "runspace: item %llu: %s: %s\n", (unsigned long long)r->index,
                    rs_item_status_name(r->status), r->error);
        }
        break;
    case FMT_JSONL:
        snprintf(num, sizeof num, "{\"index\":%llu,\"input\":", (unsigned long long)r->index);
        out_puts(num);
        out_json_value(r->input);
        out_puts(",\"status\":\"");
        out_puts(rs_item_status_name(r->status));
        out_puts("\",\"output\":");
        out_json_value(r->output);
        out_puts(",\"error\":");
        if (r->error)
            out_json_string(r->error);
        else
            out_puts("null");
        snprintf(num, sizeof num, ",\"duration_ms\":%.3f,\"runspace\":%llu}\n", r->duration * 1e3,
                 (unsigned long long)r->runspace_id);
        out_puts(num);
        break;
    case FMT_CSV: {
        snprintf(num, sizeof num, "%llu,", (unsigned long long)r->index);
        out_puts(num);
        char *in = json_text(r->input);
        out_csv_field(in ? in : "");
        free(in);
        out_putc(',');
        out_puts(rs_item_status_name(r->status));
        out_putc(',');
        char *outv = json_text(r->output);
        out_csv_field(outv ? outv : "");
        free(outv);
        out_putc(',');
        out_csv_field(r->error ? r->error : "");
        snprintf(num, sizeof num, ",%.3f,%llu\n", r->duration * 1e3,
                 (unsigned long long)r->runspace_id);
        out_puts(num);
        break;
    }
    case FMT_TABLE: {
        char *text = r->status == RS_ITEM_OK ? json_text(r->output) : strdup(r->error);
        snprintf(num, sizeof num, "%8llu  %-9s %10.3f  %8llu  ", (unsigned long long)r->index,
                 rs_item_status_name(r->status), r->duration * 1e3,
                 (unsigned long long)r->runspace_id);
        bar_clear(&c->bar);
        out_puts(num);
        out_puts(text ? text : "");
        out_putc('\n');
        free(text);
        break;
    }
    }
}

/* Called after each delivered batch of records: the batch goes out now (one write), so that
 * records stream to a pipe as items finish, and the bar is drawn below them. */
static void on_progress(const rs_foreach_progress *p, void *ud)
{
    cli *c = ud;
    out_flush();
    bar_draw(&c->bar, p->done, p->total, p->elapsed, false);
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
    OPT_MEMORY
};

static const struct option long_options[] = {{"input", required_argument, NULL, OPT_INPUT},
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
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};

/* A name=value option collected for later. */
typedef struct assign {
    char *name;
    rs_value *value;
} assign;

int cmd_foreach(int argc, char **argv)
{
    const char *cmd = "foreach";
    cli c = {.format = FMT_RAW};
    const char *script_file = NULL, *input_file = NULL, *range_text = NULL;
    unsigned long throttle = 0, retries = 0, batch = 0;
    double timeout = 0;
    bool ordered = false, fail_fast = false, summary = false, restricted = false;
    int progress = -1;
    size_t memory = 1ull << 30;
    assign vars[64], params[64];
    const char *modules[64];
    int nvars = 0, nparams = 0, nmodules = 0;
    int rc = 0;

    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":f:j:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'f':
            script_file = optarg;
            break;
        case 'j':
            if (!parse_count(optarg, 1, 1024, &throttle))
                return cli_usage(
                    cmd, "-j/--throttle must be a whole number from 1 to 1024, not '%s'", optarg);
            break;
        case OPT_INPUT:
            input_file = optarg;
            break;
        case OPT_RANGE:
            range_text = optarg;
            if (!parse_range(optarg, &c.range_next, &c.range_last))
                return cli_usage(cmd, "invalid range '%s': expected A..B with integers A <= B",
                                 optarg);
            c.range = true;
            break;
        case OPT_JSON:
            c.json = true;
            break;
        case OPT_TIMEOUT:
            if (!parse_seconds(optarg, &timeout))
                return cli_usage(cmd, "--timeout must be a positive number of seconds, not '%s'",
                                 optarg);
            break;
        case OPT_RETRIES:
            if (!parse_count(optarg, 0, 1000, &retries))
                return cli_usage(cmd, "--retries must be a whole number from 0 to 1000, not '%s'",
                                 optarg);
            break;
        case OPT_BATCH:
            if (!parse_count(optarg, 1, 4096, &batch))
                return cli_usage(cmd, "--batch must be a whole number from 1 to 4096, not '%s'",
                                 optarg);
            break;
        case OPT_ORDERED:
            ordered = true;
            break;
        case OPT_FAIL_FAST:
            fail_fast = true;
            break;
        case OPT_VAR:
        case OPT_PARAM: {
            assign *list = opt == OPT_VAR ? vars : params;
            int *n = opt == OPT_VAR ? &nvars : &nparams;
            if (*n == 64)
                return cli_usage(cmd, "too many --%s options", opt == OPT_VAR ? "var" : "param");
            if (!parse_assignment(optarg, &list[*n].name, &list[*n].value))
                return cli_usage(cmd, "--%s needs NAME=VALUE, not '%s'",
                                 opt == OPT_VAR ? "var" : "param", optarg);
            (*n)++;
            break;
        }
        case OPT_MODULE:
            if (nmodules == 64)
                return cli_usage(cmd, "too many --module options");
            modules[nmodules++] = optarg;
            break;
        case OPT_FORMAT: {
            static const char *const formats[] = {"raw", "jsonl", "csv", "table", NULL};
            int f = parse_choice(optarg, formats);
            if (f < 0)
                return cli_usage(cmd, "--format must be raw, jsonl, csv or table, not '%s'",
                                 optarg);
            c.format = (out_format)f;
            break;
        }
        case OPT_PROGRESS:
            progress = 1;
            break;
        case OPT_NO_PROGRESS:
            progress = 0;
            break;
        case OPT_SUMMARY:
            summary = true;
            break;
        case OPT_RESTRICTED:
            restricted = true;
            break;
        case OPT_MEMORY:
            if (!parse_bytes(optarg, &memory))
                return cli_usage(cmd, "--memory-limit must be a size such as 256M or 1G, not '%s'",
                                 optarg);
            break;
        case ':':
            return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    int nargs = argc - optind;
    if (script_file && nargs > 0)
        return cli_usage(cmd, "give the script either as an argument or with -f, not both");
    if (!script_file && nargs == 0)
        return cli_usage(cmd, "no script given");
    if (nargs > 1)
        return cli_usage(cmd, "unexpected argument '%s' (quote the script as one argument)",
                         argv[optind + 1]);
    if (input_file && range_text)
        return cli_usage(cmd, "--input and --range cannot be used together");

    /* The script. */
    char *script = NULL;
    size_t script_len = 0;
    if (script_file) {
        script = read_file(script_file, &script_len);
        if (!script) {
            cli_error("cannot read '%s': %s", script_file, strerror(errno));
            return EXIT_USAGE;
        }
    } else {
        script = strdup(argv[optind]);
        script_len = strlen(script);
    }

    /* The input. */
    c.fd = STDIN_FILENO;
    if (input_file) {
        c.fd = open(input_file, O_RDONLY | O_CLOEXEC);
        if (c.fd < 0) {
            cli_error("cannot open '%s': %s", input_file, strerror(errno));
            free(script);
            return EXIT_USAGE;
        }
        c.own_fd = true;
    }

    /* The session state. */
    rs_iss *iss = NULL;
    rs_foreach *fe = NULL;
    rc = rs_iss_create(restricted ? RS_PROFILE_RESTRICTED : RS_PROFILE_DEFAULT, &iss);
    rs_limits limits = {.memory_bytes = memory};
    if (!rc)
        rc = rs_iss_set_limits(iss, &limits);
    for (int i = 0; !rc && i < nvars; i++)
        rc = rs_iss_set_variable(iss, vars[i].name, vars[i].value);
    for (int i = 0; !rc && i < nmodules; i++)
        rc = rs_iss_add_module(iss, modules[i]);
    if (rc) {
        cli_error("%s", rs_iss_errmsg(iss));
        rc = EXIT_USAGE;
        goto done;
    }

    rs_foreach_opts o = {.iss = iss,
                         .throttle = (unsigned)throttle,
                         .batch = (unsigned)batch,
                         .timeout = timeout,
                         .retries = (unsigned)retries,
                         .ordered = ordered,
                         .fail_fast = fail_fast,
                         /* 0 (unknown) for the one range whose size does not fit */
                         .total = c.range ? (uint64_t)c.range_last - (uint64_t)c.range_next + 1 : 0,
                         .next = c.range ? next_range : next_line,
                         .input_userdata = &c,
                         .on_record = on_record,
                         .on_progress = on_progress,
                         .userdata = &c};
    rc = rs_foreach_create(&o, &fe);
    if (rc) {
        cli_error("%s", rs_strerror(rc));
        rc = EXIT_USAGE;
        goto done;
    }
    c.fe = fe;
    rc = rs_foreach_set_script(fe, script, script_len);
    for (int i = 0; !rc && i < nparams; i++) {
        rc = rs_foreach_add_parameter(fe, params[i].name, params[i].value);
        params[i].value = NULL;
    }
    if (rc) {
        cli_error("%s", rs_foreach_errmsg(fe));
        rc = EXIT_USAGE;
        goto done;
    }

    bar_init(&c.bar, progress, "foreach");
    if (c.format == FMT_CSV)
        out_puts("index,input,status,output,error,duration_ms,runspace\n");
    else if (c.format == FMT_TABLE)
        out_puts("   INDEX  STATUS       TIME(ms)  RUNSPACE  OUTPUT / ERROR\n");
    signals_on_interrupt(stop_run, fe);
    rs_foreach_summary sum;
    int run = rs_foreach_run(fe, &sum);
    signals_on_interrupt(NULL, NULL);
    if (run == 0 || run == RS_ESTOPPED)
        bar_draw(&c.bar, sum.total, o.total, sum.elapsed, true);
    bar_clear(&c.bar);
    out_flush();
    if (run && run != RS_ESTOPPED) {
        /* The run could not start (a module failed to load, say): a setup error. */
        cli_error("%s", rs_foreach_errmsg(fe));
        rc = EXIT_USAGE;
        goto done;
    }
    if (summary) {
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
    }
    rc = interrupted() || run == RS_ESTOPPED ? EXIT_INTERRUPTED
         : c.failed_records                  ? EXIT_ITEMS_FAILED
                                             : 0;
done:
    rs_foreach_destroy(fe);
    rs_iss_destroy(iss);
    for (int i = 0; i < nvars; i++) {
        free(vars[i].name);
        rs_value_destroy(vars[i].value);
    }
    for (int i = 0; i < nparams; i++) {
        free(params[i].name);
        rs_value_destroy(params[i].value);
    }
    if (c.own_fd)
        close(c.fd);
    free(c.buf);
    free(script);
    return rc;
}
