// SPDX-License-Identifier: MIT
// The README's example in C++ (<simplepar.hpp>): named lambdas on threads,
// one that throws and one that fails, read back in input order and by key;
// then a bad table, which throws before anything runs.
// Build:
//   c++ -std=c++17 cpp_quickstart.cpp $(pkg-config --cflags --libs simplepar)
#include <simplepar.hpp>

#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>

static std::string square(int x)
{
    if (x < 0)
        throw std::domain_error("negative input " + std::to_string(x));
    return std::to_string(x * x);
}

int main()
{
    const std::pair<const char *, int> inputs[] = {
        {"three", 3}, {"four", 4}, {"minus-one", -1}};
    simplepar::table tasks;
    for (auto [key, x] : inputs)
        tasks.add(key, [x = x](simplepar::context &c) {
            c.set_result(square(x)); // a throw becomes a FAILED entry
        });
    tasks.add("zero", [](simplepar::context &c) {
        return c.fail(2, "zero is not allowed here"); // failing without a throw
    });

    simplepar::results res = simplepar::run(
        tasks, simplepar::options()
                   .backend(simplepar::backend::thread) // or serial, process
                   .max_workers(4));
    for (simplepar::entry e : res) {
        std::cout << std::left << std::setw(10) << e.key();
        if (e.ok())
            std::cout << " = " << e.data() << '\n';
        else
            std::cout << " ! " << simplepar::kind_name(e.kind()) << ": "
                      << e.message() << '\n';
    }
    std::cout << res.ok() << " of " << res.size() << " ok; four squared is "
              << res.at("four").data() << '\n';

    // A bad table is refused before anything runs.
    try {
        (void)simplepar::run({{"a", [](simplepar::context &) {}},
                              {"a", [](simplepar::context &) {}}});
    } catch (const simplepar::error &err) {
        std::cout << "simplepar::error " << err.code() << ": " << err.what()
                  << '\n';
    }
    return 0; // res frees its map here
}
