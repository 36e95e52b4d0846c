/* SPDX-License-Identifier: MIT */
/* sp_mpi_parallel(): the handshake every rank goes through before any task
 * runs, then rank 0's scheduler (root.c), the other ranks' loop
 * (worker.c) or, on a communicator of one, a local run; and at the end the
 * copy of the map for every rank when it is asked for.
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
#include <unistd.h>

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

/* The message of sp_last_error() without its "SP_NAME: " prefix, which
 * sp__set_error() adds again on the other ranks. */
static const char *bare_error(int code)
{
    const char *m = sp_last_error();
    size_t len = strlen(sp_err_name(code));
    if (!strncmp(m, sp_err_name(code), len) && m[len] == ':' &&
        m[len + 1] == ' ')
        return m + len + 2;
    return m;
}

/* ---- the handshake ------------------------------------------------------ */

/* What each rank tells rank 0: u64 task count, u64 hash of the keys, u32
 * local workers, i32 error code, then the error message. */
enum { HELLO_MSG = 240, HELLO_SIZE = 24 + HELLO_MSG };
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

/* The local workers a batch of this rank may use: what the local backend
 * starts for opts->max_workers (include/simplepar.h), at most n. */
static uint32_t local_capacity(const sp_options *opts, size_t n)
{
    unsigned w = opts ? opts->max_workers : 0;
    sp_backend b = opts ? opts->backend : SP_BACKEND_THREAD;
    if (b == SP_BACKEND_SERIAL)
        w = 1;
    else if (!w && b == SP_BACKEND_PROCESS) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        w = cpus > 0 ? (unsigned)cpus : 1;
    } else if (!w)
        w = SP_THREAD_DEFAULT_CAP;
    if (n && w > n)
        w = (unsigned)n;
    return w ? w : 1;
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

static void hello_put(unsigned char *p, size_t n, uint64_t hash, uint32_t cap,
                      int code)
{
    put_u64(p, n);
    put_u64(p + 8, hash);
    put_u32(p + 16, cap);
    put_u32(p + 20, (uint32_t)code);
    put_msg(p + 24, HELLO_MSG, code ? bare_error(code) : "");
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
            memcpy(msg, p + 24, HELLO_MSG);
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
    for (int k = 0; k < c->size; k++) {
        uint32_t cap = get_u32(hellos + (size_t)k * HELLO_SIZE + 16);
        c->wcap[k] = (k == 0) == (c->size == 1) ? cap : 0;
        c->wbase[k] = (uint32_t)total;
        total += c->wcap[k];
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
        put_msg(p + 40, VERDICT_MSG, bare_error(code));
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

/* ---- a communicator of one rank ----------------------------------------- */

/* Every task runs on rank 0's local backend, and each outcome is recorded
 * in the run as the local call reports it (so on_done sees tasks in
 * completion order, and a stop takes effect at once). The run hands out
 * only tasks whose dependencies ended OK, and the local call reads their
 * results from the run's map. */
struct single {
    sp__run *r;
    const sp_task *tasks;
    const uint32_t *idx; /* local index -> task index */
    int64_t shift;       /* ns from the run's start to the local call's */
};

static const void *single_dep(void *user, size_t i, const char *key,
                              size_t *len)
{
    const struct single *s = user;
    const sp_task *row = &s->tasks[s->idx[i]];
    for (size_t k = 0; key && row->after && row->after[k]; k++)
        if (!strcmp(row->after[k], key))
            return sp__run_dep_at(s->r, s->idx[i], k, len);
    sp__set_error(SP_ENODEP,
                  "sp_dep_result: \"%.64s\" is not a dependency of task "
                  "\"%.64s\"",
                  key ? key : "(null)", row->key);
    return NULL;
}

static int single_done(const sp_entry *e, void *arg)
{
    struct single *s = arg;
    uint32_t idx = s->idx[sp_entry_index(e)];
    struct wire_entry w;
    wire_from_entry(e, idx, s->shift, &w);
    if (!((w.flags & ENTRY_NOT_STARTED) && sp__run_stopped(s->r))) {
        sp__outcome o;
        wire_to_outcome(&w, 0, &o);
        sp__run_record(s->r, idx, &o);
    }
    return sp__run_stopped(s->r);
}

static int run_single(struct mpi_call *c, sp__run *r)
{
    uint32_t *idx = malloc((c->n ? c->n : 1) * sizeof *idx);
    sp_task *rows = malloc((c->n ? c->n : 1) * sizeof *rows);
    if (!idx || !rows) {
        free(idx);
        free(rows);
        sp__run_fail(r, SP_ENOMEM, "out of memory for the rank's batch");
        return 0;
    }
    for (;;) {
        size_t count = 0, i;
        while ((!c->batch || count < c->batch) && count < c->n &&
               sp__run_next(r, &i) == 1) {
            idx[count] = (uint32_t)i;
            rows[count] = c->tasks[i];
            rows[count].after = NULL; /* dependencies are the run's */
            count++;
        }
        if (!count)
            break;
        int64_t left = -1; /* no deadline */
        if (sp__run_deadline(r) > 0) {
            double s_left = sp__run_deadline(r) - sp__run_now(r);
            left = s_left > 0 ? (int64_t)(s_left * 1e9) : 0;
        }
        sp_options lo;
        if (sp_mpi_local_opts(c, left, &lo))
            break; /* the deadline passed: the run cancels the rest */
        struct single s = {.r = r, .tasks = c->tasks, .idx = idx};
        lo.on_done = single_done;
        lo.on_done_arg = &s;
        s.shift = (int64_t)(sp__run_now(r) * 1e9);
        sp_results *lres = NULL;
        sp__local hooks = {
            .dep = single_dep, .spawn = sp_mpi_no_spawn, .user = &s};
        int rc = sp__parallel(rows, count, &lo, &hooks, &lres);
        sp_results_free(lres);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "rank 0: %s", bare_error(rc));
            sp__run_fail(r, rc, msg);
            break;
        }
    }
    free(idx);
    free(rows);
    return 0;
}

