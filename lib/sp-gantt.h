/* SPDX-License-Identifier: MIT */
/* The SVG Gantt chart behind sp_results_write_svg() (lib/trace.c) and the
 * mock-API module's SVG timeline (lib/mockapi/timeline.c): one renderer, so
 * both charts look alike and escape text the same way.
 *
 * Self-contained on purpose: it uses only the C library, never the core's
 * internals, so the separate mock-API library can include it too. Every
 * function is static, so each library gets its own hidden copy and nothing
 * is exported or can clash when both are linked statically.
 *
 * Invariants: everything written is well-formed UTF-8 XML whatever the
 * input bytes; numbers never depend on the locale (no %f anywhere); the
 * first failing write is remembered and nothing is written after it. */
#ifndef SP_GANTT_H
#define SP_GANTT_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define SP_GANTT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SP_GANTT_PRINTF(fmt, args)
#endif

/* ---- a stream that remembers its first failure --------------------------- */

typedef struct sp_out {
    FILE *f;
    const char *call; /* the first call that failed; NULL while all is well */
    int err;          /* errno after that call (0 when it set none) */
} sp_out;

static void sp_out_fail(sp_out *o, const char *call)
{
    if (!o->call) {
        o->call = call;
        o->err = errno;
    }
}

static void sp_out_write(sp_out *o, const char *s, size_t n)
{
    if (o->call || !n)
        return;
    errno = 0;
    if (fwrite(s, 1, n, o->f) != n)
        sp_out_fail(o, "fwrite");
}

static void sp_out_puts(sp_out *o, const char *s)
{
    sp_out_write(o, s, strlen(s));
}

/* Integers and strings only: %f would follow LC_NUMERIC (use
 * sp_fmt_fixed()). */
static void sp_out_printf(sp_out *o, const char *fmt, ...)
    SP_GANTT_PRINTF(2, 3);
static void sp_out_printf(sp_out *o, const char *fmt, ...)
{
    if (o->call)
        return;
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    if (vfprintf(o->f, fmt, ap) < 0)
        sp_out_fail(o, "vfprintf");
    va_end(ap);
}

/* Flush, then look at the stream's error indicator: 0, or -1 with o->call
 * naming what failed. */
static int sp_out_finish(sp_out *o)
{
    if (!o->call) {
        errno = 0;
        if (fflush(o->f) != 0)
            sp_out_fail(o, "fflush");
    }
    if (!o->call && ferror(o->f)) {
        o->call = "ferror"; /* set before we started, or by a lost write */
        o->err = 0;
    }
    return o->call ? -1 : 0;
}

/* v with `decimals` (0..9) digits after a '.', whatever the locale. Negative
 * values and NaN give 0; huge values are clamped. Returns buf. */
static char *sp_fmt_fixed(char *buf, size_t len, double v, int decimals)
{
    unsigned long long scale = 1;
    if (decimals < 0 || decimals > 9)
        decimals = decimals < 0 ? 0 : 9;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    double x = v > 0 ? v * (double)scale + 0.5 : 0; /* NaN fails v > 0 */
    if (x > 9e18)
        x = 9e18;
    unsigned long long q = (unsigned long long)x, frac = q % scale;
    int n = snprintf(buf, len, "%llu", q / scale);
    if (decimals > 0 && n > 0 && (size_t)n + 1 + (size_t)decimals < len) {
        buf[n++] = '.';
        for (int i = decimals - 1; i >= 0; i--, frac /= 10)
            buf[n + i] = (char)('0' + frac % 10);
        buf[n + decimals] = 0;
    }
    return buf;
}

/* A duration in seconds with as many decimals as its size needs. */
static char *sp_fmt_secs(char *buf, size_t len, double v)
{
    return sp_fmt_fixed(buf, len, v, v >= 100 ? 1 : v >= 1 ? 3 : 6);
}

