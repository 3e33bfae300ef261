/*
 * scan.c -- `runspace scan`: TCP connect scan of hosts x ports (docs/design.md section 5). Results
 * stream out as they are decided; the seed's summary goes to stderr at the end.
 */
#include "cli.h"

#include <float.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: runspace scan [OPTIONS] TARGETS...\n"
    "Scan TCP ports with non-blocking connects. TARGETS are host names, IPv4/IPv6 addresses,\n"
    "CIDR blocks (192.0.2.0/24) and ranges (192.0.2.1-20).\n"
    "\n"
    "  -p, --ports PORTS      e.g. 22,80,1000-2000 (default: "
    "22,80,135,139,443,445,3389,5985,5986)\n"
    "  -iL, --input-list FILE targets from FILE, one per line ('#' comments)\n"
    "      --timeout MS       wait this long for an answer (default 1000)\n"
    "      --retries N        attempts more for unanswered probes (default 1)\n"
    "      --max-inflight N   probes in flight at once (default: from the descriptor limit)\n"
    "      --format FORMAT    table (default), jsonl or csv\n"
    "      --open             only report open ports\n"
    "      --force            allow scans of more than 16,777,216 probes\n"
    "      --progress, --no-progress\n"
    "                         progress bar on stderr (default: when stderr is a terminal)\n"
    "  -h, --help             this help\n"
    "\n"
    "States are nmap's: open (connected), closed (refused), filtered (no answer, or ICMP\n"
    "unreachable/prohibited), error (the probe could not be made).\n"
    "Exit status: 0 the scan ran; 1 it could not run, or the output could not be written;\n"
    "2 usage error; 130 interrupted.\n";

typedef enum { SFMT_TABLE, SFMT_JSONL, SFMT_CSV } scan_format;

typedef struct scan_cli {
    scan_format format;
    bool only_open;
    progress_bar bar;
    uint64_t total;
    uint64_t done;
    double started;
    bool header_done;
} scan_cli;

/* The header of the table or CSV output: written with the first result, so that a scan that
 * cannot run writes nothing to stdout. */
static void header(scan_cli *c)
{
    if (c->header_done)
        return;
    c->header_done = true;
    if (c->format == SFMT_TABLE)
        out_puts("HOST                         ADDRESS                                   PORT  "
                 "STATE     REASON             RTT(ms)\n");
    else if (c->format == SFMT_CSV)
        out_puts("host,address,port,state,reason,rtt_ms\n");
}

static void on_result(const rs_scan_result *r, void *ud)
{
    scan_cli *c = ud;
    c->done++;
    header(c);
    if (!c->only_open || r->state == RS_PORT_OPEN) {
        char buf[512];
        char rtt[32] = "";
        if (r->rtt >= 0)
            snprintf(rtt, sizeof rtt, "%.3f", r->rtt * 1e3);
        switch (c->format) {
        case SFMT_TABLE:
            bar_clear(&c->bar);
            snprintf(buf, sizeof buf, "%-28s %-40s %5d  %-9s %-18s %s\n", r->host, r->address,
                     r->port, rs_port_state_name(r->state), r->reason, rtt);
            out_puts(buf);
            break;
        case SFMT_JSONL: {
            rs_value *m = rs_value_map();
            rs_map_set(m, "host", rs_value_string(r->host));
            rs_map_set(m, "address", rs_value_string(r->address));
            rs_map_set(m, "port", rs_value_int(r->port));
            rs_map_set(m, "state", rs_value_string(rs_port_state_name(r->state)));
            rs_map_set(m, "reason", rs_value_string(r->reason));
            rs_map_set(m, "rtt_ms", r->rtt >= 0 ? rs_value_double(r->rtt * 1e3) : rs_value_null());
            rs_map_set(m, "attempts", rs_value_int(r->attempts));
            char *text = json_text(m);
            out_puts(text ? text : "{}");
            out_putc('\n');
            free(text);
            rs_value_destroy(m);
            break;
        }
        case SFMT_CSV:
            snprintf(buf, sizeof buf, "%s,%s,%d,%s,\"%s\",%s\n", r->host, r->address, r->port,
                     rs_port_state_name(r->state), r->reason, rtt);
            out_puts(buf);
            break;
        }
        if (c->bar.enabled)
            out_flush();
    }
    bar_draw(&c->bar, c->done, c->total, now_seconds() - c->started, false);
}

static void stop_scan(void *ud)
{
    rs_scan_stop(ud);
}

enum {
    OPT_TIMEOUT = 256,
    OPT_RETRIES,
    OPT_INFLIGHT,
    OPT_FORMAT,
    OPT_OPEN,
    OPT_FORCE,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_LIST
};

static const struct option long_options[] = {
    {"ports", required_argument, NULL, 'p'},
    {"input-list", required_argument, NULL, OPT_LIST},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"max-inflight", required_argument, NULL, OPT_INFLIGHT},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"open", no_argument, NULL, OPT_OPEN},
    {"force", no_argument, NULL, OPT_FORCE},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

