/*
 * scan.c -- `runspace scan`: TCP connect scan of hosts x ports (docs/design.md section 5). Results
 * stream out as they are decided (a line at a time into a pipe), in a table whose columns fit
 * what they hold, jsonl or csv, each with the port's service name; nmap's file formats go to
 * the files -oN, -oX, -oG and -oA name (scan_files.c); the seed's summary goes to stderr.
 */
#include "scan_out.h"

#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: runspace scan [OPTIONS] TARGETS...\n"
    "Scan TCP ports with non-blocking connects. TARGETS are host names, IPv4/IPv6 addresses,\n"
    "CIDR blocks (192.0.2.0/24) and ranges (192.0.2.1-20).\n"
    "\n"
    "  -p, --ports PORTS      e.g. 22,80,1000-2000 (default: "
    "22,80,135,139,443,445,3389,5985,5986)\n"
    "      --top-ports N      the N ports most often found open, by the frequencies of\n"
    "                         nmap's nmap-services file (Debian package nmap-common)\n"
    "      --datadir DIR      where nmap-services is (default /usr/share/nmap)\n"
    "  -iL, --input-list FILE targets from FILE, one per line ('#' comments)\n"
    "      --exclude LIST     leave out these targets (comma-separated, as TARGETS)\n"
    "      --excludefile FILE leave out the targets of FILE, one per line\n"
    "      --timeout MS       wait this long for an answer (default 1000)\n"
    "      --retries N        attempts more for unanswered probes (default 1)\n"
    "      --max-inflight N   probes in flight at once (default: from the descriptor limit)\n"
    "      --format FORMAT    table (default), jsonl or csv, on standard output\n"
    "  -oN FILE               also write nmap's normal format to FILE\n"
    "  -oX FILE               also write nmap's XML format (valid against nmap.dtd) to FILE\n"
    "  -oG FILE               also write nmap's grepable format to FILE\n"
    "  -oA BASE               all three: BASE.nmap, BASE.xml and BASE.gnmap\n"
    "      --open             only report open ports (on standard output)\n"
    "      --force            allow scans of more than 16,777,216 probes\n"
    "      --progress, --no-progress\n"
    "                         progress bar on stderr (default: when stderr is a terminal)\n"
    "  -h, --help             this help\n"
    "\n"
    "States are nmap's: open (connected), closed (refused), filtered (no answer, or ICMP\n"
    "unreachable/prohibited), error (the probe could not be made). Service names come from\n"
    "/etc/services. Results stream out as they are decided, a line at a time into a pipe.\n"
    "Exit status: 0 the scan ran; 1 it could not run, or the output could not be written;\n"
    "2 usage error; 130 interrupted.\n";

typedef enum { SFMT_TABLE, SFMT_JSONL, SFMT_CSV } scan_format;

typedef struct scan_cli {
    scan_format format;
    bool only_open;
    bool flush_each; /* stdout is a pipe, a socket or a terminal: a line at a time */
    progress_bar bar;
    uint64_t total;
    uint64_t done;
    double started;
    bool header_done;
    rs_scan *scan;
    services *names;
    scan_files *files;
    double timeout;                       /* seconds an attempt waits */
    int host_w, addr_w, service_w, rtt_w; /* the table's column widths */
} scan_cli;

/* The widths of the table's columns, from what the results can hold: the scan's longest host
 * and address texts (known once names are resolved, which they are by the first result), the
 * longest service name of the ports scanned, and the longest round trip the timeout allows. */
static void table_widths(scan_cli *c)
{
    size_t host, addr;
    rs_scan_text_widths(c->scan, &host, &addr);
    c->host_w = host > 4 ? (int)host : 4;
    c->addr_w = addr > 7 ? (int)addr : 7;
    size_t service = strlen("unknown");
    for (unsigned p = 0; (p = rs_scan_next_port(c->scan, p));) {
        const char *name = service_name(c->names, p);
        if (name && strlen(name) > service)
            service = strlen(name);
    }
    c->service_w = (int)service;
    char rtt[48];
    c->rtt_w = snprintf(rtt, sizeof rtt, "%.3f", c->timeout * 1e3);
    if (c->rtt_w < 7)
        c->rtt_w = 7;
}

/* The header of the table or CSV output: written with the first result, so that a scan that
 * cannot run writes nothing to stdout. */
