/* SPDX-License-Identifier: MIT */
/* The fork server (lib/backend/process/forkserver.c) on its own: workers
 * are the server's children in their own process groups with only their
 * channel of the library's descriptors; how they end is reported as
 * waitpid() would; workers forked while other threads hold a lock and
 * allocate never inherit that lock; the caller's signal state reaches the
 * workers but not the server; stop leaves no process, zombie or
 * descriptor; a dead server is an error, never a hang; many threads share
 * one server; the hooks' failures are reported. White-box: links the core
 * archive and the fault-injection hooks (tests/fault.c). */
#define _DEFAULT_SOURCE /* getpgid */
#include "common.h"
#include "fault.h"

#include "backend/process/forkserver.h"
#include "backend/process/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    return sp_now() / 1000000u;
}

/* Append s, or decimal v, at p; return the end (no stdio in workers). */
static char *put_s(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char *put_n(char *p, long v)
{
    char tmp[24];
    int n = 0;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static void say(int fd, const char *buf, const char *end)
{
    while (buf < end) {
        ssize_t n = write(fd, buf, (size_t)(end - buf));
        if (n <= 0)
            _exit(99);
        buf += n;
    }
}

static void say_ok(int fd)
{
    static const char ok[] = "ok\n";
    say(fd, ok, ok + 3);
}

/* One byte from the caller, then exit with code; EOF first: exit 100. */
static _Noreturn void await_byte_and_exit(int ch, int code)
{
    char c;
    ssize_t n;
    while ((n = read(ch, &c, 1)) < 0 && errno == EINTR)
        ;
    _exit(n == 1 ? code : 100);
}

/* A line from fd (without its '\n') within ms: its length, or -1. */
static int get_line(int fd, char *buf, size_t size, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    size_t len = 0;
    while (len + 1 < size) {
        uint64_t t = now_ms();
        if (t >= end)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)(end - t));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = read(fd, buf + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (buf[len] == '\n') {
            buf[len] = 0;
            return (int)len;
        }
        len++;
    }
    return -1;
}

/* Whether fd reaches EOF within ms (whatever it says before). */
static bool eof_within(int fd, unsigned ms)
{
    char buf[64];
    uint64_t end = now_ms() + ms;
    for (uint64_t t; (t = now_ms()) < end;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(end - t)) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            return true;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return true; /* ECONNRESET: the other end died too */
    }
    return false;
}

/* pid no longer runs: no such process, or a zombie (of some other
 * process's, e.g. init's, not reaped yet). */
static bool is_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static bool gone_within(pid_t pid, unsigned ms)
{
    for (uint64_t end = now_ms() + ms; now_ms() < end; test_sleep_ms(1))
        if (is_gone(pid))
            return true;
    return is_gone(pid);
}

/* No child of this process is left, not even a zombie. */
static bool no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void close_worker(struct sp_fs_worker *w)
{
    assert_int_equal(sp_fds_close(w->fd), 0);
    assert_int_equal(sp_fds_close(w->pidfd), 0);
}

static void fork_ok(struct sp_forkserver *fs, unsigned index,
                    struct sp_fs_worker *w)
{
    int rc = sp_forkserver_fork(fs, index, w);
    if (rc)
        fail_msg("sp_forkserver_fork: %s", sp_last_error());
    assert_true(w->pid > 0);
    assert_true(w->fd >= 0);
    assert_true(fcntl(w->fd, F_GETFD) & FD_CLOEXEC);
    if (w->pidfd >= 0)
        assert_true(fcntl(w->pidfd, F_GETFD) & FD_CLOEXEC);
}

static int reap_ok(struct sp_forkserver *fs, pid_t pid)
{
    int status = -1;
    int rc = sp_forkserver_reap(fs, pid, &status);
    if (rc)
        fail_msg("sp_forkserver_reap: %s", sp_last_error());
    return status;
}

/* Says its index, waits for a byte, exits with the index. */
static void main_echo(void *arg, unsigned index, int ch)
{
    (void)arg;
    char buf[16], *p = put_n(buf, index);
    *p++ = '\n';
    say(ch, buf, p);
    await_byte_and_exit(ch, (int)(index % 128));
}

