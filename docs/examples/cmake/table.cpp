// SPDX-License-Identifier: MIT
// simplepar's C API from C++17, built with CMake (CMakeLists.txt beside
// this file): a task table over a std::vector, captureless lambdas as the
// callbacks, the same table on every backend, results read back by key.
#include <simplepar.h>

#include <cstdio>
#include <string>
#include <vector>

int main()
{
    const std::vector<std::string> words = {"alpha", "beta", "gamma", "delta",
                                            "epsilon"};
    // A captureless lambda converts to the C callback type sp_task_fn.
    sp_task_fn length = [](sp_ctx *ctx, void *arg) -> int {
        const auto *w = static_cast<const std::string *>(arg);
        if (w->size() > 5)
            return sp_fail(ctx, 2, "%s is too long", w->c_str());
        return sp_set_resultf(ctx, "%zu", w->size());
    };
    // Value-initialised rows: the reserved fields are zero, as required.
    std::vector<sp_task> tasks(words.size());
    for (std::size_t i = 0; i < words.size(); i++) {
        tasks[i].key = words[i].c_str();
        tasks[i].fn = length;
        tasks[i].arg = const_cast<std::string *>(&words[i]);
    }

    const sp_backend backends[] = {SP_BACKEND_THREAD, SP_BACKEND_PROCESS,
                                   SP_BACKEND_SERIAL};
    const char *const names[] = {"thread", "process", "serial"};
    for (int b = 0; b < 3; b++) {
        sp_options opts{};
        opts.backend = backends[b];
        sp_results *res = nullptr;
        if (simple_parallel(tasks.data(), tasks.size(), &opts, &res) != 0) {
            std::fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
            return 1;
        }
        std::string line = std::string(names[b]) + ":";
        for (const std::string &w : words) {
            const sp_entry *e = sp_results_get(res, w.c_str());
            line += " " + w +
                    (sp_entry_kind(e) == SP_KIND_OK
                         ? "=" + std::string(sp_entry_str(e))
                         : "!" + std::string(sp_entry_message(e)));
        }
        std::printf("%s (%zu ok, %zu failed)\n", line.c_str(),
                    sp_results_ok(res), sp_results_failed(res));
        sp_results_free(res);
    }
    return 0;
}
