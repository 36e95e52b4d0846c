/* SPDX-License-Identifier: MIT */
/* The public header compiles on its own as strict C11 (built with
 * -pedantic-errors and no feature macros), and the version macros match
 * the library that is loaded. */
#include "simplepar.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SP_VERSION_MAJOR, SP_VERSION_MINOR,
             SP_VERSION_PATCH);
    if (sp_version() != SP_VERSION_NUMBER ||
        strcmp(sp_version_string(), want)) {
        printf("header %s, library %s\n0 passed, 1 failed\n", want,
               sp_version_string());
        return 1;
    }
    puts("1 passed, 0 failed");
    return 0;
}
