/*
 * cli.h -- what the subcommands of the `runspace` program share. The program uses only the
 * public header, like lua.c over lua.h.
 *
 * Exit statuses: 0 success; 1 some item (or the script) failed, timed out or was cancelled;
 * 2 usage error or a script that does not compile; 130 interrupted (SIGINT or SIGTERM).
 */
#ifndef RS_CLI_H
#define RS_CLI_H

#include <runspace.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_ITEMS_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* "runspace: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the reason on one line, a hint on the next; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict parsers for option values. parse_choice returns the index of s in the NULL-ended
 * list, or -1. */
int parse_choice(const char *s, const char *const choices[]);
bool parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out);
bool parse_seconds(const char *s, double *out); /* a positive finite number */
bool parse_bytes(const char *s, size_t *out);   /* 64M, 1G, 4096 */
/* "A..B" with integers A <= B. */
bool parse_range(const char *s, long long *a, long long *b);
/* The value of a NAME=VALUE option: JSON when it parses as JSON, else the text as a string. */
rs_value *parse_value_text(const char *text);
/* Splits NAME=VALUE; false when there is no '=' or no name. *name points into a new string
 * the caller frees. */
bool parse_assignment(const char *arg, char **name, rs_value **value);
/* Reads a whole file into a new string (NUL-terminated); NULL with errno set on failure. */
char *read_file(const char *path, size_t *len);

/* Output on stdout through a large buffer. A closed pipe ends the program quietly, as
 * SIGPIPE ends the classic tools. */
void out_init(void);
void out_write(const char *data, size_t len);
void out_puts(const char *s);
void out_putc(char c);
void out_flush(void);
/* Writes v as the raw format does: strings as they are, integers in decimal, others as JSON.
 * Values JSON cannot carry (NaN, invalid UTF-8) fall back to a readable form. */
void out_value_raw(const rs_value *v);
/* v as compact JSON in a new string (free). A value JSON cannot carry is still shown: NaN and
 * infinities as such, bytes that are not UTF-8 as a quoted note. NULL only when out of memory. */
char *json_text(const rs_value *v);

/* Interrupts: SIGINT and SIGTERM are taken by a thread of their own (sigwait), which calls
 * on_interrupt once; a second signal ends the program at once with 130. Call before any other
 * thread starts. */
void signals_init(void);
void signals_on_interrupt(void (*fn)(void *), void *userdata);
bool interrupted(void);

/* A progress bar on stderr: done/total when the total is known, rate, ETA. */
typedef struct progress_bar {
    bool enabled;
    double last_draw;
    const char *label;
} progress_bar;
void bar_init(progress_bar *b, int mode, const char *label); /* mode: -1 auto, 0 off, 1 on */
void bar_draw(progress_bar *b, uint64_t done, uint64_t total, double elapsed, bool force);
void bar_clear(progress_bar *b);

double now_seconds(void);

int cmd_foreach(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
