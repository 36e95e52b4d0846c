/* SPDX-License-Identifier: MIT */
/* The worker's side of the process backend, in the forked child: claim the
 * next task from the shared counter (or, once it is exhausted, ask the
 * parent for one), publish it and its phase in the slot, run it, and send
 * its outcome back as a frame: over the ring when the task was short, over
 * the channel otherwise.
 *
 * The worker holds one descriptor of the library's, its channel (fds.c
 * closed the rest after the fork). Before each use of the channel it
 * checks that the task did not close or replace it; if it did, the worker
 * records why in its slot and leaves with EXIT_CHANNEL, and the parent
 * reports the task that broke it and gives the others a fresh worker. A
 * fatal signal is recorded in the slot before the worker dies of it, for
 * parents that cannot read exit statuses. */
#define _DEFAULT_SOURCE /* sendmsg flags, struct iovec */
#include "proc.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Written only in a forked worker, before any signal can use it: the slot
 * its crash handler reports to. Never touched in the caller's process. */
static struct slot *crash_slot;

static void on_fatal_signal(int sig)
{
    if (crash_slot)
        atomic_store(&crash_slot->signo, sig);
    /* SA_RESETHAND restored the default action and SA_NODEFER lets it be
     * delivered now: the worker dies of the same signal. */
    raise(sig);
}

static void install_crash_handlers(struct slot *s)
{
    static const int fatal[] = {SIGSEGV, SIGBUS,  SIGILL, SIGFPE,
                                SIGABRT, SIGTRAP, SIGSYS};
    crash_slot = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < sizeof fatal / sizeof fatal[0]; k++) {
        struct sigaction old;
        /* Keep a task's own choice to ignore a signal. */
        if (sigaction(fatal[k], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(fatal[k], &sa, NULL);
    }
}

/* The channel and what it was when the worker started. */
struct channel {
    int fd;
    dev_t dev;
    ino_t ino;
};

/* Still our socket? A task may have closed the descriptor or put another
 * file on its number (dup2). */
static bool channel_intact(const struct channel *ch)
{
    struct stat st;
    return fstat(ch->fd, &st) == 0 && st.st_dev == ch->dev &&
           st.st_ino == ch->ino;
}

static _Noreturn void channel_broken(struct slot *s, int err)
{
    atomic_store(&s->send_err, err ? err : EBADF);
    _exit(EXIT_CHANNEL);
}

/* Step past `done` bytes of the cnt parts at *iov (moving *iov, trimming
 * the part it stops in); the parts left. */
static int iov_advance(struct iovec **iov, int cnt, size_t done)
{
    struct iovec *v = *iov;
    while (cnt > 0 && done >= v->iov_len) {
        done -= v->iov_len;
        v++;
        cnt--;
    }
    if (cnt > 0) {
        v->iov_base = (char *)v->iov_base + done;
        v->iov_len -= done;
    }
    *iov = v;
    return cnt;
}

/* 0, or the errno of the failed send. */
static int send_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        cnt = iov_advance(&iov, cnt, (size_t)w);
    }
    return 0;
}

/* A result sp_set_result() kept in a sealed memfd (the outcome's data is
 * this, not the bytes; release: kept_release). */
struct kept {
    int fd;
};

static void kept_release(void *data)
{
    struct kept *k = data;
    close(k->fd);
    free(k);
}

/* sp_set_result() of a large result in a worker: the bytes go straight
 * into the memfd that will carry them (no malloc'd copy in the worker). */
static int keep_result(const void *data, size_t len, void **out,
                       void (**release)(void *))
{
    if (len < sp_proc_shm_min)
        return -1;
    struct kept *k = malloc(sizeof *k);
    if (!k)
        return -1;
    if ((k->fd = sp_proc_shm_fill(data, len)) < 0) {
        free(k);
        return -1;
    }
    *out = k;
    *release = kept_release;
    return 0;
}

/* A large result: its bytes in a sealed memfd passed with the frame
 * (shm.c), not through the channel: the memfd sp_set_result() kept them
 * in (kept: not NULL), or one filled now from iov[2]. false when no memfd
 * could be made: the caller sends the bytes in the stream. Exits when the
 * channel is broken. */
