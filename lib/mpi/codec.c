/* SPDX-License-Identifier: MIT */
/* The byte layout of entries and frames between ranks (sp-mpi.h draws it):
 * fixed-width little-endian fields, so the layout is the same whatever
 * the ranks' compilers and byte orders. */
#include "sp-mpi.h"

#include <string.h>

/* Entry head: index 0, kind 4, flags 5, signal 6, exit status 7, code 8,
 * worker 12, start 16, end 24, message length 32, attempt 36, data length
 * 40; then the message with its NUL; with ENTRY_STORY the count of
 * earlier attempts (u32), then each: kind 0, flags 1, signal 2, exit
 * status 3, code 4, worker 8, message length 12, start 16, end 24, then
 * its message with its NUL; then inline data. */

static size_t msg_bytes(uint32_t msg_len)
{
    return msg_len ? (size_t)msg_len + 1 : 0;
}

static int64_t to_ns(double s)
{
    return (int64_t)(s * 1e9 + 0.5);
}

/* How many bytes of an earlier attempt's message travel: together they
 * take at most half of MSG_MAX, so the entry fits a frame. */
static uint32_t past_msg_len(const sp_entry *a, uint32_t npast)
{
    size_t len = strlen(sp_entry_message(a)), most = MSG_MAX / 2 / npast;
    return (uint32_t)(len < most ? len : most);
}

/* Bytes of the earlier attempts of e (ENTRY_STORY), as written. */
static size_t past_size(const struct wire_entry *e)
{
    size_t s = 4;
    for (uint32_t k = 0; k < e->npast; k++)
        s += PAST_HEAD + msg_bytes(past_msg_len(
                             sp_entry_attempt(e->story, k + 1), e->npast));
    return s;
}

size_t wire_entry_size(const struct wire_entry *e)
{
    size_t s = ENTRY_HEAD + msg_bytes(e->msg_len);
    if (e->flags & ENTRY_STORY)
        s += past_size(e);
    if ((e->flags & ENTRY_HAS_DATA) && !(e->flags & ENTRY_OUT_OF_LINE))
        s += (size_t)e->data_len;
    return s;
}

/* Write the earlier attempts of e at p; returns the bytes written. */
static size_t past_put(unsigned char *p, const struct wire_entry *e)
{
    unsigned char *start = p;
    put_u32(p, e->npast);
    p += 4;
    for (uint32_t k = 0; k < e->npast; k++) {
        const sp_entry *a = sp_entry_attempt(e->story, k + 1);
        uint32_t mlen = past_msg_len(a, e->npast);
        sp_kind kind = sp_entry_kind(a);
        int exit_status = sp_entry_exit_status(a);
        uint8_t flags = 0;
        if (sp_entry_code_origin(a) == SP_ORIGIN_TASK)
            flags |= ENTRY_TASK_CODE;
        if (kind == SP_KIND_CRASHED && exit_status >= 0)
            flags |= ENTRY_EXITED;
        p[0] = (uint8_t)kind;
        p[1] = flags;
        p[2] = (uint8_t)sp_entry_signal(a);
        p[3] = (uint8_t)(exit_status >= 0 ? exit_status : 0);
        put_u32(p + 4, (uint32_t)sp_entry_code(a));
        put_u32(p + 8, sp_entry_worker(a));
        put_u32(p + 12, mlen);
        put_u64(p + 16, (uint64_t)(to_ns(sp_entry_start(a)) + e->story_shift));
        put_u64(p + 24, (uint64_t)(to_ns(sp_entry_end(a)) + e->story_shift));
        p += PAST_HEAD;
        if (mlen) {
            memcpy(p, sp_entry_message(a), mlen);
            p[mlen] = 0;
            p += (size_t)mlen + 1;
        }
    }
    return (size_t)(p - start);
}

/* Check the earlier attempts at p (at most room bytes) and return their
 * size, or 0 when malformed. */
