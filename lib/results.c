/* SPDX-License-Identifier: MIT */
/* The results map: allocation, lookup by key, accessors, free. */
#define _DEFAULT_SOURCE /* madvise(MADV_HUGEPAGE) where the system has it */
#include "sp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void sp_result_mapped(void *data)
{
    (void)data; /* a marker: sp_data_release() unmaps, knowing the length */
}

void sp_data_release(void (*release)(void *), void *data, size_t len)
{
    if (!release)
        free(data);
    else if (release == sp_result_mapped)
        munmap(data, len + 1);
    else
        release(data);
}

/* Arrays of at least this many bytes (the entries, the key index of big
 * tables) are placed on 2 MiB boundaries and offered transparent huge
 * pages: malloc maps arrays this large afresh for each call, and a
 * million tasks' entries would otherwise take 16,384 page faults, which
 * made the cost per task grow with the table (bench `scale`). */
#define BIG_ARRAY ((size_t)8 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

/* Arrays of a call whose workers are forked, from this size on, get pages
 * of their own that no child inherits (MADV_DONTFORK): no worker reads the
 * map (outcomes come back as frames), and a page the parent shared with
 * its children would be copied on the parent's first write to it, once per
 * page, while it records outcomes; the forks also copy fewer page tables.
 * Below this size the copies are too few to pay for the system call. */
#define UNFORKED_MIN ((size_t)64 << 10)
#define PAGE ((size_t)4096)