/* ---- the map on every rank ---------------------------------------------- */

/* Rank 0 broadcasts the finished map in frames (a u64 length, then the
 * frame), each entry's bytes above INLINE_MAX in CHUNK broadcasts right
 * after the frame that names them. */
static int bcast_frame(MPI_Comm comm, unsigned char *buf, size_t len)
{
    unsigned char head[8];
    put_u64(head, len);
    int err = MPI_Bcast(head, 8, MPI_BYTE, 0, comm);
    if (!err)
        err = MPI_Bcast(buf, (int)len, MPI_BYTE, 0, comm);
    return err ? sp_mpi_error("MPI_Bcast", err) : 0;
}

/* len bytes in CHUNK broadcasts into p; with p NULL (no memory for them)
 * each chunk lands in scratch (CHUNK bytes) and is dropped, so this rank
 * still takes part in every broadcast. */
static int bcast_bytes(MPI_Comm comm, unsigned char *p, unsigned char *scratch,
                       uint64_t len)
{
    for (uint64_t off = 0; off < len;) {
        size_t part = len - off > CHUNK ? CHUNK : (size_t)(len - off);
        int err =
            MPI_Bcast(p ? p + off : scratch, (int)part, MPI_BYTE, 0, comm);
        if (err)
            return sp_mpi_error("MPI_Bcast", err);
        off += part;
    }
    return 0;
}

static int send_map(MPI_Comm comm, unsigned char *buf, const sp_results *res)
{
    size_t n = sp_results_count(res), pos = FRAME_HEAD;
    uint32_t count = 0;
    int rc = 0;
    for (size_t i = 0; i <= n && !rc; i++) {
        struct wire_entry w = {0};
        size_t need = 0;
        if (i < n) {
            wire_from_entry(sp_results_at(res, i), (uint32_t)i, 0, &w);
            need = wire_entry_size(&w); /* at most FRAME_MAX - FRAME_HEAD */
        }
        if (i == n || (count && pos + need > FRAME_MAX)) {
            wire_frame_head(buf, MSG_MAP, 0, count, i == n ? REPLY_LAST : 0);
            rc = bcast_frame(comm, buf, pos);
            pos = FRAME_HEAD;
            count = 0;
            if (i == n || rc)
                break;
        }
        wire_entry_put(buf + pos, &w);
        pos += need;
        count++;
        if (w.flags & ENTRY_OUT_OF_LINE) {
            wire_frame_head(buf, MSG_MAP, 0, count, 0);
            rc = bcast_frame(comm, buf, pos);
            if (!rc)
                rc = bcast_bytes(comm, (unsigned char *)w.data, NULL,
                                 w.data_len);
            pos = FRAME_HEAD;
            count = 0;
        }
    }
    return rc;
}