static size_t past_check(const unsigned char *p, size_t room,
                         struct wire_entry *e)
{
    if (room < 4)
        return 0;
    e->npast = get_u32(p);
    if (!e->npast || e->npast >= e->attempt || e->npast > SP_MAX_RETRIES)
        return 0;
    e->past_raw = p;
    size_t used = 4;
    for (uint32_t k = 0; k < e->npast; k++) {
        if (room - used < PAST_HEAD)
            return 0;
        const unsigned char *a = p + used;
        uint32_t mlen = get_u32(a + 12);
        if (a[0] > SP_KIND_SKIPPED ||
            (a[1] & ~(ENTRY_TASK_CODE | ENTRY_EXITED)))
            return 0;
        used += PAST_HEAD;
        if (mlen && (room - used < (size_t)mlen + 1 || p[used + mlen]))
            return 0;
        used += msg_bytes(mlen);
    }
    return used;
}

void wire_entry_put(unsigned char *p, const struct wire_entry *e)
{
    put_u32(p, e->index);
    p[4] = e->kind;
    p[5] = e->flags;
    p[6] = e->signo;
    p[7] = e->exit_status;
    put_u32(p + 8, (uint32_t)e->code);
    put_u32(p + 12, e->worker);
    put_u64(p + 16, (uint64_t)e->start);
    put_u64(p + 24, (uint64_t)e->end);
    put_u32(p + 32, e->msg_len);
    put_u32(p + 36, e->attempt);
    put_u64(p + 40, e->data_len);
    p += ENTRY_HEAD;
    if (e->msg_len) {
        memcpy(p, e->msg, e->msg_len);
        p[e->msg_len] = 0;
        p += (size_t)e->msg_len + 1;
    }
    if (e->flags & ENTRY_STORY)
        p += past_put(p, e);
    if ((e->flags & ENTRY_HAS_DATA) && !(e->flags & ENTRY_OUT_OF_LINE) &&
        e->data_len)
        memcpy(p, e->data, (size_t)e->data_len);
}

size_t wire_entry_get(const unsigned char *p, const unsigned char *end,
                      struct wire_entry *e)
{
    if (end < p || (size_t)(end - p) < ENTRY_HEAD)
        return 0;
    size_t room = (size_t)(end - p);
    *e = (struct wire_entry){
        .index = get_u32(p),
        .kind = p[4],
        .flags = p[5],
        .signo = p[6],
        .exit_status = p[7],
        .code = (int32_t)get_u32(p + 8),
        .worker = get_u32(p + 12),
        .start = (int64_t)get_u64(p + 16),
        .end = (int64_t)get_u64(p + 24),
        .msg_len = get_u32(p + 32),
        .attempt = get_u32(p + 36),
        .data_len = get_u64(p + 40),
    };
    if (e->kind > SP_KIND_SKIPPED || e->flags >= 64) /* the last kind */
        return 0;
    size_t used = ENTRY_HEAD;
    if (e->msg_len) {
        if (room - used < (size_t)e->msg_len + 1 || p[used + e->msg_len])
            return 0;
        e->msg = (const char *)p + used;
        used += (size_t)e->msg_len + 1;
    }
    if (e->flags & ENTRY_STORY) {
        size_t s = past_check(p + used, room - used, e);
        if (!s)
            return 0;
        used += s;
    }
    if (!(e->flags & ENTRY_HAS_DATA)) {
        if (e->data_len || (e->flags & ENTRY_OUT_OF_LINE))
            return 0;
    } else if (!(e->flags & ENTRY_OUT_OF_LINE)) {
        if (e->data_len > room - used)
            return 0;
        e->data = p + used;
        used += (size_t)e->data_len;
    }
    return used;
}

void wire_frame_head(unsigned char *p, uint32_t type, uint32_t id,
                     uint32_t count, uint32_t flags)
{
    put_u32(p, type);
    put_u32(p + 4, id);
    put_u32(p + 8, count);
    put_u32(p + 12, flags);
}

