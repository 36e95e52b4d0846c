/* SPDX-License-Identifier: MIT */
/* The mock-API header compiles on its own as strict C11. */
#include "simplepar/mockapi.h"

int main(void)
{
    sp_mock *m = sp_mock_new(NULL);
    int ok = m != NULL && sp_mock_tickers()[0] != NULL;
    sp_mock_free(m);
    puts(ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return ok ? 0 : 1;
}
