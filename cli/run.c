/*
 * run.c -- `runspace run`: one script in one runspace. Its outputs go to stdout when it ends,
 * print/write_information to stdout as they come, warnings and errors (and, with --verbose,
 * verbose and debug records) to stderr as they come.
 */
#include "cli.h"

#include <lua.h>

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: runspace run [OPTIONS] SCRIPT [ARGS...]\n"
    "       runspace run [OPTIONS] -f FILE [ARGS...]\n"
    "Run one Lua script in a runspace. ARGS are its positional arguments (`...`), as strings,\n"
    "and, as lua5.4 sets them, the global table arg: arg[1..n] the ARGS, arg[0] the FILE (or,\n"
    "for an inline SCRIPT, the runspace program) and, with -f, arg[-1] the runspace program.\n"
    "\n"
    "  -f, --file PATH        read the script from PATH ('-': standard input; a #! first\n"
    "                         line is skipped; messages name PATH)\n"
    "      --var NAME=VALUE   a global (VALUE is JSON, or else a string)\n"
    "      --param NAME=VALUE a named parameter (params.NAME and the global NAME)\n"
    "      --module PATH|NAME preload a Lua module\n"
    "      --restricted       the restricted profile\n"
    "      --memory-limit N   memory per runspace (default 1G; suffixes K, M, G)\n"
    "      --max-instructions N\n"
    "                         Lua instructions the script may run (default: no limit); past\n"
    "                         it the script fails\n"
    "      --timeout SECONDS  stop the script after this long (exit 1)\n"
    "      --format FORMAT    raw (default: each output value on a line) or json (one array)\n"
    "  -v, --verbose          also show verbose and debug records, and tracebacks\n"
    "  -h, --help             this help\n"
    "\n"
    "Options come before the script. Outputs go to stdout when the script ends; print and\n"
    "io.write go to stdout, in the order written, warnings and errors to stderr, as they are\n"
    "written.\n"
    "Exit status: 0 success; 1 the script failed or timed out, or the output could not be\n"
    "written; 2 usage error, a script that does not compile, or a runspace that cannot open\n"
    "(a --memory-limit too small, a module that fails); 130 interrupted.\n";

typedef struct run_cli {
    bool verbose;
    bool tty;
    bool progress_shown;
} run_cli;

static void on_record(rs_ps *ps, const rs_record *r, void *ud)
{
    (void)ps;
    run_cli *c = ud;
    if (c->progress_shown && r->stream != RS_STREAM_PROGRESS) {
        fputs("\r\033[K", stderr);
        c->progress_shown = false;
    }
    switch (r->stream) {
    case RS_STREAM_INFORMATION:
        out_write(r->message, r->message_len);
        out_putc('\n');
        out_flush();
        break;
    case RS_STREAM_WARNING:
        fprintf(stderr, "WARNING: %s\n", r->message);
        break;
    case RS_STREAM_ERROR:
        if (r->item < 0 && r->code == 0) /* write_error: the script goes on */
            fprintf(stderr, "ERROR: %s\n", r->message);
        break;
    case RS_STREAM_VERBOSE:
    case RS_STREAM_DEBUG:
        if (c->verbose)
            fprintf(stderr, "%s: %s\n", r->stream == RS_STREAM_VERBOSE ? "VERBOSE" : "DEBUG",
                    r->message);
        break;
    case RS_STREAM_PROGRESS:
        if (c->tty) {
            fprintf(stderr, "\r%s: %s", r->activity ? r->activity : "", r->message);
            if (r->percent >= 0)
                fprintf(stderr, " (%d%%)", r->percent);
            fputs("\033[K", stderr);
            c->progress_shown = true;
        }
        break;
    default:
        break;
    }
    fflush(stderr);
}

/* Records of finalizers that run as the runspace closes, after the script ended: printed as
 * the script's own were, as Lua prints at lua_close. */
static void on_host_record(const rs_record *r, void *ud)
{
    on_record(NULL, r, ud);
}

/* The global `arg` of the script, as lua5.4 sets it: arg[0] is the script file (with no
 * file, the interpreter, as `lua5.4 -e` has it), arg[-1] the interpreter when there is a
 * file, arg[1..n] the arguments. The process runs one script, so the open function below
 * reads it from here; it is set before the runspace opens and only read after. */
static struct {
    const char *program; /* the runspace program as it was invoked */
    const char *file;    /* -f FILE, or NULL */
    char **args;
    int nargs;
} script_arg;

/* Opens the `arg` "library": its value, the table, becomes the global arg. Runs when the
 * runspace opens (and reopens after running out of memory), on the thread opening it. */
