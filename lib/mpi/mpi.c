/* SPDX-License-Identifier: MIT */
/* sp_mpi_parallel(): the handshake every rank goes through before any task
 * runs, then rank 0's scheduler (root.c), the other ranks' loop
 * (worker.c) or, on a communicator of one, a local run (single.c); and at
 * the end the copy of the map for every rank when it is asked for (map.c).
 *
 * The handshake is two collectives on a duplicate of the caller's
 * communicator: a gather of what each rank found (its own argument
 * checks, its task count, a hash of its keys, its local worker count) and
 * a broadcast of rank 0's verdict (the error code and sp_last_error()
 * text, or the settings of the run). So every rank returns the same code
 * with the same message, and no callback runs anywhere unless every check
 * passed on every rank. */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t sp_mpi_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int sp_mpi_error(const char *call, int err)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS || len <= 0)
        snprintf(text, sizeof text, "MPI error %d", err);
    return sp__set_error(SP_ESYSTEM, "%s failed: %s", call, text);
}

const char *sp_mpi_bare_error(int code)
{
    const char *m = sp_last_error();
    size_t len = strlen(sp_err_name(code));
    if (!strncmp(m, sp_err_name(code), len) && m[len] == ':' &&
        m[len + 1] == ' ')
        return m + len + 2;
    return m;
}

/* ---- the handshake ------------------------------------------------------ */

/* What each rank tells rank 0: u64 task count, u64 hash of the table, u32
 * most local workers, i32 error code, u32 local workers at the start of a
 * call, then the error message. */
enum { HELLO_MSG = 240, HELLO_SIZE = 28 + HELLO_MSG };
/* What rank 0 answers: i32 code, u32 flags, u32 batch, u32 inflight, u32
 * policy, u32 map_everywhere, u32 workers, u32 (zero), u64 task_timeout
 * (the bits of the double), then the message. */
enum { VERDICT_MSG = 480, VERDICT_SIZE = 40 + VERDICT_MSG };
enum { VERDICT_STOPPABLE = 1 };

static void put_msg(unsigned char *p, size_t room, const char *msg)
{
    size_t len = strlen(msg);
    if (len >= room)
        len = room - 1;
    memcpy(p, msg, len);
    memset(p + len, 0, room - len);
}

/* FNV-1a over the count and every key with its terminating NUL, each
 * followed by its dependencies (their number, then their keys): equal
 * tables hash equal on every rank; a NULL key hashes as a marker
 * (validation on rank 0 reports it). Argument bytes are not in it: they
 * travel from rank 0. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t len)
{
    const unsigned char *s = p;
    for (size_t k = 0; k < len; k++)
        h = (h ^ s[k]) * 0x100000001b3u;
    return h;
}

static uint64_t hash_key(uint64_t h, const char *key)
{
    return key ? hash_bytes(h, key, strlen(key) + 1) : hash_bytes(h, "\xff", 1);
}

static uint64_t table_hash(const sp_task *tasks, size_t n)
{
    unsigned char le[8];
    put_u64(le, n);
    uint64_t h = hash_bytes(0xcbf29ce484222325u, le, 8);
    for (size_t i = 0; tasks && i < n; i++) {
        h = hash_key(h, tasks[i].key);
        size_t nafter = 0;
        while (tasks[i].after && tasks[i].after[nafter])
            nafter++;
        put_u64(le, nafter);
        h = hash_bytes(h, le, 8);
        for (size_t k = 0; k < nafter; k++)
            h = hash_key(h, tasks[i].after[k]);
    }
    return h;
}

/* This rank's own checks: its arguments and its options. */
static int local_checks(const sp_options *opts, const sp_mpi_options *m,
                        sp_results **out)
{
    if (!out)
        return sp__set_error(SP_EINVAL, "the 'out' argument is NULL");
    if (m) {
        if (m->batch > SP_MPI_MAX_BATCH)
            return sp__set_error(SP_EOPTION,
                                 "sp_mpi_options.batch is %u; the range is "
                                 "0 .. %u",
                                 m->batch, SP_MPI_MAX_BATCH);
        if (m->inflight > SP_MPI_MAX_INFLIGHT)
            return sp__set_error(SP_EOPTION,
                                 "sp_mpi_options.inflight is %u; the range "
                                 "is 0 .. %u",
                                 m->inflight, SP_MPI_MAX_INFLIGHT);
        if (m->map_everywhere != 0 && m->map_everywhere != 1)
            return sp__set_error(SP_EOPTION,
                                 "sp_mpi_options.map_everywhere is %d; it "
                                 "must be 0 or 1",
                                 m->map_everywhere);
        for (size_t k = 0; k < sizeof m->reserved; k++)
            if (m->reserved[k])
                return sp__set_error(SP_ENOTSUP,
                                     "sp_mpi_options.reserved[%zu] is not "
                                     "zero",
                                     k);
    }
    /* The options as simple_parallel() checks them, on an empty table. */
    sp_results *none = NULL;
    int rc = simple_parallel(NULL, 0, opts, &none);
    sp_results_free(none);
    return rc;
}

