/* SPDX-License-Identifier: MIT */
/* Rank 0 of a run on two ranks or more: the scheduler and the collector.
 * It runs no task itself.
 *
 * Invariants:
 *  - Tasks are handed out only through sp__run_next() and outcomes go in
 *    only through sp__run_record(), so validation, fail-fast, on_done,
 *    the cancellation of what never started, dependencies and retries
 *    are the core's run's, not this file's. A task may be handed out in
 *    any order and more than once (a retry, to any rank, with its
 *    attempt's number and the outcomes that would be retried in the
 *    batch): owner[i] says which rank holds task i now, and an outcome is
 *    taken only from that rank, once, for the attempt handed out.
 *  - A task that waits for its retry delay is never waited for: rank 0
 *    keeps reading replies and handing out other work, and sends the
 *    retry once it is due and a rank has room (wait_reply_until()).
 *  - Rank w holds at most depth(w) batches (sent, not yet answered). A
 *    batch is sent when a rank has room: at the start, and each time one
 *    of its replies has been read, which is how a rank asks for work.
 *  - Every message to a rank is non-blocking (MPI_Isend), so rank 0 never
 *    waits on a rank that is itself waiting to send its reply; the buffers
 *    live in `sends` until MPI is done with them.
 *  - STOP goes to a rank at most once, and END exactly once, when it
 *    holds no batch and nothing more will be handed out; STOP always
 *    before END. A rank's replies come in the order its batches went.
 */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A message on its way out. */
struct send {
    unsigned char *buf;
    size_t cap;
};

struct rank_state {
    unsigned held; /* batches sent, not yet answered */
    bool stop_sent, ended;
};

struct root {
    struct mpi_call *c;
    sp__run *r;
    uint32_t *owner; /* per task: the rank that holds it, 0 = none */
    struct rank_state *ranks;
    MPI_Request *reqs; /* parallel to sends */
    struct send *sends;
    int *free_list, nfree, nsends;
    uint32_t *idx; /* the batch being sent, for its argument stream */
    uint32_t *att; /* its tasks' attempts and retry_on masks (idx_cap each) */
    uint32_t *retry_on;
    size_t idx_cap;
    bool done;     /* sp__run_next() said nothing more will ever be */
    size_t handed; /* tasks handed out, for the size of the next batch */
    uint32_t next_id;
    double busy_s; /* run time of the tasks recorded so far... */
    size_t busy_n; /* ...and their number */
};

/* ---- sending ------------------------------------------------------------ */

/* A send slot with room for `len` bytes, or -1 with the error set. */
static int take_slot(struct root *o, size_t len)
{
    if (!o->nfree) {
        int outcount = 0, *done = o->free_list; /* empty: use as scratch */
        if (o->nsends && MPI_Testsome(o->nsends, o->reqs, &outcount, done,
                                      MPI_STATUSES_IGNORE) != MPI_SUCCESS)
            outcount = 0;
        o->nfree = outcount > 0 ? outcount : 0;
    }
    if (!o->nfree) {
        int k = o->nsends;
        MPI_Request *reqs = realloc(o->reqs, (size_t)(k + 1) * sizeof *reqs);
        if (reqs)
            o->reqs = reqs;
        struct send *sends = realloc(o->sends, (size_t)(k + 1) * sizeof *sends);
        if (sends)
            o->sends = sends;
        int *fl = realloc(o->free_list, (size_t)(k + 1) * sizeof *fl);
        if (fl)
            o->free_list = fl;
        if (!reqs || !sends || !fl)
            return -1;
        o->reqs[k] = MPI_REQUEST_NULL;
        o->sends[k] = (struct send){0};
        o->nsends = k + 1;
        o->free_list[o->nfree++] = k;
    }
    int k = o->free_list[--o->nfree];
    struct send *s = &o->sends[k];
    if (s->cap < len) {
        size_t cap = len < 256 ? 256 : len;
        unsigned char *b = realloc(s->buf, cap);
        if (!b) {
            o->free_list[o->nfree++] = k;
            return -1;
        }
        s->buf = b;
        s->cap = cap;
    }
    return k;
}

static int post(struct root *o, int k, size_t len, int rank, int tag)
{
    int err = MPI_Isend(o->sends[k].buf, (int)len, MPI_BYTE, rank, tag,
                        o->c->comm, &o->reqs[k]);
    return err ? sp_mpi_error("MPI_Isend", err) : 0;
}

static int send_word(struct root *o, int rank, int tag, uint32_t type)
{
    int k = take_slot(o, 4);
    if (k < 0)
        return sp__set_error(SP_ENOMEM, "out of memory for a message");
    put_u32(o->sends[k].buf, type);
    return post(o, k, 4, rank, tag);
}

