/* SPDX-License-Identifier: MIT */
/*
 * Private header shared by the library's own files and its white-box tests.
 * Nothing here is installed or exported.
 */
#ifndef SP_PRIVATE_H
#define SP_PRIVATE_H

#include "simplepar.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

/* Everything the library allocates, every thread and every process it
 * creates goes through these names, so the fault-injection build of the
 * test suite (-DSP_FAULT_INJECTION, tests/fault.c) can make the Nth one
 * fail. The library proper calls the C library directly. */
#ifdef SP_FAULT_INJECTION
void *sp_malloc(size_t size);
void *sp_calloc(size_t n, size_t size);
void *sp_realloc(void *p, size_t size);
void *sp_aligned_alloc(size_t align, size_t size);
int sp_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                      void *(*fn)(void *), void *arg);
pid_t sp_fork(void);
#else
#define sp_malloc malloc
#define sp_calloc calloc
#define sp_realloc realloc
#define sp_aligned_alloc aligned_alloc
#define sp_pthread_create pthread_create
#define sp_fork fork
#endif

/* One entry of the results map. Written only by the worker running its task
 * (or, for cancelled tasks, the worker that skipped it); published to the
 * caller by the completion queue or by joining the worker. */
struct sp_entry {        /* 64 bytes on LP64: one cache line */
    const char *key;     /* into sp_results.keys */
    unsigned char *data; /* owned, len + 1 bytes (NUL-terminated) or NULL */
    size_t len;
    const char *msg;  /* owned when msg_owned, else static; NULL = "" */
    uint64_t t_start; /* ns since the call started */
    uint64_t t_end;
    int code;
    uint32_t index;
    uint32_t worker;
    uint8_t kind; /* sp_kind */
    uint8_t msg_owned;
    uint8_t signo;       /* CRASHED: the signal that killed the worker */
    uint8_t exit_status; /* CRASHED: exit status, valid when SP_EXITED */
};
/* sp_entry.signo value meaning "the worker exited" (no signal). */
#define SP_EXITED 0xff

/* Keys are copied block by block into a chain of arenas, so validation
 * reads the task table once. */
struct sp_keys {
    struct sp_keys *next;
    char bytes[];
};

struct sp_results {
    size_t n;
    size_t ready;         /* entries initialised so far (all n once indexed) */
    sp_entry *entries;    /* n entries, input order */
    struct sp_keys *keys; /* chain of arenas holding every key */
    uint64_t *slots; /* open-addressing index: hash32 << 32 | (index + 1) */
    size_t mask;     /* slot count - 1 */
    uint64_t elapsed_ns;
    unsigned workers;
    size_t counts[5]; /* per sp_kind, filled by the backend */
    /* Whether any entry owns memory (data or message), so freeing a map of
     * bare results need not walk it. Set check-then-store by tasks. */
    atomic_bool owns;
};

static inline void sp_results_note_owned(sp_results *res)
{
    if (!atomic_load_explicit(&res->owns, memory_order_relaxed))
        atomic_store_explicit(&res->owns, true, memory_order_relaxed);
}

/* Why a run stopped starting tasks. */
enum sp_stop {
    SP_STOP_NONE = 0,
    SP_STOP_FAILFAST = 1,
    SP_STOP_DEADLINE = 2,
    SP_STOP_CALLBACK = 3,
    SP_STOP_TIMEOUT = 4, /* per task only: its own time limit passed */
};

/* Everything one call of simple_parallel() shares between its workers. */
struct sp_run {
    const sp_task *tasks;
    size_t n;
    sp_results *res;
    sp_options opts;       /* validated copy, defaults resolved */
    unsigned workers;      /* workers planned for this run */
    uint64_t t0;           /* CLOCK_MONOTONIC ns at entry */
    uint64_t deadline;     /* absolute ns, 0 = none */
    uint64_t task_timeout; /* ns, 0 = none */
    /* enum sp_stop. Points at stop_local, or, in a forked worker, at the
     * flag the parent shares with every worker. */
    _Atomic int *stop;
    _Atomic int stop_local;
};

/* The per-task context. Lives on the worker's stack while the task runs. */
struct sp_ctx {
    struct sp_run *run;
    sp_entry *e;
    size_t index;
    uint64_t start; /* absolute ns */
    unsigned worker;
    int fail_code;  /* set by sp_fail() */
    int saw_cancel; /* enum sp_stop seen by sp_cancelled(), 0 = none */
    bool failed;
    bool oom;
};

/* A backend runs every task of a validated run exactly once (or marks it
 * cancelled), calls on_done on the calling thread, and returns 0; or, when
 * it could not start at all, returns a negative code with nothing run. */
struct sp_backend_ops {
    const char *name;
    int (*run)(struct sp_run *run);
};

extern const struct sp_backend_ops sp_backend_thread;
extern const struct sp_backend_ops sp_backend_serial;
extern const struct sp_backend_ops sp_backend_process;

static inline uint64_t sp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* error.c: record the thread's last-error message, return code. */
int sp_set_error(int code, const char *fmt, ...) SP_PRINTF(2, 3);

/* table.c: validate rows, build the key index and copy the keys into res.
 * Returns 0 or an error code with sp_last_error() set. */
int sp_table_index(const sp_task *tasks, size_t n, sp_results *res);
uint64_t sp_hash(const char *s, size_t len);

/* results.c */
sp_results *sp_results_alloc(size_t n);

/* task.c: run task i on the calling thread, its outcome going to e
 * (normally &run->res->entries[i]); returns the end timestamp. */
uint64_t sp_task_exec(struct sp_run *run, size_t i, unsigned worker,
                      uint64_t start, sp_entry *e);
/* Mark task i as never started because of the run's stop reason. */
void sp_task_cancel(struct sp_run *run, size_t i, uint64_t now);
/* Whether a task may still start at time now; sets the stop reason when the
 * deadline has passed. */
static inline bool sp_run_may_start(struct sp_run *run, uint64_t now)
{
    if (atomic_load_explicit(run->stop, memory_order_relaxed))
        return false;
    if (run->deadline && now >= run->deadline) {
        int none = SP_STOP_NONE;
        atomic_compare_exchange_strong(run->stop, &none, SP_STOP_DEADLINE);
        return false;
    }
    return true;
}
/* Ask the run to stop starting tasks; the first reason wins. */
static inline void sp_run_stop(struct sp_run *run, int why)
{
    int none = SP_STOP_NONE;
    atomic_compare_exchange_strong(run->stop, &none, why);
}

#endif /* SP_PRIVATE_H */
