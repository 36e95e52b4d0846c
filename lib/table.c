/* SPDX-License-Identifier: MIT */
/* The task table: row validation, the key index (open addressing, linear
 * probing) and the map's own copy of every key. */
#include "sp-private.h"

#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest key shown in an error message. */
#define KEY_SHOWN 64

static inline uint64_t mix(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    /* 64x64 -> 128 multiply, folded (wyhash's mum). */
    __extension__ unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    uint64_t h = (a ^ (b >> 29)) * 0xBF58476D1CE4E5B9u;
    h ^= b + (h >> 31);
    return h * 0x94D049BB133111EBu ^ (h >> 32);
#endif
}

uint64_t sp_hash(const char *s, size_t len)
{
    const uint64_t k = 0x9E3779B97F4A7C15u;
    uint64_t h = (uint64_t)len * k;
    uint64_t w;
    if (len <= 16) {
        /* Short keys: two overlapping loads, one multiply. */
        uint64_t a = 0, b = 0;
        if (len >= 8) {
            memcpy(&a, s, 8);
            memcpy(&b, s + len - 8, 8);
        } else if (len >= 4) {
            uint32_t x, y;
            memcpy(&x, s, 4);
            memcpy(&y, s + len - 4, 4);
            a = x;
            b = y;
        } else if (len) {
            a = (uint64_t)(unsigned char)s[0] << 16 |
                (uint64_t)(unsigned char)s[len / 2] << 8 |
                (unsigned char)s[len - 1];
        }
        return mix(a ^ k ^ h, b ^ 0xE7037ED1A0B428DBu);
    }
    while (len >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
        s += 8;
        len -= 8;
    }
    w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * k;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9u;
    h ^= h >> 32;
    return h;
}

/* The 0.1 ABI holds (docs/guide.md, "Room to grow"): sp_task and
 * sp_options keep their sizes and the offsets of 0.1's fields; data and
 * len took the place of sp_task's first two reserved pointers, policy the
 * third. */
_Static_assert(sizeof(sp_task) == 8 * sizeof(void *), "sp_task changed size");
_Static_assert(offsetof(sp_task, after) == 3 * sizeof(void *) &&
                   offsetof(sp_task, data) == 4 * sizeof(void *) &&
                   offsetof(sp_task, policy) == 6 * sizeof(void *) &&
                   offsetof(sp_task, reserved) == 7 * sizeof(void *),
               "sp_task fields moved");
_Static_assert(sizeof(sp_task_policy) == 64, "sp_task_policy changed size");
/* The retry fields and the cancel handle took 28 + sizeof(void *) of the
 * 56 reserved bytes of 0.1, index_keys 4 more. */
_Static_assert(offsetof(sp_options, task_timeout) + sizeof(double) + 56 ==
                       sizeof(sp_options) &&
                   offsetof(sp_options, index_keys) + 28 - sizeof(void *) ==
                       sizeof(sp_options) &&
                   offsetof(sp_options, reserved) + 24 - sizeof(void *) ==
                       sizeof(sp_options),
               "sp_options changed");
_Static_assert(SP_RETRY_FAILED == 1u << SP_KIND_FAILED &&
                   SP_RETRY_CRASHED == 1u << SP_KIND_CRASHED &&
                   SP_RETRY_TIMED_OUT == 1u << SP_KIND_TIMED_OUT,
               "retry bits are 1 << kind");

static int check_seconds(double v, const char *who, const char *name)
{
    SP_CHECK(isfinite(v) && v >= 0 && v < SP_MAX_SECONDS, SP_EOPTION,
             "%s: %s %g must be finite, >= 0 and below %g seconds", who, name,
             v, SP_MAX_SECONDS);
    return 0;
}