int cmd_scan(int argc, char **argv)
{
    const char *cmd = "scan";
    scan_cli c = {.format = SFMT_TABLE};
    rs_scan_opts o = {0};
    const char *ports[64];
    const char *lists[64];
    int nports = 0, nlists = 0, progress = -1;
    unsigned long n;
    double ms;

    /* nmap spells its target-list option -iL; take it as --input-list. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-iL") == 0)
            argv[i] = "--input-list";
    }
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":p:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            return 0;
        case 'p':
            if (nports == 64)
                return cli_usage(cmd, "too many -p options");
            ports[nports++] = optarg;
            break;
        case OPT_LIST:
            if (nlists == 64)
                return cli_usage(cmd, "too many -iL options");
            lists[nlists++] = optarg;
            break;
        case OPT_TIMEOUT:
            if (!parse_duration(optarg, DURATION_MAX * 1e3, &ms))
                return cli_usage(cmd,
                                 "--timeout must be a number of milliseconds above 0 and at "
                                 "most %.0f, not '%s'",
                                 DURATION_MAX * 1e3, optarg);
            /* A positive timeout stays positive (0 would mean the default). */
            o.timeout = ms / 1e3 > 0 ? ms / 1e3 : DBL_MIN;
            break;
        case OPT_RETRIES:
            if (!parse_count(optarg, 0, 100, &n))
                return cli_usage(cmd, "--retries must be a whole number from 0 to 100, not '%s'",
                                 optarg);
            o.tries = (int)n + 1;
            break;
        case OPT_INFLIGHT:
            if (!parse_count(optarg, 1, 1000000, &n))
                return cli_usage(cmd,
                                 "--max-inflight must be a whole number from 1 to "
                                 "1000000, not '%s'",
                                 optarg);
            o.max_inflight = (unsigned)n;
            break;
        case OPT_FORMAT: {
            static const char *const formats[] = {"table", "jsonl", "csv", NULL};
            int f = parse_choice(optarg, formats);
            if (f < 0)
                return cli_usage(cmd, "--format must be table, jsonl or csv, not '%s'", optarg);
            c.format = (scan_format)f;
            break;
        }
        case OPT_OPEN:
            c.only_open = true;
            break;
        case OPT_FORCE:
            o.force = true;
            break;
        case OPT_PROGRESS:
            progress = 1;
            break;
        case OPT_NO_PROGRESS:
            progress = 0;
            break;
        case ':':
            return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc && nlists == 0)
        return cli_usage(cmd, "no targets given");

    o.on_result = on_result;
    o.userdata = &c;
    rs_scan *scan = NULL;
    int rc = rs_scan_create(&o, &scan);
    if (rc) {
        cli_error("%s", rs_strerror(rc));
        return EXIT_ITEMS_FAILED;
    }
    /* Reading a targets file can take long (a pipe, a slow disk): an interrupt ends it too. */
    on_stop(stop_scan, scan);
    for (int i = 0; !rc && i < nports; i++)
        rc = rs_scan_add_ports(scan, ports[i]);
    for (int i = optind; !rc && i < argc; i++)
        rc = rs_scan_add_target(scan, argv[i]);
    for (int i = 0; !rc && i < nlists; i++)
        rc = rs_scan_add_targets_file(scan, lists[i]);
    if (rc) {
        on_stop(NULL, NULL);
        if (rc == RS_ESTOPPED)
            rc = EXIT_INTERRUPTED;
        else if (rc == RS_EINVAL || rc == RS_ENOENT || rc == RS_ELIMIT)
            rc = cli_usage(cmd, "%s", rs_scan_errmsg(scan));
        else {
            cli_error("%s", rs_scan_errmsg(scan));
            rc = EXIT_ITEMS_FAILED;
        }
        rs_scan_destroy(scan);
        return rc;
    }
    c.total = rs_scan_probe_count(scan);
    bar_init(&c.bar, progress, "scan");
    c.started = now_seconds();
    rs_scan_summary sum;
    int run = rs_scan_run(scan, &sum);
    on_stop(NULL, NULL);
    bar_clear(&c.bar);
    out_flush();
    if (run == RS_ELIMIT || run == RS_EINVAL) {
        rc = cli_usage(cmd, "%s", rs_scan_errmsg(scan));
    } else if (run && run != RS_ESTOPPED) {
        cli_error("%s", rs_scan_errmsg(scan));
        rc = 1;
    } else {
        header(&c);
        out_flush();
        fprintf(stderr,
                "\nScan Summary:\n"
                "  Hosts scanned:  %llu\n"
                "  Open ports:     %llu\n"
                "  Closed ports:   %llu\n"
                "  Filtered ports: %llu\n"
                "  Scan errors:    %llu\n"
                "  Probes:         %llu in %.2f s\n",
                (unsigned long long)sum.hosts, (unsigned long long)sum.open,
                (unsigned long long)sum.closed, (unsigned long long)sum.filtered,
                (unsigned long long)sum.errors, (unsigned long long)sum.probes, sum.elapsed);
        rc = interrupted() || run == RS_ESTOPPED ? EXIT_INTERRUPTED : 0;
    }
    rs_scan_destroy(scan);
    return rc;
}
