/*
 * cli.h -- what the subcommands of the `runspace` program share. The program uses only the
 * public header, like lua.c over lua.h.
 *
 * Exit statuses: 0 success; 1 some item (or the script) failed, timed out or was cancelled,
 * or the input could not be read or the output written; 2 usage error or a script that does
 * not compile; 3 Redis unavailable (runs on Redis); 130 interrupted (SIGINT or SIGTERM). A closed
 * pipe on stdout ends the program by SIGPIPE.
 */
#ifndef RS_CLI_H
#define RS_CLI_H

#include <runspace.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* 3: Redis (runs on Redis) cannot be reached, refused the password, or was lost for longer
 * than the retry time. */
enum { EXIT_ITEMS_FAILED = 1, EXIT_USAGE = 2, EXIT_UNAVAILABLE = 3, EXIT_INTERRUPTED = 130 };

/* "runspace: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the reason on one line, a hint on the next; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage error of getopt_long's ':' (a value missing) or '?' (an unknown option), naming
 * the option as the user wrote it; returns EXIT_USAGE. */
int cli_bad_option(const char *cmd, char *const argv[], int opt);

/* Strict parsers for option values. parse_choice returns the index of s in the NULL-ended
 * list, or -1. parse_count takes decimal digits only (no sign, no blanks). */
int parse_choice(const char *s, const char *const choices[]);
bool parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* A duration: a finite number greater than 0 and at most max, in decimal or exponent form
 * (0.5, 2e-3). A positive value too small to be represented (1e-400) counts as the smallest
 * positive one: a positive duration never turns into 0, which means "none" to the library. */
bool parse_duration(const char *s, double max, double *out);
#define DURATION_MAX                                                                               \
    1e9 /* seconds (about 31 years): beyond any run, within the library's range                    \
         */
bool parse_bytes(const char *s, size_t *out); /* 64M, 1G, 4096 */
/* "A..B" with integers A <= B. */
bool parse_range(const char *s, long long *a, long long *b);
/* The value of a NAME=VALUE option: JSON when it parses as JSON, else the text as a string. */
rs_value *parse_value_text(const char *text);
/* Splits NAME=VALUE; false when there is no '=' or no name (or out of memory), in which case
 * nothing is left for the caller to free. On success *name is a new string (free) and *value
 * a new value (rs_value_destroy). */
bool parse_assignment(const char *arg, char **name, rs_value **value);
/* Whether NAME may be a --param: not a built-in of a runspace (emit, sleep, shared, ...: the
 * names --var refuses, since a parameter is a global too) and not one of names[0..n) (given
 * already). false after the message ("'sleep' is a runspace built-in"); the caller exits 2. */
bool check_parameter(const char *name, char *const names[], int n);
/* Reads a whole file into a new string (NUL-terminated); NULL with errno set on failure:
 * EFBIG past SCRIPT_MAX_BYTES (a script from /dev/zero must not take all memory). */
#define SCRIPT_MAX_BYTES ((size_t)64 << 20)
char *read_file(const char *path, size_t *len);
/* Whether every module given by name (not a file) is on package.path; false after
 * "runspace: cannot open module 'NAME': not found on package.path", the message a missing
 * module file gets from rs_iss_add_module, so that every command fails the same way (2). */
bool cli_modules_found(const char *const modules[], int n);
/* After a script that did not compile: a hint when its text names an existing file (a
 * forgotten -f). */
void script_file_hint(const char *script);
/* Whether s is A..B of integers one of which is beyond the range of a 64-bit integer. */
bool range_overflows(const char *s);
/* Where the Lua code of a script file begins, as Lua's own loadfile reads a file: past a
 * UTF-8 byte-order mark, and past the text of a first line that starts with '#' (a shebang)
 * but not its newline, so that line numbers stay those of the file. */
size_t script_file_start(const char *text, size_t len);
/* "runspace: cannot read 'PATH': REASON" for read_file's errno. */
void cli_read_error(const char *path, int err);

/* The standard descriptors. std_fds_reserve must run first in main, before anything opens a
 * descriptor: a closed 0, 1 or 2 is reopened on /dev/null in the direction that fails (stdin
 * write-only, stdout and stderr read-only), so that no file the program opens later (an
 * eventfd, a socket, a script) can take its number and receive records or be read as input.
 * std_closed tells whether fd (0-2) was closed at start. */
void std_fds_reserve(void);
bool std_closed(int fd);

/* Output on stdout through a large buffer. A closed pipe (EPIPE) ends the program at once by
 * SIGPIPE, quietly, as it ends `seq` or `yes` (status 141 in a shell). Any other write error
 * is kept: the command in progress is stopped (see on_stop), later output is dropped, and
 * out_finish reports it. */
void out_init(void);
void out_write(const char *data, size_t len);
void out_puts(const char *s);
void out_putc(char c);
void out_flush(void);
/* 0 while every write succeeded, else the errno of the first failure. */
int out_error(void);
/* Whether output has stopped: a write failed, or, after an interrupt, the reader took nothing
 * for a second and the rest of the output was dropped (out_finish says so; the command's
 * status stays 130). Writers of long output check it to stop early. */