int sp_table_retry_error(unsigned retries, unsigned retry_on, int backoff,
                         const char *who)
{
    SP_CHECK(retries <= SP_MAX_RETRIES || retries == SP_NO_RETRIES, SP_EOPTION,
             "%s: retries %u is above the limit %u", who, retries,
             SP_MAX_RETRIES);
    SP_CHECK(!(retry_on & ~SP_RETRY_ALL), SP_EOPTION,
             "%s: retry_on 0x%x has bits other than SP_RETRY_FAILED, "
             "SP_RETRY_CRASHED and SP_RETRY_TIMED_OUT",
             who, retry_on);
    SP_CHECK(backoff == SP_BACKOFF_DEFAULT || backoff == SP_BACKOFF_FIXED ||
                 backoff == SP_BACKOFF_DOUBLING,
             SP_EOPTION, "%s: retry_backoff %d is not a valid sp_backoff", who,
             backoff);
    return 0;
}

int sp_table_policy_error(const sp_task_policy *p, const char *who)
{
    int err = check_seconds(p->time_limit, who, "time_limit");
    if (!err)
        err = check_seconds(p->retry_delay, who, "retry_delay");
    if (!err)
        err = check_seconds(p->retry_delay_max, who, "retry_delay_max");
    if (!err)
        err = sp_table_retry_error(p->retries, p->retry_on,
                                   (int)p->retry_backoff, who);
    if (err)
        return err;
    for (size_t k = 0; k < sizeof p->reserved; k++)
        SP_CHECK(!p->reserved[k], SP_ENOTSUP,
                 "%s: policy reserved[%zu] is not zero; it must be", who, k);
    return 0;
}

/* What is wrong with one row on its own (dependencies are checked once
 * every key is known: sp_table_graph()). Shared with sp_spawn(). */
int sp_table_row_error(const sp_task *t, size_t i)
{
    if (!t->key || !t->key[0])
        return sp_set_error(SP_ENOKEY, "task at index %zu has %s key", i,
                            t->key ? "an empty" : "a NULL");
    if (!t->fn)
        return sp_set_error(SP_ENOFN,
                            "task \"%.*s\" at index %zu has a NULL callback",
                            KEY_SHOWN, t->key, i);
    if (!t->data && t->len)
        return sp_set_error(SP_EINVAL,
                            "task \"%.*s\" at index %zu has len %zu but no "
                            "data",
                            KEY_SHOWN, t->key, i, t->len);
    for (size_t r = 0; r < sizeof t->reserved / sizeof t->reserved[0]; r++)
        if (t->reserved[r])
            return sp_set_error(SP_ENOTSUP,
                                "task \"%.*s\" at index %zu sets reserved "
                                "field %zu; it must be zero",
                                KEY_SHOWN, t->key, i, r);
    if (t->policy) {
        char who[128];
        snprintf(who, sizeof who, "task \"%.*s\" at index %zu", KEY_SHOWN,
                 t->key, i);
        return sp_table_policy_error(t->policy, who);
    }
    return 0;
}

_Static_assert(sizeof((sp_task){0}.reserved) == sizeof(void *),
               "the fast row checks look at one reserved pointer");

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Rows are validated in blocks: hash a block (sequential reads of the
 * table), then insert it into the index while it is still in cache,
 * prefetching each slot: the index is far larger than the caches for big
 * tables and each insert is one random access. */
#define BLOCK 256

/* One share of the table's validation: rows [lo, hi), their keys copied
 * into a chain of its own. `shared`: another thread inserts into the same
 * index at the same time, so slots are claimed with a compare-and-swap. */
struct share {
    const sp_task *tasks;
    sp_results *res;
    size_t lo, hi;
    struct sp_keys *keys; /* its chain of key arenas */
    bool retries, after;
    bool shared;
    int err;
};

/* Put row i (hash h) in the index: 0, or SP_EDUPKEY with *first the row
 * that has the key. With `shared`, slots are accessed atomically: a
 * claimed slot is never written again, so a row that loses the race for a
 * slot reads the winner's (relaxed is enough: what it compares, the
 * caller's keys, was written before the threads started). */
