/* SPDX-License-Identifier: MIT */
/* Fuzz target: task-table validation, dependencies included. The input
 * becomes a table: bytes up to each 0xff are one row (0xfe alone = a NULL
 * key, 0xfd in a row = no callback); 0xfc splits a row into its key and
 * the keys of its 'after' list. So keys may be empty, duplicated, huge or
 * binary, and dependencies unknown, on oneself or in cycles. The result of
 * simple_parallel() on the serial backend is checked against a slow
 * reference: the first offending row in table order (rows, then
 * dependencies, then cycles), or every key back with its own result, each
 * task having run after the tasks it waits for. The rows then run again
 * as an index-keyed table (sp_options.index_keys) with part of the keys
 * made NULL: refused at the first row with a key or an after list, or
 * every entry back by index. */
#include "simplepar.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t ran; /* tasks run so far: each records its turn */
static size_t *turn;

static int echo(sp_ctx *ctx, void *arg)
{
    (void)arg;
    turn[sp_ctx_index(ctx)] = ++ran;
    return sp_set_result_str(ctx, sp_ctx_key(ctx));
}

static size_t find(const sp_task *t, size_t n, const char *key)
{
    for (size_t j = 0; j < n; j++)
        if (!strcmp(t[j].key, key))
            return j;
    return SIZE_MAX;
}

/* Depth-first search for a cycle: 1 = on the path, 2 = done. */
static int has_cycle(const sp_task *t, size_t n, size_t v, char *mark)
{
    if (mark[v] == 1)
        return 1;
    if (mark[v] == 2)
        return 0;
    mark[v] = 1;
    for (size_t k = 0; t[v].after && t[v].after[k]; k++)
        if (has_cycle(t, n, find(t, n, t[v].after[k]), mark))
            return 1;
    mark[v] = 2;
    return 0;
}

/* The error the reference expects, 0 for none. */
static int reference(const sp_task *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].key || !t[i].key[0])
            return SP_ENOKEY;
        if (!t[i].fn)
            return SP_ENOFN;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t[i].key, t[j].key))
                return SP_EDUPKEY;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; t[i].after && t[i].after[k]; k++) {
            size_t j = find(t, n, t[i].after[k]);
            if (j == SIZE_MAX)
                return SP_EDEPKEY;
            if (j == i)
                return SP_ECYCLE;
        }
    }
    char *mark = calloc(n + 1, 1);
    int cycle = 0;
    for (size_t i = 0; i < n && !cycle; i++)
        cycle = has_cycle(t, n, i, mark);
    free(mark);
    return cycle ? SP_ECYCLE : 0;
}

/* The same for an index-keyed table: the first row, in table order, with
 * a key or an after list (SP_EINVAL) or no callback. */
static int reference_plain(const sp_task *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].key || t[i].after)
            return SP_EINVAL;
        if (!t[i].fn)
            return SP_ENOFN;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    sp_task *t = calloc(size + 1, sizeof *t);
    if (!buf || !t)
        abort();
    /* Every 0xfc is a pointer in some after list (+ one NULL per row). */
    const char **lists = calloc(2 * size + 2, sizeof *lists);
    turn = calloc(size + 1, sizeof *turn);
    if (!lists || !turn)
        abort();
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t n = 0, used = 0;
    for (size_t start = 0, i = 0; i <= size; i++) {
        if (i < size && (unsigned char)buf[i] != 0xff)
            continue;
        buf[i] = 0;
        char *key = buf + start;
        t[n] = (sp_task){.key = key, .fn = echo};
        if ((unsigned char)key[0] == 0xfe && key[1] == 0) {
            t[n].key = NULL;
        } else {
            if (strchr(key, 0xfd))
                t[n].fn = NULL;
            char *dep = strchr(key, 0xfc);
            if (dep) {
                t[n].after = lists + used;
                while (dep) {
                    *dep++ = 0;
                    lists[used++] = dep;
                    dep = strchr(dep, 0xfc);
                }
                lists[used++] = NULL;
            }
        }
        n++;
        start = i + 1;
    }
    ran = 0;
    sp_options o = {.backend = SP_BACKEND_SERIAL};
    sp_results *res = NULL;
    int want = reference(t, n);
    int rc = simple_parallel(t, n, &o, &res);
    if (rc != want)
        abort();
    if (rc == 0) {
        if (sp_results_ok(res) != n)
            abort();
        for (size_t i = 0; i < n; i++) {
            const sp_entry *e = sp_results_get(res, t[i].key);
            if (sp_entry_index(e) != i || strcmp(sp_entry_str(e), t[i].key))
                abort();
            for (size_t k = 0; t[i].after && t[i].after[k]; k++)
                if (turn[find(t, n, t[i].after[k])] >= turn[i])
                    abort(); /* ran before what it waits for */
        }
    } else if (res || !strstr(sp_last_error(), sp_err_name(rc))) {
        abort();
    }
    sp_results_free(res);
    res = NULL;

    /* The same rows as an index-keyed table: keys whose first byte is even
     * become NULL, the others stay and must be refused. */
    for (size_t i = 0; i < n; i++)
        if (t[i].key && !((unsigned char)t[i].key[0] & 1))
            t[i].key = NULL;
    ran = 0;
    o.index_keys = 1;
    want = reference_plain(t, n);
    rc = simple_parallel(t, n, &o, &res);
    if (rc != want)
        abort();
    if (rc == 0) {
        if (sp_results_ok(res) != n || sp_results_get(res, "x"))
            abort();
        for (size_t i = 0; i < n; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_index(e) != i || strcmp(sp_entry_str(e), "") ||
                strcmp(sp_entry_key(e), "") || turn[i] != i + 1)
                abort(); /* serial: table order */
        }
    } else if (res || !strstr(sp_last_error(), sp_err_name(rc))) {
        abort();
    }
    sp_results_free(res);
    free(lists);
    free(turn);
    free(t);
    free(buf);
    return 0;
}
