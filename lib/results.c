/* SPDX-License-Identifier: MIT */
/* The results map: allocation, lookup by key, accessors, free. */
#include "sp-private.h"

#include <stdlib.h>
#include <string.h>

sp_results *sp_results_alloc(size_t n)
{
    sp_results *res = sp_calloc(1, sizeof *res);
    if (!res)
        return NULL;
    res->n = n;
    size_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    res->mask = cap - 1;
    /* Not zeroed: sp_table_index() initialises every entry it indexes. */
    res->entries = sp_malloc((n ? n : 1) * sizeof *res->entries);
    res->slots = sp_calloc(cap, sizeof *res->slots);
    if (!res->entries || !res->slots) {
        sp_results_free(res);
        return NULL;
    }
    return res;
}

SP_API void sp_results_free(sp_results *res)
{
    if (!res)
        return;
    for (struct sp_owned *o = atomic_load(&res->owned), *next; o; o = next) {
        next = o->next;
        o->release(res->entries[o->index].r.data);
        free(o);
    }
    if (res->entries && atomic_load(&res->owns)) {
        for (size_t i = 0; i < res->ready; i++) {
            sp_entry *e = &res->entries[i];
            if (!(e->how.flags & SP_EF_RELEASE))
                free(e->r.data);
            if (e->how.flags & SP_EF_MSG_OWNED)
                free((void *)e->r.msg);
        }
    }
    free(res->entries);
    free(res->slots);
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
    return res ? res->n : 0;
}

SP_API const sp_entry *sp_results_at(const sp_results *res, size_t index)
{
    if (!res || index >= res->n)
        return NULL;
    return &res->entries[index];
}

SP_API const sp_entry *sp_results_get(const sp_results *res, const char *key)
{
    if (!res || !key || !res->n)
        return NULL;
    size_t len = strlen(key);
    uint64_t h = sp_hash(key, len);
    uint64_t tag = h >> 32;
    for (size_t pos = (size_t)h & res->mask;; pos = (pos + 1) & res->mask) {
        uint64_t slot = res->slots[pos];
        if (!slot)
            return NULL;
        const sp_entry *e = &res->entries[(slot & 0xffffffffu) - 1];
        if ((slot >> 32) == tag && strcmp(e->key, key) == 0)
            return e;
    }
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
    return res ? res->n - res->counts[SP_KIND_OK] : 0;
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
    return e ? e->key : "";
}

SP_API size_t sp_entry_index(const sp_entry *e)
{
    return e ? e->index : 0;
}

SP_API sp_kind sp_entry_kind(const sp_entry *e)
{
    return e ? (sp_kind)e->how.kind : SP_KIND_CANCELLED;
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
    return e && e->how.signo != SP_EXITED ? e->how.signo : 0;
}

SP_API int sp_entry_exit_status(const sp_entry *e)
{
    return e && e->how.signo == SP_EXITED ? e->how.exit_status : -1;
}

SP_API sp_code_origin sp_entry_code_origin(const sp_entry *e)
{
    if (!e || e->how.kind == SP_KIND_OK)
        return SP_ORIGIN_NONE;
    return e->how.flags & SP_EF_TASK_CODE ? SP_ORIGIN_TASK : SP_ORIGIN_LIBRARY;
}

SP_API unsigned sp_entry_worker(const sp_entry *e)
{
    return e ? e->r.worker : SP_NO_WORKER;
}
