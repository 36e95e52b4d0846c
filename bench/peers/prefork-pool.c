/* SPDX-License-Identifier: MIT */
#include "prefork-pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Parent to workers: a range of task indices. */
struct range {
    uint64_t first, count;
};

/* Workers to parent: one task's outcome. */
struct record {
    uint64_t index;
    int64_t value;
    int32_t state;
    int32_t pad;
};

/* Writes of at most PIPE_BUF bytes are atomic, so ranges and batches of
 * records from several processes never interleave on a shared pipe. */
enum {
    RANGES_PER_WRITE = PIPE_BUF / sizeof(struct range),
    RECORDS_PER_WRITE = PIPE_BUF / sizeof(struct record),
    RECORDS_PER_READ = 2048,
};

static ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int write_full(int fd, const void *buf, size_t len)
{
    size_t put = 0;
    while (put < len) {
        ssize_t r = write(fd, (const char *)buf + put, len - put);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

/* The child: run ranges until the parent closes the pipe. */
static void worker(int ranges, int results, peer_fn fn, void *arg)
{
    struct record batch[RECORDS_PER_WRITE];
    size_t nb = 0;
    struct range r;
    while (read_full(ranges, &r, sizeof r) == (ssize_t)sizeof r) {
        for (uint64_t i = r.first; i < r.first + r.count; i++) {
            long v = 0;
            int rc = fn((size_t)i, arg, &v);
            batch[nb++] = (struct record){
                .index = i, .value = v, .state = rc ? PEER_FAILED : PEER_OK};
            if (nb == RECORDS_PER_WRITE) {
                if (write_full(results, batch, sizeof batch))
                    _exit(1);
                nb = 0;
            }
        }
        if (nb && write_full(results, batch, nb * sizeof *batch))
            _exit(1);
        nb = 0;
    }
    _exit(0);
}

/* Store whole records; returns how many outcomes arrived. Each index is
 * sent to exactly one worker once, so n records end the run. */
static size_t take(const struct record *rec, size_t nrec, size_t n,
                   peer_result *out)
{
    size_t got = 0;
    for (size_t k = 0; k < nrec; k++) {
        if (rec[k].index >= n)
            continue; /* cannot happen: a worker only sends what it ran */
        out[rec[k].index].value = (long)rec[k].value;
        out[rec[k].index].state = rec[k].state;
        got++;
    }
    return got;
}

/* The parent's side of the range pipe: guided range sizes, written a
 * PIPE_BUF's worth at a time without blocking. */
struct feeder {
    int fd;
    size_t next, n, div, npending;
    struct range pending[RANGES_PER_WRITE];
};

/* Write what the pipe takes now: 0, or -1 on a write error. */
static int feed(struct feeder *f)
{
    for (;;) {
        if (!f->npending)
            while (f->next < f->n && f->npending < RANGES_PER_WRITE) {
                size_t left = f->n - f->next;
                size_t size = (left + f->div - 1) / f->div;
                f->pending[f->npending++] = (struct range){f->next, size};
                f->next += size;
            }
        if (!f->npending)
            return 0;
        /* At most PIPE_BUF bytes: written whole or not at all. */
        size_t len = f->npending * sizeof *f->pending;
        ssize_t w = write(f->fd, f->pending, len);
        if (w == (ssize_t)len)
            f->npending = 0;
        else if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        else
            return -1;
    }
}

int prefork_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                peer_result *out)
{
    if (n == 0)
        return 0;
    if (workers > n)
        workers = (unsigned)n;
    int tp[2], rp[2];
    if (pipe(tp))
        return -1;
    if (pipe(rp)) {
        close(tp[0]);
        close(tp[1]);
        return -1;
    }
    pid_t *pids = malloc(workers * sizeof *pids);
    struct record *buf = malloc(RECORDS_PER_READ * sizeof *buf);
    struct feeder f = {.fd = tp[1], .n = n, .div = 4 * (size_t)workers};
    /* The first ranges go into the pipe before any fork, so the first
     * workers start while the others are being forked. */
    int broken = !pids || !buf || fcntl(tp[1], F_SETFL, O_NONBLOCK) || feed(&f);
    unsigned made = 0;
    fflush(NULL); /* nothing buffered is printed twice */
    for (; !broken && made < workers; made++) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            close(tp[1]);
            close(rp[0]);
            worker(tp[0], rp[1], fn, arg);
        }
        pids[made] = pid;
    }
    /* The parent keeps the read end of the range pipe, so writing to it
     * never raises SIGPIPE, and gives up its write end of the result
     * pipe, so the result pipe reads EOF once every worker has gone. */
    close(rp[1]);
    size_t received = 0, have = 0; /* have: bytes of buf in use */
    while (made && !broken && received < n) {
        int more = f.npending || f.next < n;
        struct pollfd pf[2] = {{.fd = rp[0], .events = POLLIN},
                               {.fd = tp[1], .events = POLLOUT}};
        if (poll(pf, more ? 2 : 1, -1) < 0) {
            broken = errno != EINTR;
            continue;
        }
        if (more && (pf[1].revents & POLLOUT) && feed(&f))
            break;
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(rp[0], (char *)buf + have,
                             RECORDS_PER_READ * sizeof *buf - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break; /* every worker has gone: what is missing stays so */
            have += (size_t)r;
            size_t whole = have / sizeof *buf;
            received += take(buf, whole, n, out);
            have -= whole * sizeof *buf;
            memmove(buf, (char *)buf + whole * sizeof *buf, have);
        }
    }
    /* End of work: workers read EOF, leave, and are reaped. */
    close(tp[1]);
    close(tp[0]);
    close(rp[0]);
    for (unsigned k = 0; k < made; k++)
        while (waitpid(pids[k], NULL, 0) < 0 && errno == EINTR)
            ;
    free(pids);
    free(buf);
    return made ? 0 : -1;
}