static inline int insert_one(const sp_task *tasks, sp_results *res, size_t i,
                             uint64_t h, bool shared, size_t *first)
{
    const char *key = tasks[i].key;
    uint64_t tag = h >> 32, mine = tag << 32 | (uint64_t)(i + 1);
    for (size_t pos = (size_t)h & res->mask;; pos = (pos + 1) & res->mask) {
        uint64_t slot;
        if (shared) {
            /* The index is plain uint64_t everywhere else; here, while two
             * threads fill it, it is used as _Atomic of the same size. */
            _Atomic uint64_t *a = (_Atomic uint64_t *)&res->slots[pos];
            slot = atomic_load_explicit(a, memory_order_relaxed);
            while (!slot)
                if (atomic_compare_exchange_weak_explicit(a, &slot, mine,
                                                          memory_order_relaxed,
                                                          memory_order_relaxed))
                    return 0;
        } else {
            slot = res->slots[pos];
            if (!slot) {
                res->slots[pos] = mine;
                return 0;
            }
        }
        size_t j = (size_t)(slot & 0xffffffffu) - 1;
        if ((slot >> 32) == tag && strcmp(tasks[j].key, key) == 0) {
            *first = j;
            return SP_EDUPKEY;
        }
    }
}

/* Insert rows [lo, hi) of one block; 0 or SP_EDUPKEY. */
static int insert_block(struct share *sh, size_t lo, size_t hi,
                        const uint64_t *hs, const size_t *ls, char *arena)
{
    const sp_task *tasks = sh->tasks;
    sp_results *res = sh->res;
    for (size_t i = lo; i < hi; i++) {
        if (i + 16 < hi)
            PREFETCH(&res->slots[hs[i + 16 - lo] & res->mask]);
        size_t j = 0;
        if (SP_UNLIKELY(insert_one(tasks, res, i, hs[i - lo], sh->shared, &j)))
            return sh->shared ? SP_EDUPKEY
                              : sp_set_error(SP_EDUPKEY,
                                             "duplicate task key \"%.*s\" at "
                                             "index %zu (first at index %zu)",
                                             KEY_SHOWN, tasks[i].key, i, j);
        size_t len = ls[i - lo];
        memcpy(arena, tasks[i].key, len + 1);
        sp_entry *e = &res->entries[i];
        e->key = arena;
        memset(&e->r, 0, sizeof e->r);
        e->index = (uint32_t)i;
        atomic_init(&e->how, 0);
        arena += len + 1;
    }
    return 0;
}

/* Validate and index one share; sh->err: 0 or the first error met. */
static void index_share(struct share *sh)
{
    const sp_task *tasks = sh->tasks;
    uint64_t hs[BLOCK];
    size_t ls[BLOCK];
    struct sp_keys **tail = &sh->keys;

    for (size_t lo = sh->lo; lo < sh->hi; lo += BLOCK) {
        size_t hi = lo + BLOCK < sh->hi ? lo + BLOCK : sh->hi, total = 0;
        int row_err = 0;
        /* A bad row ends the block; duplicates before it come first. */
        for (size_t i = lo; i < hi; i++) {
            const sp_task *t = &tasks[i];
            if (i + 8 < sh->hi)
                PREFETCH(&tasks[i + 8]);
            /* One test for the common row; anything unusual is looked
             * at. */
            if (SP_UNLIKELY(!t->key || !t->key[0] || !t->fn ||
                            (!t->data && t->len) || t->reserved[0] ||
                            t->policy)) {
                if ((row_err = sp_table_row_error(t, i)) != 0) {
                    hi = i;
                    break;
                }
                if (t->policy && t->policy->retries &&
                    t->policy->retries != SP_NO_RETRIES)
                    sh->retries = true;
            }
            if (SP_UNLIKELY(t->after != NULL))
                sh->after = true;
            ls[i - lo] = strlen(t->key);
            hs[i - lo] = sp_hash(t->key, ls[i - lo]);
            total += ls[i - lo] + 1;
        }
        struct sp_keys *k = sp_malloc(sizeof *k + total + 1);
        if (!k) {
            sh->err = sp_set_error(SP_ENOMEM,
                                   "cannot allocate %zu bytes of keys", total);
            return;
        }
        k->next = NULL;
        *tail = k;
        tail = &k->next;
        int err = insert_block(sh, lo, hi, hs, ls, k->bytes);
        if (err || row_err) {
            sh->err = err ? err : row_err;
            return;
        }
    }
}

static void plain_share(struct share *sh);

