/* SPDX-License-Identifier: MIT */
/* The SVG Gantt chart behind sp_results_write_svg() (lib/trace.c) and the
 * mock-API module's SVG timeline (lib/mockapi/timeline.c): one renderer, so
 * both charts look alike and escape text the same way. Static functions
 * only, for the reason given in sp-out.h. */
#ifndef SP_GANTT_H
#define SP_GANTT_H

#include "sp-out.h"

/* Palette: one colour per result kind (sp_kind's values), the first also
 * the colour of bars that have no kind. */
enum { SP_GANTT_COLOURS = 6 };
static const char *const sp_gantt_fill[SP_GANTT_COLOURS] = {
    "#4a90d9", "#e8a33d", "#d0021b", "#8e44ad", "#9e9e9e", "#c8b88a"};
static const char *const sp_gantt_stroke[SP_GANTT_COLOURS] = {
    "#2a5f99", "#a86f1d", "#80010f", "#5b2a70", "#616161", "#8a7a4c"};

/* One bar, as the source describes it. The strings are borrowed until the
 * next call of the source's bar(). */
typedef struct sp_gantt_bar {
    size_t row;         /* 0 .. rows-1 */
    unsigned colour;    /* index into the palette */
    int marker;         /* 1: a point in time (a task that never ran) */
    size_t index;       /* written as data-index */
    unsigned attempt;   /* not 0: an earlier attempt of the task, drawn
                           paler as class "attempt" with data-attempt */
    double start, end;  /* seconds on the chart's clock */
    const char *label;  /* drawn on the bar; first line of the tooltip */
    const char *detail; /* second line of the tooltip, or NULL */
    const char *note;   /* third line of the tooltip, or NULL */
} sp_gantt_bar;

typedef struct sp_gantt {
    const char *title; /* heading, plain text (escaped here) */
    size_t rows, bars;
    double t0, t1; /* the time axis runs from t0 to t1 (seconds) */
    void *src;
    /* Name of a row: a static string or one written into buf. */
    const char *(*row_name)(void *src, size_t row, char *buf, size_t len);
    /* Bar i (0 .. bars-1) into *out. */
    void (*bar)(void *src, size_t i, sp_gantt_bar *out);
    /* Legend: names of the palette entries in use (NULL = not listed);
     * legend itself NULL = no legend. */
    const char *const *legend;
} sp_gantt;

/* Tick step: 1, 2 or 5 times a power of ten, at most ten steps over span;
 * *decimals receives the digits its labels need. */
static double sp_gantt_step(double span, int *decimals)
{
    static const double mant[] = {1, 2, 5};
    double pow10 = 1e-9;
    int exp10 = -9;
    for (;;) {
        for (int k = 0; k < 3; k++) {
            double step = mant[k] * pow10;
            if (span / step <= 10 || exp10 >= 12) {
                *decimals = exp10 < 0 ? -exp10 : 0;
                return step;
            }
        }
        pow10 *= 10;
        exp10++;
    }
}

/* Write the chart as a standalone SVG document. Returns 0 or -1 (o->call
 * names the failing call); does not flush. */
