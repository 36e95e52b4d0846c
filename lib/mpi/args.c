/* SPDX-License-Identifier: MIT */
/* The argument stream of a batch (sp-mpi.h draws it): what travels with
 * the task indices when a task of the batch has argument bytes
 * (sp_task.data) or dependencies (sp_task.after). Rank 0 writes it from
 * its own table and the results its run holds (args_write()); the rank
 * that runs the batch reads it (args_read()) and answers the tasks'
 * sp_ctx_data() from it and their sp_dep_result() through args_dep().
 *
 * The stream is written twice by the same code: once to count its bytes
 * (they go in the batch's header, so the reader can receive the stream
 * whole), once to send it; large blobs are not in the stream but follow it
 * in their own messages, sent from where they lie. */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SHOWN 64

bool args_needed(const sp_task *t)
{
    return (t->data && t->len) || (t->after && t->after[0]);
}

/* A blob: u64 length, then, up to INLINE_MAX, the bytes and a NUL. */
static int put_blob(const struct args_sink *s, bool bigs, const void *p,
                    size_t len)
{
    if (bigs)
        return len > INLINE_MAX ? s->big(s->user, p, len) : 0;
    unsigned char head[8];
    put_u64(head, len);
    int rc = s->put(s->user, head, 8);
    if (!rc && len <= INLINE_MAX) {
        rc = s->put(s->user, p, len);
        if (!rc)
            rc = s->put(s->user, "", 1);
    }
    return rc;
}

int args_write(const sp_task *tasks, sp__run *r, const uint32_t *idx,
               uint32_t count, const struct args_sink *s)
{
    /* First the stream, then (bigs) the blobs above INLINE_MAX. */
    for (int bigs = 0; bigs < 2; bigs++)
        for (uint32_t k = 0; k < count; k++) {
            size_t i = idx[k];
            const sp_task *t = &tasks[i];
            int rc = put_blob(s, bigs, t->data, t->data ? t->len : 0);
            uint32_t ndeps = 0;
            while (t->after && t->after[ndeps])
                ndeps++;
            if (!rc && !bigs) {
                unsigned char head[4];
                put_u32(head, ndeps);
                rc = s->put(s->user, head, 4);
            }
            for (uint32_t d = 0; d < ndeps && !rc; d++) {
                size_t len;
                const void *p = sp__run_dep_at(r, i, d, &len);
                rc = put_blob(s, bigs, p, len);
            }
            if (rc)
                return rc;
        }
    return 0;
}

/* ---- the reading side -----------------------------------------------------
 */

static void free_bigs(struct args *a)
{
    for (size_t k = 0; k < a->nbig; k++)
        free(a->big[k]);
    a->nbig = 0;
}

void args_free(struct args *a)
{
    free_bigs(a);
    free(a->stream);
    free(a->blobs);
    free(a->off);
    free(a->big);
    memset(a, 0, sizeof *a);
}

/* Room for want items of size bytes at *p: 0, or -1 (*p unchanged). */
static int grow(void *p, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < want)
        c *= 2;
    void *q = realloc(*(void **)p, c * size);
    if (!q)
        return -1;
    *(void **)p = q;
    *cap = c;
    return 0;
}

/* Walk the stream: check its layout and count its blobs, the large ones
 * and the messages those come in; with fill, also point every blob at its
 * bytes (NULL for a large one, received afterwards). */
static int walk(struct args *a, uint32_t count, bool fill, size_t *nblobs,
                size_t *nbig, uint64_t *nmsgs)
{
    const unsigned char *p = a->stream, *end = a->stream + a->len;
    size_t b = 0, big = 0;
    uint64_t msgs = 0;
    for (uint32_t k = 0; k < count; k++) {
        if (fill)
            a->off[k] = b;
        /* The task's data, then its dependencies: 1 + ndeps blobs. */
        uint64_t blobs = 1;
        for (uint64_t j = 0; j < blobs; j++) {
            if (end - p < 8)
                return -1;
            uint64_t len = get_u64(p);
            p += 8;
            const unsigned char *at = NULL;
            if (len <= INLINE_MAX) {
                if ((uint64_t)(end - p) < len + 1 || p[len])
                    return -1;
                at = p;
                p += len + 1;
            } else {
                big++;
                msgs += (len + CHUNK - 1) / CHUNK;
            }
            if (fill)
                a->blobs[b] = (struct args_blob){at, (size_t)len};
            b++;
            if (j == 0) {
                if (end - p < 4)
                    return -1;
                blobs += get_u32(p);
                p += 4;
            }
        }
    }
    if (fill)
        a->off[count] = b;
    *nblobs = b;
    *nbig = big;
    *nmsgs = msgs;
    return p == end ? 0 : -1;
}

