/*
 * foreach_exec.h -- external commands per input item, in the style of GNU parallel: a
 * command template parsed once (rs_foreach_set_exec), and the run of one item (expanding
 * the template, starting the command, turning its result into the item's outputs or error).
 */
#ifndef RS_FOREACH_EXEC_H
#define RS_FOREACH_EXEC_H

#include "common.h"

typedef struct rs__cmdtpl rs__cmdtpl;

/* Parses text (see rs_foreach_set_exec); RS_EINVAL with *msg (a new string) for a template
 * that is empty, has an unterminated quote, a trailing backslash or an unknown replacement
 * string; RS_ENOMEM. The command's name is looked up on PATH now, once. */
int rs__cmdtpl_parse(const char *text, bool shell, rs__cmdtpl **out, char **msg);
void rs__cmdtpl_free(rs__cmdtpl *t);
/* What the journal's header names the run's command: "exec: TEMPLATE" or "exec --shell:
 * TEMPLATE" (borrowed). */
const char *rs__cmdtpl_name(const rs__cmdtpl *t);
/* Runs the command for the current input item of call (the item with 1-based sequence number
 * seq): stdout lines become outputs; a non-zero exit, a signal or a command that cannot start
 * fails the call (rs_call_fail) with the exit code and the end of stderr. Blocks until the
 * command has ended; a stop or timeout of the invocation kills its process group. Called on
 * the worker running the item; t is shared and read-only. */
int rs__cmdtpl_run(rs_call *call, const rs__cmdtpl *t, uint64_t seq);

#endif
