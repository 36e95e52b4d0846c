/* SPDX-License-Identifier: MIT */
/* The finished map on every rank (sp_mpi_options.map_everywhere): rank 0
 * broadcasts its entries in the reply frames' layout, and every other rank
 * puts them into a run of its own, so its copy is a map like rank 0's. */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int sp_mpi_send_map(MPI_Comm comm, unsigned char *buf, const sp_results *res)
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
int sp_mpi_recv_map(struct mpi_call *c, sp__run *r, int rc, sp_results **out)
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
            sp__outcome o, past[SP_MAX_RETRIES];
            wire_to_outcome(&w, 0, &o, past);
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
