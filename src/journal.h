/*
 * journal.h -- the journal of a for-each run: a source and a sink of its record stream
 * (internal; the format and the contract are in runspace.h, at rs_journal_mode).
 *
 * foreach.c calls into it at three places: when a run starts (rs__journal_open: create, or
 * read and validate, and learn which indexes are done), for each delivered record
 * (rs__journal_append), and when the run ends (rs__journal_close). Between open and close,
 * the reader thread asks rs__journal_done for each input index.
 */
#ifndef RS_JOURNAL_H
#define RS_JOURNAL_H

#include "common.h"

typedef struct rs__journal rs__journal;

/* What the run is (for the header) and what to do with the file. Strings are borrowed for
 * the call of rs__journal_open. */
typedef struct rs__journal_spec {
    const char *path;
    rs_journal_mode mode;
    bool force;
    const char *source;     /* may be NULL */
    const char *script;     /* digest ("sha256:...") of the script, or NULL */
    const char *command;    /* the command's name, or NULL */
    const char *arguments;  /* digest, or NULL when there are none */
    const char *parameters; /* digest, or NULL when there are none */
    const char *session;    /* digest of the session state */
    double timeout;
    unsigned retries;
    rs_foreach_notice_fn on_notice; /* may be NULL; called during rs__journal_open */
    void *notice_userdata;
    /* Called once on the journal's thread when a write or a sync fails (not with the
     * journal's lock held), so that the run stops without waiting for its next record. */
    void (*on_failure)(void *arg);
    void *failure_arg;
} rs__journal_spec;

/* Opens the journal as spec says (see rs_journal_mode): creates it, or reads and validates
 * it and notes the indexes whose record it holds; truncates a torn last line; writes and
 * syncs the header of a new journal; starts the thread that writes and syncs. Returns 0 with
 * *out set, or RS_ESYSTEM, RS_EINVAL, RS_EEXIST, RS_EBUSY or RS_ENOMEM with the reason in
 * msg. Blocks on the file (a resume reads all of it). */
int rs__journal_open(const rs__journal_spec *spec, rs__journal **out, rs__msg *msg);

/* Whether input index already has its record (a resume skips it). The set is fixed at open,
 * so any thread may ask, without locks, until close. */
bool rs__journal_done(const rs__journal *j, uint64_t index);

/* The first index at or after index that is not done. */
uint64_t rs__journal_next_undone(const rs__journal *j, uint64_t index);

/* Appends the record's line (one thread at a time: the run thread). It is handed at once to
 * the journal's thread, which writes it within a few milliseconds and syncs it within about
 * 50 ms. Blocks only while more than a few MiB wait to be written. Returns 0, or RS_EIO once
 * the journal has failed (the record is counted as not journaled); a record that cannot be
 * encoded (out of memory; an input or output array missing for that reason) fails it. */
int rs__journal_append(rs__journal *j, const rs_foreach_record *r);

/* Writes and syncs what is left, stops the journal's thread, closes the file (releasing its
 * lock) and frees j. Returns 0, or RS_EIO when a write or sync failed during the run, with
 * the reason in msg (may be NULL); *unjournaled (may be NULL) gets the number of appended records
 * that are not durably in the file. NULL is a no-op. */
int rs__journal_close(rs__journal *j, uint64_t *unjournaled, rs__msg *msg);

/* Test hooks: the next sync of any journal fails with err (0: none); the monotonic times
 * (rs__now_ns) of the latest successful syncs of any journal, oldest first, into times (at
 * most cap, at most 256), returning how many. */
void rs__journal_test_fail_sync(int err);
size_t rs__journal_test_syncs(int64_t *times, size_t cap);

#endif
