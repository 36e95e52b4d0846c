/* SPDX-License-Identifier: MIT */
/* The task table: row validation, the key index (open addressing, linear
 * probing) and the map's own copy of every key. */
#include "sp-private.h"

#include <stdlib.h>
#include <string.h>

/* Longest key shown in an error message. */
#define KEY_SHOWN 64

uint64_t sp_hash(const char *s, size_t len)
{
    const uint64_t k = 0x9E3779B97F4A7C15u;
    uint64_t h = (uint64_t)len * k;
    uint64_t w;
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

int sp_table_index(const sp_task *tasks, size_t n, sp_results *res)
{
    sp_entry *entries = res->entries;
    size_t total = 0;

    for (size_t i = 0; i < n; i++) {
        const sp_task *t = &tasks[i];
        int err = row_error(t, i);
        if (err)
            return err;
        size_t len = strlen(t->key);
        uint64_t h = sp_hash(t->key, len);
        uint64_t tag = h >> 32;
        size_t pos = (size_t)h & res->mask;
        for (;;) {
            uint64_t slot = res->slots[pos];
            if (!slot) {
                res->slots[pos] = tag << 32 | (uint64_t)(i + 1);
                break;
            }
            size_t j = (size_t)(slot & 0xffffffffu) - 1;
            if ((slot >> 32) == tag && entries[j].len == len &&
                memcmp(tasks[j].key, t->key, len) == 0)
                return sp_set_error(SP_EDUPKEY,
                                    "duplicate task key \"%.*s\" at index "
                                    "%zu (first at index %zu)",
                                    KEY_SHOWN, t->key, i, j);
            pos = (pos + 1) & res->mask;
        }
        /* Borrow the length field until the keys are copied below. */
        entries[i].len = len;
        total += len + 1;
    }

    res->keys = malloc(total ? total : 1);
    if (!res->keys)
        return sp_set_error(SP_ENOMEM, "cannot allocate %zu bytes of keys",
                            total);
    char *p = res->keys;
    for (size_t i = 0; i < n; i++) {
        size_t len = entries[i].len;
        memcpy(p, tasks[i].key, len + 1);
        entries[i].key = p;
        entries[i].len = 0;
        entries[i].index = (uint32_t)i;
        p += len + 1;
    }
    return 0;
}