bool out_stopped(void);
/* For commands that run scripts whose stray writes must not mix with the records (foreach):
 * the output moves to a descriptor of its own, and fd 1 becomes a copy of stderr, so that
 * io.stdout:write, print of a child process and the like land on stderr. Call it before
 * any script runs. */
void out_private(void);
/* The descriptor the output is written to (fd 1, or its own copy after out_private): for
 * checks that a file is not also the output. */
int out_descriptor(void);
/* Flushes stdout; false, after "runspace: cannot write output: REASON" on stderr, when any
 * write failed. main ends with it, so that no command exits 0 with output lost. */
bool out_finish(void);
/* Writes v as the raw format does: strings as they are (bytes), integers in decimal, other
 * values as json_text writes them. */
void out_value_raw(const rs_value *v);
/* v as compact JSON in a new string (free); NULL only when out of memory. Values JSON cannot
 * carry are repaired one by one, so a record keeps its shape: a NaN or an infinity becomes
 * null (as JSON.stringify does), and in a string or a map key each byte that is not part of
 * valid UTF-8 becomes U+FFFD (a repaired key that meets another key gets more U+FFFD until
 * it is unique). */
char *json_text(const rs_value *v);
/* Encodes v as json_text does but streams it to sink in pieces (a value nested too deep is
 * "null"), so that no text is ever whole in memory; out_json streams to stdout, stopping
 * early once out_stopped. json_stream returns rs_json_encode_stream's status. */
int json_stream(const rs_value *v, rs_json_sink_fn sink, void *ud);
void out_json(const rs_value *v);
/* The first max bytes of v's JSON text in a new string (free); *cut tells whether there was
 * more. NULL only when out of memory. */
char *json_prefix(const rs_value *v, size_t max, bool *cut);
/* s[0..len) for a terminal, in a new string (free), on one line: each byte that is not part
 * of valid UTF-8 as U+FFFD, control characters as \n, \r, \t, \xHH (C0 and DEL) and \u{HH}
 * (C1), so that no text can break a line or a row or send escape sequences to a terminal;
 * cut to at most max bytes with "..." when max > 0. NULL only when out of memory. */
char *display_text(const char *s, size_t len, size_t max);
/* s with each byte that is not part of valid UTF-8 as U+FFFD, in a new string (free); NULL
 * only when out of memory. For messages in the text formats (csv, table, stderr). */
char *utf8_text(const char *s);

/* Stopping the command in progress. on_stop sets what stops it (NULL: nothing) while a run,
 * a script or a scan is in progress; it is called once, on the signal thread for SIGINT and
 * SIGTERM, or on the writing thread when output fails. A stop requested before on_stop is set
 * calls fn as soon as it is. signals_init starts the thread that takes SIGINT and SIGTERM
 * (sigwait); a second signal ends the program at once with 130, and so does the first while
 * no stop function was ever set (the command's setup: nothing to stop cleanly, nothing
 * written, and a read there may block for ever). Call it before any other thread starts.
 * interrupted() is true once a signal came. */
void signals_init(void);
void on_stop(void (*fn)(void *), void *userdata);
bool interrupted(void);

/* A progress bar on stderr: done/total when the total is known, rate, ETA. bar_draw,
 * bar_clear and bar_line are thread-safe with one another (one lock over stderr's lines):
 * bar_line writes prefix, text and a newline above the bar, erasing it first and drawing it
 * again after when it was shown (b may be NULL: no bar). A bar erased by bar_clear stays
 * away until the next bar_draw, so that what the command writes next (a record on a terminal)
 * does not meet it. */
typedef struct progress_bar {
    bool enabled;
    double last_draw;
    const char *label;
} progress_bar;
/* The bar is fitted to the terminal's width (read again after SIGWINCH) and never wraps; it
 * is erased before any message on stderr and, when stdout is a terminal, before any write to
 * stdout, and drawn again by the next bar_draw. */
void bar_init(progress_bar *b, int mode, const char *label); /* mode: -1 auto, 0 off, 1 on */
void bar_draw(progress_bar *b, uint64_t done, uint64_t total, double elapsed, bool force);
void bar_clear(progress_bar *b);
void bar_line(progress_bar *b, const char *prefix, const char *text, size_t len);
/* Erases the bar if it is shown and stdout is a terminal (out_flush calls it). */
void bar_erase_for_stdout(void);

double now_seconds(void);

/* For-each records in the formats of `foreach --format` (records.c). */
typedef enum record_format { FMT_RAW, FMT_JSONL, FMT_CSV, FMT_TABLE } record_format;
/* "raw", "jsonl", "csv" or "table"; false for anything else. */
bool parse_record_format(const char *s, record_format *out);
/* The first line of the csv and table formats (nothing for the others). */
void record_heading(record_format f);
/* One record; raw writes the outputs of an ok record and the error of another on stderr (as
 * "runspace: item N: status: error", after clearing bar). */
void record_write(record_format f, const rs_foreach_record *r, progress_bar *bar);

int cmd_foreach(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_joblog(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_runs(int argc, char **argv);

#endif
