/*
 * worker.c -- `runspace worker`: serve runs from Redis on this machine, under this worker's
 * own profile and limits, until SIGTERM or SIGINT.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "Usage: runspace worker --redis URL [OPTIONS]\n"
    "Serve runs submitted with `runspace foreach --redis URL` on this machine, until SIGTERM\n"
    "or SIGINT: then it takes no new items, finishes those it holds, and exits 0 (a second\n"
    "signal exits at once; what it held goes to other workers after the lease).\n"
    "\n"
    "      --redis URL        redis://[:PASSWORD@]HOST[:PORT][/DB]; without a password in it,\n"
    "                         REDISCLI_AUTH gives one. Plain TCP: for TLS, put stunnel or an\n"
    "                         SSH tunnel in front (see the man page)\n"
    "      --key-prefix P     the prefix of the run's keys (default: runspace:)\n"
    "  -j, --throttle N       runspaces at once (default: the number of CPUs)\n"
    "      --restricted       run every item in the restricted profile, whatever the run asks\n"
    "      --memory-limit N   memory per runspace (default 1G; suffixes K, M, G); no run can\n"
    "                         lift it\n"
    "      --lease SECONDS    how long items stay with a worker that stopped answering before\n"
    "                         other workers take them (default 30)\n"
    "      --retry-for SECONDS keep reconnecting to a lost Redis this long (default 60)\n"
    "      --name NAME        this worker's name in Redis (default: HOST-PID)\n"
    "  -q, --quiet            no notes on stderr\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 stopped by a signal; 2 usage error; 3 Redis cannot be reached, refused\n"
    "the password, or was lost for longer than --retry-for.\n";

enum { OPT_REDIS = 256, OPT_PREFIX, OPT_RESTRICTED, OPT_MEMORY, OPT_LEASE, OPT_RETRY, OPT_NAME };

static const struct option long_options[] = {{"redis", required_argument, NULL, OPT_REDIS},
                                             {"key-prefix", required_argument, NULL, OPT_PREFIX},
                                             {"throttle", required_argument, NULL, 'j'},
                                             {"restricted", no_argument, NULL, OPT_RESTRICTED},
                                             {"memory-limit", required_argument, NULL, OPT_MEMORY},
                                             {"lease", required_argument, NULL, OPT_LEASE},
                                             {"retry-for", required_argument, NULL, OPT_RETRY},
                                             {"name", required_argument, NULL, OPT_NAME},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};

static void on_notice(const char *message, void *ud)
{
    (void)ud;
    cli_error("%s", message);
}

static void stop_worker(void *ud)
{
    rs_worker_stop(ud);
}

int cmd_worker(int argc, char **argv)
{
    const char *cmd = "worker";
    rs_worker_opts o = {.on_notice = on_notice};
    unsigned long throttle = 0;
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":j:qh", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            return 0;
        case OPT_REDIS:
            o.url = optarg;
            break;
        case OPT_PREFIX:
            o.prefix = optarg;
            break;
        case 'j':
            if (!parse_count(optarg, 1, 1024, &throttle))
                return cli_usage(
                    cmd, "-j/--throttle must be a whole number from 1 to 1024, not '%s'", optarg);
            o.throttle = (unsigned)throttle;
            break;
        case OPT_RESTRICTED:
            o.profile = RS_PROFILE_RESTRICTED;
            break;
        case OPT_MEMORY:
            if (!parse_bytes(optarg, &o.memory_limit))
                return cli_usage(cmd, "--memory-limit must be a size such as 256M or 1G, not '%s'",
                                 optarg);
            break;
        case OPT_LEASE:
        case OPT_RETRY:
            if (!parse_duration(optarg, 1e6, opt == OPT_LEASE ? &o.lease : &o.retry_for))
                return cli_usage(cmd, "--%s must be a number of seconds above 0, not '%s'",
                                 opt == OPT_LEASE ? "lease" : "retry-for", optarg);
            break;
        case OPT_NAME:
            o.name = optarg;
            break;
        case 'q':
            o.on_notice = NULL;
            break;
        case ':':
            return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.url)
        return cli_usage(cmd, "--redis URL is required");
    rs_worker *w = NULL;
    int rc = rs_worker_create(&o, &w);
    if (rc) {
        if (rc == RS_EINVAL && w)
            cli_error("%s", rs_worker_errmsg(w));
        else
            cli_error("%s", rs_strerror(rc));
        rs_worker_destroy(w);
        return EXIT_USAGE;
    }
    on_stop(stop_worker, w);
    rc = rs_worker_run(w);
    on_stop(NULL, NULL);
    int status = 0;
    if (rc) {
        cli_error("%s", rs_worker_errmsg(w));
        status = rc == RS_EIO ? EXIT_UNAVAILABLE : EXIT_ITEMS_FAILED;
    }
    rs_worker_destroy(w);
    return status;
}
