/*
 * main.c -- the `runspace` program: dispatches to a subcommand. Errors print as
 * "runspace: message"; exit statuses are in cli.h and the man page.
 */
#include "cli.h"

#include <string.h>

static const char usage[] = "Usage: runspace COMMAND [OPTIONS] [ARGS]\n"
                            "Isolated Lua runspaces, run in parallel.\n"
                            "\n"
                            "Commands:\n"
                            "  foreach   run a script once per input item, in parallel\n"
                            "  joblog    print the final records of a foreach journal\n"
                            "  run       run one script and show its streams\n"
                            "  scan      scan TCP ports of hosts\n"
                            "  worker    serve runs from Redis (foreach --redis) on this machine\n"
                            "  runs      list or delete the runs on Redis\n"
                            "  demo      the examples, end to end, on built-in data\n"
                            "\n"
                            "  runspace COMMAND --help   options of a command\n"
                            "  runspace --version        the version\n";

int main(int argc, char **argv)
{
    std_fds_reserve(); /* first: before anything opens a descriptor */
    signals_init();
    out_init();
    if (argc < 2)
        return cli_usage(NULL, "no command given");
    const char *cmd = argv[1];
    int rc;
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        out_puts(usage);
        rc = 0;
    } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        out_puts("runspace ");
        out_puts(rs_version());
        out_putc('\n');
        rc = 0;
    } else if (strcmp(cmd, "foreach") == 0) {
        rc = cmd_foreach(argc - 1, argv + 1);
    } else if (strcmp(cmd, "joblog") == 0) {
        rc = cmd_joblog(argc - 1, argv + 1);
    } else if (strcmp(cmd, "run") == 0) {
        rc = cmd_run(argc - 1, argv + 1);
    } else if (strcmp(cmd, "scan") == 0) {
        rc = cmd_scan(argc - 1, argv + 1);
    } else if (strcmp(cmd, "worker") == 0) {
        rc = cmd_worker(argc - 1, argv + 1);
    } else if (strcmp(cmd, "runs") == 0) {
        rc = cmd_runs(argc - 1, argv + 1);
    } else if (strcmp(cmd, "demo") == 0) {
        rc = cmd_demo(argc - 1, argv + 1);
    } else {
        return cli_usage(NULL, "unknown command '%s'", cmd);
    }
    /* Output that did not get out fails the command, whatever else it did. */
    return out_finish() ? rc : EXIT_ITEMS_FAILED;
}