/* The helper thread of a split validation: its share, keyed or not. */
static void *share_thread(void *arg)
{
    struct share *sh = arg;
    if (sh->res->by_index)
        plain_share(sh);
    else
        index_share(sh);
    return NULL;
}

/* Tables at least this long are validated by two threads when the call
 * runs on threads: validation is the one part of a call that runs before
 * any worker, and on a keyed table it is about half of a call's cost. */
#define SPLIT_MIN ((size_t)1 << 15)

/* Whether a table of n rows is validated by two threads. */
static bool split_pays(bool split, size_t n)
{
    return split && n >= SPLIT_MIN && sp_online_cpus() > 1;
}

/* Run b's share on a helper thread (signals blocked: the caller's signals
 * stay with its own threads) while the calling thread runs a's. false:
 * the helper could not be started; nothing was done. */
static bool run_shares(struct share *a, struct share *b)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int rc = sp_pthread_create(&t, NULL, share_thread, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return false;
    share_thread(a);
    pthread_join(t, NULL);
    return true;
}

static void free_keys(struct sp_keys *k)
{
    for (struct sp_keys *next; k; k = next) {
        next = k->next;
        free(k);
    }
}

/* The second half of the table on a helper thread while the calling
 * thread does the first. false: the helper could not be started (nothing
 * was done). Any error in either half, or a duplicate across them, undoes
 * both: the caller then runs the one-thread path, whose error names the
 * first offending row in table order as always. */
static bool index_split(const sp_task *tasks, size_t n, sp_results *res,
                        bool *retries, bool *after, int *err)
{
    size_t mid = n / 2;
    struct share a = {.tasks = tasks, .res = res, .hi = mid, .shared = true};
    struct share b = {
        .tasks = tasks, .res = res, .lo = mid, .hi = n, .shared = true};
    if (!run_shares(&a, &b))
        return false;
    if (a.err || b.err) {
        free_keys(a.keys);
        free_keys(b.keys);
        memset(res->slots, 0, (res->mask + 1) * sizeof *res->slots);
        return false;
    }
    struct sp_keys **tail = &a.keys;
    while (*tail)
        tail = &(*tail)->next;
    *tail = b.keys;
    res->keys = a.keys;
    *retries |= a.retries || b.retries;
    *after = a.after || b.after;
    res->ready = n;
    *err = 0;
    return true;
}

int sp_table_index(const sp_task *tasks, size_t n, sp_results *res,
                   bool *retries, bool *after, bool split)
{
    int err = 0;
    if (split_pays(split, n) &&
        index_split(tasks, n, res, retries, after, &err))
        return err;
    struct share sh = {.tasks = tasks, .res = res, .hi = n};
    index_share(&sh);
    res->keys = sh.keys;
    *retries |= sh.retries;
    *after = sh.after;
    if (sh.err)
        return sh.err;
    res->ready = n;
    return 0;
}

/* A row of an index-keyed call that the fast check refused: name the
 * fault. The key and 'after' first: a keyed table passed with the option
 * set is the likely mistake. */
SP_NOINLINE static int plain_row_error(const sp_task *t, size_t i)
{
    if (t->key)
        return sp_set_error(SP_EINVAL,
                            "task at index %zu has the key \"%.*s\" but "
                            "sp_options.index_keys is set: every key of an "
                            "index-keyed table must be NULL",
                            i, KEY_SHOWN, t->key);
    if (t->after)
        return sp_set_error(SP_EINVAL,
                            "task at index %zu has 'after' but "
                            "sp_options.index_keys is set: dependencies name "
                            "keys, so an index-keyed table has none",
                            i);
    if (!t->fn)
        return sp_set_error(SP_ENOFN, "task at index %zu has a NULL callback",
                            i);
    if (!t->data && t->len)
        return sp_set_error(
            SP_EINVAL, "task at index %zu has len %zu but no data", i, t->len);
    for (size_t r = 0; r < sizeof t->reserved / sizeof t->reserved[0]; r++)
        if (t->reserved[r])
            return sp_set_error(SP_ENOTSUP,
                                "task at index %zu sets reserved field %zu; "
                                "it must be zero",
                                i, r);
    if (t->policy) {
        char who[64];
        snprintf(who, sizeof who, "task at index %zu", i);
        return sp_table_policy_error(t->policy, who);
    }
    return 0;
}