/* ---- 1. workers are the server's children ------------------------------- */

/* The caller's descriptors when the server was started: a worker holds
 * these (they are not the library's) and its channel, nothing more. */
static bool before_fds[1024];

static void snapshot_fds(void)
{
    memset(before_fds, 0, sizeof before_fds);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd != dirfd(d) && fd < 1024)
            before_fds[fd] = true;
    }
    closedir(d);
}

/* Writes "index ppid pgid extra", extra being the descriptors it holds
 * beyond the caller's of before and its channel; then waits for a byte. */
static void main_report(void *arg, unsigned index, int ch)
{
    (void)arg;
    int extra = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *de; (de = readdir(d)) != NULL;) {
            int fd = atoi(de->d_name);
            /* Valgrind keeps its own near the limit: fds >= 1024 */
            extra += de->d_name[0] != '.' && fd != dirfd(d) && fd != ch &&
                     fd < 1024 && !before_fds[fd];
        }
        closedir(d);
    } else
        extra = -1;
    char buf[96], *p = buf;
    p = put_n(p, index);
    p = put_s(p, " ");
    p = put_n(p, getppid());
    p = put_s(p, " ");
    p = put_n(p, getpgid(0));
    p = put_s(p, " ");
    p = put_n(p, extra);
    p = put_s(p, "\n");
    say(ch, buf, p);
    await_byte_and_exit(ch, (int)index);
}

static void test_workers_are_the_servers_children(void **state)
{
    (void)state;
    snapshot_fds();
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_report, NULL), 0);
    pid_t spid = sp_forkserver_pid(fs);
    assert_true(spid > 0 && spid != getpid());
    assert_int_equal(getpgid(spid), spid); /* out of the caller's group */
    assert_int_not_equal(getpgid(spid), getpgrp());

    struct sp_fs_worker w[3];
    for (unsigned k = 0; k < 3; k++)
        fork_ok(fs, 10 + k, &w[k]);
    for (unsigned k = 0; k < 3; k++) {
        char line[96];
        long idx, ppid, pgid, extra;
        assert_true(get_line(w[k].fd, line, sizeof line, test_ms(5000)) > 0);
        assert_int_equal(
            sscanf(line, "%ld %ld %ld %ld", &idx, &ppid, &pgid, &extra), 4);
        assert_int_equal(idx, 10 + k);
        assert_int_equal(ppid, spid);     /* forked by the server */
        assert_int_equal(pgid, w[k].pid); /* leads its own group */
        assert_int_equal(extra, 0); /* no server socket, no other channel */
    }
    for (unsigned k = 0; k < 3; k++) {
        assert_int_equal(write(w[k].fd, "x", 1), 1);
        int st = reap_ok(fs, w[k].pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 10 + k);
        close_worker(&w[k]);
    }
    /* Reaped already: not the server's any more. */
    int st;
    assert_int_equal(sp_forkserver_reap(fs, w[0].pid, &st), SP_ESYSTEM);
    assert_non_null(strstr(sp_last_error(), "cannot reap worker"));
    sp_forkserver_stop(fs);
    sp_forkserver_stop(NULL);
    assert_true(no_children());
}

/* ---- 2. how workers end ------------------------------------------------- */

/* 0: SIGSEGV; 1: abort(); 2: starts a process in its group, says its pid
 * and waits to be killed. */
static void main_crash(void *arg, unsigned index, int ch)
{
    (void)arg;
    if (index == 0) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    } else if (index == 1) {
        abort();
    }
    pid_t gc = fork();
    if (gc == 0) {
        close(ch);
        for (;;)
            pause();
    }
    char buf[32], *p = put_n(buf, gc);
    *p++ = '\n';
    say(ch, buf, p);
    await_byte_and_exit(ch, 0);
}

