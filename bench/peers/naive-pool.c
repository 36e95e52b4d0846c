/* SPDX-License-Identifier: MIT */
#include "naive-pool.h"

#include <pthread.h>
#include <stdlib.h>

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t more, done;
    size_t *queue; /* submitted indices */
    size_t head, tail, finished, n;
    peer_fn fn;
    void *arg;
    peer_result *out;
};

static void *worker(void *p_)
{
    struct pool *p = p_;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == p->tail && p->tail < p->n)
            pthread_cond_wait(&p->more, &p->lock);
        if (p->head == p->tail)
            break; /* everything submitted and taken */
        size_t i = p->queue[p->head++];
        pthread_mutex_unlock(&p->lock);
        long v = 0;
        int rc = p->fn(i, p->arg, &v);
        p->out[i].value = v;
        p->out[i].state = rc ? PEER_FAILED : PEER_OK;
        pthread_mutex_lock(&p->lock);
        if (++p->finished == p->n)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int naive_pool_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                   peer_result *out)
{
    struct pool p = {.n = n, .fn = fn, .arg = arg, .out = out};
    pthread_t *th = calloc(workers, sizeof *th);
    p.queue = malloc((n ? n : 1) * sizeof *p.queue);
    if (!th || !p.queue) {
        free(th);
        free(p.queue);
        return -1;
    }
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.more, NULL);
    pthread_cond_init(&p.done, NULL);
    unsigned made = 0;
    for (; made < workers; made++)
        if (pthread_create(&th[made], NULL, worker, &p))
            break;
    /* Without a single worker nothing would ever finish: submit nothing. */
    for (size_t i = 0; made && i < n; i++) {
        pthread_mutex_lock(&p.lock);
        p.queue[p.tail++] = i;
        pthread_cond_signal(&p.more);
        pthread_mutex_unlock(&p.lock);
    }
    pthread_mutex_lock(&p.lock);
    pthread_cond_broadcast(&p.more); /* all submitted: idle workers leave */
    while (made && p.finished < n)
        pthread_cond_wait(&p.done, &p.lock);
    pthread_mutex_unlock(&p.lock);
    for (unsigned k = 0; k < made; k++)
        pthread_join(th[k], NULL);
    pthread_cond_destroy(&p.more);
    pthread_cond_destroy(&p.done);
    pthread_mutex_destroy(&p.lock);
    free(th);
    free(p.queue);
    return made ? 0 : -1;
}