/* How many tasks the next batch of rank w takes (guided self-scheduling:
 * its share of what is left, over 8 rounds, shrinking to single tasks). */
static size_t batch_size(const struct root *o, int w)
{
    const struct mpi_call *c = o->c;
    size_t left = c->n > o->handed ? c->n - o->handed : 1;
    size_t cap = c->wstart[w] ? c->wstart[w] : 1, b;
    if (c->batch)
        b = c->batch;
    else {
        double all = c->wstart_total ? (double)c->wstart_total : 1.0;
        double share = (double)left * (double)cap / (8.0 * all);
        b = share > AUTO_BATCH_MAX ? AUTO_BATCH_MAX : (size_t)share + 1;
        if (b < cap)
            b = cap;
        if (b > AUTO_BATCH_MAX)
            b = AUTO_BATCH_MAX;
    }
    return b < left ? b : left;
}

/* How many batches rank w may hold: 2 while a batch runs for less than
 * about 2 ms (the next one is there when one ends), 1 for longer ones
 * (where a queued batch would only make the last rank finish later). */
static unsigned depth(const struct root *o, int w, size_t b)
{
    if (o->c->inflight)
        return o->c->inflight;
    if (!o->busy_n)
        return 2;
    double cap = o->c->wstart[w] ? o->c->wstart[w] : 1;
    double per = o->busy_s / (double)o->busy_n;
    return per * (double)b / cap < 2e-3 ? 2 : 1;
}

/* ---- the argument stream (args.c writes it) ------------------------------ */

/* Into send slots of CHUNK bytes, each posted when full; large blobs are
 * posted from where they lie (rank 0's table, the run's map: both outlive
 * every send). */
struct stream_out {
    struct root *o;
    int w;
    int k; /* the slot being filled, -1 = none */
    size_t pos, len;
    uint64_t left;  /* stream bytes not yet written */
    uint64_t total; /* the counting pass: the stream's length */
};

static int count_put(void *user, const void *p, size_t n)
{
    (void)p;
    ((struct stream_out *)user)->total += n;
    return 0;
}

static int count_big(void *user, const void *p, size_t n)
{
    (void)user;
    (void)p;
    (void)n;
    return 0;
}