static void hello_put(unsigned char *p, size_t n, uint64_t hash,
                      const sp_options *opts, int code)
{
    /* The local workers a batch of this rank may use (most: what numbers
     * them) and those it starts with (start: what sizes its batches). */
    unsigned most, start;
    sp__workers(opts, n, &most, &start);
    put_u64(p, n);
    put_u64(p + 8, hash);
    put_u32(p + 16, most);
    put_u32(p + 20, (uint32_t)code);
    put_u32(p + 24, start);
    put_msg(p + 28, HELLO_MSG, code ? sp_mpi_bare_error(code) : "");
}

/* Rank 0: the verdict from every rank's hello and its own validation,
 * which starts the run (*r) when everything passed. */
static int judge(struct mpi_call *c, const unsigned char *hellos, int own,
                 const sp_options *opts, sp__run **r)
{
    uint64_t n0 = get_u64(hellos), h0 = get_u64(hellos + 8);
    if (own)
        return own;
    for (int k = 1; k < c->size; k++) {
        const unsigned char *p = hellos + (size_t)k * HELLO_SIZE;
        int code = (int32_t)get_u32(p + 20);
        if (code) {
            char msg[HELLO_MSG];
            memcpy(msg, p + 28, HELLO_MSG);
            msg[HELLO_MSG - 1] = 0;
            return sp__set_error(code, "rank %d: %s", k, msg);
        }
    }
    for (int k = 1; k < c->size; k++) {
        const unsigned char *p = hellos + (size_t)k * HELLO_SIZE;
        if (get_u64(p) != n0)
            return sp__set_error(SP_EINVAL,
                                 "the task table differs between ranks: "
                                 "rank %d has %llu tasks, rank 0 has %llu",
                                 k, (unsigned long long)get_u64(p),
                                 (unsigned long long)n0);
        if (get_u64(p + 8) != h0)
            return sp__set_error(SP_EINVAL,
                                 "the task table differs between ranks: "
                                 "rank %d's keys or dependencies are not "
                                 "rank 0's",
                                 k);
    }
    /* Global worker numbers: rank 1's local workers first, then rank 2's;
     * on a communicator of one, rank 0's own. */
    uint64_t total = 0;
    c->wstart_total = 0;
    for (int k = 0; k < c->size; k++) {
        const unsigned char *p = hellos + (size_t)k * HELLO_SIZE;
        bool runs = (k == 0) == (c->size == 1);
        c->wcap[k] = runs ? get_u32(p + 16) : 0;
        c->wstart[k] = runs ? get_u32(p + 24) : 0;
        c->wbase[k] = (uint32_t)total;
        total += c->wcap[k];
        c->wstart_total += c->wstart[k];
    }
    if (total > SP_MAX_WORKERS * 4096ull)
        total = SP_MAX_WORKERS * 4096ull;
    c->workers = c->n ? (unsigned)total : 0;
    return sp__run_begin(c->tasks, c->n, opts, c->workers, r);
}

static void verdict_put(unsigned char *p, int code, const struct mpi_call *c,
                        const sp_options *opts, int map_everywhere)
{
    memset(p, 0, VERDICT_SIZE);
    put_u32(p, (uint32_t)code);
    if (code) {
        put_msg(p + 40, VERDICT_MSG, sp_mpi_bare_error(code));
        return;
    }
    put_u32(p + 4, c->stoppable ? VERDICT_STOPPABLE : 0);
    put_u32(p + 8, c->batch);
    put_u32(p + 12, c->inflight);
    put_u32(p + 16, opts ? (uint32_t)opts->on_error : 0);
    put_u32(p + 20, (uint32_t)map_everywhere);
    put_u32(p + 24, c->workers);
    double tt = opts ? opts->task_timeout : 0;
    uint64_t bits;
    memcpy(&bits, &tt, sizeof bits);
    put_u64(p + 32, bits);
}