static void test_how_workers_end(void **state)
{
    (void)state;
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_crash, NULL), 0);
    struct sp_fs_worker w[3];
    for (unsigned k = 0; k < 3; k++)
        fork_ok(fs, k, &w[k]);

    assert_true(eof_within(w[0].fd, test_ms(5000)));
    int st = reap_ok(fs, w[0].pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);

    assert_true(eof_within(w[1].fd, test_ms(5000)));
    st = reap_ok(fs, w[1].pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);

    char line[32];
    assert_true(get_line(w[2].fd, line, sizeof line, test_ms(5000)) > 0);
    pid_t gc = (pid_t)atol(line);
    assert_true(gc > 0);
    assert_false(is_gone(gc));
    /* The group id stays reserved until the reap: safe to signal. */
    assert_int_equal(kill(-w[2].pid, SIGKILL), 0);
    st = reap_ok(fs, w[2].pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_true(gone_within(gc, test_ms(5000))); /* killed with its group */

    for (unsigned k = 0; k < 3; k++)
        close_worker(&w[k]);
    sp_forkserver_stop(fs);
    assert_true(no_children());
}

/* ---- 3. a lock held by the caller's threads is never inherited ----------- */

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool busy_stop;
static atomic_long busy_rounds;

static void *busy_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&busy_stop)) {
        pthread_mutex_lock(&busy_lock);
        nanosleep(&(struct timespec){0, 50000}, NULL);
        pthread_mutex_unlock(&busy_lock);
        for (int k = 0; k < 16; k++) {
            seed = seed * 1103515245u + 12345u;
            char *p = malloc(16 + (seed >> 16) % 4096);
            if (p)
                p[0] = (char)k;
            free(p);
        }
        atomic_fetch_add(&busy_rounds, 1);
    }
    return NULL;
}

static void busy_start(pthread_t t[4])
{
    atomic_store(&busy_stop, false);
    atomic_store(&busy_rounds, 0);
    for (uintptr_t k = 0; k < 4; k++)
        assert_int_equal(pthread_create(&t[k], NULL, busy_thread, (void *)k),
                         0);
    while (atomic_load(&busy_rounds) < 8) /* they are at it */
        test_sleep_ms(1);
}

static void busy_end(pthread_t t[4])
{
    atomic_store(&busy_stop, true);
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
}

/* Takes the lock the caller's threads hammer, allocates, reports. */
static void main_locks(void *arg, unsigned index, int ch)
{
    (void)arg;
    (void)index;
    pthread_mutex_lock(&busy_lock);
    char *p = malloc(1000);
    if (p)
        memset(p, 1, 1000);
    free(p);
    pthread_mutex_unlock(&busy_lock);
    say_ok(ch);
    _exit(0);
}

enum { BUSY_WORKERS = 50 };

/* Every worker reports within the limit; a stuck one is killed. Returns
 * how many were stuck. */
static int collect_reports(struct sp_forkserver *fs,
                           struct sp_fs_worker w[BUSY_WORKERS])
{
    int stuck = 0;
    for (unsigned k = 0; k < BUSY_WORKERS; k++) {
        char line[8];
        bool ok = get_line(w[k].fd, line, sizeof line, test_ms(5000)) == 2 &&
                  !strcmp(line, "ok");
        if (!ok) {
            stuck++;
            kill(-w[k].pid, SIGKILL);
        }
        int st = reap_ok(fs, w[k].pid);
        if (ok)
            assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close_worker(&w[k]);
    }
    return stuck;
}

static void test_busy_lock_is_not_inherited(void **state)
{
    (void)state;
    struct sp_forkserver *fs; /* while the test is single-threaded */
    assert_int_equal(sp_forkserver_start(&fs, main_locks, NULL), 0);
    pthread_t t[4];
    busy_start(t);
    struct sp_fs_worker w[BUSY_WORKERS];
    for (unsigned k = 0; k < BUSY_WORKERS; k++)
        fork_ok(fs, k, &w[k]);
    int stuck = collect_reports(fs, w);
    busy_end(t);
    sp_forkserver_stop(fs);
    assert_int_equal(stuck, 0);
    assert_true(no_children());
}

/* The server itself may be forked while the caller's threads are busy: it
 * takes no lock and allocates nothing, so it always serves (even under
 * ASan, whose allocator is not fork-safe: nothing here allocates after the
 * fork; the workers only write). */
static void main_plain(void *arg, unsigned index, int ch)
{
    (void)arg;
    (void)index;
    say_ok(ch);
    _exit(0);
}