static void header(scan_cli *c)
{
    if (c->header_done)
        return;
    c->header_done = true;
    if (c->format == SFMT_TABLE) {
        table_widths(c);
        char buf[512];
        snprintf(buf, sizeof buf, "%-*s %-*s  PORT STATE    %-*s %*s REASON\n", c->host_w, "HOST",
                 c->addr_w, "ADDRESS", c->service_w, "SERVICE", c->rtt_w, "RTT(ms)");
        out_puts(buf);
    } else if (c->format == SFMT_CSV) {
        out_puts("host,address,port,state,service,reason,rtt_ms\n");
    }
}

/* A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
static void csv_field(const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")]) {
        out_puts(s);
        return;
    }
    out_putc('"');
    for (; *s; s++) {
        if (*s == '"')
            out_putc('"');
        out_putc(*s);
    }
    out_putc('"');
}

static void on_result(const rs_scan_result *r, void *ud)
{
    scan_cli *c = ud;
    c->done++;
    header(c);
    scan_files_result(c->files, r);
    if (!c->only_open || r->state == RS_PORT_OPEN) {
        const char *service = r->port ? service_name(c->names, (unsigned)r->port) : NULL;
        char rtt[32] = "";
        if (r->rtt >= 0)
            snprintf(rtt, sizeof rtt, "%.3f", r->rtt * 1e3);
        bar_clear(&c->bar);
        switch (c->format) {
        case SFMT_TABLE: {
            char *reason = utf8_text(r->reason);
            /* A target that failed as a whole (port 0) has no service. */
            const char *shown = service ? service : r->port ? "unknown" : "";
            char *line = NULL;
            int n = asprintf(&line, "%-*s %-*s %5d %-8s %-*s %*s %s\n", c->host_w, r->host,
                             c->addr_w, r->address, r->port, rs_port_state_name(r->state),
                             c->service_w, shown, c->rtt_w, rtt, reason ? reason : "");
            if (n >= 0)
                out_write(line, (size_t)n);
            free(line);
            free(reason);
            break;
        }
        case SFMT_JSONL: {
            rs_value *m = rs_value_map();
            rs_map_set(m, "host", rs_value_string(r->host));
            rs_map_set(m, "address", rs_value_string(r->address));
            rs_map_set(m, "port", rs_value_int(r->port));
            rs_map_set(m, "state", rs_value_string(rs_port_state_name(r->state)));
            rs_map_set(m, "reason", rs_value_string(r->reason));
            rs_map_set(m, "service", service ? rs_value_string(service) : rs_value_null());
            rs_map_set(m, "rtt_ms", r->rtt >= 0 ? rs_value_double(r->rtt * 1e3) : rs_value_null());
            rs_map_set(m, "attempts", rs_value_int(r->attempts));
            char *text = json_text(m);
            out_puts(text ? text : "{}");
            out_putc('\n');
            free(text);
            rs_value_destroy(m);
            break;
        }
        case SFMT_CSV: {
            char port[16];
            snprintf(port, sizeof port, "%d", r->port);
            const char *fields[] = {
                r->host,   r->address, port, rs_port_state_name(r->state), service ? service : "",
                r->reason, rtt};
            for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
                if (i)
                    out_putc(',');
                char *text = utf8_text(fields[i]);
                csv_field(text ? text : "");
                free(text);
            }
            out_putc('\n');
            break;
        }
        }
        if (c->flush_each || c->bar.enabled)
            out_flush();
    }
    bar_draw(&c->bar, c->done, c->total, now_seconds() - c->started, false);
}

/* Whether stdout is read as it comes (a pipe, a socket, a terminal), rather than stored. */
static bool stdout_streams(void)
{
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) != 0)
        return false;
    return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDOUT_FILENO);
}

/* The command line as one string, for the headers of the file formats; words with blanks or
 * shell characters in single quotes. */
static char *command_line(int argc, char **argv)
{
    size_t len = strlen("runspace") + 1;
    for (int i = 0; i < argc; i++)
        len += 4 * strlen(argv[i]) + 3;
    char *s = malloc(len);
    if (!s)
        return NULL;
    char *p = s + sprintf(s, "runspace");
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        bool quote = !*w || w[strcspn(w, " \t\n'\"\\$*?;&|<>()`")];
        *p++ = ' ';
        if (quote)
            *p++ = '\'';
        for (; *w; w++) {
            if (*w == '\'' && quote)
                p += sprintf(p, "'\\''");
            else
                *p++ = *w;
        }
        if (quote)
            *p++ = '\'';
    }
    *p = '\0';
    return s;
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
    OPT_LIST,
    OPT_EXCLUDE,
    OPT_EXCLUDEFILE,
    OPT_TOP_PORTS,
    OPT_DATADIR,
    OPT_ON,
    OPT_OX,
    OPT_OG,
    OPT_OA
};

