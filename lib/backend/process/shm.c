/* SPDX-License-Identifier: MIT */
/* Large results through shared memory, so a result of a gigabyte is not
 * copied through the worker's channel nor into a second buffer in the
 * caller.
 *
 * A worker whose result has at least SHM_MIN bytes (proc.h says why that
 * many) writes them into a memfd of len + 1 bytes (the last one stays 0:
 * the NUL every result ends with; sp_set_result() of so large a result
 * already copied it into one: worker.c's keep_result()), seals it against
 * any change (shrink, grow, write, further seals) and sends its RESULT
 * frame with the SP_WIRE_SHM flag and no data bytes, passing the
 * descriptor with the frame's first byte (SCM_RIGHTS over the channel).
 * Pages of a memfd the worker does not map are not in its resident set, so
 * its peak stays about the task's own buffer. Where memfds are missing or
 * a step fails (ENOSYS, EMFILE, ENOMEM...), the bytes go through the
 * channel as before.
 *
 * The parent receives every read of a channel with recvmsg() under the
 * descriptor registry's lock, so a descriptor that arrives is listed
 * (fds.c) before any fork can copy it; it queues it on the worker until
 * the frame that names it is decoded. It then checks the descriptor (a
 * sealed file of exactly len + 1 bytes whose last byte is 0: a task that
 * forges a frame cannot make the caller map something that changes or
 * shrinks under it), maps it read-only as the entry's bytes, and closes
 * it. The map's entry owns the mapping (release sp_result_mapped) and
 * sp_results_free() unmaps it.
 *
 * A worker that dies before its frame is sent takes its memfd with it (the
 * task is reported as its slot tells: its result lost); a frame that
 * arrives without its descriptor, or with one that fails the checks, is a
 * malformed frame: the task is CRASHED with SP_EPROTO and the worker
 * killed. Descriptors queued on a worker that ends are closed. */
#define _GNU_SOURCE /* MSG_CMSG_CLOEXEC, F_ADD_SEALS */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(F_ADD_SEALS) && defined(F_SEAL_WRITE) && defined(SCM_RIGHTS)
#define SHM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
#endif
/* The caller maps the pages in one go rather than a fault per page as it
 * reads them. */
#ifdef MAP_POPULATE
#define SHM_POPULATE MAP_POPULATE
#else
#define SHM_POPULATE 0
#endif
#ifndef MSG_CMSG_CLOEXEC
#define MSG_CMSG_CLOEXEC 0
#endif

size_t sp_proc_shm_min = SHM_MIN;

/* ---- the worker's side -------------------------------------------------- */

int sp_proc_shm_fill(const void *data, size_t len)
{
#ifdef SHM_SEALS
    if (len > SP_WIRE_MAX_DATA) { /* as the channel's limit */
        errno = EFBIG;
        return -1;
    }
    int fd = sp_memfd();
    if (fd < 0)
        return -1;
    const unsigned char *p = data;
    if (ftruncate(fd, (off_t)len + 1))
        goto fail;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < ((size_t)1 << 30) ? len - off : (size_t)1 << 30;
        ssize_t w = pwrite(fd, p + off, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    if (fcntl(fd, F_ADD_SEALS, SHM_SEALS))
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
#else
    (void)data;
    (void)len;
    errno = ENOSYS;
    return -1;
#endif
}

ssize_t sp_proc_send_fd(int sock, const struct iovec *iov, int cnt, int pass)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = (struct iovec *)iov,
                       .msg_iovlen = (size_t)cnt,
                       .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof pass);
    for (;;) {
        ssize_t w = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (w >= 0 || errno != EINTR)
            return w;
    }
}

/* ---- the parent's side -------------------------------------------------- */

/* Queue a received descriptor on w (-1: one that was lost), or close it
 * when the queue is full (a task sending descriptors of its own). Under
 * the registry's lock. */
static void queue_fd(struct pworker *w, int fd)
{
    if (w->shm_n < SHM_QUEUE && (fd < 0 || sp_fds_add(fd) == 0)) {
        w->shm_fd[w->shm_n++] = fd;
        return;
    }
    if (fd >= 0) {
        close(fd);
        if (w->shm_n < SHM_QUEUE)
            w->shm_fd[w->shm_n++] = -1; /* could not be listed */
    }
}

