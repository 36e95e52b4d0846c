/* SPDX-License-Identifier: MIT */
/* Error codes, their names and messages (one table), the per-thread
 * last-error message, and the version queries. */
#include "sp-private.h"

#include <stdio.h>

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

int sp_set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len =
        snprintf(last_error, sizeof last_error, "%s: ", sp_err_name(code));
    if (len < 0 || (size_t)len >= sizeof last_error)
        len = 0;
    vsnprintf(last_error + len, sizeof last_error - (size_t)len, fmt, ap);
    va_end(ap);
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
    static const char *const names[] = {"OK", "FAILED", "CRASHED", "TIMED_OUT",
                                        "CANCELLED"};
    if ((unsigned)kind < sizeof names / sizeof names[0])
        return names[kind];
    return "UNKNOWN";
}