/* ---- UTF-8 ----------------------------------------------------------------
 * Length of the well-formed UTF-8 sequence at s (1-4; 0 at the terminating
 * NUL), its code point in *cp; or, for an ill-formed one, minus the length
 * of its maximal subpart, which is replaced by one U+FFFD (Unicode's
 * recommended practice, which Python's errors="replace" and WHATWG follow).
 * Never reads past a NUL. */
static int sp_utf8(const unsigned char *s, unsigned long *cp)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    unsigned long v;
    int need;
    if (c < 0x80) {
        *cp = c;
        return c ? 1 : 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* no overlong forms */
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return -1; /* a stray continuation byte, C0, C1, F5..FF */
    }
    for (int k = 1; k <= need; k++) {
        unsigned b = s[k];
        if (b < lo || b > hi)
            return -k;
        v = v << 6 | (b & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return need + 1;
}

/* Characters in s, counting each replaced subpart as one. */
static size_t sp_utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    unsigned long cp;
    for (int len; (len = sp_utf8(p, &cp)) != 0; n++)
        p += len > 0 ? len : -len;
    return n;
}

/* ---- XML text ------------------------------------------------------------
 * s as XML character data: the five specials as entities, tab, newline and
 * carriage return as character references (so parsers keep them), and
 * whatever XML 1.0 cannot hold (other control characters, U+FFFE, U+FFFF,
 * ill-formed UTF-8) as U+FFFD. At most max characters when max > 0, the
 * last one an ellipsis when s is longer. */
static void sp_out_xml(sp_out *o, const char *s, size_t max)
{
    static const char fffd[] = "\xEF\xBF\xBD", ellipsis[] = "\xE2\x80\xA6";
    size_t keep = (size_t)-1;
    if (max > 0 && sp_utf8_chars(s) > max)
        keep = max - 1;
    const unsigned char *p = (const unsigned char *)s;
    char buf[256] = {0};
    size_t n = 0;
    unsigned long cp;
    for (int len; keep > 0 && (len = sp_utf8(p, &cp)) != 0; keep--) {
        const char *rep = NULL;
        char one[8];
        if (len < 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
            cp == 0xFFFE || cp == 0xFFFF) {
            rep = fffd;
        } else if (cp < 0x80) {
            switch (cp) {
            case '&':
                rep = "&amp;";
                break;
            case '<':
                rep = "&lt;";
                break;
            case '>':
                rep = "&gt;";
                break;
            case '"':
                rep = "&quot;";
                break;
            case '\'':
                rep = "&apos;";
                break;
            case '\t':
                rep = "&#9;";
                break;
            case '\n':
                rep = "&#10;";
                break;
            case '\r':
                rep = "&#13;";
                break;
            default:
                one[0] = (char)cp;
                one[1] = 0;
                rep = one;
            }
        } else {
            memcpy(one, p, (size_t)len);
            one[len] = 0;
            rep = one;
        }
        p += len > 0 ? len : -len;
        size_t rl = strlen(rep);
        if (n + rl > sizeof buf) {
            sp_out_write(o, buf, n);
            n = 0;
        }
        memcpy(buf + n, rep, rl);
        n += rl;
    }
    sp_out_write(o, buf, n);
    if (keep == 0 && *p)
        sp_out_puts(o, ellipsis);
}

/* ---- the chart ------------------------------------------------------------
 */

/* Palette: one colour per result kind (sp_kind's values), the first also
 * the colour of bars that have no kind. */
enum { SP_GANTT_COLOURS = 5 };
static const char *const sp_gantt_fill[SP_GANTT_COLOURS] = {
    "#4a90d9", "#e8a33d", "#d0021b", "#8e44ad", "#9e9e9e"};
static const char *const sp_gantt_stroke[SP_GANTT_COLOURS] = {
    "#2a5f99", "#a86f1d", "#80010f", "#5b2a70", "#616161"};

/* One bar, as the source describes it. The strings are borrowed until the
 * next call of the source's bar(). */
typedef struct sp_gantt_bar {
    size_t row;         /* 0 .. rows-1 */
    unsigned colour;    /* index into the palette */
    int marker;         /* 1: a point in time (a task that never ran) */
    size_t index;       /* written as data-index */
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
