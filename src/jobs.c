/*
 * jobs.c -- the job manager: named background jobs on a pool (the seed's RunspaceJobManager),
 * built on the public invocation API.
 *
 * DESIGN
 * Every job is an invocation begun on the pool; its on_complete callback (a worker thread)
 * records the end under jobs->mu and broadcasts `ended`, on which every wait blocks: there is
 * no polling. All public functions take jobs->mu, so the manager may be used from any thread.
 *
 * Lock order: jobs->mu, then whatever the invocation takes (ps, pool). Stopping or beginning an
 * invocation is never done under jobs->mu: stopping a queued invocation completes it at once,
 * and its callback takes jobs->mu. A job being removed is flagged first, so that two removers
 * cannot both free it, and waiters look their job up again after every wake-up.
 */
#include "common.h"
#include "queue.h"
#include "thread.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct job {
    rs__qnode node; /* jobs->list, in start order */
    struct rs_jobs *jobs;
    char *name;
    rs_ps *ps;
    rs_async *async;
    rs_job_state state;
    bool ended;
    bool starting; /* being begun: its name is taken, but it is not visible yet */
    bool removing;
    double start;
    double end;
} job;

struct rs_jobs {
    rs__mutex mu;
    rs__cond ended; /* broadcast when a job ends or is removed */
    rs__qnode list;
    size_t running;
    rs_pool *pool;
    bool own_pool;
    rs_job_record_fn on_record; /* rs_jobs_opts.on_record and its userdata */
    void *userdata;
};

/* The calling thread's last failure message: the manager is shared between threads. */
static __thread char last_error[256];

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

const char *rs_jobs_errmsg(const rs_jobs *jobs)
{
    (void)jobs;
    return last_error;
}

const char *rs_job_state_name(rs_job_state s)
{
    static const char *const names[] = {"Running", "Completed", "CompletedWithErrors", "Failed",
                                        "Stopped"};
    return (unsigned)s < RS__ARRAY_SIZE(names) ? names[s] : "Unknown";
}

int rs_jobs_create(const rs_jobs_opts *opts, rs_jobs **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    rs_jobs_opts o = opts ? *opts : (rs_jobs_opts){0};
    rs_jobs *jobs = rs__calloc(1, sizeof *jobs);
    if (!jobs)
        return RS_ENOMEM;
    if (rs__mutex_init(&jobs->mu) || rs__cond_init(&jobs->ended)) {
        rs__free(jobs);
        return RS_ESYSTEM;
    }
    rs__queue_init(&jobs->list);
    jobs->on_record = o.on_record;
    jobs->userdata = o.userdata;
    jobs->pool = o.pool;
    if (!jobs->pool) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        rs_pool_opts po = {.iss = o.iss,
                           .min_runspaces = 1,
                           .max_runspaces =
                               o.max_jobs ? o.max_jobs : (cpus > 0 ? (unsigned)cpus : 1)};
        int rc = rs_pool_create(&po, &jobs->pool);
        if (!rc && (rc = rs_pool_open(jobs->pool)))
            fail(rc, "%s", rs_pool_errmsg(jobs->pool));
        if (rc) {
            rs_pool_destroy(jobs->pool);
            rs__cond_destroy(&jobs->ended);
            rs__mutex_destroy(&jobs->mu);
            rs__free(jobs);
            return rc;
        }
        jobs->own_pool = true;
    }
    *out = jobs;
    return 0;
}

/* The job named name, or NULL (jobs->mu held). Jobs being removed are not found; jobs being
 * started only with include_starting (their name is taken already). */
static job *lookup(rs_jobs *jobs, const char *name, bool include_starting)
{
    rs__qnode *n;
    RS__QUEUE_FOREACH (n, &jobs->list) {
        job *j = RS__QUEUE_DATA(n, job, node);
        if (!j->removing && (include_starting || !j->starting) && strcmp(j->name, name) == 0)
            return j;
    }
    return NULL;
}

static job *find(rs_jobs *jobs, const char *name)
{
    return lookup(jobs, name, false);
}

/* on_record of a job's invocation (worker thread): its name was set before it began and does
 * not change while it runs, so it is read without the lock. */
static void job_record(rs_ps *ps, const rs_record *r, void *userdata)
{
    (void)ps;
    const job *j = userdata;
    j->jobs->on_record(j->name, r, j->jobs->userdata);
}

/* on_complete of a job's invocation: records its end (worker thread). */
static void job_done(rs_ps *ps, rs_ps_state st, void *userdata)
{
    job *j = userdata;
    rs_jobs *jobs = j->jobs;
    rs__mutex_lock(&jobs->mu);
    j->end = (double)time(NULL);
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        j->end = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    j->state = st == RS_PS_STOPPED    ? RS_JOB_STOPPED
               : st == RS_PS_FAILED   ? RS_JOB_FAILED
               : rs_ps_had_errors(ps) ? RS_JOB_COMPLETED_WITH_ERRORS
                                      : RS_JOB_COMPLETED;
    j->ended = true;
    jobs->running--;
    rs__cond_broadcast(&jobs->ended);
    rs__mutex_unlock(&jobs->mu);
}

