/* SPDX-License-Identifier: MIT */
/* Trace export: any results map as Chrome trace-event JSON
 * (sp_results_write_trace) and as an SVG Gantt chart (sp_results_write_svg).
 *
 * Reads the map only through its public accessors (sp_results_count,
 * sp_results_at, sp_entry_*), never struct sp_results itself, so it does
 * not care how the map is laid out. The JSON schema is documented in
 * include/simplepar.h and docs/guide.md and versioned by
 * TRACE_SCHEMA_VERSION: fields may be added; anything else bumps it. */
#include "sp-gantt.h"
#include "sp-private.h"

#include <string.h>

#define TRACE_SCHEMA "simplepar-trace"
#define TRACE_SCHEMA_VERSION 1

/* SP_EIO with the failing call and the system's reason. */
static int io_error(const char *fn, const sp_out *o)
{
    char why[128] = "the stream's error indicator is set";
    if (o->err)
        sp_errno_text(o->err, why, sizeof why);
    return sp_set_error(SP_EIO, "%s: %s: %s", fn, o->call, why);
}

/* Worker tracks: the workers the run used, and any higher index an entry
 * or an earlier attempt names; *never_ran is set when some task has no
 * worker. *earlier: how many earlier attempts the map keeps. */
static unsigned worker_tracks(const sp_results *res, int *never_ran,
                              size_t *earlier)
{
    unsigned tracks = sp_results_workers(res);
    *never_ran = 0;
    *earlier = 0;
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        unsigned w = sp_entry_worker(e);
        if (w == SP_NO_WORKER)
            *never_ran = 1;
        else if (w >= tracks)
            tracks = w + 1;
        for (unsigned k = 1; k < sp_entry_attempts(e); k++) {
            const sp_entry *a = sp_entry_attempt(e, k);
            if (!a)
                continue;
            ++*earlier;
            w = sp_entry_worker(a);
            if (w != SP_NO_WORKER && w >= tracks)
                tracks = w + 1;
        }
    }
    return tracks;
}

/* The end of the time axis: the call's wall time, or a later end. */
static double time_end(const sp_results *res)
{
    double t1 = sp_results_elapsed(res);
    for (size_t i = 0; i < sp_results_count(res); i++) {
        double e = sp_entry_end(sp_results_at(res, i));
        if (e > t1)
            t1 = e;
    }
    return t1;
}

/* ---- JSON -----------------------------------------------------------------
 */

/* s as a JSON string literal: quotes and backslashes escaped, control
 * characters as \b \f \n \r \t or \u00XX, ill-formed UTF-8 as \ufffd (see
 * sp_utf8()), everything else as it is. */
static void json_str(sp_out *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char buf[256];
    size_t n = 0;
    unsigned long cp;
    buf[n++] = '"';
    for (int len; (len = sp_utf8(p, &cp)) != 0;) {
        char one[8];
        const char *rep = one;
        if (len < 0) {
            rep = "\\ufffd";
        } else if (cp == '"') {
            rep = "\\\"";
        } else if (cp == '\\') {
            rep = "\\\\";
        } else if (cp < 0x20) {
            switch (cp) {
            case '\b':
                rep = "\\b";
                break;
            case '\f':
                rep = "\\f";
                break;
            case '\n':
                rep = "\\n";
                break;
            case '\r':
                rep = "\\r";
                break;
            case '\t':
                rep = "\\t";
                break;
            default:
                snprintf(one, sizeof one, "\\u%04x", (unsigned)cp);
            }
        } else {
            memcpy(one, p, (size_t)len);
            one[len] = 0;
        }
        p += len > 0 ? len : -len;
        size_t rl = strlen(rep);
        if (n + rl > sizeof buf - 1) {
            sp_out_write(o, buf, n);
            n = 0;
        }
        memcpy(buf + n, rep, rl);
        n += rl;
    }
    buf[n++] = '"';
    sp_out_write(o, buf, n);
}

/* Seconds as whole nanoseconds (0 for negative values and NaN). Events
 * are written from these, so a task's ts + dur is exactly its end and never
 * overlaps the next task's ts on the same track through rounding. */
static unsigned long long to_ns(double seconds)
{
    double x = seconds > 0 ? seconds * 1e9 + 0.5 : 0;
    return x < 9e18 ? (unsigned long long)x : 9000000000000000000ull;
}