/* The other ranks: the same frames into a run of their own (begun when
 * the call's run began, so its elapsed time is this rank's time in the
 * call; NULL when that failed, with the error in rc), each entry put as
 * rank 0 recorded it. */
static int recv_map(struct mpi_call *c, sp__run *r, int rc, sp_results **out)
{
    unsigned char *buf = c->buf; /* frames are at most FRAME_MAX */
    for (bool last = false; !last;) {
        unsigned char head[8];
        int err = MPI_Bcast(head, 8, MPI_BYTE, 0, c->comm);
        size_t len = err ? 0 : (size_t)get_u64(head);
        if (!err && len > FRAME_MAX)
            err = MPI_ERR_TRUNCATE;
        if (!err)
            err = MPI_Bcast(buf, (int)len, MPI_BYTE, 0, c->comm);
        if (err) {
            rc = sp_mpi_error("MPI_Bcast", err);
            break;
        }
        if (len < FRAME_HEAD || get_u32(buf) != MSG_MAP) {
            rc = sp__set_error(SP_EPROTO, "a malformed frame of the map");
            break;
        }
        uint32_t count = get_u32(buf + 8);
        last = get_u32(buf + 12) & REPLY_LAST;
        const unsigned char *p = buf + FRAME_HEAD, *end = buf + len;
        for (uint32_t k = 0; k < count; k++) {
            struct wire_entry w;
            size_t used = wire_entry_get(p, end, &w);
            if (!used || w.index >= c->n) {
                rc = sp__set_error(SP_EPROTO, "a malformed entry of the map");
                last = true;
                break;
            }
            p += used;
            sp__outcome o;
            wire_to_outcome(&w, 0, &o);
            if (!(w.flags & ENTRY_OUT_OF_LINE)) {
                if (r && !rc)
                    sp__run_put(r, w.index, &o);
                continue;
            }
            /* Its bytes follow; the entry is the frame's last. */
            unsigned char *big = malloc((size_t)w.data_len + 1);
            char msg[160];
            if (!big) {
                snprintf(msg, sizeof msg,
                         "rank %d ran out of memory receiving this result "
                         "(%llu bytes)",
                         c->rank, (unsigned long long)w.data_len);
                o = (sp__outcome){.kind = SP_KIND_FAILED,
                                  .code = SP_ENOMEM,
                                  .msg = msg,
                                  .start = o.start,
                                  .end = o.end,
                                  .worker = o.worker,
                                  .exit_status = -1};
                if (r && !rc)
                    sp__run_put(r, w.index, &o);
            }
            int e2 = bcast_bytes(c->comm, big, buf, w.data_len);
            if (e2) {
                free(big);
                rc = e2;
                last = true;
                break;
            }
            if (big && r && !rc) {
                o.data = big;
                o.data_owned = 1;
                sp__run_put(r, w.index, &o);
            } else {
                free(big);
            }
        }
    }
    if (r) {
        sp_results *res = sp__run_end(r);
        if (rc)
            sp_results_free(res);
        else
            *out = res;
    }
    return rc;
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
    hello_put(hello, n, table_hash(tasks, n), local_capacity(opts, n), own);
    unsigned char *hellos = NULL;
    int rc = 0;
    if (c.rank == 0) {
        hellos = malloc((size_t)c.size * HELLO_SIZE);
        c.wbase = calloc((size_t)c.size, sizeof *c.wbase);
        c.wcap = calloc((size_t)c.size, sizeof *c.wcap);
        if (!hellos || !c.wbase || !c.wcap)
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
     * policy and per-task limit. */
    c.local = opts ? *opts : (sp_options){0};
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
            rc = run_single(&c, r);
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
            rc = send_map(c.comm, c.buf, res);
        else
            rc = recv_map(&c, copy, copy_rc, &res);
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
    MPI_Comm_free(&c.comm);
    return rc;
}
