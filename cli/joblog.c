/*
 * joblog.c -- `runspace joblog FILE`: the final records of a for-each journal (the latest
 * line for each index), in any output format of foreach, with a summary.
 */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: runspace joblog [OPTIONS] FILE\n"
    "Print the final records of a journal written by `runspace foreach --joblog FILE`: for\n"
    "each input index, its latest line (a resumed run appends the records of what it ran\n"
    "again), in the order of those lines.\n"
    "\n"
    "      --format FORMAT    jsonl (default), raw, csv or table, as foreach writes them\n"
    "      --summary          counts on stderr: records by status, lines, indexes missing\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 every final record is ok and no index below the highest is missing;\n"
    "1 some record is not ok, some index is missing, or the output could not be written;\n"
    "2 usage error, or FILE cannot be read or is not a journal.\n";

typedef struct joblog {
    record_format format;
    bool heading;     /* the csv or table heading is still to be written */
    progress_bar bar; /* never drawn: record_write clears it */
} joblog;

static void on_record(const rs_foreach_record *r, void *ud)
{
    joblog *j = ud;
    if (out_error())
        return;
    if (j->heading) {
        j->heading = false;
        record_heading(j->format);
    }
    record_write(j->format, r, &j->bar);
}

int cmd_joblog(int argc, char **argv)
{
    enum { OPT_FORMAT = 256, OPT_SUMMARY };
    static const struct option options[] = {{"format", required_argument, NULL, OPT_FORMAT},
                                            {"summary", no_argument, NULL, OPT_SUMMARY},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    joblog j = {.format = FMT_JSONL, .heading = true};
    bool summary = false;
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            out_puts(usage);
            return 0;
        case OPT_FORMAT:
            if (!parse_record_format(optarg, &j.format))
                return cli_usage("joblog", "--format must be raw, jsonl, csv or table, not '%s'",
                                 optarg);
            break;
        case OPT_SUMMARY:
            summary = true;
            break;
        default:
            return cli_bad_option("joblog", argv, opt);
        }
    }
    if (optind == argc)
        return cli_usage("joblog", "no journal given");
    if (argc - optind > 1)
        return cli_usage("joblog", "unexpected argument '%s' (one journal at a time)",
                         argv[optind + 1]);
    const char *path = argv[optind];
    bar_init(&j.bar, 0, "joblog");
    rs_journal_summary sum;
    rs_errinfo err;
    int rc = rs_journal_read(path, on_record, &j, &sum, &err);
    if (rc) {
        out_flush();
        cli_error("%s", err.message);
        return EXIT_USAGE;
    }
    if (j.heading)
        record_heading(j.format); /* a journal without records */
    out_flush();
    if (sum.torn)
        cli_error("the last line of '%s' was cut short (a crash while it was written): it is "
                  "not a record, and a resume drops it and runs its item again",
                  path);
    if (summary) {
        fprintf(stderr,
                "Journal Summary:\n"
                "  Records:      %llu (one per index, from %llu lines)\n"
                "  Successful:   %llu\n"
                "  Errors:       %llu\n"
                "  Timed out:    %llu\n"
                "  Cancelled:    %llu\n"
                "  Missing:      %llu (indexes below the highest without a record)\n",
                (unsigned long long)sum.records, (unsigned long long)sum.lines,
                (unsigned long long)sum.succeeded, (unsigned long long)sum.failed,
                (unsigned long long)sum.timed_out, (unsigned long long)sum.cancelled,
                (unsigned long long)sum.missing);
    }
    return sum.succeeded == sum.records && !sum.missing ? 0 : EXIT_ITEMS_FAILED;
}