/* Nanoseconds as microseconds with three decimals. */
static void json_us(sp_out *o, unsigned long long ns)
{
    sp_out_printf(o, "%llu.%03u", ns / 1000, (unsigned)(ns % 1000));
}

static void track_meta(sp_out *o, unsigned tid, const char *name)
{
    sp_out_printf(o,
                  ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,"
                  "\"tid\":%u,\"args\":{\"name\":",
                  tid);
    json_str(o, name);
    sp_out_printf(o,
                  "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\","
                  "\"pid\":1,\"tid\":%u,\"args\":{\"sort_index\":%u}}",
                  tid, tid);
}

/* A task's name in the trace and the chart: its key, or "#I" (its index)
 * in a map of an index-keyed call, whose keys are "". buf: 24 bytes. */
static const char *task_name(const sp_entry *e, char *buf)
{
    const char *key = sp_entry_key(e);
    if (key[0])
        return key;
    snprintf(buf, 24, "#%zu", sp_entry_index(e));
    return buf;
}

/* An earlier attempt a (number n) of its task: a slice on its worker's
 * track, args.attempt saying which. */
static void attempt_event(sp_out *o, const sp_entry *a, unsigned n)
{
    char name[24];
    unsigned long long start = to_ns(sp_entry_start(a)),
                       end = to_ns(sp_entry_end(a));
    sp_kind kind = sp_entry_kind(a);
    sp_out_puts(o, ",\n{\"name\":");
    json_str(o, task_name(a, name));
    sp_out_puts(o, ",\"cat\":");
    json_str(o, sp_kind_name(kind));
    sp_out_printf(
        o, ",\"ph\":\"X\",\"pid\":1,\"tid\":%u,\"ts\":", sp_entry_worker(a));
    json_us(o, start);
    sp_out_puts(o, ",\"dur\":");
    json_us(o, end > start ? end - start : 0);
    sp_out_printf(o, ",\"args\":{\"index\":%zu,\"attempt\":%u,\"kind\":",
                  sp_entry_index(a), n);
    json_str(o, sp_kind_name(kind));
    sp_out_printf(o, ",\"code\":%d,\"message\":", sp_entry_code(a));
    json_str(o, sp_entry_message(a));
    if (kind == SP_KIND_CRASHED)
        sp_out_printf(o, ",\"signal\":%d,\"exit_status\":%d",
                      sp_entry_signal(a), sp_entry_exit_status(a));
    sp_out_puts(o, "}}");
}

static void task_event(sp_out *o, const sp_entry *e, unsigned idle_track)
{
    char name[24];
    unsigned w = sp_entry_worker(e);
    sp_kind kind = sp_entry_kind(e);
    unsigned long long start = to_ns(sp_entry_start(e)),
                       end = to_ns(sp_entry_end(e));
    size_t bytes = 0;
    sp_entry_data(e, &bytes);

    sp_out_puts(o, ",\n{\"name\":");
    json_str(o, task_name(e, name));
    sp_out_puts(o, ",\"cat\":");
    json_str(o, sp_kind_name(kind));
    if (w == SP_NO_WORKER) {
        sp_out_printf(o,
                      ",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%u,\"ts\":",
                      idle_track);
        json_us(o, start);
    } else {
        sp_out_printf(o, ",\"ph\":\"X\",\"pid\":1,\"tid\":%u,\"ts\":", w);
        json_us(o, start);
        sp_out_puts(o, ",\"dur\":");
        json_us(o, end > start ? end - start : 0);
    }
    sp_out_printf(o, ",\"args\":{\"index\":%zu,\"kind\":", sp_entry_index(e));
    json_str(o, sp_kind_name(kind));
    sp_out_printf(o, ",\"code\":%d,\"message\":", sp_entry_code(e));
    json_str(o, sp_entry_message(e));
    sp_out_printf(o, ",\"result_bytes\":%zu", bytes);
    if (kind == SP_KIND_CRASHED)
        sp_out_printf(o, ",\"signal\":%d,\"exit_status\":%d",
                      sp_entry_signal(e), sp_entry_exit_status(e));
    sp_cancel_reason why = sp_entry_cancel_reason(e);
    if (why != SP_CANCEL_NONE) {
        sp_out_puts(o, ",\"cancel_reason\":");
        json_str(o, sp_cancel_reason_name(why));
    }
    unsigned attempts = sp_entry_attempts(e);
    sp_out_printf(o, ",\"attempts\":%u", attempts);
    if (attempts > 1) { /* the first attempt: the event is the last one */
        sp_out_puts(o, ",\"first_kind\":");
        json_str(o, sp_kind_name(sp_entry_first_kind(e)));
        sp_out_printf(
            o, ",\"first_code\":%d,\"first_message\":", sp_entry_first_code(e));
        json_str(o, sp_entry_first_message(e));
    }
    sp_out_puts(o, "}}");
}