void sp_mpi_local_row(const sp_task *src, sp_task *row, sp_task_policy *pol)
{
    *row = *src;
    row->after = NULL;
    row->data = NULL;
    row->len = 0;
    if (src->policy) {
        *pol = *src->policy;
        pol->retries = SP_NO_RETRIES;
        row->policy = pol;
    }
}

/* Rank 0: whether any task of the table may be tried again. */
static bool any_retries(const sp_task *tasks, size_t n, const sp_options *opts)
{
    if (opts && opts->retries && opts->retries != SP_NO_RETRIES)
        return n > 0;
    for (size_t i = 0; i < n; i++) {
        const sp_task_policy *p = tasks[i].policy;
        if (p && p->retries && p->retries != SP_NO_RETRIES)
            return true;
    }
    return false;
}

int sp_mpi_no_spawn(void *user, size_t i, const sp_task *task)
{
    (void)user;
    (void)i;
    return sp__set_error(SP_ENOTSUP,
                         "sp_spawn: not supported in sp_mpi_parallel() (task "
                         "\"%.64s\" was not added): a task cannot be sent "
                         "to another rank by its function; put every task "
                         "in the table, ordered with 'after'",
                         task->key);
}

/* ---- the entry point ---------------------------------------------------- */

SP_API int sp_mpi_parallel(MPI_Comm comm, const sp_task *tasks, size_t n,
                           const sp_options *opts, sp_results **out)
{
    return sp_mpi_parallel_ex(comm, tasks, n, opts, NULL, out);
}