static const struct option long_options[] = {
    {"ports", required_argument, NULL, 'p'},
    {"input-list", required_argument, NULL, OPT_LIST},
    {"exclude", required_argument, NULL, OPT_EXCLUDE},
    {"excludefile", required_argument, NULL, OPT_EXCLUDEFILE},
    {"top-ports", required_argument, NULL, OPT_TOP_PORTS},
    {"datadir", required_argument, NULL, OPT_DATADIR},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"max-inflight", required_argument, NULL, OPT_INFLIGHT},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"open", no_argument, NULL, OPT_OPEN},
    {"force", no_argument, NULL, OPT_FORCE},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"output-normal", required_argument, NULL, OPT_ON},
    {"output-xml", required_argument, NULL, OPT_OX},
    {"output-grepable", required_argument, NULL, OPT_OG},
    {"output-all", required_argument, NULL, OPT_OA},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* nmap's spellings of options, taken as long options: -iL FILE, -oN FILE and so on. */
static const char *const nmap_spellings[][2] = {{"-iL", "--input-list"},
                                                {"-oN", "--output-normal"},
                                                {"-oX", "--output-xml"},
                                                {"-oG", "--output-grepable"},
                                                {"-oA", "--output-all"}};

/* What the options ask for beyond rs_scan_opts. */
typedef struct scan_args {
    const char *ports[64];
    const char *lists[64];
    const char *excludes[64];
    const char *exclude_files[64];
    int nports, nlists, nexcludes, nexclude_files;
    unsigned long top; /* --top-ports, 0: none */
    const char *datadir;
    const char *normal, *xml, *grepable, *all;
    int progress;
} scan_args;

/* An option whose value names a file: refused when empty. */
static bool file_value(const char *cmd, const char *opt, const char *value, const char **out,
                       int *rc)
{
    if (!*value) {
        *rc = cli_usage(cmd, "%s needs a file name, not ''", opt);
        return false;
    }
    *out = value;
    return true;
}

/* Parses the options into o, c and a; 0 to go on, else the exit status (help: 0 too, with
 * *stop set). */
static int parse_options(int argc, char **argv, rs_scan_opts *o, scan_cli *c, scan_args *a,
                         bool *stop)
{
    const char *cmd = "scan";
    unsigned long n;
    double ms;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        for (size_t k = 0; k < sizeof nmap_spellings / sizeof nmap_spellings[0]; k++) {
            if (strcmp(argv[i], nmap_spellings[k][0]) == 0)
                argv[i] = (char *)nmap_spellings[k][1];
        }
    }
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":p:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            *stop = true;
            return 0;
        case 'p':
            if (a->nports == 64)
                return cli_usage(cmd, "too many -p options");
            a->ports[a->nports++] = optarg;
            break;
        case OPT_LIST:
            if (a->nlists == 64)
                return cli_usage(cmd, "too many -iL options");
            a->lists[a->nlists++] = optarg;
            break;
        case OPT_EXCLUDE:
            if (a->nexcludes == 64)
                return cli_usage(cmd, "too many --exclude options");
            a->excludes[a->nexcludes++] = optarg;
            break;
        case OPT_EXCLUDEFILE:
            if (a->nexclude_files == 64)
                return cli_usage(cmd, "too many --excludefile options");
            if (!file_value(cmd, "--excludefile", optarg, &a->exclude_files[a->nexclude_files],
                            &rc))
                return rc;
            a->nexclude_files++;
            break;
        case OPT_TOP_PORTS:
            if (!parse_count(optarg, 1, 65535, &a->top))
                return cli_usage(
                    cmd, "--top-ports must be a whole number from 1 to 65535, not '%s'", optarg);
            break;
        case OPT_DATADIR:
            if (!file_value(cmd, "--datadir", optarg, &a->datadir, &rc))
                return rc;
            break;
        case OPT_ON:
            if (!file_value(cmd, "-oN", optarg, &a->normal, &rc))
                return rc;
            break;
        case OPT_OX:
            if (!file_value(cmd, "-oX", optarg, &a->xml, &rc))
                return rc;
            break;
        case OPT_OG:
            if (!file_value(cmd, "-oG", optarg, &a->grepable, &rc))
                return rc;
            break;
        case OPT_OA:
            if (!file_value(cmd, "-oA", optarg, &a->all, &rc))
                return rc;
            break;
        case OPT_TIMEOUT:
            if (!parse_duration(optarg, DURATION_MAX * 1e3, &ms))
                return cli_usage(cmd,
                                 "--timeout must be a number of milliseconds above 0 and at "
                                 "most %.0f, not '%s'",
                                 DURATION_MAX * 1e3, optarg);
            /* A positive timeout stays positive (0 would mean the default). */
            o->timeout = ms / 1e3 > 0 ? ms / 1e3 : DBL_MIN;
            break;
        case OPT_RETRIES:
            if (!parse_count(optarg, 0, 100, &n))
                return cli_usage(cmd, "--retries must be a whole number from 0 to 100, not '%s'",
                                 optarg);
            o->tries = (int)n + 1;
            break;
        case OPT_INFLIGHT:
            if (!parse_count(optarg, 1, 1000000, &n))
                return cli_usage(cmd,
                                 "--max-inflight must be a whole number from 1 to "
                                 "1000000, not '%s'",
                                 optarg);
            o->max_inflight = (unsigned)n;
            break;
        case OPT_FORMAT: {
            static const char *const formats[] = {"table", "jsonl", "csv", NULL};
            int f = parse_choice(optarg, formats);
            if (f < 0)
                return cli_usage(cmd, "--format must be table, jsonl or csv, not '%s'", optarg);
            c->format = (scan_format)f;
            break;
        }
        case OPT_OPEN:
            c->only_open = true;
            break;
        case OPT_FORCE:
            o->force = true;
            break;
        case OPT_PROGRESS:
            a->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            a->progress = 0;
            break;
        default:
            return cli_bad_option(cmd, argv, opt);
        }
    }
    if (optind == argc && a->nlists == 0)
        return cli_usage(cmd, "no targets given");
    if (a->top && a->nports)
        return cli_usage(cmd, "--top-ports and -p cannot be used together");
    return 0;
}

