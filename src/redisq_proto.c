/*
 * redisq_proto.c -- the Redis queue's words: key names, run names, and the entries of the
 * work and result streams, written here and validated here when read back (whatever is in
 * Redis may have been written by anyone who can reach it).
 */
#include "json.h"
#include "redisq.h"
#include "sha256.h"

#include <string.h>

bool rs__rq_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool rs__rq_prefix_ok(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)prefix[i] <= ' ' || (unsigned char)prefix[i] >= 0x7f)
            return false;
    }
    return true;
}

char *rs__rq_key(const char *prefix, const char *run, const char *suffix)
{
    return rs__format("%srun:%s%s", prefix, run, suffix);
}

/* Appends ",N" (N in decimal). */
static int put_num(rs__buf *b, uint64_t n)
{
    char num[24];
    num[0] = ',';
    return rs__buf_append(b, num, 1 + rs__format_u64(num + 1, n));
}

int rs__rq_encode_record(rs__buf *b, uint64_t index, const rs_foreach_record *r)
{
    char num[24];
    int rc = rs__buf_putc(b, '[');
    if (!rc)
        rc = rs__buf_append(b, num, rs__format_u64(num, index));
    if (!rc)
        rc = rs__buf_puts(b, ",\"");
    if (!rc)
        rc = rs__buf_puts(b, rs_item_status_name(r->status));
    if (!rc)
        rc = rs__buf_puts(b, "\",");
    if (!rc)
        rc = rs__json_encode_ex(r->input, RS_JSON_REPAIR, "input", 0, b, NULL);
    if (!rc)
        rc = rs__buf_putc(b, ',');
    if (!rc)
        rc = rs__json_encode_ex(r->output, RS_JSON_REPAIR, "output", 0, b, NULL);
    if (!rc)
        rc = rs__buf_putc(b, ',');
    if (!rc)
        rc = r->error ? rs__json_encode_text(b, r->error, strlen(r->error))
                      : rs__buf_puts(b, "null");
    /* Times as integers (nanoseconds, microseconds): formatting and parsing doubles would
     * cost more than the rest of a trivial item's record. */
    double ns = r->duration > 0 ? r->duration * 1e9 : 0;
    double us = r->start > 0 ? r->start * 1e6 : 0;
    if (!rc)
        rc = put_num(b, ns < 9e18 ? (uint64_t)ns : 0);
    if (!rc)
        rc = put_num(b, us < 9e18 ? (uint64_t)us : 0);
    if (!rc)
        rc = put_num(b, r->attempts > 0 ? (uint64_t)r->attempts : 0);
    if (!rc)
        rc = put_num(b, r->runspace_id);
    if (!rc)
        rc = rs__buf_putc(b, ']');
    return rc;
}

static bool get_u64(const rs_value *v, uint64_t max, uint64_t *out)
{
    if (rs_value_type(v) != RS_TINT || rs_value_get_int(v) < 0 ||
        (uint64_t)rs_value_get_int(v) > max)
        return false;
    *out = (uint64_t)rs_value_get_int(v);
    return true;
}

int rs__rq_decode_record(rs_value *v, rs__rq_record *out, const char **why)
{
    memset(out, 0, sizeof *out);
    static const char *const names[] = {"ok", "error", "timeout", "cancelled"};
    uint64_t attempts = 0;
    const rs_value *st = rs_array_get(v, 1);
    const rs_value *err = rs_array_get(v, 4);
    *why = "a record is not an array of 9";
    if (rs_value_type(v) != RS_TARRAY || rs_array_len(v) != 9)
        return RS_EINVAL;
    *why = "a record's index is not an integer in range";
    if (!get_u64(rs_array_get(v, 0), RS__RQ_MAX_INDEX, &out->index))
        return RS_EINVAL;
    *why = "a record's status is unknown";
    if (rs_value_type(st) != RS_TSTRING)
        return RS_EINVAL;
    size_t k = 0;
    for (; k < 4 && strcmp(rs_value_get_string(st, NULL), names[k]) != 0; k++)
        continue;
    if (k == 4)
        return RS_EINVAL;
    out->status = (rs_item_status)k;
    *why = "a record's output is not an array";
    if (rs_value_type(rs_array_get(v, 3)) != RS_TARRAY)
        return RS_EINVAL;
    *why = "a record's error is not a string or null";
    if (rs_value_type(err) != RS_TNULL && rs_value_type(err) != RS_TSTRING)
        return RS_EINVAL;
    if (out->status != RS_ITEM_OK && rs_value_type(err) != RS_TSTRING)
        return RS_EINVAL;
    *why = "a record's numbers are out of range";
    uint64_t ns, us;
    if (!get_u64(rs_array_get(v, 5), UINT64_MAX >> 1, &ns) ||
        !get_u64(rs_array_get(v, 6), UINT64_MAX >> 1, &us) ||
        !get_u64(rs_array_get(v, 7), 1000000, &attempts) ||
        !get_u64(rs_array_get(v, 8), UINT64_MAX >> 1, &out->runspace_id))
        return RS_EINVAL;
    out->duration = (double)ns * 1e-9;
    out->start = (double)us * 1e-6;
    out->attempts = (int)attempts;
    out->error = rs_value_type(err) == RS_TSTRING ? rs_value_get_string(err, NULL) : NULL;
    out->output = rs_array_take(v, 3);
    out->input = rs_array_take(v, 2);
    return 0;
}

int rs__rq_decode_item(rs_value *v, uint64_t *index, rs_value **input, const char **why)
{
    *why = "an item is not [index, input]";
    if (rs_value_type(v) != RS_TARRAY || rs_array_len(v) != 2)
        return RS_EINVAL;
    *why = "an item's index is not an integer in range";
    if (!get_u64(rs_array_get(v, 0), RS__RQ_MAX_INDEX, index))
        return RS_EINVAL;
    *input = rs_array_take(v, 1);
    return 0;
}

int rs__rq_digest(const char *script, size_t script_len, const char *command, const char *args,
                  const char *params, const char *variables, const char *modules, char *out)
{
    rs__sha256 d;
    rs__sha256_init(&d);
    const char *parts[] = {command, args, params, variables, modules};
    /* Each part with its length first, so that no two different runs read the same. */
    char len[24];
    snprintf(len, sizeof len, "%zu:", script ? script_len : 0);
    rs__sha256_update(&d, len, strlen(len));
    if (script)
        rs__sha256_update(&d, script, script_len);
    for (size_t i = 0; i < RS__ARRAY_SIZE(parts); i++) {
        size_t n = parts[i] ? strlen(parts[i]) : 0;
        snprintf(len, sizeof len, "%zu:", n);
        rs__sha256_update(&d, len, strlen(len));
        if (n)
            rs__sha256_update(&d, parts[i], n);
    }
    rs__sha256_final_hex(&d, out);
    return 0;
}

const redisReply *rs__rq_field(const redisReply *hash, const char *name)
{
    if (!hash || hash->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < hash->elements; i += 2) {
        const redisReply *k = hash->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return hash->element[i + 1]->type == REDIS_REPLY_STRING ? hash->element[i + 1] : NULL;
    }
    return NULL;
}

bool rs__rq_field_u64(const redisReply *hash, const char *name, uint64_t *out)
{
    const redisReply *f = rs__rq_field(hash, name);
    if (!f || f->len == 0 || f->len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < f->len; i++) {
        if (f->str[i] < '0' || f->str[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(f->str[i] - '0');
    }
    *out = v;
    return true;
}