static void test_server_started_among_busy_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    busy_start(t);
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_plain, NULL), 0);
    struct sp_fs_worker w[BUSY_WORKERS];
    for (unsigned k = 0; k < BUSY_WORKERS; k++)
        fork_ok(fs, k, &w[k]);
    int stuck = collect_reports(fs, w);
    busy_end(t);
    sp_forkserver_stop(fs);
    assert_int_equal(stuck, 0);
    assert_true(no_children());
}

/* ---- 4. the caller's signal state ---------------------------------------- */

static volatile sig_atomic_t got_int;

static void on_int(int sig)
{
    (void)sig;
    got_int = 1;
}

/* Reports "chld int usr1 usr2": SIGCHLD ignored, SIGINT at the caller's
 * handler, SIGUSR1 blocked, SIGUSR2 not (1 = as the caller set it). */
static void main_signals(void *arg, unsigned index, int ch)
{
    (void)arg;
    struct sigaction chld, intr;
    sigset_t mask;
    sigaction(SIGCHLD, NULL, &chld);
    sigaction(SIGINT, NULL, &intr);
    sigprocmask(SIG_SETMASK, NULL, &mask);
    char buf[32], *p = buf;
    p = put_n(p, chld.sa_handler == SIG_IGN);
    p = put_s(p, " ");
    p = put_n(p, intr.sa_handler == on_int);
    p = put_s(p, " ");
    p = put_n(p, sigismember(&mask, SIGUSR1) == 1);
    p = put_s(p, " ");
    p = put_n(p, sigismember(&mask, SIGUSR2) == 0);
    p = put_s(p, "\n");
    say(ch, buf, p);
    await_byte_and_exit(ch, (int)index);
}

static void test_caller_signal_state(void **state)
{
    (void)state;
    struct sigaction ign = {0}, hnd = {0}, old_chld, old_int;
    ign.sa_handler = SIG_IGN;
    hnd.sa_handler = on_int;
    sigemptyset(&ign.sa_mask);
    sigemptyset(&hnd.sa_mask);
    sigaction(SIGCHLD, &ign, &old_chld);
    sigaction(SIGINT, &hnd, &old_int);
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);

    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_signals, NULL), 0);
    pid_t spid = sp_forkserver_pid(fs);
    /* Every signal is blocked in the server: these change nothing. */
    assert_int_equal(kill(spid, SIGINT), 0);
    assert_int_equal(kill(spid, SIGTERM), 0);
    assert_int_equal(kill(spid, SIGCHLD), 0);
    assert_int_equal(kill(spid, SIGUSR2), 0);
    got_int = 0;
    assert_int_equal(kill(getpid(), SIGINT), 0); /* the caller's handler */
    for (unsigned ms = 0; !got_int && ms < test_ms(5000); ms++)
        test_sleep_ms(1); /* TSan delivers signals late */
    assert_int_equal(got_int, 1);

    struct sp_fs_worker w[2];
    for (unsigned k = 0; k < 2; k++) {
        fork_ok(fs, 20 + k, &w[k]);
        char line[32];
        assert_true(get_line(w[k].fd, line, sizeof line, test_ms(5000)) > 0);
        assert_string_equal(line, "1 1 1 1");
        assert_int_equal(write(w[k].fd, "x", 1), 1);
        /* The server reaps as usual though the caller ignores SIGCHLD. */
        int st = reap_ok(fs, w[k].pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 20 + k);
        close_worker(&w[k]);
    }
    assert_false(is_gone(spid));
    sp_forkserver_stop(fs); /* its exit is reaped by the kernel: no hang */
    assert_true(gone_within(spid, test_ms(5000)));

    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
    assert_true(no_children());
}

/* ---- 5. stop with workers running --------------------------------------- */

