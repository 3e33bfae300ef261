/*
 * foreach_int.h -- what the for-each engine lends to the runs it hands elsewhere (internal).
 *
 * A run sent to Redis (redisq_submit.c) reads its input and receives its records on the run
 * thread; it delivers them through these hooks, so that counting, the reorder window of
 * ordered delivery, the journal, progress and the summary are the engine's own. All of them
 * are called on the run thread, between rs__foreach_remote_begin and rs__foreach_remote_end.
 *
 * Its tests see one more thing: the reorder window's peak (rs__foreach_test_held_peak).
 */
#ifndef RS_FOREACH_INT_H
#define RS_FOREACH_INT_H

#include "common.h"

typedef struct rs__redisq_spec rs__redisq_spec;

/* What the run runs (borrowed from fe while it lives). */
typedef struct rs__foreach_what_t {
    const char *script; /* or NULL */
    size_t script_len;
    const char *script_name; /* the file the script came from (messages), or NULL */
    const char *command;    /* or NULL */
    const rs_value *args;   /* array or NULL */
    const rs_value *params; /* map or NULL */
    const rs_foreach_opts *opts;
    rs__msg *msg; /* the run's message */
} rs__foreach_what_t;

typedef struct rs__remote_outcome {
    rs_item_status status;
    const char *error; /* borrowed; NULL when ok */
    double duration;
    double start;
    uint64_t runspace_id;
    int attempts;
} rs__remote_outcome;

/* Makes fe a run on Redis (spec taken). RS_EBUSY while it runs. */
int rs__foreach_set_redis_spec(rs_foreach *fe, rs__redisq_spec *spec);
void rs__foreach_what(rs_foreach *fe, rs__foreach_what_t *w);
/* Opens the journal (if any) and the reorder window of `window` records (ordered runs): the
 * caller must keep every undelivered index below next_deliver + window. */
int rs__foreach_remote_begin(rs_foreach *fe, size_t window);
/* Whether the journal holds index's record (a resume skips it); counting a skip. */
bool rs__foreach_remote_journaled(rs_foreach *fe, uint64_t index);
void rs__foreach_remote_skip(rs_foreach *fe);
/* Delivers (or holds, in input order) one record; input and output taken (may be NULL). */
void rs__foreach_remote_deliver(rs_foreach *fe, uint64_t index, rs_value *input, rs_value *output,
                                const rs__remote_outcome *o);
void rs__foreach_remote_progress(rs_foreach *fe);
/* The oldest undelivered index in an ordered run; UINT64_MAX in completion order. */
uint64_t rs__foreach_remote_next_deliver(const rs_foreach *fe);
/* Whether a stop was asked for or the journal failed (*journal_failed says which). */
bool rs__foreach_remote_stopping(rs_foreach *fe, bool *journal_failed);
uint64_t rs__foreach_remote_delivered(const rs_foreach *fe);
/* Ends the run: the rest of the window, the journal closed, the summary filled. Returns rc,
 * or the journal's error, or RS_ESTOPPED after a stop. */
int rs__foreach_remote_end(rs_foreach *fe, rs_foreach_summary *summary, int rc);

/* The submitter (redisq_submit.c). */
int rs__redisq_submit(rs_foreach *fe, const rs__redisq_spec *spec, rs_foreach_summary *summary);
void rs__redisq_spec_free(rs__redisq_spec *spec);

/* Test hook: the most bytes that records waiting in a reorder window (input order) took at
 * once, in any run of this process since the last reset; with reset, starts counting anew.
 * Thread-safe. */
size_t rs__foreach_test_held_peak(bool reset);

#endif
