/* SPDX-License-Identifier: MIT */
/* A rank other than 0: it takes batches of task indices from rank 0 in the
 * order they were sent, runs each as one local call (sp__parallel(), which
 * is simple_parallel() with the dependency results rank 0 sent along) on
 * its local backend over a sub-table of the same rows, and sends back one
 * reply per batch. Only this rank's calling thread calls MPI; the local
 * backend's threads or processes never do.
 *
 * While a batch runs, the rank learns of a stop (TAG_STOP) only when the
 * run can stop early (fail-fast, or an on_done on rank 0): then the local
 * call's completion callback looks for the message, at most every
 * POLL_NS, and returning non-zero makes the local call start nothing more
 * and ask its running tasks to stop. A batch that arrives after the stop,
 * or after its deadline, is not run; its tasks stay without an outcome on
 * rank 0, whose run cancels them with the reason.
 *
 * Retries are rank 0's: a batch names each task's attempt (what
 * sp_ctx_attempt() says in it) and the outcomes after which rank 0 would
 * try it again, and the local call never retries. Under fail-fast, a
 * batch with such tasks runs its local call collecting all, and the
 * completion callback stops it at the first failure that is a task's last
 * attempt, as the local call's own fail-fast would. */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_NS 100000 /* 0.1 ms between looks for a stop */

struct worker {
    struct mpi_call *c;
    uint32_t *idx;        /* the batch's task indices */
    sp_task *rows;        /* its sub-table */
    sp_task_policy *pols; /* its rows' policies, without retries */
    unsigned *attempt;    /* its tasks' attempts */
    uint32_t *retry_on;   /* the outcomes rank 0 would retry them after */
    size_t cap;
    struct args args; /* its argument stream, when it came with one */
    bool stopped;
    bool watch_last; /* stop the batch at a last attempt's failure */
    int64_t last_poll;
};

/* sp_dep_result() in task i of the batch: what rank 0 sent along. */
static const void *batch_dep(void *user, size_t i, const char *key, size_t *len)
{
    const struct worker *w = user;
    return args_dep(&w->args, &w->c->tasks[w->idx[i]], (uint32_t)i, key, len);
}

int sp_mpi_local_opts(const struct mpi_call *c, int64_t left_ns, sp_options *o)
{
    *o = c->local;
    if (left_ns < 0)
        return 0;
    o->deadline = (double)left_ns / 1e9;
    return o->deadline > 0 ? 0 : -1;
}

/* The local call's completion callback when the run can stop: has rank 0
 * said so? */
static int poll_stop(const sp_entry *e, void *arg)
{
    struct worker *w = arg;
    if (w->stopped)
        return 1;
    if (w->watch_last) {
        /* Fail-fast: a failure rank 0 will not retry stops the batch. */
        sp_kind kind = sp_entry_kind(e);
        if (kind != SP_KIND_OK && kind != SP_KIND_CANCELLED &&
            !((w->retry_on[sp_entry_index(e)] >> kind) & 1u))
            return 1;
    }
    int64_t now = sp_mpi_clock();
    if (now - w->last_poll < POLL_NS)
        return 0;
    w->last_poll = now;
    int flag = 0;
    if (MPI_Iprobe(0, TAG_STOP, w->c->comm, &flag, MPI_STATUS_IGNORE) ==
            MPI_SUCCESS &&
        flag) {
        unsigned char b[4];
        MPI_Recv(b, sizeof b, MPI_BYTE, 0, TAG_STOP, w->c->comm,
                 MPI_STATUS_IGNORE);
        w->stopped = true;
    }
    return w->stopped;
}

/* ---- replies ------------------------------------------------------------ */

struct writer {
    MPI_Comm comm;
    unsigned char *buf;
    uint32_t id, count, flags;
    size_t pos;
    bool sent_last;
};

static int flush(struct writer *f, bool last)
{
    wire_frame_head(f->buf, MSG_REPLY, f->id, f->count,
                    f->flags | (last ? REPLY_LAST : 0));
    int err = MPI_Send(f->buf, (int)f->pos, MPI_BYTE, 0, TAG_REPLY, f->comm);
    f->pos = FRAME_HEAD;
    f->count = 0;
    f->sent_last = last;
    return err ? sp_mpi_error("MPI_Send", err) : 0;
}

/* One entry into the reply; result bytes above INLINE_MAX go right after
 * the frame that names them, in CHUNK messages, from the local map's own
 * buffer. */