static void test_stop_ends_everything(void **state)
{
    (void)state;
    int fds = test_open_fds();
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_crash, NULL), 0);
    pid_t spid = sp_forkserver_pid(fs);
    struct sp_fs_worker w[4];
    pid_t gc[4];
    for (unsigned k = 0; k < 4; k++) {
        fork_ok(fs, 2, &w[k]); /* index 2: a process in its group, waits */
        char line[32];
        assert_true(get_line(w[k].fd, line, sizeof line, test_ms(5000)) > 0);
        gc[k] = (pid_t)atol(line);
    }
    sp_forkserver_stop(fs);
    assert_true(is_gone(spid));
    for (unsigned k = 0; k < 4; k++) {
        assert_true(is_gone(w[k].pid)); /* killed and reaped by the server */
        assert_true(eof_within(w[k].fd, test_ms(5000)));
        assert_true(gone_within(gc[k], test_ms(5000)));
        close_worker(&w[k]);
    }
    assert_int_equal(test_open_fds(), fds);
    assert_true(no_children());
}

/* ---- 6. a server killed from outside ------------------------------------- */

static void test_dead_server_is_an_error(void **state)
{
    (void)state;
    int fds = test_open_fds();
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), 0);
    struct sp_fs_worker w;
    fork_ok(fs, 2, &w); /* main_echo: says 2, waits */
    char line[32];
    assert_true(get_line(w.fd, line, sizeof line, test_ms(5000)) > 0);
    pid_t spid = sp_forkserver_pid(fs);
    assert_int_equal(kill(spid, SIGKILL), 0);

    struct sp_fs_worker w2;
    assert_int_equal(sp_forkserver_fork(fs, 0, &w2), SP_ESYSTEM);
    assert_non_null(strstr(sp_last_error(), "fork server"));
    assert_non_null(strstr(sp_last_error(), "is gone"));
    int st;
    assert_int_equal(sp_forkserver_reap(fs, w.pid, &st), SP_ESYSTEM);
    assert_int_equal(sp_forkserver_fork(fs, 0, &w2), SP_ESYSTEM);
#if defined(__linux__)
    /* Its workers die with it (PR_SET_PDEATHSIG). */
    assert_true(eof_within(w.fd, test_ms(5000)));
    assert_true(gone_within(w.pid, test_ms(5000)));
#endif
    close_worker(&w);
    sp_forkserver_stop(fs);
    assert_int_equal(test_open_fds(), fds);
    assert_true(no_children());
}

/* ---- 7. many caller threads, one server ---------------------------------- */

enum { CALLERS = 4, PER_CALLER = 20 };
static atomic_int caller_errors;

static void *caller_thread(void *arg)
{
    struct sp_forkserver *fs = arg;
    static _Atomic unsigned next_index;
    struct sp_fs_worker w[PER_CALLER];
    unsigned idx[PER_CALLER];
    int n = 0;
    for (; n < PER_CALLER; n++) {
        idx[n] = atomic_fetch_add(&next_index, 1);
        if (sp_forkserver_fork(fs, idx[n], &w[n])) {
            atomic_fetch_add(&caller_errors, 1);
            break;
        }
    }
    for (int k = 0; k < n; k++) {
        char line[16];
        bool said = get_line(w[k].fd, line, sizeof line, test_ms(5000)) > 0 &&
                    (unsigned)atol(line) == idx[k];
        bool killed = k % 2 == 1; /* every other one is killed */
        if (killed)
            kill(-w[k].pid, SIGKILL);
        else if (write(w[k].fd, "x", 1) != 1)
            said = false;
        int st = 0;
        if (sp_forkserver_reap(fs, w[k].pid, &st) || !said ||
            (killed ? !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL
                    : !WIFEXITED(st) || WEXITSTATUS(st) != (int)(idx[k] % 128)))
            atomic_fetch_add(&caller_errors, 1);
        sp_fds_close(w[k].fd);
        sp_fds_close(w[k].pidfd);
    }
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    (void)state;
    int fds = test_open_fds();
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), 0);
    atomic_store(&caller_errors, 0);
    pthread_t t[CALLERS];
    for (int k = 0; k < CALLERS; k++)
        assert_int_equal(pthread_create(&t[k], NULL, caller_thread, fs), 0);
    for (int k = 0; k < CALLERS; k++)
        pthread_join(t[k], NULL);
    sp_forkserver_stop(fs);
    assert_int_equal(atomic_load(&caller_errors), 0);
    assert_int_equal(test_open_fds(), fds);
    assert_true(no_children());
}

