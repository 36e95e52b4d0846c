/* SPDX-License-Identifier: MIT */
/* Error codes, their names and messages (one table), kind names (one
 * table), the per-thread last-error message, and the version queries. */
#include "sp-private.h"

#include <stdio.h>
#include <string.h>

#define SP_STR_(x) #x
#define SP_STR(x) SP_STR_(x)

SP_API const char *sp_strerror(int code)
{
    switch (code) {
#define SP_X_MSG_(name, value, msg)                                            \
    case value:                                                                \
        return msg;
        SP_ERROR_MAP(SP_X_MSG_)
#undef SP_X_MSG_
    default:
        return "unknown error";
    }
}

SP_API const char *sp_err_name(int code)
{
    switch (code) {
#define SP_X_NAME_(name, value, msg)                                           \
    case value:                                                                \
        return #name;
        SP_ERROR_MAP(SP_X_NAME_)
#undef SP_X_NAME_
    default:
        return "SP_UNKNOWN";
    }
}

/* Per-thread, so concurrent callers never see each other's messages. */
static _Thread_local char last_error[512];

SP_API const char *sp_last_error(void)
{
    return last_error;
}

static size_t set_error_v(int code, const char *fmt, va_list ap)
    SP_PRINTF(2, 0);
static size_t set_error_v(int code, const char *fmt, va_list ap)
{
    int len =
        snprintf(last_error, sizeof last_error, "%s: ", sp_err_name(code));
    if (len < 0 || (size_t)len >= sizeof last_error)
        len = 0;
    vsnprintf(last_error + len, sizeof last_error - (size_t)len, fmt, ap);
    return strlen(last_error);
}

int sp_set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_v(code, fmt, ap);
    va_end(ap);
    return code;
}

/* strerror_r comes in two forms: XSI returns int and fills buf, GNU
 * returns the string (maybe static). Both are handled without knowing
 * which one the C library declared. */
static inline const char *pick(int rc, const char *buf)
{
    return rc == 0 ? buf : NULL;
}
static inline const char *pick_ptr(const char *s, const char *buf)
{
    (void)buf;
    return s;
}
#define SP_STRERROR_PICK(r, buf)                                               \
    _Generic((r), int : pick, default : pick_ptr)((r), (buf))

const char *sp_errno_text(int err, char *buf, size_t len)
{
    buf[0] = 0;
    const char *s = SP_STRERROR_PICK(strerror_r(err, buf, len), buf);
    if (s && s != buf)
        snprintf(buf, len, "%s", s);
    if (!buf[0])
        snprintf(buf, len, "error %d", err);
    return buf;
}

int sp_set_error_errno(int code, int err, const char *fmt, ...)
{
    char text[128];
    sp_errno_text(err, text, sizeof text);
    va_list ap;
    va_start(ap, fmt);
    size_t len = set_error_v(code, fmt, ap);
    va_end(ap);
    if (len < sizeof last_error)
        snprintf(last_error + len, sizeof last_error - len, ": %s", text);
    return code;
}

SP_API int sp_version(void)
{
    return SP_VERSION_NUMBER;
}

SP_API const char *sp_version_string(void)
{
    return SP_STR(SP_VERSION_MAJOR) "." SP_STR(SP_VERSION_MINOR) "." SP_STR(
        SP_VERSION_PATCH);
}

SP_API const char *sp_kind_name(sp_kind kind)
{
    switch (kind) {
#define SP_X_NAME_(name, value, text)                                          \
    case name:                                                                 \
        return text;
        SP_KIND_MAP(SP_X_NAME_)
#undef SP_X_NAME_
    default:
        return "UNKNOWN";
    }
}

SP_API const char *sp_cancel_reason_name(sp_cancel_reason reason)
{
    switch (reason) {
#define SP_X_NAME_(name, value, text)                                          \
    case name:                                                                 \
        return text;
        SP_CANCEL_MAP(SP_X_NAME_)
#undef SP_X_NAME_
    default:
        return "UNKNOWN";
    }
}
