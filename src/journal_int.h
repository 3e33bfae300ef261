/*
 * journal_int.h -- what the files of the journal share: journal.c writes a journal and
 * resumes one, journal_read.c reads one for rs_journal_read, journal_format.c knows its lines
 * (the format is documented in runspace.h, at rs_journal_mode).
 */
#ifndef RS_JOURNAL_INT_H
#define RS_JOURNAL_INT_H

#include "idxset.h"
#include "journal.h"

#define RS__JOURNAL_FORMAT 1 /* "runspace_journal" in the header */
#define RS__JOURNAL_MAGIC "{\"runspace_journal\":"
#define RS__JOURNAL_HEADER_MAX ((size_t)1 << 20) /* the longest first line taken for a header */

/* Lines of a file through a buffer that grows only for lines longer than it. Zero-initialise
 * with .fd set; free .buf when done. */
typedef struct rs__lines {
    int fd;
    char *buf;
    size_t cap, start, end; /* the unread bytes are buf[start..end) */
    size_t scanned;         /* bytes after start known to hold no newline */
    uint64_t base;          /* the file offset of buf[0] */
    uint64_t ahead;         /* read-ahead was asked up to about here */
    bool eof;
    uint64_t number; /* of the line last returned, from 1 */
} rs__lines;

/* The next line, without its newline, in *line (valid until the next call; NUL-terminated)
 * and *len; *complete is false for a last line that has no newline; *offset gets its file
 * offset. Returns 1, 0 at the end, or a negative RS_E* code with errno's reason in *err
 * (RS_ESYSTEM for a read error, RS_ENOMEM). */
int rs__lines_next(rs__lines *l, char **line, size_t *len, bool *complete, uint64_t *offset,
                   int *err);

/* The index and status (rs_item_status) of a record line (journal_format.c states the rule):
 * 0, RS__JOURNAL_BLANK for a blank line (no record; skipped), RS_EINVAL with the reason in
 * why (256 bytes), or RS_ENOMEM. */
#define RS__JOURNAL_BLANK 1
int rs__journal_record_head(const char *p, size_t len, uint64_t *index, int *status, char *why);

/* The text of the whole seconds of the last start time written: records that start within
 * the same second share it, and it is formatted once. Zero-initialised. */
typedef struct rs__seconds_text {
    uint64_t seconds;
    size_t len;
    char text[24];
} rs__seconds_text;

/* Appends r's line, with its newline. 0 or RS_ENOMEM (b is as before then). */
int rs__journal_encode_record(rs__buf *b, const rs_foreach_record *r, rs__seconds_text *cache);

/* The header of spec's run as a value (NULL when out of memory). */
rs_value *rs__journal_header(const rs__journal_spec *spec);

/* Checks that the decoded first line h is a header this version reads: 0, or RS_EINVAL with
 * the reason in msg. */
int rs__journal_check_format(const char *path, const rs_value *h, rs__msg *msg);

/* Whether the journal's header h names the run of the header now; when it does not, why
 * (256 bytes) says what differs first ("the script differs", ...). */
bool rs__journal_same_run(const rs_value *h, const rs_value *now, char *why);

#endif
