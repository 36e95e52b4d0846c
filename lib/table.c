/* SPDX-License-Identifier: MIT */
/* The task table: row validation, the key index (open addressing, linear
 * probing) and the map's own copy of every key. */
#include "sp-private.h"

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

static int row_error(const sp_task *t, size_t i)
{
    if (!t->key || !t->key[0])
        return sp_set_error(SP_ENOKEY, "task at index %zu has %s key", i,
                            t->key ? "an empty" : "a NULL");
    if (!t->fn)
        return sp_set_error(SP_ENOFN,
                            "task \"%.*s\" at index %zu has a NULL callback",
                            KEY_SHOWN, t->key, i);
    if (t->after)
        return sp_set_error(SP_ENOTSUP,
                            "task \"%.*s\" at index %zu sets 'after': "
                            "dependencies are not supported in version %s",
                            KEY_SHOWN, t->key, i, sp_version_string());
    for (size_t r = 0; r < sizeof t->reserved / sizeof t->reserved[0]; r++)
        if (t->reserved[r])
            return sp_set_error(SP_ENOTSUP,
                                "task \"%.*s\" at index %zu sets reserved "
                                "field %zu; it must be zero",
                                KEY_SHOWN, t->key, i, r);
    return 0;
}

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

/* Insert rows [lo, hi) of one block; 0 or SP_EDUPKEY. */
static int insert_block(const sp_task *tasks, sp_results *res, size_t lo,
                        size_t hi, const uint64_t *hs, const size_t *ls,
                        char *arena)
{
    for (size_t i = lo; i < hi; i++) {
        if (i + 16 < hi)
            PREFETCH(&res->slots[hs[i + 16 - lo] & res->mask]);
        const char *key = tasks[i].key;
        uint64_t h = hs[i - lo], tag = h >> 32;
        for (size_t pos = (size_t)h & res->mask;; pos = (pos + 1) & res->mask) {
            uint64_t slot = res->slots[pos];
            if (!slot) {
                res->slots[pos] = tag << 32 | (uint64_t)(i + 1);
                break;
            }
            size_t j = (size_t)(slot & 0xffffffffu) - 1;
            if ((slot >> 32) == tag && strcmp(tasks[j].key, key) == 0)
                return sp_set_error(SP_EDUPKEY,
                                    "duplicate task key \"%.*s\" at index "
                                    "%zu (first at index %zu)",
                                    KEY_SHOWN, key, i, j);
        }
        size_t len = ls[i - lo];
        memcpy(arena, key, len + 1);
        res->entries[i] = (sp_entry){.key = arena, .index = (uint32_t)i};
        arena += len + 1;
    }
    return 0;
}

int sp_table_index(const sp_task *tasks, size_t n, sp_results *res)
{
    uint64_t hs[BLOCK];
    size_t ls[BLOCK];
    struct sp_keys **tail = &res->keys;

    for (size_t lo = 0; lo < n; lo += BLOCK) {
        size_t hi = lo + BLOCK < n ? lo + BLOCK : n, total = 0;
        int row_err = 0;
        /* A bad row ends the block; duplicates before it come first. */
        for (size_t i = lo; i < hi; i++) {
            const sp_task *t = &tasks[i];
            if (i + 8 < n)
                PREFETCH(&tasks[i + 8]);
            if ((row_err = row_error(t, i)) != 0) {
                hi = i;
                break;
            }
            ls[i - lo] = strlen(t->key);
            hs[i - lo] = sp_hash(t->key, ls[i - lo]);
            total += ls[i - lo] + 1;
        }
        struct sp_keys *k = sp_malloc(sizeof *k + total + 1);
        if (!k)
            return sp_set_error(SP_ENOMEM, "cannot allocate %zu bytes of keys",
                                total);
        k->next = NULL;
        *tail = k;
        tail = &k->next;
        int err = insert_block(tasks, res, lo, hi, hs, ls, k->bytes);
        if (err || row_err)
            return err ? err : row_err;
    }
    res->ready = n;
    return 0;
}
