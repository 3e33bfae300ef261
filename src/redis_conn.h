/*
 * redis_conn.h -- one connection to Redis (internal): the URL, the password, the commands, and
 * reconnecting with backoff when the connection is lost. Used by the Redis queue (redisq_*.c).
 *
 * A connection is used by one thread at a time. Commands are written in Redis' own protocol
 * into a buffer (a pipeline), sent at once, and their replies read in order.
 */
#ifndef RS_REDIS_CONN_H
#define RS_REDIS_CONN_H

#include "common.h"

#include <hiredis/hiredis.h>

/* Where Redis is: redis://[[user]:password@]host[:port][/db]. */
typedef struct rs__redis_addr {
    char *host;
    int port;
    int db;
    char *password; /* NULL: none (REDISCLI_AUTH is used when set) */
} rs__redis_addr;

/* Parses url into a (fields new strings; rs__redis_addr_free). The password comes from the URL
 * or, when the URL has none, from the REDISCLI_AUTH variable. RS_EINVAL with a message that
 * never contains the password, or RS_ENOMEM. */
int rs__redis_parse_url(const char *url, rs__redis_addr *a, rs__msg *msg);
void rs__redis_addr_free(rs__redis_addr *a);

typedef struct rs__redis rs__redis;

/* Connects now (AUTH and SELECT included): RS_EIO with "cannot reach Redis at HOST:PORT:
 * REASON" or "Redis refused the password", no retry. Later, when a command finds the
 * connection lost, it reconnects with backoff (50 ms doubling up to 1 s) for up to retry_for
 * seconds, waking early when wake_fd (an eventfd, or -1) turns readable. a is copied. */
int rs__redis_open(const rs__redis_addr *a, double retry_for, int wake_fd, rs__redis **out,
                   rs__msg *msg);
void rs__redis_close(rs__redis *r);

/* Appends one command to the pipeline. Arguments are binary (lens[i] bytes each; lens NULL:
 * strlen). RS_ENOMEM. */
int rs__redis_append(rs__redis *r, int argc, const char *const *argv, const size_t *lens);
/* Sends the pipeline and reads one reply per command into replies[0..n) (freeReplyObject
 * each; n is the number of commands appended). When the connection fails, it reconnects and
 * sends the whole pipeline again, so commands must be safe to repeat. Returns 0 (a reply may
 * still be an error reply: the caller looks), or RS_EIO when Redis stayed unreachable past
 * retry_for, or RS_ESTOPPED when woken by wake_fd while reconnecting. */
int rs__redis_exec(rs__redis *r, redisReply **replies, size_t n, rs__msg *msg);
/* One command, sent at once: its reply (freeReplyObject), or NULL with the reason in msg
 * (an error reply is turned into a message and code RS_EIO in *code). */
redisReply *rs__redis_cmd(rs__redis *r, int *code, rs__msg *msg, int argc, const char *const *argv,
                          const size_t *lens);
/* Times each reply may take, in seconds (a BLOCK command adds its own). */
void rs__redis_set_timeout(rs__redis *r, double seconds);
/* How many times the connection was made again after a loss. */
uint64_t rs__redis_reconnects(const rs__redis *r);

#endif
