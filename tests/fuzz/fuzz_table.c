/* SPDX-License-Identifier: MIT */
/* Fuzz target: task-table validation. The input becomes a table: bytes
 * up to each 0xff are one key (0xfe alone = a NULL key, 0xfd in a key =
 * no callback), so keys may be empty, duplicated, huge or binary. The
 * result of simple_parallel() on the serial backend is checked against a
 * slow reference: the first offending row in table order, or every key
 * back with its own result. */
#include "simplepar.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int echo(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_result_str(ctx, sp_ctx_key(ctx));
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
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t n = 0;
    for (size_t start = 0, i = 0; i <= size; i++) {
        if (i < size && (unsigned char)buf[i] != 0xff)
            continue;
        buf[i] = 0;
        char *key = buf + start;
        t[n] = (sp_task){.key = key, .fn = echo};
        if ((unsigned char)key[0] == 0xfe && key[1] == 0)
            t[n].key = NULL;
        else if (strchr(key, 0xfd))
            t[n].fn = NULL;
        n++;
        start = i + 1;
    }
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
        }
    } else if (res || !strstr(sp_last_error(), sp_err_name(rc))) {
        abort();
    }
    sp_results_free(res);
    free(t);
    free(buf);
    return 0;
}