static int stream_put(void *user, const void *p, size_t n)
{
    struct stream_out *s = user;
    const unsigned char *b = p;
    while (n) {
        if (s->k < 0) {
            s->len = s->left < CHUNK ? (size_t)s->left : CHUNK;
            s->pos = 0;
            if ((s->k = take_slot(s->o, s->len)) < 0)
                return sp__set_error(SP_ENOMEM, "out of memory for the "
                                                "arguments of a batch");
        }
        size_t part = n < s->len - s->pos ? n : s->len - s->pos;
        memcpy(s->o->sends[s->k].buf + s->pos, b, part);
        s->pos += part;
        s->left -= part;
        b += part;
        n -= part;
        if (s->pos == s->len) {
            int k = s->k;
            s->k = -1;
            int rc = post(s->o, k, s->len, s->w, TAG_ARGS);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int stream_big(void *user, const void *p, size_t n)
{
    struct stream_out *s = user;
    for (size_t off = 0; off < n;) {
        size_t part = n - off > CHUNK ? CHUNK : n - off;
        int k = take_slot(s->o, 0);
        if (k < 0)
            return sp__set_error(SP_ENOMEM, "out of memory for a message");
        int err = MPI_Isend((const unsigned char *)p + off, (int)part, MPI_BYTE,
                            s->w, TAG_ARGS, s->o->c->comm, &s->o->reqs[k]);
        if (err)
            return sp_mpi_error("MPI_Isend", err);
        off += part;
    }
    return 0;
}

/* Room for a batch of b tasks (their indices, attempts and retry_on
 * masks); 0, or -1 when out of memory. */
static int grow_idx(struct root *o, size_t b)
{
    if (b <= o->idx_cap)
        return 0;
    uint32_t *idx = realloc(o->idx, b * sizeof *idx);
    if (idx)
        o->idx = idx;
    uint32_t *att = realloc(o->att, b * sizeof *att);
    if (att)
        o->att = att;
    uint32_t *on = realloc(o->retry_on, b * sizeof *on);
    if (on)
        o->retry_on = on;
    if (!idx || !att || !on)
        return -1;
    o->idx_cap = b;
    return 0;
}

/* Hand rank w one batch: 1 when sent, 0 when no task is ready (or the run
 * is over), -1 on an error. */
static int send_batch(struct root *o, int w, size_t b)
{
    int k = take_slot(o, BATCH_HEAD + 12 * b + 8);
    if (k < 0) {
        sp__set_error(SP_ENOMEM, "out of memory for a batch");
        return -1;
    }
    if (grow_idx(o, b)) {
        o->free_list[o->nfree++] = k;
        sp__set_error(SP_ENOMEM, "out of memory for a batch");
        return -1;
    }
    unsigned char *p = o->sends[k].buf;
    uint32_t count = 0;
    bool args = false, retry = false;
    while (count < b) {
        size_t i;
        int got = sp__run_next(o->r, &i);
        if (got < 0)
            o->done = true;
        if (got != 1)
            break;
        o->idx[count] = (uint32_t)i;
        o->att[count] = 1;
        o->retry_on[count] = 0;
        if (o->c->retries) { /* which attempt, and which would be retried */
            unsigned on = 0;
            o->att[count] = sp__run_attempt(o->r, i, &on);
            o->retry_on[count] = on;
            retry = retry || on || o->att[count] > 1;
        }
        put_u32(p + BATCH_HEAD + 4 * (size_t)count++, (uint32_t)i);
        o->owner[i] = (uint32_t)w;
        args = args || args_needed(&o->c->tasks[i]);
    }
    if (!count) {
        o->free_list[o->nfree++] = k;
        return 0;
    }
    o->handed += count;
    size_t len = BATCH_HEAD + 4 * (size_t)count;
    if (retry) { /* the attempts, then the retry_on masks */
        for (uint32_t j = 0; j < count; j++) {
            put_u32(p + len + 4 * (size_t)j, o->att[j]);
            put_u32(p + len + 4 * ((size_t)count + j), o->retry_on[j]);
        }
        len += 8 * (size_t)count;
    }
    struct stream_out so = {.o = o, .w = w, .k = -1};
    if (args) { /* its length goes in the batch */
        struct args_sink counting = {count_put, count_big, &so};
        args_write(o->c->tasks, o->r, o->idx, count, &counting);
        so.left = so.total;
        put_u64(p + len, so.total);
        len += 8;
    }
    double now = sp__run_now(o->r), dl = sp__run_deadline(o->r);
    int64_t left = -1;
    if (dl > 0)
        left = dl > now ? (int64_t)((dl - now) * 1e9) : 0;
    put_u32(p, MSG_BATCH);
    put_u32(p + 4, o->next_id++);
    put_u32(p + 8, count);
    put_u32(p + 12, (args ? BATCH_ARGS : 0) | (retry ? BATCH_RETRY : 0));
    put_u64(p + 16, (uint64_t)(int64_t)(now * 1e9));
    put_u64(p + 24, (uint64_t)left);
    o->ranks[w].held++;
    if (post(o, k, len, w, TAG_WORK))
        return -1;
    /* The stream after the batch: the rank reads them in this order. */
    struct args_sink sending = {stream_put, stream_big, &so};
    if (args && args_write(o->c->tasks, o->r, o->idx, count, &sending))
        return -1;
    return 1;
}

/* ---- receiving ---------------------------------------------------------- */

/* Record one entry that rank w sent (data: its bytes when they came apart,
 * now owned here, or NULL). */
static void take(struct root *o, int w, const struct wire_entry *we,
                 unsigned char *data, bool data_lost)
{
    struct mpi_call *c = o->c;
    if (we->index >= c->n || o->owner[we->index] != (uint32_t)w) {
        free(data); /* not a task this rank holds: never recorded twice */
        return;
    }
    o->owner[we->index] = 0;
    if ((we->flags & ENTRY_NOT_STARTED) && sp__run_stopped(o->r)) {
        free(data); /* the run's own sweep cancels it, with the reason */
        return;
    }
    sp__outcome out;
    struct wire_entry e = *we;
    if (!(e.flags & ENTRY_NOT_STARTED) && c->wcap[w] && e.worker >= c->wcap[w])
        e.worker = c->wcap[w] - 1; /* stay in this rank's numbers */
    wire_to_outcome(&e, c->wbase[w], &out, NULL);
    double now = sp__run_now(o->r);
    if (out.end > now)
        out.end = now;
    if (out.start > out.end)
        out.start = out.end;
    char msg[160];
    if (data_lost) {
        snprintf(msg, sizeof msg,
                 "rank 0 ran out of memory receiving this result (%llu "
                 "bytes from rank %d)",
                 (unsigned long long)e.data_len, w);
        out.kind = SP_KIND_FAILED;
        out.code = SP_ENOMEM;
        out.task_code = 0;
        out.msg = msg;
        out.data = NULL;
    } else if (data) {
        out.data = data;
        out.data_owned = 1;
    }
    if (!(e.flags & ENTRY_NOT_STARTED)) {
        o->busy_s += out.end - out.start;
        o->busy_n++;
    }
    sp__run_record(o->r, e.index, &out);
}

/* Result bytes that follow a frame, straight into a buffer of their own
 * (len + 1 bytes, which the run takes over). */
static int recv_data(struct root *o, int w, uint64_t len, unsigned char **out,
                     bool *lost)
{
    unsigned char *big = len < SIZE_MAX ? malloc((size_t)len + 1) : NULL;
    *lost = big == NULL;
    for (uint64_t off = 0; off < len;) {
        size_t part = len - off > CHUNK ? CHUNK : (size_t)(len - off);
        /* Without a buffer, the bytes are read into the frame buffer and
         * dropped: the rank's messages must still be taken in order. */
        unsigned char *to = big ? big + off : o->c->buf;
        int err = MPI_Recv(to, (int)part, MPI_BYTE, w, TAG_DATA, o->c->comm,
                           MPI_STATUS_IGNORE);
        if (err) {
            free(big);
            return sp_mpi_error("MPI_Recv", err);
        }
        off += part;
    }
    *out = big;
    return 0;
}

/* Read one reply (all its frames) from whichever rank sent one. */
static int recv_reply(struct root *o)
{
    struct mpi_call *c = o->c;
    int w = MPI_ANY_SOURCE;
    for (bool last = false; !last;) {
        MPI_Message msg;
        MPI_Status st;
        int len = 0;
        int err = MPI_Mprobe(w, TAG_REPLY, c->comm, &msg, &st);
        if (!err)
            err = MPI_Get_count(&st, MPI_BYTE, &len);
        if (!err && (len < FRAME_HEAD || (size_t)len > FRAME_MAX))
            err = MPI_ERR_TRUNCATE;
        if (!err)
            err = MPI_Mrecv(c->buf, len, MPI_BYTE, &msg, &st);
        if (err)
            return sp_mpi_error("receiving a reply", err);
        w = st.MPI_SOURCE;
        const unsigned char *p = c->buf + FRAME_HEAD, *end = c->buf + len;
        uint32_t count = get_u32(c->buf + 8), flags = get_u32(c->buf + 12);
        last = flags & REPLY_LAST;
        if (get_u32(c->buf) != MSG_REPLY)
            return sp__set_error(SP_EPROTO, "rank %d sent a malformed reply",
                                 w);
        for (uint32_t k = 0; k < count; k++) {
            struct wire_entry we;
            size_t used = wire_entry_get(p, end, &we);
            if (!used)
                return sp__set_error(SP_EPROTO,
                                     "rank %d sent a malformed entry", w);
            p += used;
            unsigned char *data = NULL;
            bool lost = false;
            if (we.flags & ENTRY_OUT_OF_LINE) {
                /* The message and the frame are needed until the entry is
                 * recorded, and the bytes go to their own buffer. */
                if (k + 1 != count)
                    return sp__set_error(SP_EPROTO,
                                         "rank %d sent a malformed frame", w);
                char *m = NULL;
                if (we.msg_len && (m = malloc((size_t)we.msg_len + 1)))
                    memcpy(m, we.msg, (size_t)we.msg_len + 1);
                we.msg = m;
                we.msg_len = m ? we.msg_len : 0;
                int rc = recv_data(o, w, we.data_len, &data, &lost);
                if (rc) {
                    free(m);
                    return rc;
                }
                take(o, w, &we, data, lost);
                free(m);
                continue;
            }
            take(o, w, &we, NULL, false);
        }
    }
    if (o->ranks[w].held)
        o->ranks[w].held--;
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

/* Rank 0 cannot go on (MPI failed, or memory ran out): the tasks out on
 * any rank are lost with it, and the rest never start. */
static void lose_all(struct root *o)
{
    char why[400], msg[480];
    snprintf(why, sizeof why, "%s", sp_last_error());
    char note[480];
    snprintf(note, sizeof note, "rank 0 could not go on: %s", why);
    sp__run_fail(o->r, SP_ESYSTEM, note); /* first: nothing is retried */
    for (size_t i = 0; i < o->c->n; i++) {
        if (!o->owner[i])
            continue;
        snprintf(msg, sizeof msg,
                 "lost: rank 0 could not go on while rank %u held this "
                 "task (%s)",
                 (unsigned)o->owner[i], why);
        sp__outcome lost = {.kind = SP_KIND_CRASHED,
                            .code = SP_ECRASHED,
                            .msg = msg,
                            .start = sp__run_now(o->r),
                            .end = sp__run_now(o->r),
                            .worker = SP_NO_WORKER,
                            .exit_status = -1};
        o->owner[i] = 0;
        sp__run_record(o->r, i, &lost);
    }
}

/* A task waits for its retry delay, due at `due` (seconds of the run),
 * while a rank has room for it: read a reply if one comes before then,
 * else return at that time (0), having handed nothing out meanwhile. Other
 * ranks' work goes on; rank 0 only looks for replies, every POLL_S, and
 * returns at least every SP_CANCEL_POLL_MS (the next sp__run_next() sees
 * a cancel handle). */
#define POLL_S 1e-4
static int wait_reply_until(struct root *o, double due)
{
    double most = sp__run_now(o->r) + SP_CANCEL_POLL_MS / 1e3;
    if (due > most)
        due = most;
    for (;;) {
        int flag = 0;
        int err = MPI_Iprobe(MPI_ANY_SOURCE, TAG_REPLY, o->c->comm, &flag,
                             MPI_STATUS_IGNORE);
        if (err)
            return sp_mpi_error("MPI_Iprobe", err);
        if (flag)
            return recv_reply(o);
        double left = due - sp__run_now(o->r);
        if (left <= 0)
            return 0;
        if (left > POLL_S)
            left = POLL_S;
        struct timespec ts = {0, (long)(left * 1e9) + 1};
        nanosleep(&ts, NULL);
    }
}

static int step(struct root *o)
{
    struct mpi_call *c = o->c;
    bool all_ended = true, room = false;
    unsigned held = 0;
    for (int w = 1; w < c->size; w++) {
        struct rank_state *rs = &o->ranks[w];
        while (!rs->ended && !o->done && !sp__run_stopped(o->r)) {
            size_t b = batch_size(o, w);
            if (rs->held >= depth(o, w, b))
                break;
            int got = send_batch(o, w, b);
            if (got < 0)
                return -1;
            if (!got) {
                room = true; /* nothing ready for it now */
                break;
            }
        }
        held += rs->held;
    }
    bool stopped = sp__run_stopped(o->r);
    /* A retry that waits for its delay, with a rank free to take it. */
    double due = room && !o->done && !stopped ? sp__run_due(o->r) : 0;
    if (!held && !o->done && !stopped && !due) {
        /* Nothing out, nothing ready: outcomes went missing (a malformed
         * batch or reply). Nothing will make more ready. */
        sp__run_fail(o->r, SP_EPROTO,
                     "a rank answered a batch without its "
                     "outcomes");
        stopped = true;
    }
    for (int w = 1; w < c->size; w++) {
        struct rank_state *rs = &o->ranks[w];
        if (rs->ended)
            continue;
        if (stopped && !rs->stop_sent) {
            if (send_word(o, w, TAG_STOP, MSG_STOP))
                return -1;
            rs->stop_sent = true;
        }
        if (!rs->held && (o->done || stopped)) {
            if (send_word(o, w, TAG_WORK, MSG_END))
                return -1;
            rs->ended = true;
        }
        all_ended &= rs->ended;
    }
    if (all_ended)
        return 0;
    if (due > 0 && !stopped)
        return wait_reply_until(o, due) ? -1 : 1;
    return recv_reply(o) ? -1 : 1;
}

int sp_mpi_root(struct mpi_call *c, sp__run *r)
{
    struct root o = {.c = c, .r = r};
    o.owner = calloc(c->n ? c->n : 1, sizeof *o.owner);
    o.ranks = calloc((size_t)c->size, sizeof *o.ranks);
    int rc = 0;
    if (!o.owner || !o.ranks) {
        /* Nothing was handed out: every rank still needs its END. */
        sp__run_fail(r, SP_ENOMEM, "out of memory on rank 0");
        o.done = true;
        for (int w = 1; w < c->size && !rc; w++)
            rc = send_word(&o, w, TAG_WORK, MSG_END);
    } else {
        while ((rc = step(&o)) > 0)
            ;
    }
    if (rc) {
        if (o.owner)
            lose_all(&o);
        rc = SP_ESYSTEM;
    }
    if (o.nsends)
        MPI_Waitall(o.nsends, o.reqs, MPI_STATUSES_IGNORE);
    for (int k = 0; k < o.nsends; k++)
        free(o.sends[k].buf);
    free(o.sends);
    free(o.reqs);
    free(o.free_list);
    free(o.owner);
    free(o.ranks);
    free(o.idx);
    free(o.att);
    free(o.retry_on);
    return rc;
}
