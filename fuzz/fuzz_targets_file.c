/*
 * fuzz_targets_file.c -- rs_scan_add_targets_file on a temporary file holding the input.
 * Only parsing: the harness never calls rs_scan_run, and no_network.c makes any socket or
 * resolver call a crash.
 *
 * Contracts checked (runspace.h), against a model of the file built from
 * rs_scan_add_target: one spec per line, '#' starts a comment, blanks around a spec and blank
 * lines are skipped, a line may hold 1024 bytes without its newline; a file with a bad line
 * adds nothing (RS_EINVAL with a message), otherwise it adds exactly what its lines add one by
 * one. A file holding a NUL byte is refused (RS_EINVAL) and adds nothing.
 */
#include "fuzz.h"

#include <string.h>
#include <unistd.h>

#define LINE_BYTES 1024

static char path[64];
static int fd = -1;

static void remove_file(void)
{
    if (fd >= 0)
        unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/rs-fuzz-targets-XXXXXX",
             dir && strlen(dir) < 32 ? dir : "/tmp");
    fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0, "cannot create %s", path);
    atexit(remove_file);
    return 0;
}

/* What the file should add, from the lines one by one: the probe count of a scan with the
 * default ports, or false when some line is bad. */
static bool model(const uint8_t *data, size_t size, uint64_t *probes)
{
    char *text = fuzz_cstring(data, size);
    rs_scan *scan = NULL;
    FUZZ_CHECK(rs_scan_create(NULL, &scan) == 0, "rs_scan_create failed");
    bool ok = true;
    for (char *line = text, *next; ok && line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        if (strlen(line) > LINE_BYTES) {
            ok = false;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = line + strspn(line, " \t\r");
        size_t len = strlen(s);
        while (len && strchr(" \t\r", s[len - 1]))
            s[--len] = '\0';
        if (len && rs_scan_add_target(scan, s) != 0)
            ok = false;
    }
    *probes = rs_scan_probe_count(scan);
    FUZZ_CHECK(rs_scan_destroy(scan) == 0, "rs_scan_destroy failed");
    free(text);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size,
               "cannot write %s", path);
    rs_scan *scan = NULL;
    FUZZ_CHECK(rs_scan_create(NULL, &scan) == 0, "rs_scan_create failed");
    /* Something already there, which a failed call must leave alone. */
    FUZZ_CHECK(rs_scan_add_target(scan, "127.0.0.1") == 0, "seed target");
    uint64_t before = rs_scan_probe_count(scan);
    int rc = rs_scan_add_targets_file(scan, path);
    uint64_t added = rs_scan_probe_count(scan) - before;
    if (rc) {
        FUZZ_CHECK(rc == RS_EINVAL || rc == RS_ENOMEM, "%s", rs_err_name(rc));
        FUZZ_CHECK(*rs_scan_errmsg(scan), "no message");
        FUZZ_CHECK(added == 0, "a rejected file added %llu probes", (unsigned long long)added);
    }
    if (memchr(data, '\0', size)) {
        FUZZ_CHECK(rc == RS_EINVAL && added == 0, "a file with a NUL byte gave %s",
                   rs_err_name(rc));
    } else {
        uint64_t want = 0;
        bool ok = model(data, size, &want);
        FUZZ_CHECK(ok == (rc == 0), "the file %s (%s) but its lines one by one %s",
                   rc ? "was rejected" : "was accepted", rs_scan_errmsg(scan),
                   ok ? "are fine" : "are not");
        FUZZ_CHECK(!ok || want == added || want == UINT64_MAX,
                   "the file added %llu probes, its lines one by one %llu",
                   (unsigned long long)added, (unsigned long long)want);
    }
    FUZZ_CHECK(rs_scan_destroy(scan) == 0, "rs_scan_destroy failed");
    return 0;
}