static bool send_shm(struct slot *s, const struct channel *ch,
                     struct sp_wire_header *h, struct iovec *iov,
                     const struct kept *kept)
{
    int mfd = kept ? kept->fd
                   : sp_proc_shm_fill(iov[2].iov_base, (size_t)h->data_len);
    if (mfd < 0)
        return false;
    h->flags |= SP_WIRE_SHM;
    sp_wire_encode(iov[0].iov_base, h);
    ssize_t w = sp_proc_send_fd(ch->fd, iov, 2, mfd);
    int err = w < 0 ? errno : 0;
    if (!kept)
        close(mfd); /* the parent holds it now, or the send failed */
    if (!err) {     /* the rest of the header and message, if any */
        struct iovec *v = iov;
        int cnt = iov_advance(&v, 2, (size_t)w);
        if (cnt > 0)
            err = send_all(ch->fd, v, cnt);
    }
    if (err)
        channel_broken(s, err);
    return true;
}

/* Set when a short frame found the ring full and went over the channel,
 * which wakes the parent; cleared once the ring takes a frame again. */
static bool ring_nudged;

/* Most tasks a worker claims at once from the counter (after a task
 * shorter than SLOW_NS; guided: fewer as the table runs out). */
#define SPAN_MAX 64u

/* How long a worker whose ring is full waits for the parent to drain it
 * before it sends over its channel anyway (ns). */
#define RING_WAIT_NS 1000000u
/* How long it sleeps between looks (ns). */
#define RING_NAP_NS 20000

/* Put a short task's frame into the ring; false: send it over the channel.
 * A full ring means the parent is behind: the first frame that finds it so
 * goes over the channel, which wakes the parent (it takes every ring when
 * it wakes); the frames after it wait for room, giving the CPU away,
 * rather than each paying a system call in the worker and another in the
 * parent while the parent has the most to do. */
static bool ring_put_short(const struct sp_ring *ring, struct iovec *iov,
                           size_t total, bool *quick)
{
    if (sp_ring_put(ring, iov, 3, total, RING / 2) == 0) {
        ring_nudged = false;
        *quick = true;
        return true;
    }
    if (!ring_nudged) {
        ring_nudged = true;
        return false;
    }
    uint64_t end = sp_now() + RING_WAIT_NS;
    do {
        /* Asleep, not spinning: the parent may need this CPU. */
        nanosleep(&(struct timespec){0, RING_NAP_NS}, NULL);
        if (sp_ring_put(ring, iov, 3, total, RING / 2) == 0) {
            ring_nudged = false;
            return true;
        }
    } while (sp_now() < end);
    return false; /* the parent is slow or stuck: the channel tells */
}

/* Send task i's outcome: into the ring when the task was short and the
 * ring has room (no system call; the ring also survives the worker), over
 * the channel otherwise. Exits when the channel is broken. true: it went
 * into the ring at once (nothing waited). */