/* A reap that waits for a running worker holds up no other request. */
struct reaper {
    struct sp_forkserver *fs;
    pid_t pid;
    int rc, status;
    atomic_bool done;
};

static void *reaper_thread(void *arg)
{
    struct reaper *r = arg;
    r->rc = sp_forkserver_reap(r->fs, r->pid, &r->status);
    atomic_store(&r->done, true);
    return NULL;
}

static void test_waiting_reap_blocks_nothing(void **state)
{
    (void)state;
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), 0);
    struct sp_fs_worker a, b;
    fork_ok(fs, 1, &a);
    struct reaper r = {.fs = fs, .pid = a.pid};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reaper_thread, &r), 0);
    test_sleep_ms(20); /* the reaper now waits for a */
    fork_ok(fs, 2, &b);
    char line[16];
    assert_true(get_line(b.fd, line, sizeof line, test_ms(5000)) > 0);
    assert_string_equal(line, "2");
    assert_int_equal(write(b.fd, "x", 1), 1);
    int st = reap_ok(fs, b.pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    assert_false(atomic_load(&r.done)); /* a still runs */
    assert_int_equal(write(a.fd, "x", 1), 1);
    pthread_join(t, NULL);
    assert_int_equal(r.rc, 0);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
    close_worker(&a);
    close_worker(&b);
    sp_forkserver_stop(fs);
    assert_true(no_children());
}

/* Without waiting: a worker whose helper keeps its channel open is seen
 * to end only by asking the server. */
static void main_helper_then_exit(void *arg, unsigned index, int ch)
{
    (void)arg;
    pid_t helper = fork(); /* keeps the channel; in the worker's group */
    if (helper == 0) {
        for (;;)
            pause();
    }
    say_ok(ch);
    await_byte_and_exit(ch, (int)index);
}

static void test_poll_without_waiting(void **state)
{
    (void)state;
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_helper_then_exit, NULL), 0);
    struct sp_fs_worker w;
    fork_ok(fs, 7, &w);
    char line[8];
    assert_true(get_line(w.fd, line, sizeof line, test_ms(5000)) > 0);
    int st = -1;
    assert_int_equal(sp_forkserver_poll(fs, w.pid, &st), 0); /* it waits */
    assert_int_equal(write(w.fd, "x", 1), 1);
    int rc = 0;
    for (unsigned ms = 0; ms < test_ms(5000); ms++) {
        if ((rc = sp_forkserver_poll(fs, w.pid, &st)) != 0)
            break;
        test_sleep_ms(1);
    }
    assert_int_equal(rc, 1);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    assert_false(eof_within(w.fd, 50)); /* the helper holds the channel */
    /* Reaped: not the server's any more. */
    assert_int_equal(sp_forkserver_poll(fs, w.pid, &st), SP_ESYSTEM);
    assert_int_equal(kill(-w.pid, SIGKILL), 0); /* the helper */
    assert_true(eof_within(w.fd, test_ms(5000)));
    close_worker(&w);
    sp_forkserver_stop(fs);
    assert_true(no_children());
}

/* ---- the descriptor registry and stdio ----------------------------------- */

struct fdlist {
    int fd[8];
    int n;
};

/* A one-shot process-backend worker: none of the listed fds is open. */
static int none_open(sp_ctx *ctx, void *arg)
{
    const struct fdlist *l = arg;
    for (int k = 0; k < l->n; k++)
        if (fcntl(l->fd[k], F_GETFD) >= 0)
            return sp_fail(ctx, SP_EINVAL, "fd %d is open", l->fd[k]);
    return 0;
}

