/* SPDX-License-Identifier: MIT */
/* Timelines: seed 000's ASCII Gantt chart, and the same chart as SVG. */
#include "simplepar/mockapi.h"

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

/* Text with the five XML specials escaped. */
static void xml(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&apos;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

SP_API int sp_mock_timeline_svg(FILE *out, const sp_mock_event *ev, size_t n)
{
    double t0, span;
    sp_mock_event *s = sorted(ev, n, &t0, &span);
    if (!s)
        return -1;
    /* Lanes in order of first appearance. */
    const char **lanes = malloc((n ? n : 1) * sizeof *lanes);
    size_t nl = 0;
    if (!lanes) {
        free(s);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nl && strcmp(lanes[k], s[i].lane))
            k++;
        if (k == nl)
            lanes[nl++] = s[i].lane;
    }
    const int left = 110, right = 20, top = 30, row = 24, plot = 760;
    int height = top + (int)nl * row + 40;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" font-family=\"monospace\" font-size=\"11\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"18\" font-size=\"13\">Timeline "
            "(full width = %.3f s)</text>\n",
            left + plot + right, height, left, span);
    for (size_t k = 0; k < nl; k++) {
        fprintf(out, "<text x=\"4\" y=\"%d\">", top + (int)k * row + 16);
        xml(out, lanes[k]);
        fputs("</text>\n", out);
    }
    for (int t = 0; t <= 10; t++) {
        int x = left + plot * t / 10;
        fprintf(out,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "stroke=\"#ddd\"/>\n<text x=\"%d\" y=\"%d\" "
                "text-anchor=\"middle\">%.2fs</text>\n",
                x, top, x, top + (int)nl * row, x, top + (int)nl * row + 16,
                span * t / 10);
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (strcmp(lanes[k], s[i].lane))
            k++;
        double x = left + (s[i].start - t0) / span * plot;
        double w = (s[i].end - s[i].start) / span * plot;
        if (w < 1)
            w = 1;
        int y = top + (int)k * row + 3;
        fprintf(out,
                "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                "fill=\"#4a90d9\" stroke=\"#2a5f99\"><title>",
                x, y, w, row - 6);
        xml(out, s[i].label);
        fprintf(out,
                " (%.3f s)</title></rect>\n<text x=\"%.1f\" y=\"%d\" "
                "fill=\"black\">",
                s[i].end - s[i].start, x + 2, y + 13);
        xml(out, s[i].label);
        fputs("</text>\n", out);
    }
    fputs("</svg>\n", out);
    free(lanes);
    free(s);
    return ferror(out) ? -1 : 0;
}