SP_API int sp_mpi_parallel_ex(MPI_Comm comm, const sp_task *tasks, size_t n,
                              const sp_options *opts,
                              const sp_mpi_options *mopts, sp_results **out)
{
    if (out)
        *out = NULL;
    int flag = 0;
    if (MPI_Initialized(&flag) != MPI_SUCCESS || !flag)
        return sp__set_error(SP_EINVAL, "MPI is not initialised: call "
                                        "MPI_Init_thread() first");
    if (MPI_Finalized(&flag) != MPI_SUCCESS || flag)
        return sp__set_error(SP_EINVAL, "MPI is already finalised");
    if (comm == MPI_COMM_NULL)
        return sp__set_error(SP_EINVAL, "the communicator is MPI_COMM_NULL");
    int err = MPI_Comm_test_inter(comm, &flag);
    if (err)
        return sp_mpi_error("MPI_Comm_test_inter", err);
    if (flag)
        return sp__set_error(SP_EINVAL, "the communicator is an "
                                        "intercommunicator");
    struct mpi_call c = {.tasks = tasks, .n = n};
    if ((err = MPI_Comm_dup(comm, &c.comm)) != MPI_SUCCESS)
        return sp_mpi_error("MPI_Comm_dup", err);
    MPI_Comm_set_errhandler(c.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c.comm, &c.rank);
    MPI_Comm_size(c.comm, &c.size);

    /* Gather every rank's findings on rank 0: its checks, and whether it
     * has the buffer every message goes through. */
    int own = local_checks(opts, mopts, out);
    if (c.size > 1 && !(c.buf = malloc(FRAME_MAX)) && !own)
        own = sp__set_error(SP_ENOMEM, "out of memory for the message "
                                       "buffer");
    unsigned char hello[HELLO_SIZE], verdict[VERDICT_SIZE];
    hello_put(hello, n, table_hash(tasks, n), opts, own);
    unsigned char *hellos = NULL;
    int rc = 0;
    if (c.rank == 0) {
        hellos = malloc((size_t)c.size * HELLO_SIZE);
        c.wbase = calloc((size_t)c.size, sizeof *c.wbase);
        c.wcap = calloc((size_t)c.size, sizeof *c.wcap);
        c.wstart = calloc((size_t)c.size, sizeof *c.wstart);
        if (!hellos || !c.wbase || !c.wcap || !c.wstart)
            /* Rank 0 cannot judge; the gather still has to happen. */
            own = own ? own
                      : sp__set_error(SP_ENOMEM, "out of memory for the "
                                                 "handshake");
    }
    unsigned char dummy[HELLO_SIZE];
    err = MPI_Gather(hello, HELLO_SIZE, MPI_BYTE, hellos ? hellos : dummy,
                     HELLO_SIZE, MPI_BYTE, 0, c.comm);
    if (err) {
        rc = sp_mpi_error("MPI_Gather", err);
        goto out;
    }

    /* Rank 0 judges and starts the run; everyone learns the verdict. */
    sp__run *r = NULL;
    int map_everywhere = mopts ? mopts->map_everywhere : 0;
    if (c.rank == 0) {
        c.batch = mopts ? mopts->batch : 0;
        c.inflight = mopts ? mopts->inflight : 0;
        c.stoppable = opts && (opts->on_error == SP_POLICY_FAIL_FAST ||
                               opts->on_done != NULL);
        c.retries = tasks && any_retries(tasks, n, opts);
        rc = hellos ? judge(&c, hellos, own, opts, &r) : own;
        verdict_put(verdict, rc, &c, opts, map_everywhere);
    }
    err = MPI_Bcast(verdict, VERDICT_SIZE, MPI_BYTE, 0, c.comm);
    if (err) {
        if (r)
            sp_results_free(sp__run_end(r)); /* LCOV: MPI broke */
        rc = sp_mpi_error("MPI_Bcast", err);
        goto out;
    }
    if (c.rank != 0) {
        rc = (int32_t)get_u32(verdict);
        if (rc) {
            char msg[VERDICT_MSG];
            memcpy(msg, verdict + 40, VERDICT_MSG);
            msg[VERDICT_MSG - 1] = 0;
            sp__set_error(rc, "%s", msg);
            goto out;
        }
        c.stoppable = get_u32(verdict + 4) & VERDICT_STOPPABLE;
        c.batch = get_u32(verdict + 8);
        c.inflight = get_u32(verdict + 12);
        map_everywhere = (int)get_u32(verdict + 20);
        c.workers = get_u32(verdict + 24);
    } else if (rc) {
        goto out;
    }

    /* The run. Each rank's local calls take its own options, with rank 0's
     * policy and per-task limit, and no retries: rank 0's run decides
     * them, and hands a retried task out again. */
    c.local = opts ? *opts : (sp_options){0};
    c.local.retries = 0;
    c.local.retry_on = 0;
    c.local.retry_delay = 0;
    c.local.retry_delay_max = 0;
    c.local.retry_backoff = SP_BACKOFF_DEFAULT;
    c.local.on_error = (sp_policy)get_u32(verdict + 16);
    uint64_t bits = get_u64(verdict + 32);
    memcpy(&c.local.task_timeout, &bits, sizeof bits);
    c.local.on_done = NULL;
    c.local.on_done_arg = NULL;
    c.local.deadline = 0;
    sp_results *res = NULL;
    sp__run *copy = NULL; /* this rank's copy of the map */
    int copy_rc = 0;
    if (c.rank != 0 && map_everywhere)
        copy_rc = sp__run_begin(tasks, n, NULL, c.workers, &copy);
    if (c.rank == 0) {
        if (c.size == 1)
            rc = sp_mpi_single(&c, r);
        else
            rc = sp_mpi_root(&c, r);
        size_t i;
        if (sp__run_stopped(r))
            (void)sp__run_next(r, &i); /* the stop's reason, for the rest */
        res = sp__run_end(r);
        rc = 0; /* every key is in the map, lost ones too */
    } else {
        rc = sp_mpi_worker(&c);
    }
    if (map_everywhere && c.size > 1 && !rc) {
        if (c.rank == 0)
            rc = sp_mpi_send_map(c.comm, c.buf, res);
        else
            rc = sp_mpi_recv_map(&c, copy, copy_rc, &res);
    } else if (copy) {
        sp_results_free(sp__run_end(copy));
    }
    if (rc && c.rank != 0) {
        sp_results_free(res);
        res = NULL;
    }
    *out = res;

out:
    free(c.buf);
    free(hellos);
    free(c.wbase);
    free(c.wcap);
    free(c.wstart);
    MPI_Comm_free(&c.comm);
    return rc;
}