static void free_job(job *j)
{
    rs_ps_destroy(j->ps);
    rs__free(j->name);
    rs__free(j);
}

/* A fresh automatic name, "Job_" and 8 hex digits (jobs->mu held). */
static void auto_name(rs_jobs *jobs, char *buf, size_t size)
{
    do {
        uint32_t r;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint32_t)rs__now_ns() ^ (uint32_t)(uintptr_t)buf;
        snprintf(buf, size, "Job_%08x", r);
    } while (lookup(jobs, buf, true));
}

int rs_jobs_start(rs_jobs *jobs, const char *name, const char *script, const rs_value *params,
                  const char **assigned)
{
    if (assigned)
        *assigned = NULL;
    if (!jobs)
        return RS_EMISUSE;
    if (!script)
        return fail(RS_EINVAL, "a job needs a script");
    if (params && rs_value_type(params) != RS_TMAP)
        return fail(RS_EINVAL, "job parameters must be a map, not %s %s",
                    rs_value_type(params) == RS_TARRAY || rs_value_type(params) == RS_TINT ? "an"
                                                                                           : "a",
                    rs_type_name(rs_value_type(params)));
    job *j = rs__calloc(1, sizeof *j);
    if (!j)
        return fail(RS_ENOMEM, "out of memory");
    j->jobs = jobs;
    int rc = rs_ps_create(&j->ps);
    if (!rc)
        rc = rs_ps_set_pool(j->ps, jobs->pool);
    if (!rc)
        rc = rs_ps_add_script(j->ps, script, (size_t)-1);
    for (size_t i = 0; !rc && params && i < rs_map_len(params); i++) {
        rs_value *v = rs_value_copy(rs_map_value(params, i));
        rc = v ? rs_ps_add_parameter(j->ps, rs_map_key(params, i, NULL), v) : RS_ENOMEM;
    }
    /* Records go to on_record as they are written and only error records are kept (for
     * rs_job_info): a job that prints without end holds no memory for it. */
    rs_ps_opts o = {.flags = RS_PS_STREAM_RECORDS,
                    .on_complete = job_done,
                    .on_record = jobs->on_record ? job_record : NULL,
                    .userdata = j};
    if (!rc)
        rc = rs_ps_set_opts(j->ps, &o);
    if (rc) {
        fail(rc, "%s", j->ps ? rs_ps_errmsg(j->ps) : rs_strerror(rc));
        free_job(j);
        return rc;
    }
    rs__mutex_lock(&jobs->mu);
    char autobuf[16];
    if (!name || !*name) {
        auto_name(jobs, autobuf, sizeof autobuf);
        name = autobuf;
    }
    if (lookup(jobs, name, true)) {
        rs__mutex_unlock(&jobs->mu);
        free_job(j);
        return fail(RS_EEXIST, "a job named '%s' already exists", name);
    }
    j->name = rs__strdup(name);
    if (!j->name) {
        rs__mutex_unlock(&jobs->mu);
        free_job(j);
        return fail(RS_ENOMEM, "out of memory");
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    j->start = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    j->state = RS_JOB_RUNNING;
    rs__queue_insert_tail(&jobs->list, &j->node);
    jobs->running++;
    j->starting = true; /* not visible until it has begun */
    rs__mutex_unlock(&jobs->mu);

    rc = rs_ps_begin_invoke(j->ps, &j->async);

    rs__mutex_lock(&jobs->mu);
    j->starting = false;
    if (rc) {
        rs__queue_remove(&j->node);
        jobs->running--;
        rs__cond_broadcast(&jobs->ended); /* rs_jobs_wait_all may be waiting on it alone */
        rs__mutex_unlock(&jobs->mu);
        fail(rc, "%s", rs_ps_errmsg(j->ps));
        free_job(j);
        return rc;
    }
    if (assigned)
        *assigned = j->name;
    rs__mutex_unlock(&jobs->mu);
    return 0;
}

int rs_jobs_get(rs_jobs *jobs, const char *name, rs_job_info *out)
{
    if (!jobs)
        return RS_EMISUSE;
    if (!name || !out)
        return RS_EINVAL;
    rs__mutex_lock(&jobs->mu);
    job *j = find(jobs, name);
    if (!j) {
        rs__mutex_unlock(&jobs->mu);
        return fail(RS_ENOENT, "no job named '%s'", name);
    }
    memset(out, 0, sizeof *out);
    out->name = j->name;
    out->state = j->state;
    out->start = j->start;
    out->end = j->ended ? j->end : 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    out->duration = (j->ended ? j->end : now) - j->start;
    if (j->ended) {
        out->result = rs_ps_output(j->ps);
        out->error_count = rs_ps_record_count(j->ps, RS_STREAM_ERROR);
        rs_record rec;
        if (j->state == RS_JOB_FAILED || j->state == RS_JOB_STOPPED)
            out->error = rs_ps_errmsg(j->ps);
        else if (out->error_count && rs_ps_record(j->ps, RS_STREAM_ERROR, 0, &rec) == 0)
            out->error = rec.message;
    }
    rs__mutex_unlock(&jobs->mu);
    return 0;
}

size_t rs_jobs_list(rs_jobs *jobs, rs_job_filter filter, const char **names, size_t cap)
{
    if (!jobs)
        return 0;
    size_t n = 0;
    rs__mutex_lock(&jobs->mu);
    rs__qnode *q;
    RS__QUEUE_FOREACH (q, &jobs->list) {
        job *j = RS__QUEUE_DATA(q, job, node);
        if (j->removing || j->starting || (filter == RS_JOBS_RUNNING && j->ended) ||
            (filter == RS_JOBS_COMPLETED && !j->ended))
            continue;
        if (names && n < cap)
            names[n] = j->name;
        n++;
    }
    rs__mutex_unlock(&jobs->mu);
    return n;
}

/* Waits on `ended` until deadline (ns, 0 = none); jobs->mu held. */
static int wait_ended(rs_jobs *jobs, int64_t deadline)
{
    if (!deadline) {
        rs__cond_wait(&jobs->ended, &jobs->mu);
        return 0;
    }
    return rs__cond_wait_until(&jobs->ended, &jobs->mu, deadline);
}

int rs_jobs_wait(rs_jobs *jobs, const char *name, double timeout)
{
    if (!jobs)
        return RS_EMISUSE;
    if (!name || timeout != timeout)
        return RS_EINVAL;
    int64_t deadline = timeout >= 0 ? rs__now_ns() + rs__seconds_to_ns(timeout) : 0;
    if (timeout == 0)
        deadline = rs__now_ns();
    rs__mutex_lock(&jobs->mu);
    int rc = 0;
    job *j;
    while ((j = find(jobs, name)) && !j->ended) {
        if (wait_ended(jobs, deadline) == RS_ETIMEDOUT) {
            j = find(jobs, name);
            if (j && !j->ended)
                rc = fail(RS_ETIMEDOUT, "job '%s' is still running after %g s", name, timeout);
            break;
        }
    }
    if (!rc && !find(jobs, name))
        rc = fail(RS_ENOENT, "no job named '%s'", name);
    rs__mutex_unlock(&jobs->mu);
    return rc;
}

int rs_jobs_wait_all(rs_jobs *jobs, double timeout)
{
    if (!jobs)
        return RS_EMISUSE;
    if (timeout != timeout)
        return RS_EINVAL;
    int64_t deadline = timeout >= 0 ? rs__now_ns() + rs__seconds_to_ns(timeout) : 0;
    if (timeout == 0)
        deadline = rs__now_ns();
    rs__mutex_lock(&jobs->mu);
    int rc = 0;
    while (jobs->running > 0) {
        if (wait_ended(jobs, deadline) == RS_ETIMEDOUT && jobs->running > 0) {
            rc = fail(RS_ETIMEDOUT, "timed out waiting for %zu job(s) to complete", jobs->running);
            break;
        }
    }
    rs__mutex_unlock(&jobs->mu);
    return rc;
}

int rs_jobs_remove(rs_jobs *jobs, const char *name)
{
    if (!jobs)
        return RS_EMISUSE;
    if (!name)
        return RS_EINVAL;
    rs__mutex_lock(&jobs->mu);
    job *j = find(jobs, name);
    if (!j) {
        rs__mutex_unlock(&jobs->mu);
        return fail(RS_ENOENT, "no job named '%s'", name);
    }
    j->removing = true;
    rs__mutex_unlock(&jobs->mu);
    rs_ps_stop(j->ps); /* returns once ended: job_done has run */
    rs__mutex_lock(&jobs->mu);
    rs__queue_remove(&j->node);
    rs__cond_broadcast(&jobs->ended);
    rs__mutex_unlock(&jobs->mu);
    free_job(j);
    return 0;
}

int rs_jobs_destroy(rs_jobs *jobs)
{
    if (!jobs)
        return 0;
    rs__qnode all;
    rs__queue_init(&all);
    rs__mutex_lock(&jobs->mu);
    while (!rs__queue_empty(&jobs->list)) {
        rs__qnode *n = rs__queue_head(&jobs->list);
        RS__QUEUE_DATA(n, job, node)->removing = true;
        rs__queue_remove(n);
        rs__queue_insert_tail(&all, n);
    }
    rs__mutex_unlock(&jobs->mu);
    /* Ask every job to stop first, then wait for each: they stop in parallel. */
    rs__qnode *n;
    RS__QUEUE_FOREACH (n, &all) {
        rs_ps_begin_stop(RS__QUEUE_DATA(n, job, node)->ps);
    }
    while (!rs__queue_empty(&all)) {
        job *j = RS__QUEUE_DATA(rs__queue_head(&all), job, node);
        rs__queue_remove(&j->node);
        rs_ps_stop(j->ps);
        free_job(j);
    }
    if (jobs->own_pool)
        rs_pool_destroy(jobs->pool);
    rs__cond_destroy(&jobs->ended);
    rs__mutex_destroy(&jobs->mu);
    rs__free(jobs);
    return 0;
}
