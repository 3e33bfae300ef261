/*
 * fuzz_scan_spec.c -- the scanner's target and port specs (rs_scan_add_target,
 * rs_scan_add_ports). Only parsing: the harness never calls rs_scan_run, and no_network.c
 * makes any socket or resolver call a crash.
 *
 * The input is split at newlines; every piece is given to rs_scan_add_target and then to
 * rs_scan_add_ports of one scan, so that many specs accumulate (probe counts saturate).
 *
 * Contracts checked (runspace.h):
 *  - errors are RS_EINVAL (or RS_ENOMEM) with a message, and a failed call adds nothing;
 *  - an accepted target adds at least one probe per port (counts saturate at UINT64_MAX);
 *  - an accepted port list holds only digits, ',', '-' and blanks.
 */
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static void add_target(rs_scan *scan, const char *spec)
{
    uint64_t before = rs_scan_probe_count(scan);
    int rc = rs_scan_add_target(scan, spec);
    uint64_t after = rs_scan_probe_count(scan);
    if (rc) {
        FUZZ_CHECK(rc == RS_EINVAL || rc == RS_ENOMEM, "target '%s': %s", spec, rs_err_name(rc));
        FUZZ_CHECK(rs_scan_errmsg(scan) && *rs_scan_errmsg(scan), "target '%s': no message", spec);
        FUZZ_CHECK(after == before, "rejected target '%s' changed the count", spec);
        return;
    }
    FUZZ_CHECK(after > before || after == UINT64_MAX,
               "accepted target '%s' added no probe (%llu -> %llu)", spec,
               (unsigned long long)before, (unsigned long long)after);
}

static void add_ports(rs_scan *scan, const char *spec)
{
    uint64_t before = rs_scan_probe_count(scan);
    int rc = rs_scan_add_ports(scan, spec);
    if (rc) {
        FUZZ_CHECK(rc == RS_EINVAL || rc == RS_ENOMEM, "ports '%s': %s", spec, rs_err_name(rc));
        FUZZ_CHECK(rs_scan_errmsg(scan) && *rs_scan_errmsg(scan), "ports '%s': no message", spec);
        FUZZ_CHECK(rs_scan_probe_count(scan) == before, "rejected ports '%s' changed the count",
                   spec);
        return;
    }
    FUZZ_CHECK(spec[strspn(spec, "0123456789,- \t")] == '\0',
               "ports '%s' accepted with other characters", spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    rs_scan *scan = NULL;
    FUZZ_CHECK(rs_scan_create(NULL, &scan) == 0, "rs_scan_create failed");
    for (char *spec = text, *next; spec; spec = next) {
        char *nl = strchr(spec, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        add_target(scan, spec);
        add_ports(scan, spec);
    }
    FUZZ_CHECK(rs_scan_destroy(scan) == 0, "rs_scan_destroy failed");
    free(text);
    return 0;
}