/* An array of `size` bytes, in *blk (what the free needs). */
static void *big_alloc(size_t size, bool zero, bool unforked,
                       struct sp_block *blk)
{
    *blk = (struct sp_block){0};
    bool big = size >= BIG_ARRAY;
#ifdef MADV_DONTFORK
    unforked = unforked && size >= UNFORKED_MIN;
#else
    unforked = false;
#endif
    void *p;
    if (big) {
        size_t round = (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        p = blk->base = sp_aligned_alloc(HUGE_PAGE, round);
        if (!p)
            return NULL;
#ifdef MADV_HUGEPAGE
        madvise(p, round, MADV_HUGEPAGE); /* advice: failure changes nothing */
#endif
        if (zero)
            memset(p, 0, size);
    } else if (unforked) {
        /* Whole pages of its own (no other allocation may lose a page to
         * the children), from plain malloc with room to align: glibc keeps
         * a freed block of this size for the next call, while an aligned
         * one is mapped afresh, and faulted in page by page, every call. */
        blk->base =
            zero ? sp_calloc(1, size + 2 * PAGE) : sp_malloc(size + 2 * PAGE);
        if (!blk->base)
            return NULL;
        p = (void *)(((uintptr_t)blk->base + PAGE - 1) &
                     ~(uintptr_t)(PAGE - 1));
    } else {
        return blk->base = zero ? sp_calloc(1, size) : sp_malloc(size);
    }
#ifdef MADV_DONTFORK
    size_t round = (size + PAGE - 1) & ~(PAGE - 1);
    if (unforked && madvise(p, round, MADV_DONTFORK) == 0) {
        blk->kept = p;
        blk->kept_len = round;
    }
#endif
    return p;
}

static void big_free(const struct sp_block *blk)
{
#ifdef MADV_DONTFORK
    /* The pages go back to malloc, which may hand them to anything. */
    if (blk->kept)
        madvise(blk->kept, blk->kept_len, MADV_DOFORK);
#endif
    free(blk->base);
}

sp_results *sp_results_alloc(size_t n, bool by_index, bool forks)
{
    sp_results *res = sp_calloc(1, sizeof *res);
    if (!res)
        return NULL;
    res->n = n;
    res->by_index = by_index;
    size_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    res->mask = by_index ? 0 : cap - 1;
    /* Not zeroed: sp_table_index() initialises every entry it indexes. */
    res->entries = big_alloc((n ? n : 1) * sizeof *res->entries, false, forks,
                             &res->entries_blk);
    if (!by_index)
        res->slots =
            big_alloc(cap * sizeof *res->slots, true, forks, &res->slots_blk);
    if (!res->entries || (!by_index && !res->slots)) {
        sp_results_free(res);
        return NULL;
    }
    return res;
}

/* What entry e owns: its result (unless released by the task's own
 * function) and its message. */
static void free_entry(sp_entry *e)
{
    struct sp_how how = sp_entry_how(e);
    if (!(how.flags & SP_EF_RELEASE))
        free(e->r.data);
    if (how.flags & SP_EF_MSG_OWNED)
        free((void *)e->r.msg);
    else if (how.flags & SP_EF_STORY)
        free((void *)sp_entry_story(e));
}

SP_API void sp_results_free(sp_results *res)
{
    if (!res)
        return;
    for (struct sp_owned *o = atomic_load(&res->owned), *next; o; o = next) {
        next = o->next;
        const sp_entry *e = sp_entry_at(res, o->index);
        sp_data_release(o->release, e->r.data, e->r.len);
        free(o);
    }
    if (res->entries && atomic_load(&res->owns))
        for (size_t i = 0; i < res->ready; i++)
            free_entry(&res->entries[i]);
    size_t spawned = atomic_load(&res->xt.count);
    for (size_t x = 0; x < spawned; x++) {
        struct sp_xtask *xt = sp_xtask_at(res, x);
        free_entry(&xt->e);
        free(xt->copy);
        free(xt->deps);
    }
    for (size_t k = 0; k < SP_XSEGS; k++)
        free(res->xt.seg[k]);
    big_free(&res->entries_blk);
    big_free(&res->slots_blk);
    free(res->note);
    free(res->thread_note);
    for (struct sp_keys *k = res->keys, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(res);
}

SP_API size_t sp_results_count(const sp_results *res)
{
    return res ? sp_results_total(res) : 0;
}

SP_API const sp_entry *sp_results_at(const sp_results *res, size_t index)
{
    if (!res || index >= sp_results_total(res))
        return NULL;
    return sp_entry_at(res, index);
}

size_t sp_results_find(const sp_results *res, const char *key, size_t len)
{
    if (res->by_index)
        return SIZE_MAX;
    uint64_t h = sp_hash(key, len);
    uint64_t tag = h >> 32;
    for (size_t pos = (size_t)h & res->mask;; pos = (pos + 1) & res->mask) {
        uint64_t slot = res->slots[pos];
        if (!slot)
            return SIZE_MAX;
        size_t i = (size_t)(slot & 0xffffffffu) - 1;
        const sp_entry *e = sp_entry_at(res, i);
        if ((slot >> 32) == tag && strncmp(e->key, key, len) == 0 &&
            e->key[len] == 0)
            return i;
    }
}

SP_API const sp_entry *sp_results_get(const sp_results *res, const char *key)
{
    if (!res || !key)
        return NULL;
    if (res->by_index) {
        sp_set_error(SP_EINVAL, "sp_results_get: the map is index-keyed "
                                "(sp_options.index_keys) and has no keys; use "
                                "sp_results_at()");
        return NULL;
    }
    if (!sp_results_total(res))
        return NULL;
    size_t i = sp_results_find(res, key, strlen(key));
    return i == SIZE_MAX ? NULL : sp_entry_at(res, i);
}

static void index_put(uint64_t *slots, size_t mask, uint64_t h, size_t i)
{
    size_t pos = (size_t)h & mask;
    while (slots[pos])
        pos = (pos + 1) & mask;
    slots[pos] = (h >> 32) << 32 | (uint64_t)(i + 1);
}

int sp_results_index_add(sp_results *res, size_t i)
{
    size_t total = i + 1;
    if (2 * total > res->mask + 1) { /* keep the load at most one half */
        size_t cap = 2 * (res->mask + 1);
        uint64_t *slots = sp_calloc(cap, sizeof *slots);
        if (!slots)
            return SP_ENOMEM;
        for (size_t j = 0; j < i; j++) {
            const char *k = sp_entry_at(res, j)->key;
            index_put(slots, cap - 1, sp_hash(k, strlen(k)), j);
        }
        big_free(&res->slots_blk);
        res->slots_blk = (struct sp_block){.base = slots};
        res->slots = slots;
        res->mask = cap - 1;
    }
    const char *key = sp_entry_at(res, i)->key;
    index_put(res->slots, res->mask, sp_hash(key, strlen(key)), i);
    return 0;
}

struct sp_xtask *sp_results_xtask_new(sp_results *res, size_t x)
{
    size_t k = 0, base = 0;
    while (x >= base + ((size_t)64 << k)) {
        base += (size_t)64 << k;
        k++;
    }
    if (k >= SP_XSEGS)
        return NULL;
    if (!res->xt.seg[k]) {
        res->xt.seg[k] = sp_calloc((size_t)64 << k, sizeof(struct sp_xtask));
        if (!res->xt.seg[k])
            return NULL;
    }
    return &res->xt.seg[k][x - base];
}

SP_API size_t sp_results_count_kind(const sp_results *res, sp_kind kind)
{
    if (!res || (unsigned)kind >= SP_N_KINDS)
        return 0;
    return res->counts[kind];
}

SP_API size_t sp_results_ok(const sp_results *res)
{
    return sp_results_count_kind(res, SP_KIND_OK);
}

SP_API size_t sp_results_failed(const sp_results *res)
{
    return res ? sp_results_total(res) - res->counts[SP_KIND_OK] : 0;
}

SP_API double sp_results_elapsed(const sp_results *res)
{
    return res ? (double)res->elapsed_ns / 1e9 : 0.0;
}

SP_API unsigned sp_results_workers(const sp_results *res)
{
    return res ? res->workers : 0;
}

SP_API const char *sp_entry_key(const sp_entry *e)
{
    return e && e->key ? e->key : "";
}

const char *sp_entry_name(const sp_entry *e, char *buf)
{
    if (e->key)
        snprintf(buf, SP_NAME_LEN, "\"%.64s\"", e->key);
    else
        snprintf(buf, SP_NAME_LEN, "#%lu", (unsigned long)e->index);
    return buf;
}

SP_API size_t sp_entry_index(const sp_entry *e)
{
    return e ? e->index : 0;
}

SP_API sp_kind sp_entry_kind(const sp_entry *e)
{
    return e ? (sp_kind)sp_entry_how(e).kind : SP_KIND_CANCELLED;
}

SP_API int sp_entry_code(const sp_entry *e)
{
    return e ? e->r.code : SP_EINVAL;
}

SP_API const char *sp_entry_message(const sp_entry *e)
{
    return e && e->r.msg ? e->r.msg : "";
}

SP_API const void *sp_entry_data(const sp_entry *e, size_t *len)
{
    if (len)
        *len = e ? e->r.len : 0;
    return e ? e->r.data : NULL;
}

SP_API const char *sp_entry_str(const sp_entry *e)
{
    return e && e->r.data ? (const char *)e->r.data : "";
}

SP_API double sp_entry_start(const sp_entry *e)
{
    return e ? (double)e->r.t_start / 1e9 : 0.0;
}

SP_API double sp_entry_end(const sp_entry *e)
{
    return e ? (double)e->r.t_end / 1e9 : 0.0;
}

SP_API int sp_entry_signal(const sp_entry *e)
{
    if (!e)
        return 0;
    struct sp_how how = sp_entry_how(e);
    return how.kind == SP_KIND_CRASHED && how.signo != SP_EXITED ? how.signo
                                                                 : 0;
}

SP_API int sp_entry_exit_status(const sp_entry *e)
{
    if (!e)
        return -1;
    struct sp_how how = sp_entry_how(e);
    return how.kind == SP_KIND_CRASHED && how.signo == SP_EXITED
               ? how.exit_status
               : -1;
}

SP_API sp_cancel_reason sp_entry_cancel_reason(const sp_entry *e)
{
    if (!e)
        return SP_CANCEL_NONE;
    struct sp_how how = sp_entry_how(e);
    if (how.kind == SP_KIND_SKIPPED)
        return SP_CANCEL_DEPENDENCY;
    return how.kind == SP_KIND_CANCELLED ? (sp_cancel_reason)how.signo
                                         : SP_CANCEL_NONE;
}

SP_API sp_code_origin sp_entry_code_origin(const sp_entry *e)
{
    if (!e)
        return SP_ORIGIN_NONE;
    struct sp_how how = sp_entry_how(e);
    if (how.kind == SP_KIND_OK)
        return SP_ORIGIN_NONE;
    return how.flags & SP_EF_TASK_CODE ? SP_ORIGIN_TASK : SP_ORIGIN_LIBRARY;
}

SP_API unsigned sp_entry_worker(const sp_entry *e)
{
    return e ? e->r.worker : SP_NO_WORKER;
}

/* An earlier attempt's view (sp_entry_attempt()), else NULL. */
static const struct sp_past *past_of(const sp_entry *e)
{
    return e && (sp_entry_how(e).flags & SP_EF_PAST)
               ? (const struct sp_past *)(const void *)e
               : NULL;
}

/* The story of an entry tried more than once (or of the task an earlier
 * attempt's view belongs to), else NULL. */
static const struct sp_story *story(const sp_entry *e)
{
    if (!e)
        return NULL;
    struct sp_how how = sp_entry_how(e);
    if (how.flags & SP_EF_STORY)
        return sp_entry_story(e);
    if (how.flags & SP_EF_PAST)
        return past_of(e)->story;
    return NULL;
}

SP_API unsigned sp_entry_attempts(const sp_entry *e)
{
    const struct sp_past *p = past_of(e);
    if (p)
        return p->n;
    const struct sp_story *st = story(e);
    if (st)
        return st->attempts;
    return e && e->r.worker != SP_NO_WORKER ? 1 : 0;
}

SP_API const sp_entry *sp_entry_attempt(const sp_entry *e, unsigned n)
{
    unsigned attempts = sp_entry_attempts(e);
    if (!n || n > attempts)
        return NULL;
    if (n == attempts)
        return e;
    const struct sp_story *st = story(e);
    return st && n <= st->npast ? &st->past[n - 1].e : NULL;
}

/* The first attempt: the entry itself when it is the only one, or when
 * memory ran out to keep the first. */
static const sp_entry *first(const sp_entry *e)
{
    const struct sp_story *st = story(e);
    return st && st->npast ? &st->past[0].e : e;
}

SP_API sp_kind sp_entry_first_kind(const sp_entry *e)
{
    return sp_entry_kind(first(e));
}

SP_API int sp_entry_first_code(const sp_entry *e)
{
    return sp_entry_code(first(e));
}

SP_API const char *sp_entry_first_message(const sp_entry *e)
{
    return sp_entry_message(first(e));
}