static int put(struct writer *f, const struct wire_entry *e, bool last)
{
    size_t need = wire_entry_size(e);
    int rc = 0;
    if (f->count && f->pos + need > FRAME_MAX && (rc = flush(f, false)))
        return rc;
    wire_entry_put(f->buf + f->pos, e);
    f->pos += need;
    f->count++;
    if (!(e->flags & ENTRY_OUT_OF_LINE))
        return 0;
    if ((rc = flush(f, last)))
        return rc;
    const unsigned char *p = e->data;
    for (uint64_t off = 0; off < e->data_len;) {
        size_t part =
            e->data_len - off > CHUNK ? CHUNK : (size_t)(e->data_len - off);
        int err = MPI_Send(p + off, (int)part, MPI_BYTE, 0, TAG_DATA, f->comm);
        if (err)
            return sp_mpi_error("MPI_Send", err);
        off += part;
    }
    return 0;
}

static int finish(struct writer *f)
{
    return f->sent_last ? 0 : flush(f, true);
}

/* Every task of the batch came back without running: the local call could
 * not start (code, message), or the batch itself was malformed. */
static int reply_unstarted(struct worker *w, struct writer *f, uint32_t count,
                           int code, const char *msg, int64_t at)
{
    char text[600];
    snprintf(text, sizeof text, "not started: rank %d: %s", w->c->rank, msg);
    for (uint32_t k = 0; k < count; k++) {
        struct wire_entry e = {
            .index = w->idx[k],
            .kind = SP_KIND_CANCELLED,
            .flags = ENTRY_NOT_STARTED,
            .code = code,
            .worker = SP_NO_WORKER,
            .start = at,
            .end = at,
            .msg = text,
            .msg_len = (uint32_t)strlen(text),
        };
        int rc = put(f, &e, k + 1 == count);
        if (rc)
            return rc;
    }
    return finish(f);
}

static int grow(struct worker *w, size_t count)
{
    if (count <= w->cap)
        return 0;
    uint32_t *idx = realloc(w->idx, count * sizeof *idx);
    if (idx)
        w->idx = idx;
    sp_task *rows = realloc(w->rows, count * sizeof *rows);
    if (rows)
        w->rows = rows;
    sp_task_policy *pols = realloc(w->pols, count * sizeof *pols);
    if (pols)
        w->pols = pols;
    unsigned *att = realloc(w->attempt, count * sizeof *att);
    if (att)
        w->attempt = att;
    uint32_t *on = realloc(w->retry_on, count * sizeof *on);
    if (on)
        w->retry_on = on;
    if (!idx || !rows || !pols || !att || !on)
        return -1;
    w->cap = count;
    return 0;
}

/* ---- one batch ---------------------------------------------------------- */