/* Adds the ports of --top-ports, read from nmap-services; 0, or the exit status after the
 * message. */
static int add_top_ports(rs_scan *scan, const scan_args *a)
{
    const char *dir = a->datadir ? a->datadir : "/usr/share/nmap";
    char *path = NULL;
    if (asprintf(&path, "%s/nmap-services", dir) < 0) {
        cli_error("out of memory");
        return EXIT_ITEMS_FAILED;
    }
    int err;
    char *spec = top_ports(path, (unsigned)a->top, &err);
    int rc = 0;
    if (!spec) {
        cli_error("--top-ports needs nmap's port frequencies, from '%s': %s (install Debian's "
                  "nmap-common, or name the directory of nmap-services with --datadir)",
                  path, err == ENODATA ? "it holds none" : strerror(err));
        rc = EXIT_USAGE;
    } else if (rs_scan_add_ports(scan, spec)) {
        cli_error("--top-ports: %s", rs_scan_errmsg(scan));
        rc = EXIT_USAGE;
    }
    free(spec);
    free(path);
    return rc;
}

/* Adds ports, targets and exclusions; 0, or the exit status after the message. */
static int setup(rs_scan *scan, int argc, char **argv, const scan_args *a)
{
    int rc = 0;
    const char *option = NULL; /* the option whose value failed, for the message */
    for (int i = 0; !rc && i < a->nports; i++)
        rc = rs_scan_add_ports(scan, a->ports[i]);
    for (int i = optind; !rc && i < argc; i++)
        rc = rs_scan_add_target(scan, argv[i]);
    for (int i = 0; !rc && i < a->nlists; i++)
        rc = rs_scan_add_targets_file(scan, a->lists[i]);
    /* --exclude takes a comma-separated list, as nmap's does. */
    for (int i = 0; !rc && i < a->nexcludes; i++) {
        char *list = strdup(a->excludes[i]), *save = NULL;
        if (!list)
            rc = RS_ENOMEM;
        bool any = false;
        for (char *e = list ? strtok_r(list, ",", &save) : NULL; e && !rc;
             e = strtok_r(NULL, ",", &save)) {
            rc = rs_scan_add_exclude(scan, e);
            any = true;
        }
        free(list);
        if (!rc && !any) {
            cli_usage("scan", "--exclude needs a list of targets, not '%s'", a->excludes[i]);
            return EXIT_USAGE;
        }
        option = "--exclude: ";
    }
    for (int i = 0; !rc && i < a->nexclude_files; i++) {
        rc = rs_scan_add_excludes_file(scan, a->exclude_files[i]);
        option = "--excludefile: ";
    }
    if (!rc && a->top)
        return add_top_ports(scan, a);
    if (!rc)
        return 0;
    if (rc == RS_ESTOPPED)
        return EXIT_INTERRUPTED;
    if (rc == RS_EINVAL || rc == RS_ENOENT || rc == RS_ELIMIT)
        return cli_usage("scan", "%s%s", option ? option : "", rs_scan_errmsg(scan));
    cli_error("%s%s", option ? option : "",
              rc == RS_ENOMEM ? "out of memory" : rs_scan_errmsg(scan));
    return EXIT_ITEMS_FAILED;
}