static bool send_result(struct prun *pr, unsigned k, const struct channel *ch,
                        const struct sp_outcome *o, size_t i)
{
    unsigned char hdr[SP_WIRE_HEADER];
    const char *msg = o->r.msg;
    size_t msg_len = msg ? strlen(msg) : 0;
    if (msg_len > SP_WIRE_MAX_MSG)
        msg_len = SP_WIRE_MAX_MSG; /* sp_fail() keeps within it anyway */
    struct sp_wire_header h = {
        .magic = SP_WIRE_MAGIC,
        .index = (uint32_t)i,
        .code = o->r.code,
        .kind = o->how.kind,
        .flags = o->how.flags & SP_EF_TASK_CODE ? SP_WIRE_TASK_CODE : 0,
        .type = SP_WIRE_RESULT,
        .t_start = o->r.t_start,
        .t_end = o->r.t_end,
        .msg_len = (uint32_t)msg_len,
        .data_len = o->r.data ? o->r.len : 0,
    };
    sp_wire_encode(hdr, &h);
    struct iovec iov[3] = {
        {hdr, sizeof hdr},
        {(void *)msg, msg_len},
        {o->r.data, (size_t)h.data_len},
    };
    size_t total = sizeof hdr + msg_len + (size_t)h.data_len;
    struct sp_ring ring = sp_proc_ring(pr, k);
    const struct kept *kept =
        o->release == kept_release ? (const struct kept *)o->r.data : NULL;
    bool quick = false;
    if (!kept && o->r.t_end - o->r.t_start < SLOW_NS && total <= RING / 4 &&
        ring_put_short(&ring, iov, total, &quick))
        return quick;
    struct slot *s = sp_proc_slot(pr, k);
    if (!channel_intact(ch)) {
        /* The task broke the channel. A frame that fits the ring still gets
         * through (the parent reads a dead worker's ring to the end); the
         * worker cannot go on either way. */
        if (total <= RING && !kept)
            sp_ring_put(&ring, iov, 3, total, RING);
        channel_broken(s, EBADF);
    }
    if ((kept || h.data_len >= sp_proc_shm_min) &&
        send_shm(s, ch, &h, iov, kept))
        return false;
    int err = send_all(ch->fd, iov, 3);
    if (err)
        channel_broken(s, err);
    return false;
}

/* ---- talking to the parent while the worker runs ------------------------ */

/* The worker's own state (a worker process runs one task at a time). */
struct dep_cache {
    struct dep_cache *next;
    char *key;
    unsigned char *data; /* len + 1 bytes, NUL-terminated */
    size_t len;
};

static struct {
    struct prun *pr;
    unsigned k;   /* its slot */
    unsigned wid; /* the worker number tasks see (sp_ctx_worker()) */
    struct channel ch;
    struct dep_cache *deps; /* answers for the running task */
    sp_task_policy policy;  /* the spawned task's, from its RUN command */
    bool spawned;           /* one of its tasks spawned a task */
    /* When its last task ended, if it has gone straight on since (its frame
     * went into the ring at once); else 0. The next task's start, as on
     * the thread backend: one clock reading per task. */
    uint64_t end;
} ws;

/* Bytes read from the channel ahead of need: a command's header and a
 * small payload come in one read. Only the worker reads its channel. */
static struct {
    unsigned char buf[4096];
    size_t off, len;
} rin;