/* n messages of at most CHUNK bytes into to (NULL: into scratch, dropped). */
static int recv_into(MPI_Comm comm, unsigned char *to, unsigned char *scratch,
                     uint64_t len)
{
    for (uint64_t off = 0; off < len;) {
        size_t part = len - off > CHUNK ? CHUNK : (size_t)(len - off);
        int err = MPI_Recv(to ? to + off : scratch, (int)part, MPI_BYTE, 0,
                           TAG_ARGS, comm, MPI_STATUS_IGNORE);
        if (err)
            return sp_mpi_error("MPI_Recv", err);
        off += part;
    }
    return 0;
}

int args_read(struct args *a, MPI_Comm comm, unsigned char *scratch,
              uint32_t count, uint64_t len)
{
    free_bigs(a);
    a->count = 0;
    a->len = 0;
    /* The stream, whole. Without room for it, its messages are still
     * taken and dropped, but then the large blobs that follow cannot be
     * found: the batch cannot be read (the stream is what says so). */
    unsigned char *st = NULL;
    if (len < SIZE_MAX && !grow(&a->stream, &a->cap, (size_t)len + 1, 1))
        st = a->stream;
    int rc = recv_into(comm, st, scratch, len);
    if (rc)
        return rc;
    if (!st)
        return sp__set_error(SP_ENOMEM,
                             "out of memory for the batch's %llu argument "
                             "bytes",
                             (unsigned long long)len);
    a->len = (size_t)len;
    size_t nblobs, nbig;
    uint64_t nmsgs;
    if (walk(a, count, false, &nblobs, &nbig, &nmsgs))
        return sp__set_error(SP_EPROTO, "a malformed argument stream");
    if (grow(&a->blobs, &a->blobs_cap, nblobs, sizeof *a->blobs) ||
        grow(&a->off, &a->off_cap, (size_t)count + 1, sizeof *a->off) ||
        grow(&a->big, &a->big_cap, nbig, sizeof *a->big)) {
        /* The large blobs' messages are still to be taken. */
        for (uint64_t m = 0; m < nmsgs && !rc; m++)
            rc = recv_into(comm, NULL, scratch, CHUNK);
        return rc ? rc
                  : sp__set_error(SP_ENOMEM, "out of memory for the batch's "
                                             "arguments");
    }
    walk(a, count, true, &nblobs, &nbig, &nmsgs);
    /* The large blobs follow, in the stream's order, each NUL-terminated
     * in a buffer of its own. */
    bool lost = false;
    for (size_t b = 0; b < nblobs; b++) {
        if (a->blobs[b].p)
            continue;
        size_t blen = a->blobs[b].len;
        unsigned char *to = lost ? NULL : malloc(blen + 1);
        lost = !to;
        if ((rc = recv_into(comm, to, scratch, blen)) != 0) {
            free(to);
            return rc;
        }
        if (to) {
            to[blen] = 0;
            a->big[a->nbig++] = to;
            a->blobs[b].p = to;
        }
    }
    if (lost)
        return sp__set_error(SP_ENOMEM, "out of memory for the batch's large "
                                        "arguments");
    a->count = count;
    return 0;
}

const void *args_data(const struct args *a, uint32_t k, size_t *len)
{
    const struct args_blob *b = &a->blobs[a->off[k]];
    *len = b->len;
    return b->len ? b->p : NULL;
}

const void *args_dep(const struct args *a, const sp_task *row, uint32_t k,
                     const char *key, size_t *len)
{
    size_t ndeps = a->count > k ? a->off[k + 1] - a->off[k] - 1 : 0;
    for (size_t d = 0; key && d < ndeps && row->after && row->after[d]; d++)
        if (!strcmp(row->after[d], key)) {
            const struct args_blob *b = &a->blobs[a->off[k] + 1 + d];
            *len = b->len;
            return b->p;
        }
    sp__set_error(SP_ENODEP,
                  "sp_dep_result: \"%.*s\" is not a dependency of task "
                  "\"%.*s\"",
                  KEY_SHOWN, key ? key : "(null)", KEY_SHOWN, row->key);
    return NULL;
}