/* Opens the files of -oN, -oX, -oG and -oA; false after the message. */
static bool open_files(scan_cli *c, const scan_args *a, const char *cmdline)
{
    if (!a->normal && !a->xml && !a->grepable && !a->all)
        return true;
    char *all[3] = {NULL, NULL, NULL};
    static const char *const ext[3] = {".nmap", ".xml", ".gnmap"};
    for (int i = 0; a->all && i < 3; i++) {
        if (asprintf(&all[i], "%s%s", a->all, ext[i]) < 0)
            all[i] = NULL;
    }
    unsigned nports = 0;
    char *ports = scan_port_list(c->scan, &nports);
    scan_meta meta = {.args = cmdline ? cmdline : "runspace scan",
                      .ports = ports ? ports : "",
                      .nports = nports,
                      .names = c->names};
    c->files = scan_files_open(a->normal ? a->normal : all[0], a->xml ? a->xml : all[1],
                               a->grepable ? a->grepable : all[2], &meta);
    free(ports);
    for (int i = 0; i < 3; i++)
        free(all[i]);
    return c->files != NULL;
}

int cmd_scan(int argc, char **argv)
{
    scan_cli c = {.format = SFMT_TABLE};
    scan_args a = {.progress = -1};
    rs_scan_opts o = {0};
    char *cmdline = command_line(argc, argv);
    bool stop = false;
    int rc = parse_options(argc, argv, &o, &c, &a, &stop);
    if (rc || stop) {
        free(cmdline);
        return rc;
    }
    o.on_result = on_result;
    o.userdata = &c;
    rc = rs_scan_create(&o, &c.scan);
    if (rc) {
        cli_error("%s", rs_strerror(rc));
        free(cmdline);
        return EXIT_ITEMS_FAILED;
    }
    rs_scan *scan = c.scan;
    /* Reading a targets file can take long (a pipe, a slow disk): an interrupt ends it too. */
    on_stop(stop_scan, scan);
    rc = setup(scan, argc, argv, &a);
    if (!rc) {
        c.names = services_load("/etc/services");
        if (!c.names) {
            cli_error("out of memory");
            rc = EXIT_ITEMS_FAILED;
        } else if (!open_files(&c, &a, cmdline)) {
            rc = EXIT_USAGE;
        }
    }
    free(cmdline);
    if (rc) {
        on_stop(NULL, NULL);
        rs_scan_destroy(scan);
        services_free(c.names);
        return rc;
    }
    c.timeout = o.timeout > 0 ? o.timeout : 1.0;
    c.flush_each = stdout_streams();
    c.total = rs_scan_probe_count(scan);
    bar_init(&c.bar, a.progress, "scan");
    c.started = now_seconds();
    rs_scan_summary sum;
    int run = rs_scan_run(scan, &sum);
    on_stop(NULL, NULL);
    bar_clear(&c.bar);
    out_flush();
    if (run == RS_ELIMIT || run == RS_EINVAL) {
        rc = cli_usage("scan", "%s", rs_scan_errmsg(scan));
        scan_files_close(c.files, &sum, true);
    } else if (run && run != RS_ESTOPPED) {
        cli_error("%s", rs_scan_errmsg(scan));
        scan_files_close(c.files, &sum, true);
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
        bool stopped = interrupted() || run == RS_ESTOPPED;
        bool files_ok = scan_files_close(c.files, &sum, stopped);
        rc = stopped ? EXIT_INTERRUPTED : files_ok ? 0 : EXIT_ITEMS_FAILED;
    }
    rs_scan_destroy(scan);
    services_free(c.names);
    return rc;
}