static int run_batch(struct worker *w, size_t len, int64_t t_recv)
{
    struct mpi_call *c = w->c;
    const unsigned char *m = c->buf;
    uint32_t id = get_u32(m + 4), count = get_u32(m + 8),
             flags = get_u32(m + 12);
    int64_t t_send = (int64_t)get_u64(m + 16);
    int64_t left = (int64_t)get_u64(m + 24);
    struct writer f = {
        .comm = c->comm, .buf = c->buf, .id = id, .pos = FRAME_HEAD};
    size_t head = BATCH_HEAD + (size_t)count * 4;
    if (flags & BATCH_RETRY) /* the attempts and retry_on masks */
        head += (size_t)count * 8;
    w->args.count = 0;
    if (len != head + ((flags & BATCH_ARGS) ? 8 : 0) || !count ||
        grow(w, count)) {
        /* Nothing can be said about its tasks: rank 0 finds them without
         * an outcome and fails them. */
        f.flags = REPLY_DROPPED;
        return finish(&f);
    }
    bool bad = false, retried = false;
    const unsigned char *att = m + BATCH_HEAD + 4 * (size_t)count;
    for (uint32_t k = 0; k < count; k++) {
        w->idx[k] = get_u32(m + BATCH_HEAD + 4 * (size_t)k);
        if (w->idx[k] >= c->n) {
            bad = true;
            w->idx[k] = 0;
        }
        /* Dependencies, argument bytes (in the stream) and retries are
         * rank 0's. */
        sp_mpi_local_row(&c->tasks[w->idx[k]], &w->rows[k], &w->pols[k]);
        w->attempt[k] = 1;
        w->retry_on[k] = 0;
        if (flags & BATCH_RETRY) {
            uint32_t a = get_u32(att + 4 * (size_t)k);
            w->attempt[k] = a ? a : 1;
            w->retry_on[k] = get_u32(att + 4 * ((size_t)count + k));
            retried = retried || w->retry_on[k];
        }
    }
    /* From here on c->buf is free: the stream's scratch, then the reply. */
    char msg[600];
    int code = 0;
    if (flags & BATCH_ARGS) {
        code = args_read(&w->args, c->comm, c->buf, count, get_u64(m + head));
        if (code == SP_ESYSTEM)
            return code; /* MPI failed */
        snprintf(msg, sizeof msg, "%s", sp_last_error());
    }
    if (!code && (bad || (flags & ~(uint32_t)(BATCH_ARGS | BATCH_RETRY)))) {
        code = SP_EPROTO;
        snprintf(msg, sizeof msg,
                 bad ? "a task index beyond this rank's table of %zu tasks"
                     : "a batch this rank's library cannot read (%zu)",
                 bad ? c->n : (size_t)flags);
    }
    if (code)
        return reply_unstarted(w, &f, count, code, msg, t_send);
    for (uint32_t k = 0; w->args.count && k < count; k++)
        w->rows[k].data = args_data(&w->args, k, &w->rows[k].len);
    int64_t rem = -1; /* no deadline */
    if (left >= 0 && (rem = t_recv + left - sp_mpi_clock()) <= 0)
        rem = 0;
    sp_options lo;
    if (w->stopped || sp_mpi_local_opts(c, rem, &lo)) {
        f.flags = REPLY_DROPPED;
        return finish(&f);
    }
    /* Under fail-fast, a failure rank 0 will retry must stop nothing. */
    w->watch_last = retried && lo.on_error == SP_POLICY_FAIL_FAST;
    if (w->watch_last)
        lo.on_error = SP_POLICY_COLLECT_ALL;
    if (c->stoppable) {
        lo.on_done = poll_stop;
        lo.on_done_arg = w;
    }
    /* Local times onto rank 0's clock: rank 0 stamped t_send just before
     * sending; this rank received at t_recv on its own clock. */
    int64_t t_call = sp_mpi_clock();
    int64_t shift = t_send + (t_call - t_recv);
    sp_results *lres = NULL;
    sp__local hooks = {.dep = batch_dep,
                       .spawn = sp_mpi_no_spawn,
                       .user = w,
                       .attempt = (flags & BATCH_RETRY) ? w->attempt : NULL};
    int rc = sp__parallel(w->rows, count, &lo, &hooks, &lres);
    if (rc) {
        snprintf(msg, sizeof msg, "%s", sp_last_error());
        return reply_unstarted(w, &f, count, rc, msg,
                               shift + (sp_mpi_clock() - t_call));
    }
    /* Tasks that ran first: a failure recorded on rank 0 stops its run
     * before it reads the tasks the local call then left unstarted. */
    size_t sent = 0;
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (uint32_t k = 0; k < count && !rc; k++) {
            const sp_entry *e = sp_results_at(lres, k);
            if ((sp_entry_worker(e) != SP_NO_WORKER) != (pass == 0))
                continue;
            struct wire_entry we;
            wire_from_entry(e, w->idx[k], shift, &we);
            we.attempt = pass == 0 ? w->attempt[k] : 0;
            rc = put(&f, &we, ++sent == count);
        }
    if (!rc)
        rc = finish(&f);
    sp_results_free(lres);
    return rc;
}

int sp_mpi_worker(struct mpi_call *c)
{
    struct worker w = {.c = c};
    int rc = 0;
    for (;;) {
        MPI_Message msg;
        MPI_Status st;
        int len = 0;
        int err = MPI_Mprobe(0, MPI_ANY_TAG, c->comm, &msg, &st);
        if (!err)
            err = MPI_Get_count(&st, MPI_BYTE, &len);
        if (!err && (len < 4 || (size_t)len > FRAME_MAX))
            err = MPI_ERR_TRUNCATE;
        if (!err)
            err = MPI_Mrecv(c->buf, len, MPI_BYTE, &msg, &st);
        if (err) {
            rc = sp_mpi_error("receiving from rank 0", err);
            break;
        }
        int64_t t_recv = sp_mpi_clock();
        uint32_t type = get_u32(c->buf);
        if (st.MPI_TAG == TAG_STOP) {
            w.stopped = true;
            continue;
        }
        if (st.MPI_TAG != TAG_WORK)
            continue; /* left over from a batch that could not be read */
        if (type == MSG_END)
            break;
        if (type == MSG_BATCH && (rc = run_batch(&w, (size_t)len, t_recv)))
            break;
    }
    free(w.idx);
    free(w.rows);
    free(w.pols);
    free(w.attempt);
    free(w.retry_on);
    args_free(&w.args);
    return rc;
}