static int open_arg(lua_State *L)
{
    lua_createtable(L, script_arg.nargs, 2);
    if (script_arg.file) {
        lua_pushstring(L, script_arg.program);
        lua_rawseti(L, -2, -1);
    }
    lua_pushstring(L, script_arg.file ? script_arg.file : script_arg.program);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < script_arg.nargs; i++) {
        lua_pushstring(L, script_arg.args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static void stop_script(void *ud)
{
    rs_ps_begin_stop(ud);
}

enum {
    OPT_VAR = 256,
    OPT_PARAM,
    OPT_MODULE,
    OPT_RESTRICTED,
    OPT_MEMORY,
    OPT_MAX_INSTRUCTIONS,
    OPT_TIMEOUT,
    OPT_FORMAT
};

static const struct option long_options[] = {
    {"file", required_argument, NULL, 'f'},
    {"var", required_argument, NULL, OPT_VAR},
    {"param", required_argument, NULL, OPT_PARAM},
    {"module", required_argument, NULL, OPT_MODULE},
    {"restricted", no_argument, NULL, OPT_RESTRICTED},
    {"memory-limit", required_argument, NULL, OPT_MEMORY},
    {"max-instructions", required_argument, NULL, OPT_MAX_INSTRUCTIONS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    const char *script_file = NULL;
    bool restricted = false, json = false;
    size_t memory = 1ull << 30;
    double timeout = 0;
    unsigned long max_instructions = 0;
    run_cli c = {.tty = isatty(STDERR_FILENO)};
    rs_iss *iss = NULL;
    rs_runspace *rs = NULL;
    rs_ps *ps = NULL;
    char *script = NULL;
    int rc = 0;
    /* Parameters wait for the script's stage; variables and modules for the profile. */
    char *pnames[64];
    rs_value *pvalues[64];
    char *vnames[64];
    rs_value *vvalues[64];
    const char *modules[64];
    int np = 0, nv = 0, nm = 0;

    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:f:vh", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            rc = 0;
            goto done;
        case 'f':
            script_file = optarg;
            break;
        case 'v':
            c.verbose = true;
            break;
        case OPT_VAR:
        case OPT_PARAM: {
            bool var = opt == OPT_VAR;
            int *n = var ? &nv : &np;
            if (*n == 64) {
                rc = cli_usage(cmd, "too many --%s options", var ? "var" : "param");
                goto done;
            }
            if (!parse_assignment(optarg, var ? &vnames[*n] : &pnames[*n],
                                  var ? &vvalues[*n] : &pvalues[*n])) {
                rc = cli_usage(cmd, "--%s needs NAME=VALUE, not '%s'", var ? "var" : "param",
                               optarg);
                goto done;
            }
            (*n)++;
            if (!var && !check_parameter(pnames[np - 1], pnames, np - 1)) {
                rc = EXIT_USAGE;
                goto done;
            }
            break;
        }
        case OPT_MODULE:
            if (nm == 64) {
                rc = cli_usage(cmd, "too many --module options");
                goto done;
            }
            modules[nm++] = optarg;
            break;
        case OPT_RESTRICTED:
            restricted = true;
            break;
        case OPT_MEMORY:
            if (!parse_bytes(optarg, &memory)) {
                rc = cli_usage(cmd, "--memory-limit must be a size such as 256M or 1G, not '%s'",
                               optarg);
                goto done;
            }
            break;
        case OPT_MAX_INSTRUCTIONS:
            if (!parse_count(optarg, 1, 1000000000000000000ul, &max_instructions)) {
                rc = cli_usage(cmd,
                               "--max-instructions must be a whole number from 1 to 10^18, "
                               "not '%s'",
                               optarg);
                goto done;
            }
            break;
        case OPT_TIMEOUT:
            if (!parse_duration(optarg, DURATION_MAX, &timeout)) {
                rc = cli_usage(cmd,
                               "--timeout must be a number of seconds above 0 and at most "
                               "%.0f, not '%s'",
                               DURATION_MAX, optarg);
                goto done;
            }
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0) {
                json = true;
            } else if (strcmp(optarg, "raw") != 0) {
                rc = cli_usage(cmd, "--format must be raw or json, not '%s'", optarg);
                goto done;
            }
            break;
        default:
            rc = cli_bad_option(cmd, argv, opt);
            goto done;
        }
    }
    size_t script_len;
    if (script_file) {
        script = read_file(script_file, &script_len);
        if (!script) {
            cli_read_error(script_file, errno);
            rc = EXIT_USAGE;
            goto done;
        }
    } else if (optind < argc) {
        script = strdup(argv[optind++]);
        script_len = script ? strlen(script) : 0;
    } else {
        rc = cli_usage(cmd, "no script given");
        goto done;
    }

    if (!script ||
        (rc = rs_iss_create(restricted ? RS_PROFILE_RESTRICTED : RS_PROFILE_DEFAULT, &iss)) ||
        (rc = rs_ps_create(&ps))) {
        cli_error("%s", rs_strerror(rc ? rc : RS_ENOMEM));
        rc = EXIT_ITEMS_FAILED;
        goto done;
    }
    rs_limits limits = {.memory_bytes = memory, .instructions = max_instructions};
    /* argv is main's argv + 1 (cmd_run's argv[0] is "run"): argv[-1] is the program. */
    script_arg.program = argv[-1];
    script_arg.file = script_file;
    script_arg.args = argv + optind;
    script_arg.nargs = argc - optind;
    rc = rs_iss_set_limits(iss, &limits);
    bool arg_given = false; /* --var arg=...: the user's arg replaces lua5.4's */
    for (int i = 0; i < nv; i++)
        arg_given |= strcmp(vnames[i], "arg") == 0;
    if (!rc && !arg_given)
        rc = rs_iss_add_library(iss, "arg", open_arg);
    if (!rc)
        rc = rs_iss_set_host(iss, on_host_record, &c);
    for (int i = 0; !rc && i < nv; i++)
        rc = rs_iss_set_variable(iss, vnames[i], vvalues[i]);
    for (int i = 0; !rc && i < nm; i++)
        rc = rs_iss_add_module(iss, modules[i]);
    if (!rc && !cli_modules_found(modules, nm)) {
        rc = EXIT_USAGE;
        goto done;
    }
    if (rc) {
        cli_error("%s", rs_iss_errmsg(iss));
        rc = EXIT_USAGE;
        goto done;
    }
    rs_runspace_opts ro = {.iss = iss};
    if ((rc = rs_runspace_create(&ro, &rs)) || (rc = rs_runspace_open(rs))) {
        /* A setup error, as in foreach: the session state (a memory limit too small to open a
         * runspace, a module that fails) keeps anything from running. */
        cli_error("%s", rs ? rs_runspace_errmsg(rs) : rs_strerror(rc));
        rc = EXIT_USAGE;
        goto done;
    }
    if (script_file) {
        size_t at = script_file_start(script, script_len);
        rc = rs_ps_add_script_named(ps, script + at, script_len - at, script_file);
    } else {
        rc = rs_ps_add_script(ps, script, script_len);
    }
    if (rc) {
        cli_error("%s", rs_ps_errmsg(ps));
        if (rc == RS_ESYNTAX && !script_file)
            script_file_hint(script);
        rc = EXIT_USAGE;
        goto done;
    }
    for (int i = optind; !rc && i < argc; i++)
        rc = rs_ps_add_argument(ps, rs_value_string(argv[i]));
    for (int i = 0; !rc && i < np; i++) {
        rc = rs_ps_add_parameter(ps, pnames[i], pvalues[i]);
        pvalues[i] = NULL; /* taken */
    }
    /* Records are echoed as they come and not kept (only error records are, for the message
     * and traceback read below): a script that prints without end runs in constant memory. */
    rs_ps_opts po = {
        .flags = RS_PS_STREAM_RECORDS, .timeout = timeout, .on_record = on_record, .userdata = &c};
    if (!rc)
        rc = rs_ps_set_opts(ps, &po);
    if (!rc)
        rc = rs_ps_set_runspace(ps, rs);
    if (rc) {
        cli_error("%s", rs_ps_errmsg(ps)[0] ? rs_ps_errmsg(ps) : rs_strerror(rc));
        rc = EXIT_ITEMS_FAILED;
        goto done;
    }

    on_stop(stop_script, ps);
    rs_value *out = NULL;
    int result = rs_ps_invoke(ps, &out);
    on_stop(NULL, NULL);
    if (c.progress_shown)
        fputs("\r\033[K", stderr);
    if (json) {
        if (out)
            out_json(out);
        else
            out_puts("[]");
        out_putc('\n');
    } else {
        for (size_t i = 0; out && i < rs_array_len(out); i++)
            out_value_raw(rs_array_get(out, i));
    }
    out_flush();
    rs_value_destroy(out);
    /* A stop that no signal sent came from failed output, which main reports. */
    if (result && !(result == RS_ESTOPPED && out_error() && !interrupted())) {
        cli_error("%s", rs_ps_errmsg(ps));
        rs_record r;
        size_t n = rs_ps_record_count(ps, RS_STREAM_ERROR);
        if (c.verbose && n && rs_ps_record(ps, RS_STREAM_ERROR, n - 1, &r) == 0 && r.traceback)
            fprintf(stderr, "%s\n", r.traceback);
    }
    rc = interrupted() ? EXIT_INTERRUPTED : result ? EXIT_ITEMS_FAILED : 0;
done:
    rs_ps_destroy(ps);
    rs_runspace_destroy(rs);
    rs_iss_destroy(iss);
    for (int i = 0; i < nv; i++) {
        free(vnames[i]);
        rs_value_destroy(vvalues[i]);
    }
    for (int i = 0; i < np; i++) {
        free(pnames[i]);
        rs_value_destroy(pvalues[i]);
    }
    free(script);
    return rc;
}