static bool read_full(int fd, void *buf, size_t len)
{
    unsigned char *out = buf;
    for (size_t got = 0; got < len;) {
        if (rin.off < rin.len) {
            size_t n =
                rin.len - rin.off < len - got ? rin.len - rin.off : len - got;
            memcpy(out + got, rin.buf + rin.off, n);
            rin.off += n;
            got += n;
            continue;
        }
        bool ahead = len - got < sizeof rin.buf;
        ssize_t r = ahead ? read(fd, rin.buf, sizeof rin.buf)
                          : read(fd, out + got, len - got);
        if (r > 0 && ahead) {
            rin.off = 0;
            rin.len = (size_t)r;
        } else if (r > 0) {
            got += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

/* The next command: its header, and its payload (malloc'd, NUL-terminated,
 * NULL when empty). The parent gone: leave quietly. */
static void read_cmd(struct sp_wire_cmd *c, unsigned char **payload)
{
    struct slot *s = sp_proc_slot(ws.pr, ws.k);
    unsigned char hdr[SP_WIRE_CMD];
    if (!read_full(ws.ch.fd, hdr, sizeof hdr))
        _exit(0);
    if (sp_wire_cmd_decode(c, hdr, UINT32_MAX) || c->len >= SIZE_MAX)
        channel_broken(s, EPROTO);
    *payload = NULL;
    if (!c->len)
        return;
    *payload = malloc((size_t)c->len + 1);
    if (!*payload || !read_full(ws.ch.fd, *payload, (size_t)c->len))
        channel_broken(s, *payload ? EPROTO : ENOMEM);
    (*payload)[c->len] = 0;
}

/* An error the parent answered with: its sp_last_error() text, which
 * already starts with the code's name, becomes this thread's as it was. */
static void parent_error(int code, const unsigned char *payload)
{
    const char *m = payload ? (const char *)payload : "";
    size_t len = strlen(sp_err_name(code));
    if (!strncmp(m, sp_err_name(code), len) && m[len] == ':' &&
        m[len + 1] == ' ')
        m += len + 2;
    sp_set_error(code, "%s", m);
}

/* Send one request frame (over the channel, which must be intact). */
static void send_request(int type, size_t index, const char *msg,
                         const void *data, size_t len)
{
    struct slot *s = sp_proc_slot(ws.pr, ws.k);
    if (!channel_intact(&ws.ch))
        channel_broken(s, EBADF);
    unsigned char hdr[SP_WIRE_HEADER];
    size_t mlen = strlen(msg);
    sp_wire_encode(hdr, &(struct sp_wire_header){.magic = SP_WIRE_MAGIC,
                                                 .type = (uint8_t)type,
                                                 .index = (uint32_t)index,
                                                 .msg_len = (uint32_t)mlen,
                                                 .data_len = len});
    struct iovec iov[3] = {
        {hdr, sizeof hdr}, {(void *)msg, mlen}, {(void *)data, len}};
    int err = send_all(ws.ch.fd, iov, 3);
    if (err)
        channel_broken(s, err);
}

static const void *remote_dep(struct sp_ctx *ctx, const char *key, size_t *len)
{
    if (len)
        *len = 0;
    if (!key || !key[0] || strlen(key) > SP_WIRE_MAX_MSG) {
        sp_set_error(SP_ENODEP, "sp_dep_result: no such dependency");
        return NULL;
    }
    for (struct dep_cache *c = ws.deps; c; c = c->next) {
        if (!strcmp(c->key, key)) {
            if (len)
                *len = c->len;
            return c->data;
        }
    }
    send_request(SP_WIRE_DEPREQ, ctx->index, key, NULL, 0);
    struct sp_wire_cmd c;
    unsigned char *payload;
    read_cmd(&c, &payload);
    if (c.type != SP_CMD_DEP)
        channel_broken(sp_proc_slot(ws.pr, ws.k), EPROTO);
    if (c.code) {
        parent_error(c.code, payload);
        free(payload);
        return NULL;
    }
    struct dep_cache *d = malloc(sizeof *d);
    char *k = d ? malloc(strlen(key) + 1) : NULL;
    if (!k) {
        free(d);
        free(payload);
        sp_set_error(SP_ENOMEM, "sp_dep_result: out of memory for \"%.64s\"",
                     key);
        return NULL;
    }
    strcpy(k, key);
    *d = (struct dep_cache){.next = ws.deps,
                            .key = k,
                            .data = payload ? payload : (unsigned char *)"",
                            .len = (size_t)c.len};
    if (!payload) /* an empty result: keep a static "" */
        d->len = 0;
    ws.deps = d;
    if (len)
        *len = d->len;
    return d->data;
}

static void free_deps(void)
{
    for (struct dep_cache *c = ws.deps, *next; c; c = next) {
        next = c->next;
        if (c->len)
            free(c->data);
        free(c->key);
        free(c);
    }
    ws.deps = NULL;
}

static int remote_spawn(struct sp_ctx *ctx, const sp_task *t)
{
    int err = sp_graph_check_row(t);
    if (err)
        return err;
    size_t nafter = 0, alen = 0;
    for (; t->after && t->after[nafter]; nafter++)
        alen += strlen(t->after[nafter]) + 1;
    if (strlen(t->key) > SP_WIRE_MAX_MSG || nafter > UINT32_MAX)
        return sp_set_error(SP_EINVAL, "sp_spawn: the row is too large");
    size_t pol = t->policy ? sizeof *t->policy : 0;
    size_t len = SP_WIRE_SPAWN_FIXED + t->len + alen + pol;
    unsigned char *p = malloc(len);
    if (!p)
        return sp_set_error(SP_ENOMEM, "sp_spawn: out of memory");
    uint64_t dlen = t->len;
    uint32_t na = (uint32_t)nafter;
    memcpy(p, &t->fn, 8);
    memcpy(p + 8, &t->arg, 8);
    memcpy(p + 16, &dlen, 8);
    memcpy(p + 24, &na, 4);
    if (t->len)
        memcpy(p + SP_WIRE_SPAWN_FIXED, t->data, t->len);
    unsigned char *q = p + SP_WIRE_SPAWN_FIXED + t->len;
    for (size_t k = 0; k < nafter; k++) {
        size_t l = strlen(t->after[k]) + 1;
        memcpy(q, t->after[k], l);
        q += l;
    }
    if (pol)
        memcpy(q, t->policy, pol);
    ws.spawned = true;
    send_request(SP_WIRE_SPAWN, ctx->index, t->key, p, len);
    free(p);
    struct sp_wire_cmd c;
    unsigned char *payload;
    read_cmd(&c, &payload);
    if (c.type != SP_CMD_SPAWNED)
        channel_broken(sp_proc_slot(ws.pr, ws.k), EPROTO);
    if (c.code)
        parent_error(c.code, payload);
    free(payload);
    return c.code;
}

static const struct sp_remote remote = {
    .spawn = remote_spawn, .dep = remote_dep, .keep = keep_result};

/* ---- the loop ----------------------------------------------------------- */

/* Tell the parent the worker waits for a command (an IDLE frame). */
static void say_idle(void)
{
    struct slot *s = sp_proc_slot(ws.pr, ws.k);
    if (!channel_intact(&ws.ch))
        channel_broken(s, EBADF);
    unsigned char hdr[SP_WIRE_HEADER];
    sp_wire_encode(hdr, &(struct sp_wire_header){.magic = SP_WIRE_MAGIC,
                                                 .type = SP_WIRE_IDLE});
    struct iovec iov = {hdr, sizeof hdr};
    int err = send_all(ws.ch.fd, &iov, 1);
    if (err)
        channel_broken(s, err);
}

/* Ask the parent for work: SP_CMD_RUN (*i and its *attempt, and *row for
 * a spawned task, its payload in *payload), SP_CMD_CLAIM or SP_CMD_EXIT. */
static uint32_t ask(size_t *i, unsigned *attempt, sp_task *row,
                    unsigned char **payload)
{
    struct slot *s = sp_proc_slot(ws.pr, ws.k);
    say_idle();
    struct sp_wire_cmd c;
    read_cmd(&c, payload);
    if (c.type != SP_CMD_RUN)
        return c.type == SP_CMD_CLAIM ? SP_CMD_CLAIM : SP_CMD_EXIT;
    *i = c.index;
    *attempt = (unsigned)c.code + 1;
    row->key = NULL;
    if (*payload) { /* a spawned task: its row */
        unsigned char *p = *payload;
        uint32_t klen;
        uint64_t dlen;
        if (c.len < SP_WIRE_RUN_FIXED)
            channel_broken(s, EPROTO);
        memcpy(&row->fn, p, 8);
        memcpy(&row->arg, p + 8, 8);
        memcpy(&klen, p + 16, 4);
        memcpy(&dlen, p + 20, 8);
        uint64_t row_len = SP_WIRE_RUN_FIXED + (uint64_t)klen + dlen;
        bool pol = row_len + sizeof ws.policy == c.len;
        if (klen < 2 || dlen > c.len || (row_len != c.len && !pol) ||
            p[SP_WIRE_RUN_FIXED + klen - 1])
            channel_broken(s, EPROTO);
        row->key = (char *)p + SP_WIRE_RUN_FIXED;
        row->data = dlen ? p + SP_WIRE_RUN_FIXED + klen : NULL;
        row->len = (size_t)dlen;
        row->after = NULL;
        row->policy = NULL;
        if (pol) { /* copied out: the payload is not aligned for it */
            memcpy(&ws.policy, p + row_len, sizeof ws.policy);
            row->policy = &ws.policy;
        }
    }
    return SP_CMD_RUN;
}

/* Run attempt `attempt` of task i (row: its definition when it was
 * spawned, else NULL). false when the run stopped before it could start. */
static bool run_task(size_t i, unsigned attempt, const sp_task *row,
                     const uint64_t *span)
{
    struct sp_run *run = ws.pr->run;
    struct slot *s = sp_proc_slot(ws.pr, ws.k);
    uint64_t now = ws.end ? ws.end : sp_run_now(ws.pr->run);
    ws.end = 0;
    /* Release stores: the parent reads the slot after an acquire of its
     * phase, or after the worker died. The claim alone is sequentially
     * consistent: it is published before the stop flag is read. */
    atomic_store_explicit(&s->started, now, memory_order_release);
    atomic_store_explicit(&s->attempt, attempt, memory_order_release);
    atomic_store_explicit(&s->current, (uint32_t)i + 1, memory_order_release);
    atomic_store(&s->phase, SLOT_CLAIMED);
    /* Only now does the span stop naming it: a worker that dies between
     * the two is handed back once (loop.c skips its current task). */
    if (span)
        atomic_store_explicit(&s->range, *span, memory_order_release);
    if (!sp_run_may_start(run, now)) {
        atomic_store_explicit(&s->phase, SLOT_IDLE, memory_order_release);
        atomic_store_explicit(&s->current, 0, memory_order_release);
        return false; /* never started: the parent cancels it */
    }
    atomic_store_explicit(&s->phase, SLOT_RUNNING, memory_order_release);
    struct sp_outcome o;
    if (!row)
        row = &run->tasks[i];
    uint64_t end = sp_task_exec_row(run, i, row, attempt, ws.wid, now, &o);
    free_deps();
    atomic_store_explicit(&s->phase, SLOT_SENDING, memory_order_release);
    /* Fail-fast takes effect here at once, unless the task is to be tried
     * again; the parent records the outcome when the frame arrives. */
    if (sp_complete_stops(run, o.how.kind) &&
        !sp_retry_wanted(run, row, attempt, o.how.kind))
        sp_run_stop(run, SP_STOP_FAILFAST);
    bool quick = send_result(ws.pr, ws.k, &ws.ch, &o, i);
    sp_outcome_free(&o);
    atomic_store_explicit(&s->phase, SLOT_IDLE, memory_order_release);
    atomic_store_explicit(&s->current, 0, memory_order_release);
    ws.end = quick ? end : 0;
    return true;
}

/* The worker's state: slot k of pr's mapping, channel fd. */
static void worker_init(struct prun *pr, unsigned k, int fd)
{
    /* A worker forked by a task of a worker (a nested call) inherits what
     * that one read ahead of its own channel: not this channel's bytes. */
    rin.off = rin.len = 0;
    ring_nudged = false;
    ws.spawned = false;
    ws.end = 0;
    free_deps(); /* nor the answers its running task got */
    ws.pr = pr;
    ws.k = ws.wid = k;
    ws.ch.fd = fd;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        ws.ch.dev = st.st_dev;
        ws.ch.ino = st.st_ino;
    }
    install_crash_handlers(sp_proc_slot(pr, k));
}

_Noreturn void sp_proc_worker_main(struct prun *pr, unsigned k, int fd)
{
    struct sp_run *run = pr->run;
    worker_init(pr, k, fd);
    sp_worker_state = NULL; /* forked by a pool worker's task: not its */
    run->stop = &pr->sh->stop;
    /* The parent watches the cancel handles and stops the shared flag. */
    run->watched = false;
    run->remote = &remote;

    struct slot *s = sp_proc_slot(pr, k);
    /* Spans only where nothing can become ready ahead of the static list
     * but a spawned task (no edges, no retries). */
    bool spans = !run->graph.succ && !run->tries;
    for (;;) {
        size_t i;
        /* The rest of the span this worker claimed, in its slot, where the
         * parent finds the tasks not started should the worker die. */
        uint64_t r = atomic_load_explicit(&s->range, memory_order_relaxed);
        uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
        if (lo < hi) {
            uint64_t rest = (uint64_t)hi << 32 | (lo + 1);
            if (!run_task(sp_sched_index_at(&run->sched, lo), 1, NULL, &rest))
                break;
            continue;
        }
        /* The counter, unless the parent holds a lower ready index. */
        uint32_t hmin =
            atomic_load_explicit(&pr->sh->heap_min, memory_order_relaxed);
        if (hmin == UINT32_MAX || hmin >= sp_sched_peek(&run->sched)) {
            /* After a short task, a span of several: the counter is a
             * cache line every worker writes, one claim a task made it
             * the workers' dearest step. */
            if (spans && ws.end &&
                sp_sched_claim_span(&run->sched, SPAN_MAX, &lo, &hi)) {
                atomic_store_explicit(&s->range, (uint64_t)hi << 32 | lo,
                                      memory_order_release);
                continue;
            }
            if (sp_sched_claim_one(&run->sched, &i)) {
                /* the static list: first attempts */
                if (!run_task(i, 1, NULL, NULL))
                    break;
                continue;
            }
        }
        /* The counter is empty. A table without edges and retries, whose
         * tasks this worker ran spawned nothing, has nothing more for it
         * unless a worker dies before starting its task, and then the
         * parent forks another: leave without asking (a round trip to the
         * parent per worker at the end of every call). */
        if (hmin == UINT32_MAX && !run->graph.succ && !run->tries &&
            !ws.spawned)
            break;
        sp_task row;
        unsigned attempt = 1;
        unsigned char *payload = NULL;
        uint32_t what = ask(&i, &attempt, &row, &payload);
        ws.end = 0; /* it waited for the answer */
        if (what == SP_CMD_EXIT)
            break;
        bool go_on = what == SP_CMD_CLAIM ||
                     run_task(i, attempt, row.key ? &row : NULL, NULL);
        free(payload);
        if (!go_on)
            break;
    }
    fflush(NULL); /* what tasks printed in this worker */
    _exit(0);
}

/* ---- pool workers ------------------------------------------------------- */

/* A pool worker's view: the pool's mapping, and the call whose batch it
 * runs (rebuilt from each batch's fixed part). */
static struct prun pool_pr;
static struct sp_run pool_run;

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* One row of a batch, as the worker keeps it. */
struct brow {
    sp_task row;
    sp_task_policy policy; /* copied out: the payload is not aligned */
    uint32_t index, attempt;
};

/* Run a batch: the rows it carries, claimed one at a time from the front of
 * the slot's range (the parent may take back its end meanwhile). */
static void run_batch(const unsigned char *p, size_t len)
{
    struct slot *s = sp_proc_slot(&pool_pr, ws.k);
    struct sp_proc_batch head;
    ws.end = 0; /* it waited for the batch */
    if (len < SP_PROC_BATCH_FIXED)
        channel_broken(s, EPROTO);
    memcpy(&head, p, sizeof head);
    if (head.rs >= pool_pr.nslots ||
        head.count > (len - SP_PROC_BATCH_FIXED) / (SP_PROC_ROW_FIXED + 1))
        channel_broken(s, EPROTO);
    uint32_t count = head.count;
    struct brow *rows = count ? calloc(count, sizeof *rows) : NULL;
    if (count && !rows)
        channel_broken(s, ENOMEM);
    size_t at = SP_PROC_BATCH_FIXED;
    for (uint32_t r = 0; r < count; r++) {
        if (len - at < SP_PROC_ROW_FIXED)
            channel_broken(s, EPROTO);
        const unsigned char *q = p + at + 12;
        uint32_t pol = get32(p + at + 8);
        uint32_t klen = get32(q + 16);
        uint64_t dlen = get64(q + 20);
        size_t room = len - at - SP_PROC_ROW_FIXED;
        /* klen 1: the "" of an index-keyed call's row. */
        if ((pol && pol != sizeof rows[r].policy) || klen < 1 || klen > room ||
            dlen > room - klen || pol > room - klen - dlen ||
            q[SP_WIRE_RUN_FIXED + klen - 1])
            channel_broken(s, EPROTO);
        struct brow *b = &rows[r];
        b->index = get32(p + at);
        b->attempt = get32(p + at + 4);
        memcpy(&b->row.fn, q, 8);
        memcpy(&b->row.arg, q + 8, 8);
        b->row.key = (const char *)q + SP_WIRE_RUN_FIXED;
        b->row.data = dlen ? q + SP_WIRE_RUN_FIXED + klen : NULL;
        b->row.len = (size_t)dlen;
        if (pol) {
            memcpy(&b->policy, q + SP_WIRE_RUN_FIXED + klen + dlen, pol);
            b->row.policy = &b->policy;
        }
        at += SP_PROC_ROW_FIXED + klen + (size_t)dlen + pol;
    }
    memset(&pool_run, 0, sizeof pool_run);
    pool_run.stop = &sp_proc_prslot(pool_pr.sh, pool_pr.nslots, head.rs)->stop;
    pool_run.opts = head.opts;
    pool_run.opts.on_done = NULL; /* the caller's: not here */
    pool_run.opts.on_done_arg = NULL;
    pool_run.opts.cancel = NULL; /* the parent watches the handles */
    pool_run.t0 = head.t0;
    pool_run.deadline = head.deadline;
    pool_run.task_timeout = head.task_timeout;
    pool_run.remote = &remote;
    ws.wid = head.wid;
    for (;;) {
        uint64_t r = atomic_load(&s->range);
        uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
        if (lo >= hi)
            break;
        if (hi > count)
            channel_broken(s, EPROTO);
        if (!atomic_compare_exchange_weak(&s->range, &r, r + 1))
            continue;
        if (!run_task(rows[lo].index, rows[lo].attempt, &rows[lo].row, NULL))
            break; /* the call stopped: the parent accounts for the rest */
    }
    free(rows);
}

/* A pool worker that said IDLE: calls that follow each other closely send
 * the next batch within microseconds; look for it for POOL_SPIN_NS,
 * giving the CPU away meanwhile, before read_cmd() sleeps. */
#define POOL_SPIN_NS 50000u

static void await_cmd(void)
{
    if (rin.off < rin.len)
        return;
    uint64_t end = sp_now() + POOL_SPIN_NS;
    for (;;) {
        ssize_t r = recv(ws.ch.fd, rin.buf, sizeof rin.buf, MSG_DONTWAIT);
        if (r > 0) {
            rin.off = 0;
            rin.len = (size_t)r;
            return;
        }
        if (r == 0 ||
            (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
            sp_now() >= end)
            return; /* read_cmd() sees the end, or waits */
        sched_yield();
    }
}

_Noreturn void sp_proc_pool_worker_main(const struct sp_pw_conf *c,
                                        unsigned index, int fd)
{
    pool_pr.sh = c->sh;
    pool_pr.nslots = pool_pr.nw = c->nslots;
    pool_pr.run = &pool_run;
    pool_run.stop = &pool_run.stop_local;
    worker_init(&pool_pr, index, fd);
    struct slot *s = sp_proc_slot(&pool_pr, index);
    void *state = NULL;
    int rc = c->setup ? c->setup(index, c->user, &state) : 0;
    if (rc) {
        atomic_store(&s->setup_rc, rc);
        atomic_store(&s->setup, SETUP_FAILED);
        fflush(NULL);
        _exit(0);
    }
    sp_worker_state = state;
    atomic_store(&s->setup, SETUP_OK);
    for (;;) {
        fflush(NULL); /* what the tasks printed is out by the call's end */
        say_idle();
        await_cmd();
        struct sp_wire_cmd cmd;
        unsigned char *payload;
        read_cmd(&cmd, &payload);
        if (cmd.type == SP_CMD_EXIT)
            break;
        if (cmd.type != SP_CMD_BATCH)
            channel_broken(s, EPROTO);
        run_batch(payload, (size_t)cmd.len);
        free(payload);
    }
    if (c->teardown)
        c->teardown(index, c->user, state);
    sp_worker_state = NULL;
    fflush(NULL);
    _exit(0);
}