ssize_t sp_proc_recv(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(SHM_QUEUE * sizeof(int))];
    } u;
    struct iovec iov = {pr->buf, READ_BUF};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    /* Under the lock: what arrives is listed before a fork can copy it. */
    sp_fds_lock();
    ssize_t r = recvmsg(w->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    int err = errno;
    if (r >= 0 && m.msg_controllen) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t j = 0; j < n; j++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof fd);
                queue_fd(w, fd);
            }
        }
    }
    if (r >= 0 && (m.msg_flags & MSG_CTRUNC))
        queue_fd(w, -1); /* the kernel dropped what did not fit */
    sp_fds_unlock();
    errno = err;
    return r;
}

void sp_proc_shm_drop(struct pworker *w)
{
    for (unsigned j = 0; j < w->shm_n; j++)
        sp_fds_close(w->shm_fd[j]);
    w->shm_n = 0;
}

/* Read the len + 1 bytes of fd into memory of the caller's own: for when
 * it cannot map them (out of mappings: vm.max_map_count). NULL: out of
 * memory too, or the read failed. */
static unsigned char *shm_copy(int fd, size_t len)
{
    unsigned char *p = sp_malloc(len + 1);
    if (!p)
        return NULL;
    for (size_t off = 0; off < len + 1;) {
        size_t n =
            len + 1 - off < ((size_t)1 << 30) ? len + 1 - off : (size_t)1 << 30;
        ssize_t r = pread(fd, p + off, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(p);
            return NULL;
        }
        off += (size_t)r;
    }
    return p;
}

int sp_proc_shm_map(struct prun *pr, unsigned k, uint64_t len,
                    unsigned char **data, bool *mapped, char *why,
                    size_t whylen)
{
    struct pworker *w = &pr->pw[k];
    *data = NULL;
    *mapped = false;
    if (!w->shm_n) {
        snprintf(why, whylen,
                 "a shared-memory result came without its "
                 "descriptor");
        return SP_EPROTO;
    }
    int fd = w->shm_fd[0];
    memmove(w->shm_fd, w->shm_fd + 1, --w->shm_n * sizeof *w->shm_fd);
    if (fd < 0) {
        snprintf(why, whylen,
                 "the caller could not take the descriptor of this result "
                 "(out of descriptors or memory)");
        return SP_ESYSTEM;
    }
    int code = SP_EPROTO;
    struct stat st;
#ifdef SHM_SEALS
    int seals = fcntl(fd, F_GET_SEALS);
#else
    int seals = -1;
#endif
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || len >= SIZE_MAX ||
        (uint64_t)st.st_size != len + 1) {
        snprintf(why, whylen,
                 "the descriptor of a shared-memory result is not a file "
                 "of its size");
#ifdef SHM_SEALS
    } else if (seals < 0 || (seals & SHM_SEALS) != SHM_SEALS) {
#else
    } else if (seals < 0) {
#endif
        snprintf(why, whylen, "a shared-memory result is not sealed");
    } else {
        void *p = sp_mmap(NULL, (size_t)len + 1, PROT_READ,
                          MAP_SHARED | SHM_POPULATE, fd, 0);
        *mapped = p != MAP_FAILED;
        if (p == MAP_FAILED) { /* sealed: its bytes cannot change now */
            int err = errno;
            p = shm_copy(fd, (size_t)len);
            errno = err;
        }
        if (!p) {
            char text[96];
            snprintf(why, whylen, "the caller could not map this result: %s",
                     sp_errno_text(errno, text, sizeof text));
            code = SP_ENOMEM;
        } else if (((const unsigned char *)p)[len] != 0) {
            if (*mapped)
                munmap(p, (size_t)len + 1);
            else
                free(p);
            *mapped = false;
            snprintf(why, whylen,
                     "a shared-memory result does not end in a NUL byte");
        } else {
            *data = p;
            code = 0;
        }
    }
    sp_fds_close(fd);
    return code;
}