/* Check rows [lo, hi) of an index-keyed table and set up their entries;
 * sh->err: 0 or the first error. */
static void plain_share(struct share *sh)
{
    const sp_task *tasks = sh->tasks;
    sp_entry *entries = sh->res->entries;
    for (size_t i = sh->lo; i < sh->hi; i++) {
        const sp_task *t = &tasks[i];
        /* One test for the common row; anything unusual is looked at. */
        if (SP_UNLIKELY(t->key || t->after || !t->fn || (!t->data && t->len) ||
                        t->reserved[0] || t->policy)) {
            if ((sh->err = plain_row_error(t, i)) != 0)
                return;
            if (t->policy->retries && t->policy->retries != SP_NO_RETRIES)
                sh->retries = true;
        }
        sp_entry *e = &entries[i];
        e->key = NULL;
        memset(&e->r, 0, sizeof e->r);
        e->index = (uint32_t)i;
        atomic_init(&e->how, 0);
    }
}

int sp_table_index_plain(const sp_task *tasks, size_t n, sp_results *res,
                         bool *retries, bool split)
{
    if (split_pays(split, n)) {
        struct share a = {.tasks = tasks, .res = res, .hi = n / 2};
        struct share b = {.tasks = tasks, .res = res, .lo = n / 2, .hi = n};
        if (run_shares(&a, &b) && !a.err && !b.err) {
            *retries |= a.retries || b.retries;
            res->ready = n;
            return 0;
        }
        /* An error in either half is found again by one thread, so its
         * message names the first bad row. */
    }
    struct share sh = {.tasks = tasks, .res = res, .hi = n};
    plain_share(&sh);
    if (sh.err)
        return sh.err;
    *retries |= sh.retries;
    res->ready = n;
    return 0;
}

/* ---- dependencies ------------------------------------------------------- */

/* The first dependency of row v that Kahn's algorithm did not take. */
static size_t waits_for(const struct sp_graph *g, const uint32_t *left,
                        size_t v)
{
    for (uint32_t p = g->dep_off[v]; p < g->dep_off[v + 1]; p++)
        if (left[g->deps[p]])
            return g->deps[p];
    return v; /* not reached: a row left over waits for one left over */
}

/* Describe a cycle among the rows Kahn's algorithm did not take: each of
 * them waits for at least one other of them, so following waits_for()
 * from any of them comes back to a row already seen, which is on a
 * cycle. */
static int cycle_error(const struct sp_run *run, const struct sp_graph *g,
                       const uint32_t *left, uint32_t *seen)
{
    const sp_task *t = run->tasks;
    size_t v = 0;
    while (!left[v])
        v++;
    while (!seen[v]) {
        seen[v] = 1;
        v = waits_for(g, left, v);
    }
    /* v is on the cycle; start the message at its lowest row. */
    size_t first = v;
    for (size_t u = waits_for(g, left, v); u != v; u = waits_for(g, left, u))
        if (u < first)
            first = u;
    char msg[400];
    int len = 0;
    size_t u = first;
    for (unsigned hops = 0;; hops++) {
        size_t next = waits_for(g, left, u);
        if (hops == 8 && next != first) {
            len += snprintf(msg + len, sizeof msg - (size_t)len, " ...");
            break;
        }
        len += snprintf(msg + len, sizeof msg - (size_t)len,
                        "%s\"%.*s\" (index %zu) waits for \"%.*s\"",
                        hops ? "; " : "", 24, t[u].key, u, 24, t[next].key);
        if (next == first || len < 0 || (size_t)len >= sizeof msg)
            break;
        u = next;
    }
    return sp_set_error(SP_ECYCLE,
                        "task \"%.*s\" at index %zu is in a dependency "
                        "cycle: %s",
                        KEY_SHOWN, t[first].key, first, msg);
}

