/*
 * runs.c -- `runspace runs`: the runs on a Redis, with their progress; deletes one.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "Usage: runspace runs --redis URL [--key-prefix P] [--delete NAME]\n"
    "List the runs on Redis (name, state, records done, inputs submitted, total, seconds until\n"
    "their keys expire: a finished run's keys expire a day after it ends), or delete one.\n"
    "\n"
    "      --redis URL        redis://[:PASSWORD@]HOST[:PORT][/DB] (or REDISCLI_AUTH)\n"
    "      --key-prefix P     the prefix of the run's keys (default: runspace:)\n"
    "      --delete NAME      delete the run's keys (its workers drop it)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 done; 1 no such run to delete; 2 usage error; 3 Redis cannot be reached\n"
    "or refused the password.\n";

enum { OPT_REDIS = 256, OPT_PREFIX, OPT_DELETE };

static const struct option long_options[] = {{"redis", required_argument, NULL, OPT_REDIS},
                                             {"key-prefix", required_argument, NULL, OPT_PREFIX},
                                             {"delete", required_argument, NULL, OPT_DELETE},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};

static void row(const rs_redis_run_info *r, void *ud)
{
    bool *first = ud;
    char line[512];
    if (*first) {
        out_puts("NAME                             STATE       DONE  SUBMITTED      TOTAL  "
                 "EXPIRES\n");
        *first = false;
    }
    char total[24] = "?";
    if (r->total || strcmp(r->state, "running") != 0)
        snprintf(total, sizeof total, "%llu", (unsigned long long)r->total);
    char ttl[24] = "-";
    if (r->ttl >= 0)
        snprintf(ttl, sizeof ttl, "%llds", (long long)r->ttl);
    snprintf(line, sizeof line, "%-32s %-8s %8llu %10llu %10s  %s\n", r->name, r->state,
             (unsigned long long)r->done, (unsigned long long)r->submitted, total, ttl);
    out_puts(line);
}

int cmd_runs(int argc, char **argv)
{
    const char *cmd = "runs";
    const char *url = NULL, *prefix = NULL, *del = NULL;
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            return 0;
        case OPT_REDIS:
            url = optarg;
            break;
        case OPT_PREFIX:
            prefix = optarg;
            break;
        case OPT_DELETE:
            del = optarg;
            break;
        case ':':
            return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!url)
        return cli_usage(cmd, "--redis URL is required");
    rs_errinfo err;
    bool first = true;
    int rc = del ? rs_redis_delete_run(url, prefix, del, &err)
                 : rs_redis_runs(url, prefix, row, &first, &err);
    if (rc) {
        cli_error("%s", err.message);
        return rc == RS_EINVAL   ? EXIT_USAGE
               : rc == RS_ENOENT ? EXIT_ITEMS_FAILED
                                 : EXIT_UNAVAILABLE;
    }
    if (del) {
        fprintf(stderr, "runspace: run '%s' deleted\n", del);
    } else if (first) {
        fprintf(stderr, "runspace: no runs\n");
    }
    return 0;
}
