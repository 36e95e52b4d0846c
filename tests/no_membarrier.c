/* SPDX-License-Identifier: MIT */
/* Linked over the library's weak sp_membarrier() (lib/fence.c): the
 * kernel "has no membarrier", as under an old kernel or a seccomp filter,
 * so completions on threads publish with an exchange. */
#include <errno.h>

int sp_membarrier(int cmd, unsigned flags);

int sp_membarrier(int cmd, unsigned flags)
{
    (void)cmd;
    (void)flags;
    errno = ENOSYS;
    return -1;
}