int sp_table_graph(struct sp_run *run)
{
    const sp_task *t = run->tasks;
    size_t n = run->n, nedges = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].after)
            continue;
        any = true;
        for (size_t k = 0; t[i].after[k]; k++)
            if (++nedges >= UINT32_MAX)
                return sp_set_error(SP_ETOOMANY,
                                    "more than %u dependencies in the table",
                                    UINT32_MAX - 1);
    }
    if (!any)
        return 0;
    struct sp_graph *g = &run->graph;
    g->dep_off = sp_malloc((n + 1) * sizeof *g->dep_off);
    g->succ_off = sp_calloc(n + 1, sizeof *g->succ_off);
    g->deps = sp_malloc((nedges ? nedges : 1) * sizeof *g->deps);
    g->succ = sp_malloc((nedges ? nedges : 1) * sizeof *g->succ);
    g->pending = sp_malloc(n * sizeof *g->pending);
    g->cause = sp_calloc(n, sizeof *g->cause);
    g->ready = sp_malloc(n * sizeof *g->ready);
    uint32_t *left = sp_calloc(n, sizeof *left); /* Kahn's in-degrees */
    int err = 0;
    if (!g->dep_off || !g->succ_off || !g->deps || !g->succ || !g->pending ||
        !g->cause || !g->ready || !left) {
        err = sp_set_error(SP_ENOMEM,
                           "cannot allocate the graph of %zu "
                           "tasks and %zu dependencies",
                           n, nedges);
        goto out;
    }
    /* Resolve every key; count each row's successors. */
    size_t e = 0;
    for (size_t i = 0; i < n && !err; i++) {
        g->dep_off[i] = (uint32_t)e;
        for (size_t k = 0; t[i].after && t[i].after[k]; k++) {
            const char *key = t[i].after[k];
            size_t j = sp_results_find(run->res, key, strlen(key));
            if (j == SIZE_MAX)
                err = sp_set_error(SP_EDEPKEY,
                                   "task \"%.*s\" at index %zu depends on "
                                   "\"%.*s\", which is not in the table",
                                   KEY_SHOWN, t[i].key, i, KEY_SHOWN, key);
            else if (j == i)
                err = sp_set_error(SP_ECYCLE,
                                   "task \"%.*s\" at index %zu depends on "
                                   "itself",
                                   KEY_SHOWN, t[i].key, i);
            if (err)
                break;
            g->deps[e++] = (uint32_t)j;
            g->succ_off[j + 1]++;
        }
    }
    if (err)
        goto out;
    g->dep_off[n] = (uint32_t)e;
    for (size_t i = 0; i < n; i++)
        g->succ_off[i + 1] += g->succ_off[i];
    /* Fill the successor lists; `left` counts each list's fill for now. */
    for (size_t i = 0; i < n; i++) {
        for (uint32_t p = g->dep_off[i]; p < g->dep_off[i + 1]; p++) {
            uint32_t j = g->deps[p];
            g->succ[g->succ_off[j] + left[j]++] = (uint32_t)i;
        }
    }
    /* Kahn's algorithm, in table order: what is ready at the start forms
     * the scheduler's static list; if some row is never taken, there is a
     * cycle. */
    size_t nready = 0, head = 0, taken = 0;
    for (size_t i = 0; i < n; i++) {
        left[i] = g->dep_off[i + 1] - g->dep_off[i];
        atomic_init(&g->pending[i], left[i]);
        if (!left[i])
            g->ready[nready++] = (uint32_t)i;
    }
    g->nready = nready;
    /* The queue reuses `cause`, zeroed again below. */
    uint32_t *queue = g->cause;
    for (size_t r = 0; r < nready; r++)
        queue[r] = g->ready[r];
    size_t tail = nready;
    while (head < tail) {
        uint32_t v = queue[head++];
        taken++;
        for (uint32_t p = g->succ_off[v]; p < g->succ_off[v + 1]; p++)
            if (--left[g->succ[p]] == 0)
                queue[tail++] = g->succ[p];
    }
    if (taken < n) {
        memset(queue, 0, n * sizeof *queue); /* becomes `seen` */
        err = cycle_error(run, g, left, queue);
        goto out;
    }
    memset(g->cause, 0, n * sizeof *g->cause);
out:
    free(left);
    if (err)
        sp_graph_free(g);
    return err;
}
