/* SPDX-License-Identifier: MIT */
/* Timelines: seed 000's ASCII Gantt chart, and the same chart as SVG. */
#include "simplepar/mockapi.h"

#include "../sp-gantt.h"

#include <stdlib.h>
#include <string.h>

SP_API size_t sp_mock_events_from_results(const sp_results *res,
                                          sp_mock_event *out, char *lanes,
                                          size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sp_results_count(res) && n < max; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_worker(e) == SP_NO_WORKER)
            continue; /* never ran: no bar */
        char *lane = lanes + n * 16;
        snprintf(lane, 16, "worker-%u", sp_entry_worker(e));
        out[n++] = (sp_mock_event){lane, sp_entry_key(e), sp_entry_start(e),
                                   sp_entry_end(e)};
    }
    return n;
}

static int by_start(const void *a, const void *b)
{
    const sp_mock_event *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* A sorted copy, and the span it covers. */
static sp_mock_event *sorted(const sp_mock_event *ev, size_t n, double *t0,
                             double *span)
{
    sp_mock_event *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return NULL;
    memcpy(s, ev, n * sizeof *s);
    qsort(s, n, sizeof *s, by_start);
    double lo = n ? s[0].start : 0, hi = lo;
    for (size_t i = 0; i < n; i++)
        if (s[i].end > hi)
            hi = s[i].end;
    *t0 = lo;
    *span = hi - lo > 0 ? hi - lo : 1e-9;
    return s;
}

SP_API void sp_mock_timeline_text(FILE *out, const sp_mock_event *ev, size_t n,
                                  int width)
{
    double t0, span;
    if (!n)
        return;
    if (width <= 0)
        width = 60;
    sp_mock_event *s = sorted(ev, n, &t0, &span);
    if (!s)
        return;
    char *line = malloc((size_t)width + 1);
    if (!line) {
        free(s);
        return;
    }
    fprintf(out, "\nTimeline (full width = %.1fs):\n\n", span);
    for (size_t i = 0; i < n; i++) {
        int lead = (int)((s[i].start - t0) / span * width);
        int bar = (int)((s[i].end - s[i].start) / span * width);
        if (bar < 1)
            bar = 1;
        if (lead >= width)
            lead = width - 1;
        if (lead + bar > width)
            bar = width - lead;
        memset(line, ' ', (size_t)width);
        memset(line + lead, '#', (size_t)bar);
        line[width] = 0;
        fprintf(out, " %-10s |%s| %s (%.1fs)\n", s[i].lane, line, s[i].label,
                s[i].end - s[i].start);
    }
    free(line);
    free(s);
}

/* The SVG chart is drawn by the core's Gantt renderer (lib/sp-gantt.h), the
 * one behind sp_results_write_svg(), so both charts look and escape alike:
 * here the rows are the events' lanes in order of first appearance and
 * every bar has the first colour. */
struct svg_src {
    const sp_mock_event *ev; /* sorted by start */
    const char **lanes;
    size_t *row; /* lane of each event */
    char detail[48];
};

static const char *svg_row(void *src, size_t row, char *buf, size_t len)
{
    (void)buf;
    (void)len;
    return ((struct svg_src *)src)->lanes[row];
}

static void svg_bar(void *src, size_t i, sp_gantt_bar *out)
{
    struct svg_src *s = src;
    char secs[32];
    snprintf(s->detail, sizeof s->detail, "%s s",
             sp_fmt_fixed(secs, sizeof secs, s->ev[i].end - s->ev[i].start, 3));
    *out = (sp_gantt_bar){.row = s->row[i],
                          .index = i,
                          .start = s->ev[i].start,
                          .end = s->ev[i].end,
                          .label = s->ev[i].label,
                          .detail = s->detail};
}

SP_API int sp_mock_timeline_svg(FILE *out, const sp_mock_event *ev, size_t n)
{
    double t0, span;
    sp_mock_event *s = sorted(ev, n, &t0, &span);
    const char **lanes = malloc((n ? n : 1) * sizeof *lanes);
    size_t *row = malloc((n ? n : 1) * sizeof *row);
    int rc = -1;
    if (!s || !lanes || !row)
        goto out;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nl && strcmp(lanes[k], s[i].lane))
            k++;
        if (k == nl)
            lanes[nl++] = s[i].lane;
        row[i] = k;
    }
    char title[64];
    snprintf(title, sizeof title, "Timeline: %zu event%s", n,
             n == 1 ? "" : "s");
    struct svg_src src = {.ev = s, .lanes = lanes, .row = row};
    sp_gantt g = {.title = title,
                  .rows = nl,
                  .bars = n,
                  .t0 = t0,
                  .t1 = t0 + span,
                  .src = &src,
                  .row_name = svg_row,
                  .bar = svg_bar};
    sp_out o = {.f = out};
    sp_gantt_svg(&o, &g);
    rc = sp_out_finish(&o);
out:
    free(row);
    free(lanes);
    free(s);
    return rc;
}
