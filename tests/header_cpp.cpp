// SPDX-License-Identifier: MIT
// The public header compiles on its own as C++ and its functions link with
// C linkage (extern "C" guards).
#include "simplepar.h"

#include <cstdio>
#include <string_view>

static int task(sp_ctx *ctx, void *)
{
    return sp_set_result_str(ctx, "from C++");
}

int main()
{
    sp_task t[1] = {};
    t[0].key = "cpp";
    t[0].fn = task;
    sp_results *res = nullptr;
    if (simple_parallel(t, 1, nullptr, &res) != 0)
        return 1;
    bool ok = std::string_view(sp_entry_str(sp_results_get(res, "cpp"))) ==
              "from C++";
    sp_results_free(res);
    std::puts(ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return ok ? 0 : 1;
}