static void test_listed_descriptors(void **state)
{
    (void)state;
    snapshot_fds();
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), 0);
    struct sp_fs_worker w;
    fork_ok(fs, 3, &w);
    /* Everything the server's calls opened here: its socket and pidfd,
     * the worker's channel and pidfd. */
    struct fdlist l = {.n = 0};
    for (int fd = 0; fd < 1024; fd++)
        if (!before_fds[fd] && fcntl(fd, F_GETFD) >= 0 && l.n < 8)
            l.fd[l.n++] = fd;
    assert_true(l.n >= 2);
    sp_task t = {.key = "check", .fn = none_open, .arg = &l};
    sp_options o = {.backend = SP_BACKEND_PROCESS};
    sp_results *res;
    assert_int_equal(simple_parallel(&t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("%s", sp_entry_message(e));
    sp_results_free(res);
    assert_int_equal(write(w.fd, "x", 1), 1);
    int st = reap_ok(fs, w.pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    close_worker(&w);
    sp_forkserver_stop(fs);
}

/* What the caller buffered before the start is not printed again by a
 * worker that flushes its stdio. */
static void main_flush(void *arg, unsigned index, int ch)
{
    (void)arg;
    (void)index;
    fflush(NULL);
    say_ok(ch);
    _exit(0);
}

static void test_stdio_flushed_once(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fputs("once", f); /* buffered */
    struct sp_forkserver *fs;
    assert_int_equal(sp_forkserver_start(&fs, main_flush, NULL), 0);
    struct sp_fs_worker w;
    fork_ok(fs, 0, &w);
    char line[8];
    assert_true(get_line(w.fd, line, sizeof line, test_ms(5000)) > 0);
    int st = reap_ok(fs, w.pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close_worker(&w);
    sp_forkserver_stop(fs);
    char back[32] = {0};
    rewind(f);
    size_t n = fread(back, 1, sizeof back - 1, f);
    fclose(f);
    assert_int_equal(n, 4);
    assert_string_equal(back, "once");
}

/* ---- 8. injected failures ------------------------------------------------ */

static void test_injected_failures(void **state)
{
    (void)state;
    int fds = test_open_fds();
    struct sp_forkserver *fs = (struct sp_forkserver *)&fs;
    for (long n = 1; n <= 2; n++) { /* each of the caller's allocations */
        atomic_store(&fi->alloc, n);
        assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), SP_ENOMEM);
        assert_null(fs);
        atomic_store(&fi->alloc, 0);
    }
    atomic_store(&fi->fork, 1);
    assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), SP_EFORK);
    assert_null(fs);
    assert_non_null(strstr(sp_last_error(), "fork server: fork: "));
    assert_int_equal(test_open_fds(), fds);
    assert_true(no_children());

    /* The server's own fork goes through the hook too (the counters are
     * shared with it): the failure comes back with its errno text, and the
     * server goes on. */
    assert_int_equal(sp_forkserver_start(&fs, main_echo, NULL), 0);
    atomic_store(&fi->fork, 1);
    struct sp_fs_worker w;
    assert_int_equal(sp_forkserver_fork(fs, 0, &w), SP_EFORK);
    char text[96];
    assert_non_null(
        strstr(sp_last_error(), sp_errno_text(EAGAIN, text, sizeof text)));
    assert_int_equal(atomic_load(&fi->fork), 0);
    fork_ok(fs, 5, &w);
    assert_int_equal(write(w.fd, "x", 1), 1);
    int st = reap_ok(fs, w.pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    close_worker(&w);
    sp_forkserver_stop(fs);
    assert_int_equal(test_open_fds(), fds);
    assert_true(no_children());
}

int main(void)
{
    fi_init();
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_ONLY")) /* e.g. TEST_ONLY=test_stop* */
        cmocka_set_test_filter(getenv("TEST_ONLY"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_are_the_servers_children),
        cmocka_unit_test(test_how_workers_end),
        cmocka_unit_test(test_busy_lock_is_not_inherited),
        cmocka_unit_test(test_server_started_among_busy_threads),
        cmocka_unit_test(test_caller_signal_state),
        cmocka_unit_test(test_stop_ends_everything),
        cmocka_unit_test(test_dead_server_is_an_error),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_waiting_reap_blocks_nothing),
        cmocka_unit_test(test_poll_without_waiting),
        cmocka_unit_test(test_listed_descriptors),
        cmocka_unit_test(test_stdio_flushed_once),
        cmocka_unit_test(test_injected_failures),
    };
    return cmocka_run_group_tests_name("forkserver", tests, NULL, NULL);
}