SP_API int sp_results_write_trace(const sp_results *res, FILE *f)
{
    SP_CHECK(res, SP_EINVAL,
             "sp_results_write_trace: the 'res' argument is NULL");
    SP_CHECK(f, SP_EINVAL, "sp_results_write_trace: the 'f' argument is NULL");
    int never_ran;
    size_t earlier;
    unsigned tracks = worker_tracks(res, &never_ran, &earlier);
    size_t n = sp_results_count(res);
    sp_out o = {.f = f};

    sp_out_puts(&o, "{\"traceEvents\":[\n{\"name\":\"process_name\","
                    "\"ph\":\"M\",\"pid\":1,\"tid\":0,"
                    "\"args\":{\"name\":\"simplepar\"}}");
    for (unsigned w = 0; w < tracks && !o.call; w++) {
        char name[32];
        snprintf(name, sizeof name, "worker %u", w);
        track_meta(&o, w, name);
    }
    if (never_ran)
        track_meta(&o, tracks, "not started");
    for (size_t i = 0; i < n && !o.call; i++)
        task_event(&o, sp_results_at(res, i), tracks);
    for (size_t i = 0; i < n && earlier && !o.call; i++) {
        const sp_entry *e = sp_results_at(res, i);
        for (unsigned k = 1; k < sp_entry_attempts(e); k++) {
            const sp_entry *a = sp_entry_attempt(e, k);
            if (a)
                attempt_event(&o, a, k);
        }
    }
    sp_out_printf(&o,
                  "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{"
                  "\"schema\":\"" TRACE_SCHEMA "\",\"schema_version\":%d,"
                  "\"library\":\"simplepar %s\",\"tasks\":%zu,"
                  "\"workers\":%u,\"ok\":%zu,\"failed\":%zu,\"elapsed_us\":",
                  TRACE_SCHEMA_VERSION, sp_version_string(), n,
                  sp_results_workers(res), sp_results_ok(res),
                  sp_results_failed(res));
    json_us(&o, to_ns(sp_results_elapsed(res)));
    sp_out_puts(&o, "}}\n");
    if (sp_out_finish(&o))
        return io_error("sp_results_write_trace", &o);
    return 0;
}

/* ---- SVG ------------------------------------------------------------------
 */

struct svg_src {
    const sp_results *res;
    unsigned tracks;
    /* Bars past the entries are earlier attempts: bar n + j is attempt
     * past[j].n of entry past[j].i. */
    struct {
        size_t i;
        unsigned n;
    } * past;
    char detail[256];
    char name[24]; /* the bar's label in an index-keyed map */
};

static const char *svg_row(void *src, size_t row, char *buf, size_t len)
{
    struct svg_src *s = src;
    if (row >= s->tracks)
        return "not started";
    snprintf(buf, len, "worker %zu", row);
    return buf;
}

