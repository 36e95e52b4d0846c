/* SPDX-License-Identifier: MIT */
/* Output helpers of the trace and chart writers (lib/trace.c,
 * lib/sp-gantt.h, lib/mockapi/timeline.c): a stream that remembers its
 * first failure, locale-free numbers, UTF-8 decoding and XML escaping.
 *
 * Self-contained on purpose: it uses only the C library, never the core's
 * internals, so the separate mock-API library can include it too. Every
 * function is static, so each library gets its own hidden copy and nothing
 * is exported or can clash when both are linked statically.
 *
 * Invariants: everything written as XML is well-formed UTF-8 whatever the
 * input bytes; numbers never depend on the locale (no %f anywhere); the
 * first failing write is remembered and nothing is written after it. */
#ifndef SP_OUT_H
#define SP_OUT_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define SP_OUT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SP_OUT_PRINTF(fmt, args)
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
static void sp_out_printf(sp_out *o, const char *fmt, ...) SP_OUT_PRINTF(2, 3);
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

#endif /* SP_OUT_H */