static int sp_gantt_svg(sp_out *o, const sp_gantt *g)
{
    enum { LEFT = 120, PLOT = 760, RIGHT = 20, TOP = 36, ROW = 22 };
    double span = g->t1 - g->t0;
    if (!(span > 1e-9))
        span = 1e-9;
    if (span > 1e12)
        span = 1e12;
    size_t nlegend = 0;
    for (unsigned c = 0; g->legend && c < SP_GANTT_COLOURS; c++)
        nlegend += g->legend[c] != NULL;
    unsigned long long plot_h = (unsigned long long)g->rows * ROW;
    unsigned long long axis_y = TOP + plot_h;
    unsigned long long height = axis_y + 36 + (nlegend ? 24 : 0);
    char a[32], b[32], c2[32];

    sp_out_printf(o,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                  "width=\"%d\" height=\"%llu\" viewBox=\"0 0 %d %llu\" "
                  "font-family=\"monospace\" font-size=\"11\">\n<title>",
                  LEFT + PLOT + RIGHT, height, LEFT + PLOT + RIGHT, height);
    sp_out_xml(o, g->title, 0);
    sp_out_puts(o, "</title>\n<rect width=\"100%\" height=\"100%\" "
                   "fill=\"white\"/>\n<text x=\"4\" y=\"20\" "
                   "font-size=\"13\">");
    sp_out_xml(o, g->title, 0);
    sp_out_puts(o, "</text>\n<g class=\"rows\">\n");
    for (size_t r = 0; r < g->rows; r++) {
        char name[64];
        unsigned long long y = TOP + (unsigned long long)r * ROW;
        if (r % 2)
            sp_out_printf(o,
                          "<rect class=\"row\" x=\"%d\" y=\"%llu\" "
                          "width=\"%d\" height=\"%d\" fill=\"#f4f4f4\"/>\n",
                          LEFT, y, PLOT, ROW);
        sp_out_printf(o, "<text x=\"4\" y=\"%llu\">", y + 15);
        sp_out_xml(o, g->row_name(g->src, r, name, sizeof name), 16);
        sp_out_puts(o, "</text>\n");
    }
    sp_out_puts(o, "</g>\n<g class=\"axis\" stroke=\"#ccc\">\n");
    int decimals;
    double step = sp_gantt_step(span, &decimals);
    for (unsigned k = 0; k * step <= span * (1 + 1e-9); k++) {
        sp_fmt_fixed(a, sizeof a, LEFT + k * step / span * PLOT, 1);
        sp_out_printf(o,
                      "<line x1=\"%s\" y1=\"%d\" x2=\"%s\" y2=\"%llu\"/>\n"
                      "<text x=\"%s\" y=\"%llu\" stroke=\"none\" "
                      "text-anchor=\"middle\">%s</text>\n",
                      a, TOP, a, axis_y + 4, a, axis_y + 16,
                      sp_fmt_fixed(b, sizeof b, k * step, decimals));
    }
    sp_out_printf(o,
                  "<text x=\"%d\" y=\"%llu\" stroke=\"none\" "
                  "text-anchor=\"end\">seconds (full width = %s s)</text>\n"
                  "</g>\n<g class=\"tasks\">\n",
                  LEFT + PLOT, axis_y + 30, sp_fmt_secs(b, sizeof b, span));

    for (size_t i = 0; i < g->bars && !o->call; i++) {
        sp_gantt_bar bar = {0};
        g->bar(g->src, i, &bar);
        unsigned col = bar.colour < SP_GANTT_COLOURS ? bar.colour : 0;
        double x = LEFT + (bar.start - g->t0) / span * PLOT;
        double w = (bar.end - bar.start) / span * PLOT;
        if (!(x >= LEFT)) /* also NaN */
            x = LEFT;
        if (x > LEFT + PLOT)
            x = LEFT + PLOT;
        if (!(w >= 1))
            w = 1;
        if (x + w > LEFT + PLOT + RIGHT)
            w = LEFT + PLOT + RIGHT - x;
        unsigned long long y = TOP + (unsigned long long)bar.row * ROW + 3;
        sp_fmt_fixed(a, sizeof a, x, 1);
        if (bar.marker)
            sp_out_printf(o,
                          "<path class=\"marker\" data-index=\"%zu\" "
                          "d=\"M%s %llul5 8l-5 8l-5 -8z\" fill=\"%s\" "
                          "stroke=\"%s\"><title>",
                          bar.index, a, y, sp_gantt_fill[col],
                          sp_gantt_stroke[col]);
        else if (bar.attempt)
            sp_out_printf(o,
                          "<rect x=\"%s\" y=\"%llu\" width=\"%s\" "
                          "height=\"%d\" fill=\"%s\" stroke=\"%s\" "
                          "fill-opacity=\"0.45\" stroke-dasharray=\"3 2\" "
                          "class=\"attempt\" data-index=\"%zu\" "
                          "data-attempt=\"%u\"><title>",
                          a, y, sp_fmt_fixed(b, sizeof b, w, 1), ROW - 6,
                          sp_gantt_fill[col], sp_gantt_stroke[col], bar.index,
                          bar.attempt);
        else
            sp_out_printf(o,
                          "<rect x=\"%s\" y=\"%llu\" width=\"%s\" "
                          "height=\"%d\" fill=\"%s\" stroke=\"%s\" "
                          "class=\"bar\" data-index=\"%zu\"><title>",
                          a, y, sp_fmt_fixed(b, sizeof b, w, 1), ROW - 6,
                          sp_gantt_fill[col], sp_gantt_stroke[col], bar.index);
        sp_out_xml(o, bar.label, 0);
        if (bar.detail) {
            sp_out_puts(o, "&#10;");
            sp_out_xml(o, bar.detail, 0);
        }
        if (bar.note) {
            sp_out_puts(o, "&#10;");
            sp_out_xml(o, bar.note, 0);
        }
        sp_out_puts(o, bar.marker ? "</title></path>\n" : "</title></rect>\n");
        /* The label on the bar, cut to what fits (about 6.6 px a
         * character at this size). */
        if (!bar.marker && w >= 24) {
            sp_out_printf(o, "<text x=\"%s\" y=\"%llu\">",
                          sp_fmt_fixed(c2, sizeof c2, x + 2, 1), y + 12);
            sp_out_xml(o, bar.label, (size_t)((w - 4) / 6.6));
            sp_out_puts(o, "</text>\n");
        }
    }
    sp_out_puts(o, "</g>\n");
    if (nlegend) {
        sp_out_puts(o, "<g class=\"legend\">\n");
        unsigned long long y = axis_y + 40;
        int x = LEFT;
        for (unsigned c = 0; c < SP_GANTT_COLOURS; c++) {
            if (!g->legend[c])
                continue;
            sp_out_printf(o,
                          "<rect class=\"swatch\" x=\"%d\" y=\"%llu\" "
                          "width=\"12\" height=\"12\" fill=\"%s\" "
                          "stroke=\"%s\"/>\n<text x=\"%d\" y=\"%llu\">",
                          x, y, sp_gantt_fill[c], sp_gantt_stroke[c], x + 16,
                          y + 10);
            sp_out_xml(o, g->legend[c], 16);
            sp_out_puts(o, "</text>\n");
            x += 110;
        }
        sp_out_puts(o, "</g>\n");
    }
    sp_out_puts(o, "</svg>\n");
    return o->call ? -1 : 0;
}

#endif