static void svg_bar(void *src, size_t i, sp_gantt_bar *out)
{
    struct svg_src *s = src;
    size_t n = sp_results_count(s->res);
    const sp_entry *e, *task = NULL;
    unsigned attempt = 0;
    if (i < n) {
        e = sp_results_at(s->res, i);
    } else { /* an earlier attempt */
        task = sp_results_at(s->res, s->past[i - n].i);
        attempt = s->past[i - n].n;
        e = sp_entry_attempt(task, attempt);
        i = s->past[i - n].i;
    }
    unsigned w = sp_entry_worker(e);
    sp_kind kind = sp_entry_kind(e);
    char a[32], b[32], d[32];
    *out = (sp_gantt_bar){
        .row = w == SP_NO_WORKER ? s->tracks : w,
        .colour = (unsigned)kind,
        .marker = w == SP_NO_WORKER,
        .index = i,
        .attempt = attempt,
        .start = sp_entry_start(e),
        .end = sp_entry_end(e),
        .label = task_name(e, s->name),
    };
    sp_fmt_fixed(a, sizeof a, out->start, 6);
    int len;
    if (out->marker)
        len = snprintf(s->detail, sizeof s->detail,
                       "%s, never started (at %s s), code %d",
                       sp_kind_name(kind), a, sp_entry_code(e));
    else
        len = snprintf(s->detail, sizeof s->detail,
                       "%s on worker %u, %s s to %s s (%s s), code %d",
                       sp_kind_name(kind), w, a,
                       sp_fmt_fixed(b, sizeof b, out->end, 6),
                       sp_fmt_fixed(d, sizeof d, out->end - out->start, 6),
                       sp_entry_code(e));
    if (kind == SP_KIND_CRASHED && len > 0 && (size_t)len < sizeof s->detail) {
        if (sp_entry_signal(e))
            len += snprintf(s->detail + len, sizeof s->detail - (size_t)len,
                            ", signal %d", sp_entry_signal(e));
        else if (sp_entry_exit_status(e) >= 0)
            len += snprintf(s->detail + len, sizeof s->detail - (size_t)len,
                            ", exit status %d", sp_entry_exit_status(e));
    }
    unsigned attempts = sp_entry_attempts(task ? task : e);
    if (task && len > 0 && (size_t)len < sizeof s->detail)
        snprintf(s->detail + len, sizeof s->detail - (size_t)len,
                 ", attempt %u of %u", attempt, attempts);
    else if (attempts > 1 && len > 0 && (size_t)len < sizeof s->detail)
        snprintf(s->detail + len, sizeof s->detail - (size_t)len,
                 ", the last of %u attempts (the first %s, code %d)", attempts,
                 sp_kind_name(sp_entry_first_kind(e)), sp_entry_first_code(e));
    out->detail = s->detail;
    const char *msg = sp_entry_message(e);
    out->note = *msg ? msg : NULL;
}

SP_API int sp_results_write_svg(const sp_results *res, FILE *f)
{
    SP_CHECK(res, SP_EINVAL,
             "sp_results_write_svg: the 'res' argument is NULL");
    SP_CHECK(f, SP_EINVAL, "sp_results_write_svg: the 'f' argument is NULL");
    int never_ran;
    size_t earlier;
    struct svg_src src = {.res = res};
    src.tracks = worker_tracks(res, &never_ran, &earlier);
    size_t n = sp_results_count(res);
    /* Out of memory for their list, the chart has no earlier attempts. */
    if (earlier && !(src.past = sp_calloc(earlier, sizeof *src.past)))
        earlier = 0;
    if (earlier) {
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            const sp_entry *e = sp_results_at(res, i);
            for (unsigned k = 1; k < sp_entry_attempts(e); k++)
                if (sp_entry_attempt(e, k)) {
                    src.past[j].i = i;
                    src.past[j++].n = k;
                }
        }
    }

    const char *legend[SP_GANTT_COLOURS] = {0};
    for (size_t i = 0; i < n + earlier; i++) {
        const sp_entry *e =
            i < n ? sp_results_at(res, i)
                  : sp_entry_attempt(sp_results_at(res, src.past[i - n].i),
                                     src.past[i - n].n);
        unsigned k = (unsigned)sp_entry_kind(e);
        if (k < SP_GANTT_COLOURS)
            legend[k] = sp_kind_name((sp_kind)k);
    }
    char title[160], secs[32];
    unsigned workers = sp_results_workers(res);
    snprintf(title, sizeof title,
             "simplepar: %zu task%s on %u worker%s in %s s (%zu ok, %zu not "
             "ok)",
             n, n == 1 ? "" : "s", workers, workers == 1 ? "" : "s",
             sp_fmt_secs(secs, sizeof secs, sp_results_elapsed(res)),
             sp_results_ok(res), sp_results_failed(res));
    sp_gantt g = {
        .title = title,
        .rows = src.tracks + (never_ran ? 1 : 0),
        .bars = n + earlier,
        .t0 = 0,
        .t1 = time_end(res),
        .src = &src,
        .row_name = svg_row,
        .bar = svg_bar,
        .legend = legend,
    };
    sp_out o = {.f = f};
    sp_gantt_svg(&o, &g);
    free(src.past);
    if (sp_out_finish(&o))
        return io_error("sp_results_write_svg", &o);
    return 0;
}