void wire_from_entry(const sp_entry *le, uint32_t index, int64_t shift_ns,
                     struct wire_entry *w)
{
    size_t len = 0;
    const void *data = sp_entry_data(le, &len);
    const char *msg = sp_entry_message(le);
    size_t mlen = strlen(msg);
    if (mlen > MSG_MAX) /* longer than any the core keeps: cut */
        mlen = MSG_MAX;
    sp_kind kind = sp_entry_kind(le);
    unsigned worker = sp_entry_worker(le);
    int exit_status = sp_entry_exit_status(le);
    *w = (struct wire_entry){
        .index = index,
        .kind = (uint8_t)kind,
        .signo = (uint8_t)sp_entry_signal(le),
        .code = sp_entry_code(le),
        .worker = worker,
        .start = to_ns(sp_entry_start(le)) + shift_ns,
        .end = to_ns(sp_entry_end(le)) + shift_ns,
        .msg = mlen ? msg : NULL,
        .msg_len = (uint32_t)mlen,
        .data = data,
        .data_len = data ? len : 0,
    };
    if (sp_entry_code_origin(le) == SP_ORIGIN_TASK)
        w->flags |= ENTRY_TASK_CODE;
    if (worker == SP_NO_WORKER)
        w->flags |= ENTRY_NOT_STARTED;
    if (data)
        w->flags |= ENTRY_HAS_DATA;
    if (data && len > INLINE_MAX)
        w->flags |= ENTRY_OUT_OF_LINE;
    if (kind == SP_KIND_CRASHED && exit_status >= 0) {
        w->flags |= ENTRY_EXITED;
        w->exit_status = (uint8_t)exit_status;
    }
    w->attempt = sp_entry_attempts(le);
    /* The earlier attempts the entry kept (all, unless memory ran out). */
    uint32_t npast = 0;
    while (npast + 1 < w->attempt && sp_entry_attempt(le, npast + 1))
        npast++;
    if (npast) {
        w->flags |= ENTRY_STORY;
        w->npast = npast;
        w->story = le;
        w->story_shift = shift_ns;
    }
}

void wire_to_outcome(const struct wire_entry *w, uint32_t worker_base,
                     sp__outcome *o, sp__outcome *past)
{
    int64_t start = w->start > 0 ? w->start : 0;
    int64_t end = w->end > start ? w->end : start;
    *o = (sp__outcome){
        .kind = (sp_kind)w->kind,
        .code = w->code,
        .task_code = (w->flags & ENTRY_TASK_CODE) != 0,
        .msg = w->msg_len ? w->msg : NULL,
        .data = (w->flags & ENTRY_HAS_DATA) ? (void *)w->data : NULL,
        .len = (size_t)w->data_len,
        .start = (double)start / 1e9,
        .end = (double)end / 1e9,
        .worker = (w->flags & ENTRY_NOT_STARTED) || w->worker == SP_NO_WORKER
                      ? SP_NO_WORKER
                      : worker_base + w->worker,
        .signo = w->kind == SP_KIND_CRASHED ? w->signo : 0,
        .exit_status = (w->flags & ENTRY_EXITED) ? w->exit_status : -1,
        .attempt = w->attempt,
    };
    if ((w->flags & ENTRY_STORY) && past) {
        const unsigned char *p = w->past_raw + 4;
        for (uint32_t k = 0; k < w->npast; k++) {
            uint32_t mlen = get_u32(p + 12);
            int64_t s = (int64_t)get_u64(p + 16), e = (int64_t)get_u64(p + 24);
            s = s > 0 ? s : 0;
            e = e > s ? e : s;
            past[k] = (sp__outcome){
                .kind = (sp_kind)p[0],
                .code = (int32_t)get_u32(p + 4),
                .task_code = (p[1] & ENTRY_TASK_CODE) != 0,
                .msg = mlen ? (const char *)p + PAST_HEAD : NULL,
                .start = (double)s / 1e9,
                .end = (double)e / 1e9,
                .worker = get_u32(p + 8),
                .signo = p[0] == SP_KIND_CRASHED ? p[2] : 0,
                .exit_status = (p[1] & ENTRY_EXITED) ? p[3] : -1,
                .attempt = k + 1,
            };
            p += PAST_HEAD + msg_bytes(mlen);
        }
        o->past = past;
        o->npast = w->npast;
    }
}
