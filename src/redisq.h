/*
 * redisq.h -- the Redis queue (internal): what the submitter (redisq_submit.c), the worker
 * (redisq_worker.c) and the listing of runs (redisq_runs.c) share: the run's keys, its
 * description, and the entries of its two streams (redisq_proto.c). The contract is in
 * runspace.h, above rs_redis_opts.
 *
 * Protocol version 1. The run's hash holds: version, state (running | stopped | done),
 * digest, script, command, arguments (JSON array), parameters (JSON map), variables (JSON
 * map), modules (JSON array of [name, source]), timeout, retries, submitted (every index
 * below it is in the work stream), done (records the submitter delivered), total (the
 * number of inputs, 0 until known), created.
 * PREFIX runs is the set of run names; PREFIX runs:new a stream announcing new runs (field
 * "run"), on which idle workers wait.
 * Work entry:   field "v": JSON [[index, input], ...]
 * Result entry: field "r": JSON [[index, status, input, output, error, duration_ns,
 *                                 start_us, attempts, runspace], ...] (integers)
 */
#ifndef RS_REDISQ_H
#define RS_REDISQ_H

#include "common.h"
#include "redis_conn.h"

#define RS__RQ_VERSION "1"
#define RS__RQ_GROUP "workers"
#define RS__RQ_DEFAULT_PREFIX "runspace:"
#define RS__RQ_MAX_INDEX ((uint64_t)1 << 36)
#define RS__RQ_MAX_ENTRY 1024 /* items per work entry */

/* What rs_foreach_set_redis copied. */
struct rs__redisq_spec {
    rs__redis_addr addr;
    char *prefix;
    char *run;
    bool resume;
    double retry_for;
    double ttl;
    char *variables; /* JSON map text */
    char *modules;   /* JSON array text */
};

/* Whether name is a run's name: 1 to 64 of letters, digits, '.', '_', '-'. */
bool rs__rq_name_ok(const char *name);
/* Whether prefix is usable: at most 64 printable characters without blanks. */
bool rs__rq_prefix_ok(const char *prefix);
/* The key PREFIX run:NAME SUFFIX (suffix may be ""), a new string (NULL: out of memory). */
char *rs__rq_key(const char *prefix, const char *run, const char *suffix);

/* A record decoded from a result entry: input and output taken out of the entry's value
 * (owned), error borrowed from it. */
typedef struct rs__rq_record {
    uint64_t index;
    rs_item_status status;
    rs_value *input, *output;
    const char *error;
    double duration, start;
    int attempts;
    uint64_t runspace_id;
} rs__rq_record;

/* Appends r's record, for the input at global index, as an element of a result entry. */
int rs__rq_encode_record(rs__buf *b, uint64_t index, const rs_foreach_record *r);
/* Validates element v of a result entry (an array the caller owns: its input and output are
 * taken). RS_EINVAL with *why set when it is not a record. */
int rs__rq_decode_record(rs_value *v, rs__rq_record *out, const char **why);
/* Validates element v of a work entry: [index, input]; the input is taken. */
int rs__rq_decode_item(rs_value *v, uint64_t *index, rs_value **input, const char **why);

/* The digest that names what a run runs (script, command, arguments, parameters,
 * variables, modules), as "sha256:HEX" into out (72 bytes). */
int rs__rq_digest(const char *script, size_t script_len, const char *command, const char *args,
                  const char *params, const char *variables, const char *modules, char *out);

/* The run's shared store on Redis (redisq_shared.c): a new store whose every operation is a
 * command on PREFIX run:NAME:shared, through a connection of its own (made now: RS_EIO). */
int rs__redisq_shared_create(const rs__redis_addr *addr, const char *prefix, const char *run,
                             double retry_for, rs_shared **out, rs__msg *msg);

/* A field of a hash reply (HGETALL: alternating names and values), or NULL. */
const redisReply *rs__rq_field(const redisReply *hash, const char *name);
/* The field as an unsigned integer; false when absent or not decimal digits. */
bool rs__rq_field_u64(const redisReply *hash, const char *name, uint64_t *out);

#endif
