/*
 * fuzz_script.c -- arbitrary script text in a restricted runspace, through the public API.
 *
 * Each input is the source of one script, run in a fresh runspace (so that every input can
 * be replayed alone) of the restricted profile with a small memory cap, an instruction
 * budget and a timeout of half a second, with one input item. Whatever the script does,
 * the invocation must end: with its output, or with one of the errors rs_ps_invoke documents.
 * Its output must then be encodable or refused cleanly, and every handle must be destroyed
 * with 0. A crash, a hang (libFuzzer's -timeout, see run.sh), growth past -rss_limit_mb or
 * a leak is a finding.
 */
#include "fuzz.h"

#include <string.h>

#define MEMORY_CAP (8u << 20)
#define INSTRUCTIONS 2000000u
#define TIMEOUT 0.5

static rs_iss *iss;
static bool verbose; /* RS_FUZZ_VERBOSE=1: print each input's outcome (for reproducing) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    verbose = getenv("RS_FUZZ_VERBOSE") != NULL;
    FUZZ_CHECK(rs_iss_create(RS_PROFILE_RESTRICTED, &iss) == 0, "rs_iss_create");
    rs_limits limits = {.memory_bytes = MEMORY_CAP, .instructions = INSTRUCTIONS};
    FUZZ_CHECK(rs_iss_set_limits(iss, &limits) == 0, "rs_iss_set_limits");
    return 0;
}

static bool documented(int rc)
{
    switch (rc) {
    case 0:
    case RS_ESYNTAX:
    case RS_ERUNTIME:
    case RS_ENOMEM:
    case RS_ELIMIT:
    case RS_ETIMEDOUT:
    case RS_EVALUE:
        return true;
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rs_runspace *rs = NULL;
    rs_runspace_opts ro = {.iss = iss, .name = "fuzz"};
    FUZZ_CHECK(rs_runspace_create(&ro, &rs) == 0, "rs_runspace_create");
    int rc = rs_runspace_open(rs);
    FUZZ_CHECK(rc == 0, "rs_runspace_open: %s: %s", rs_err_name(rc), rs_runspace_errmsg(rs));

    rs_ps *ps = NULL;
    FUZZ_CHECK(rs_ps_create(&ps) == 0, "rs_ps_create");
    FUZZ_CHECK(rs_ps_set_runspace(ps, rs) == 0, "rs_ps_set_runspace");
    rs_ps_opts po = {.timeout = TIMEOUT};
    FUZZ_CHECK(rs_ps_set_opts(ps, &po) == 0, "rs_ps_set_opts");
    rc = rs_ps_add_script(ps, (const char *)data, size);
    FUZZ_CHECK(rc == 0 || rc == RS_ESYNTAX, "rs_ps_add_script: %s", rs_err_name(rc));
    FUZZ_CHECK(rs_ps_add_input(ps, rs_value_int(7)) == 0, "rs_ps_add_input");

    rs_value *out = NULL;
    rc = rs_ps_invoke(ps, &out);
    if (verbose)
        fprintf(stderr, "fuzz_script: %s %s\n", rs_err_name(rc), rc ? rs_ps_errmsg(ps) : "");
    FUZZ_CHECK(documented(rc), "rs_ps_invoke: %s: %s", rs_err_name(rc), rs_ps_errmsg(ps));
    FUZZ_CHECK(rc == 0 || *rs_ps_errmsg(ps), "%s without a message", rs_err_name(rc));
    /* A script that does not compile never starts. */
    rs_ps_state st = rs_ps_get_state(ps);
    FUZZ_CHECK(rc == RS_ESYNTAX ? st == RS_PS_NOT_STARTED || st == RS_PS_FAILED
               : rc             ? st == RS_PS_FAILED || st == RS_PS_STOPPED
                                : st == RS_PS_COMPLETED,
               "%s but state %s", rs_err_name(rc), rs_ps_state_name(st));
    if (out) {
        FUZZ_CHECK(rs_value_type(out) == RS_TARRAY, "output is a %s",
                   rs_type_name(rs_value_type(out)));
        char *json = NULL;
        rs_errinfo err;
        int erc = rs_json_encode(out, 0, &json, NULL, &err);
        FUZZ_CHECK(erc == 0 || erc == RS_EVALUE, "encoding the output: %s", rs_err_name(erc));
        rs_free(json);
        rs_value_destroy(out);
    }
    /* The records: every error record has a message. */
    for (size_t i = 0; i < rs_ps_record_count(ps, RS_STREAM_ERROR); i++) {
        rs_record r;
        FUZZ_CHECK(rs_ps_record(ps, RS_STREAM_ERROR, i, &r) == 0, "rs_ps_record");
        FUZZ_CHECK(r.message, "error record %zu without a message", i);
    }

    FUZZ_CHECK(rs_ps_destroy(ps) == 0, "rs_ps_destroy");
    rc = rs_runspace_close(rs);
    FUZZ_CHECK(rc == 0, "rs_runspace_close: %s", rs_err_name(rc));
    FUZZ_CHECK(rs_runspace_destroy(rs) == 0, "rs_runspace_destroy");
    return 0;
}
