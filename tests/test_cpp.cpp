// SPDX-License-Identifier: MIT
// The C++ face, <simplepar.hpp>, on the backend named by argv[1]: lambda
// tasks, exceptions turned into FAILED entries, the RAII results map and its
// moves, lookup and iteration, options, on_done, validation errors thrown as
// simplepar::error; task graphs (after, dep_result, spawn), retries and
// per-task policies, cancel reasons and handles, pools with per-worker
// state, owned results and the trace/SVG export.
//
// simplepar.hpp comes first: it compiles on its own.
//
// The harness is a few lines of C++ rather than cmocka: cmocka leaves a
// failed test with longjmp(), which skips the destructors of the C++
// objects on the way (undefined behaviour in C++, and leaks that would
// drown valgrind's report). Here a failed check throws, so every
// destructor runs, the next test goes on, and main() returns non-zero.
#include "simplepar.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define TEST_HEAP_COUNT 1
#endif

namespace sp = simplepar;
using namespace std::string_view_literals;

namespace
{

// --- harness ---------------------------------------------------------------

// Thrown by a failed check. Not a std::exception, so that it is easy to
// tell apart; a check that fails inside a task ends that task FAILED with
// sp::unknown_exception_message, which the tests then see.
struct check_failure {
};

template <class T> std::string show(const T &v)
{
    std::ostringstream os;
    if constexpr (std::is_same_v<T, sp::kind>)
        os << sp::kind_name(v);
    else if constexpr (std::is_same_v<T, sp::cancel_reason>)
        os << sp::cancel_reason_name(v);
    else if constexpr (std::is_enum_v<T>)
        os << static_cast<long long>(v);
    else if constexpr (std::is_convertible_v<T, std::string_view>)
        os << '"' << std::string_view(v) << '"';
    else
        os << v;
    return os.str();
}

void check(bool ok, const char *expr, const char *file, int line)
{
    if (ok)
        return;
    std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    throw check_failure();
}

template <class A, class B>
void check_eq(const A &a, const B &b, const char *ea, const char *eb,
              const char *file, int line)
{
    if (a == b)
        return;
    std::fprintf(stderr,
                 "%s:%d: check failed: %s == %s\n  left:  %s\n  "
                 "right: %s\n",
                 file, line, ea, eb, show(a).c_str(), show(b).c_str());
    throw check_failure();
}

#define CHECK(e) check(static_cast<bool>(e), #e, __FILE__, __LINE__)
#define CHECK_EQ(a, b) check_eq((a), (b), #a, #b, __FILE__, __LINE__)

sp::backend backend = sp::backend::thread;
const char *backend_name = "thread";

sp::options opts()
{
    return sp::options().backend(backend);
}

// Durations scale with SP_TEST_SCALE (10 under valgrind), as in common.h.
unsigned scaled_ms(unsigned ms)
{
    const char *s = std::getenv("SP_TEST_SCALE");
    double v = s ? std::atof(s) : 1.0;
    return static_cast<unsigned>(ms * (v >= 1.0 ? v : 1.0));
}

void sleep_ms(unsigned ms)
{
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// A callable object with state, and a plain function.
struct repeat {
    std::string what;
    int times;
    void operator()(sp::context &c) const
    {
        std::string out;
        for (int i = 0; i < times; i++)
            out += what;
        c.set_result(out);
    }
};

int plain_function(sp::context &c)
{
    return c.set_result("from a function");
}

// --- tests -----------------------------------------------------------------

void test_lambda_tasks()
{
    int base = 40;
    std::string greeting = "hello";
    std::function<int(sp::context &)> stored = [](sp::context &c) {
        return c.set_result("from std::function");
    };
    sp::table t;
    t.add("capture-by-value",
          [base](sp::context &c) { c.set_result(std::to_string(base + 2)); })
        .add("capture-string",
             [greeting](sp::context &c) { c.set_result(greeting + " world"); })
        .add("returns-int",
             [](sp::context &c) -> int { return c.set_result("int"); })
        .add("generic", [](auto &c) { c.set_result("generic lambda"); })
        .add("functor", repeat{"ab", 3})
        .add("function-pointer", plain_function)
        .add("std-function", stored)
        .add("mutable", [n = 0](sp::context &c) mutable {
            n += 5;
            c.set_result(std::to_string(n));
        });
    CHECK_EQ(t.size(), 8u);

    sp::results res = sp::run(t, opts());
    CHECK_EQ(res.size(), 8u);
    CHECK_EQ(res.ok(), 8u);
    CHECK_EQ(res.failed(), 0u);
    CHECK_EQ(res.at("capture-by-value").data(), "42"sv);
    CHECK_EQ(res.at("capture-string").data(), "hello world"sv);
    CHECK_EQ(res.at("returns-int").data(), "int"sv);
    CHECK_EQ(res.at("generic").data(), "generic lambda"sv);
    CHECK_EQ(res.at("functor").data(), "ababab"sv);
    CHECK_EQ(res.at("function-pointer").data(), "from a function"sv);
    CHECK_EQ(res.at("std-function").data(), "from std::function"sv);
    CHECK_EQ(res.at("mutable").data(), "5"sv);

    // Input order, by range-for, whatever the completion order was.
    std::size_t i = 0;
    for (sp::entry e : res) {
        CHECK_EQ(e.key(), std::string_view(t[i].key()));
        CHECK_EQ(e.index(), i);
        CHECK_EQ(e.kind(), sp::kind::ok);
        CHECK(e.ok());
        CHECK_EQ(e.code(), 0);
        CHECK_EQ(e.message(), ""sv);
        CHECK(e.worker() != SP_NO_WORKER);
        CHECK(e.start() >= 0.0);
        CHECK(e.end() >= e.start());
        CHECK_EQ(e.signal(), 0);
        CHECK_EQ(e.exit_status(), -1);
        i++;
    }
    CHECK_EQ(i, 8u);
    CHECK(res.elapsed() >= 0.0);
    CHECK(res.workers() >= 1u);

    // The same table runs again, and as a braced list.
    sp::results again = sp::run(t, opts());
    CHECK_EQ(again.ok(), 8u);
    sp::results braced = sp::run(
        {{"x", [](sp::context &c) { c.set_result("1"); }},
         {"y", [&greeting](sp::context &c) { c.set_result(greeting); }}},
        opts());
    CHECK_EQ(braced.size(), 2u);
    CHECK_EQ(braced.at("y").data(), "hello"sv);
}

void test_return_values_and_fail()
{
    sp::results res = sp::run(
        {{"zero", [](sp::context &) { return 0; }},
         {"seven", [](sp::context &) { return 7; }},
         {"fail-msg",
          [](sp::context &c) {
              std::string ticker = "ACME";
              return c.fail(3, "no quote for " + ticker);
          }},
         {"fail-void", [](sp::context &c) { c.fail(4, "void task failed"); }},
         {"fail-zero", [](sp::context &c) { return c.fail(0, "code 0"); }},
         {"fail-nomsg", [](sp::context &c) { return c.fail(6); }},
         {"bytes",
          [](sp::context &c) {
              std::vector<unsigned char> v = {'a', 0, 'b', 0xff};
              return c.set_result(v);
          }},
         {"std-bytes",
          [](sp::context &c) {
              std::array<std::byte, 3> a = {std::byte{1}, std::byte{0},
                                            std::byte{2}};
              c.set_result(a);
          }},
         {"pointer-len", [](sp::context &c) { c.set_result("abcdef", 3); }},
         {"replaced",
          [](sp::context &c) {
              c.set_result("first");
              c.set_result(std::string("second"));
          }},
         {"empty", [](sp::context &) {}}},
        opts());
    CHECK_EQ(res.size(), 11u);
    CHECK_EQ(res.ok(), 6u);
    CHECK_EQ(res.failed(), 5u);
    CHECK_EQ(res.count(sp::kind::failed), 5u);
    CHECK_EQ(res["zero"].kind(), sp::kind::ok);

    sp::entry e = res["seven"];
    CHECK_EQ(e.kind(), sp::kind::failed);
    CHECK_EQ(e.code(), 7);
    CHECK_EQ(e.message(), "task returned 7"sv);
    CHECK_EQ(res["fail-msg"].code(), 3);
    CHECK_EQ(res["fail-msg"].message(), "no quote for ACME"sv);
    CHECK_EQ(res["fail-void"].kind(), sp::kind::failed);
    CHECK_EQ(res["fail-void"].code(), 4);
    CHECK_EQ(res["fail-void"].message(), "void task failed"sv);
    CHECK_EQ(res["fail-zero"].code(), static_cast<int>(SP_ETASK));
    CHECK_EQ(res["fail-nomsg"].code(), 6);
    CHECK_EQ(res["fail-nomsg"].kind(), sp::kind::failed);

    CHECK_EQ(res["bytes"].data(), std::string_view("a\0b\xff", 4));
    CHECK_EQ(res["std-bytes"].data(), std::string_view("\1\0\2", 3));
    CHECK_EQ(res["pointer-len"].data(), "abc"sv);
    CHECK_EQ(res["replaced"].data(), "second"sv);
    CHECK_EQ(res["empty"].data(), ""sv);
    CHECK(res["empty"].data().data() == nullptr);
}

void test_context_identity()
{
    sp::table t;
    for (int i = 0; i < 20; i++)
        t.add("task-" + std::to_string(i), [](sp::context &c) {
            CHECK(!c.cancelled());
            CHECK(c.native() != nullptr);
            c.set_result(std::string(c.key()) + "@" +
                         std::to_string(c.index()) + "/" +
                         std::to_string(c.worker()));
        });
    sp::results res = sp::run(t, opts().max_workers(3));
    CHECK_EQ(res.ok(), 20u);
    for (sp::entry e : res) {
        std::string want = std::string(e.key()) + "@" +
                           std::to_string(e.index()) + "/" +
                           std::to_string(e.worker());
        CHECK_EQ(e.data(), std::string_view(want));
        CHECK(e.worker() < 3u);
    }
}

struct custom_error : std::exception {
    const char *what() const noexcept override
    {
        return "custom what()";
    }
};

void test_exception_becomes_failed()
{
    sp::results res =
        sp::run({{"before", [](sp::context &c) { c.set_result("fine"); }},
                 {"runtime",
                  [](sp::context &) -> int {
                      throw std::runtime_error("boom: the API is down");
                  }},
                 {"after-result",
                  [](sp::context &c) {
                      c.set_result("half done");
                      throw std::invalid_argument("bad input 42");
                  }},
                 {"custom", [](sp::context &) { throw custom_error(); }},
                 {"bad-alloc", [](sp::context &) { throw std::bad_alloc(); }},
                 {"after-fail",
                  [](sp::context &c) {
                      c.fail(9, "replaced by the exception");
                      throw std::logic_error("the exception's message");
                  }},
                 {"after", [](sp::context &c) { c.set_result("also fine"); }}},
                opts());
    CHECK_EQ(res.size(), 7u);
    CHECK_EQ(res.ok(), 2u);
    CHECK_EQ(res.at("before").data(), "fine"sv);
    CHECK_EQ(res.at("after").data(), "also fine"sv);

    sp::entry e = res.at("runtime");
    CHECK_EQ(e.kind(), sp::kind::failed);
    CHECK_EQ(e.code(), static_cast<int>(SP_ETASK));
    CHECK_EQ(e.message(), "boom: the API is down"sv);
    CHECK_EQ(res.at("after-result").kind(), sp::kind::failed);
    CHECK_EQ(res.at("after-result").message(), "bad input 42"sv);
    CHECK_EQ(res.at("custom").message(), "custom what()"sv);
    CHECK_EQ(res.at("bad-alloc").kind(), sp::kind::failed);
    CHECK_EQ(res.at("bad-alloc").message(),
             std::string_view(std::bad_alloc().what()));
    CHECK_EQ(res.at("after-fail").code(), static_cast<int>(SP_ETASK));
    CHECK_EQ(res.at("after-fail").message(), "the exception's message"sv);
}

struct not_an_exception {
    int value;
};

void test_non_std_exception()
{
    sp::results res = sp::run(
        {{"int", [](sp::context &) { throw 42; }},
         {"string", [](sp::context &) { throw std::string("a string"); }},
         {"struct", [](sp::context &) { throw not_an_exception{1}; }},
         {"ok", [](sp::context &c) { c.set_result("ok"); }}},
        opts());
    CHECK_EQ(res.ok(), 1u);
    for (const char *key : {"int", "string", "struct"}) {
        sp::entry e = res.at(key);
        CHECK_EQ(e.kind(), sp::kind::failed);
        CHECK_EQ(e.code(), static_cast<int>(SP_ETASK));
        CHECK_EQ(e.message(), std::string_view(sp::unknown_exception_message));
    }
}

void test_nested_run()
{
    sp::results res =
        sp::run({{"inner-ok",
                  [](sp::context &c) {
                      sp::results inner = sp::run(
                          {{"a", [](sp::context &ic) { ic.set_result("A"); }},
                           {"b", [](sp::context &ic) { ic.set_result("B"); }}},
                          opts());
                      c.set_result(std::string(inner.at("a").data()) +
                                   std::string(inner.at("b").data()));
                  }},
                 // A validation error of a nested call is a simplepar::error
                 // thrown inside the task: it becomes this task's FAILED entry.
                 {"inner-error",
                  [](sp::context &c) {
                      (void)sp::run({{"dup", [](sp::context &) {}},
                                     {"dup", [](sp::context &) {}}},
                                    opts());
                      c.set_result("not reached");
                  }}},
                opts());
    CHECK_EQ(res.at("inner-ok").data(), "AB"sv);
    sp::entry e = res.at("inner-error");
    CHECK_EQ(e.kind(), sp::kind::failed);
    CHECK_EQ(e.data(), ""sv);
    CHECK_EQ(e.message(),
             "SP_EDUPKEY: duplicate task key \"dup\" at index 1 (first at "
             "index 0)"sv);
}

void test_lookup()
{
    sp::table t;
    for (int i = 0; i < 100; i++)
        t.add("k" + std::to_string(i),
              [i](sp::context &c) { c.set_result(std::to_string(i * i)); });
    sp::results res = sp::run(t, opts());
    CHECK_EQ(res.size(), 100u);
    CHECK(!res.empty());
    for (int i = 0; i < 100; i++) {
        std::string key = "k" + std::to_string(i);
        std::string want = std::to_string(i * i);
        CHECK_EQ(res[key].data(), std::string_view(want));
        CHECK_EQ(res[key.c_str()].data(), std::string_view(want));
        CHECK_EQ(res[std::string_view(key)].data(), std::string_view(want));
        CHECK_EQ(res.find(key).index(), static_cast<std::size_t>(i));
        CHECK_EQ(res.at(key).data(), std::string_view(want));
        CHECK_EQ(res.at(key.c_str()).data(), std::string_view(want));
        CHECK_EQ(res.at(std::string_view(key)).data(), std::string_view(want));
        CHECK_EQ(res.by_index(static_cast<std::size_t>(i)).key(),
                 std::string_view(key));
    }

    // Unknown keys: empty views with safe accessors; at() throws.
    sp::entry none = res.find("no-such-key");
    CHECK(!none);
    CHECK(!res["k100"]);
    CHECK(!res.find(std::string("k1\0", 3)));
    CHECK(!res.by_index(100));
    CHECK_EQ(none.key(), ""sv);
    CHECK_EQ(none.data(), ""sv);
    CHECK_EQ(none.message(), ""sv);
    CHECK(!none.ok());
    CHECK_EQ(none.worker(), SP_NO_WORKER);
    CHECK(none.native() == nullptr);
    bool thrown = false;
    try {
        (void)res.at("no-such-key");
    } catch (const std::out_of_range &ex) {
        thrown = std::string_view(ex.what()).find("\"no-such-key\"") !=
                 std::string_view::npos;
    }
    CHECK(thrown);
    for (auto lookup :
         {+[](const sp::results &r) { (void)r.at(nullptr); },
          +[](const sp::results &r) { (void)r.at(std::string("k1\0", 3)); },
          +[](const sp::results &r) { (void)r.at("k-1"sv); }}) {
        thrown = false;
        try {
            lookup(res);
        } catch (const std::out_of_range &) {
            thrown = true;
        }
        CHECK(thrown);
    }

    // Iterator protocol beyond range-for.
    auto it = res.begin();
    CHECK_EQ(it->key(), "k0"sv);
    auto old = it++;
    CHECK_EQ((*old).key(), "k0"sv);
    CHECK_EQ(it->key(), "k1"sv);
    CHECK(++it != res.end());
    std::size_t n = 0;
    for (auto i = res.begin(); i != res.end(); ++i)
        n++;
    CHECK_EQ(n, 100u);
}

#ifdef TEST_HEAP_COUNT
// Bytes of glibc's main arena in use. The map, its entries, keys and index
// are allocated on the calling thread (here the main one), so a map that
// is never freed shows up; result bytes from worker threads may sit in
// their own arenas and are not counted.
long long heap_in_use()
{
    return static_cast<long long>(mallinfo2().uordblks);
}
#endif

sp::results make_results(const char *value)
{
    std::string v = value;
    return sp::run({{"a", [v](sp::context &c) { c.set_result(v); }},
                    {"b", [](sp::context &c) { c.set_result("b"); }}},
                   opts());
}

void test_raii_and_moves()
{
    static_assert(!std::is_copy_constructible_v<sp::results>);
    static_assert(!std::is_copy_assignable_v<sp::results>);
    static_assert(std::is_nothrow_move_constructible_v<sp::results>);
    static_assert(std::is_nothrow_move_assignable_v<sp::results>);
    static_assert(std::is_nothrow_destructible_v<sp::results>);

    // Move construction keeps the map, and views of it stay valid.
    sp::results a = make_results("first");
    sp::entry view = a.at("a");
    const sp_results *native = a.native();
    sp::results b(std::move(a));
    CHECK(b.native() == native);
    CHECK(a.native() == nullptr); // NOLINT(bugprone-use-after-move)
    CHECK_EQ(a.size(), 0u);
    CHECK(!a.find("a"));
    CHECK(a.begin() == a.end());
    CHECK_EQ(view.data(), "first"sv);
    CHECK_EQ(b.at("a").data(), "first"sv);

    // Move assignment frees the map it replaces (valgrind and LSan would
    // see the leak), and self-move leaves the object intact.
    sp::results c = make_results("second");
    c = std::move(b);
    CHECK_EQ(c.at("a").data(), "first"sv);
    CHECK(b.native() == nullptr); // NOLINT(bugprone-use-after-move)
    sp::results &alias = c;
    c = std::move(alias);
    CHECK_EQ(c.at("a").data(), "first"sv);

    // release() hands the map to C.
    sp::results d = make_results("third");
    sp_results *raw = d.release();
    CHECK(d.native() == nullptr);
    CHECK_EQ(std::string_view(sp_entry_str(sp_results_get(raw, "a"))),
             "third"sv);
    sp_results_free(raw);

    // Default-constructed: no map, nothing to free.
    sp::results empty;
    CHECK_EQ(empty.size(), 0u);
    CHECK_EQ(empty.ok(), 0u);
    CHECK_EQ(empty.elapsed(), 0.0);

    // A vector of results reallocates by moving.
    std::vector<sp::results> many;
    for (int i = 0; i < 40; i++)
        many.push_back(make_results(std::to_string(i).c_str()));
    for (int i = 0; i < 40; i++)
        CHECK_EQ(many[static_cast<std::size_t>(i)].at("a").data(),
                 std::string_view(std::to_string(i)));

    // Adopting a C map.
    sp_task row = {};
    row.key = "c";
    row.fn = [](sp_ctx *ctx, void *) { return sp_set_result_str(ctx, "C"); };
    sp_results *cres = nullptr;
    sp_options copts = opts().native();
    CHECK_EQ(simple_parallel(&row, 1, &copts, &cres), 0);
    sp::results adopted(cres);
    CHECK_EQ(adopted.at("c").data(), "C"sv);

#ifdef TEST_HEAP_COUNT
    // Hundreds of results objects going out of scope leave the calling
    // thread's heap where it was: each map was freed. (Under ASan and
    // valgrind, which replace malloc, this reads an unused arena; their
    // own leak checks cover the same ground there.)
    for (int i = 0; i < 20; i++)
        make_results("warm-up");
    long long before = heap_in_use();
    for (int i = 0; i < 400; i++) {
        sp::results r = make_results("round");
        CHECK_EQ(r.ok(), 2u);
    }
    long long grown = heap_in_use() - before;
    if (grown >= 32 * 1024)
        std::fprintf(stderr, "heap grew by %lld bytes over 400 runs\n", grown);
    CHECK(grown < 32 * 1024);
#endif
}

std::atomic<int> validation_calls{0};

void expect_error(const sp::table &t, const sp::options &o, int code,
                  std::string_view text)
{
    bool thrown = false;
    try {
        (void)sp::run(t, o);
    } catch (const sp::error &ex) {
        thrown = true;
        CHECK_EQ(ex.code(), code);
        CHECK_EQ(std::string_view(ex.name()),
                 std::string_view(sp_err_name(code)));
        CHECK_EQ(std::string_view(ex.what()).substr(0, text.size()), text);
        // The text is the C library's, with its code name first.
        CHECK(std::string_view(ex.what()).find(sp_err_name(code)) == 0);
    }
    CHECK(thrown);
}

void test_validation_errors()
{
    auto counted = [](sp::context &) { validation_calls++; };
    validation_calls = 0;

    expect_error({{"a", counted}, {"b", counted}, {"a", counted}}, opts(),
                 SP_EDUPKEY,
                 "SP_EDUPKEY: duplicate task key \"a\" at index 2 (first at "
                 "index 0)");
    expect_error({{"a", counted}, {"", counted}}, opts(), SP_ENOKEY,
                 "SP_ENOKEY: task at index 1 has an empty key");
    expect_error({{"a", counted}, {"b", std::function<int(sp::context &)>()}},
                 opts(), SP_ENOFN,
                 "SP_ENOFN: task \"b\" at index 1 has a NULL callback");
    expect_error(
        {{"a", counted}, {"b", static_cast<void (*)(sp::context &)>(nullptr)}},
        opts(), SP_ENOFN, "SP_ENOFN: task \"b\"");
    expect_error({{"a", counted}, {std::string("b\0c", 3), counted}}, opts(),
                 SP_EINVAL,
                 "SP_EINVAL: task at index 1 has a key with a NUL byte at "
                 "offset 1");
    expect_error({{"a", counted}}, opts().max_workers(SP_MAX_WORKERS + 1),
                 SP_EOPTION, "SP_EOPTION:");
    expect_error({{"a", counted}}, opts().deadline(-1.0), SP_EOPTION,
                 "SP_EOPTION:");
    expect_error({{"a", counted}}, opts().stack_size(1), SP_EOPTION,
                 "SP_EOPTION:");
    expect_error({{"a", counted}}, opts().backend(static_cast<sp::backend>(99)),
                 SP_EOPTION, "SP_EOPTION:");
    // Nothing ran. (On the process backend tasks would run in workers and
    // this counter could not see them; there the C suites check it.)
    CHECK_EQ(validation_calls.load(), 0);

    // An empty table is valid.
    sp::results res = sp::run(sp::table(), opts());
    CHECK_EQ(res.size(), 0u);
    CHECK(res.begin() == res.end());
}

void test_options_builder()
{
    using namespace std::chrono_literals;
    sp::options o;
    CHECK_EQ(o.native().backend, SP_BACKEND_THREAD);
    CHECK_EQ(o.native().on_error, SP_COLLECT_ALL);
    CHECK(!o.done_callback());
    o.backend(sp::backend::process)
        .max_workers(3)
        .fail_fast()
        .deadline(1500ms)
        .task_timeout(0.25)
        .stack_size(1u << 20)
        .on_done([](sp::entry) {});
    const sp_options &n = o.native();
    CHECK_EQ(n.backend, SP_BACKEND_PROCESS);
    CHECK_EQ(n.max_workers, 3u);
    CHECK_EQ(n.on_error, SP_FAIL_FAST);
    CHECK_EQ(n.deadline, 1.5);
    CHECK_EQ(n.task_timeout, 0.25);
    CHECK_EQ(n.stack_size, static_cast<std::size_t>(1u << 20));
    CHECK(n.on_done == nullptr);
    CHECK(o.done_callback());
    o.fail_fast(false).task_timeout(2s).deadline(0.0);
    CHECK_EQ(o.native().on_error, SP_COLLECT_ALL);
    CHECK_EQ(o.native().task_timeout, 2.0);
    CHECK_EQ(o.native().deadline, 0.0);
    for (unsigned char r : o.native().reserved)
        CHECK_EQ(r, 0);

    // Retries, delays, the cancel handle.
    sp::cancel h;
    o.retries(4)
        .retry_on(sp::retry_outcome::failed | sp::retry_outcome::crashed)
        .retry_delay(250ms)
        .retry_delay_max(2.5)
        .retry_backoff(sp::backoff::doubling)
        .cancel(h);
    CHECK_EQ(o.native().retries, 4u);
    CHECK_EQ(o.native().retry_on, SP_RETRY_FAILED | SP_RETRY_CRASHED);
    CHECK_EQ(o.native().retry_delay, 0.25);
    CHECK_EQ(o.native().retry_delay_max, 2.5);
    CHECK_EQ(o.native().retry_backoff, SP_BACKOFF_DOUBLING);
    CHECK(o.native().cancel == h.native());
    o.retry_delay(0.5).retry_delay_max(1s);
    CHECK_EQ(o.native().retry_delay, 0.5);
    CHECK_EQ(o.native().retry_delay_max, 1.0);

    // A task policy: unset fields stay 0 ("the run's").
    sp::task_policy p;
    CHECK_EQ(p.native().retries, 0u);
    p.time_limit(1500ms)
        .retries(2)
        .retry_on(sp::retry_outcome::timed_out)
        .retry_delay(10ms)
        .retry_delay_max(0.5)
        .retry_backoff(sp::backoff::fixed);
    const sp_task_policy &np = p.native();
    CHECK_EQ(np.time_limit, 1.5);
    CHECK_EQ(np.retries, 2u);
    CHECK_EQ(np.retry_on, SP_RETRY_TIMED_OUT);
    CHECK_EQ(np.retry_delay, 0.01);
    CHECK_EQ(np.retry_delay_max, 0.5);
    CHECK_EQ(np.retry_backoff, SP_BACKOFF_FIXED);
    p.no_retries().time_limit(2.0).retry_delay(1s).retry_delay_max(2s);
    CHECK_EQ(p.native().retries, SP_NO_RETRIES);
    CHECK_EQ(p.native().time_limit, 2.0);
    CHECK_EQ(p.native().retry_delay, 1.0);
    CHECK_EQ(p.native().retry_delay_max, 2.0);
    for (unsigned char r : p.native().reserved)
        CHECK_EQ(r, 0);
    sp::task row("row", [](sp::context &) {});
    CHECK(row.policy() == nullptr);
    row.policy(p);
    CHECK(row.policy() != nullptr);
    CHECK_EQ(row.policy()->retries, SP_NO_RETRIES);
}

void test_on_done()
{
    const std::thread::id caller = std::this_thread::get_id();
    sp::table t;
    for (int i = 0; i < 30; i++)
        t.add("d" + std::to_string(i), [i](sp::context &c) {
            if (i % 7 == 3)
                throw std::runtime_error("seven");
            c.set_result(std::to_string(i));
        });
    std::vector<int> seen(30, 0);
    std::vector<std::string_view> keys;
    bool wrong_thread = false;
    sp::results res =
        sp::run(t, opts().max_workers(4).on_done([&](sp::entry e) {
            if (std::this_thread::get_id() != caller)
                wrong_thread = true;
            seen[e.index()]++;
            keys.push_back(e.key()); // valid as long as res
        }));
    CHECK(!wrong_thread);
    for (int s : seen)
        CHECK_EQ(s, 1);
    CHECK_EQ(keys.size(), 30u);
    CHECK_EQ(res.failed(), 4u);
    for (std::string_view k : keys)
        CHECK(res.find(k));

    // Returning true stops the run: nothing new starts, running tasks see
    // cancelled(), every key still comes back. Only "first" can end before
    // the stop (the others wait for it), so exactly one task is OK and the
    // rest are CANCELLED: not started (SP_ECANCELED) or gave up (code 9).
    unsigned limit = scaled_ms(5000);
    sp::table waiting;
    waiting.add("first", [](sp::context &c) { c.set_result("first"); });
    for (int i = 1; i < 30; i++)
        waiting.add("w" + std::to_string(i), [limit](sp::context &c) {
            for (unsigned waited = 0; waited < limit; waited++) {
                if (c.cancelled())
                    return c.fail(9, "stopped");
                sleep_ms(1);
            }
            return c.set_result("never stopped");
        });
    std::size_t calls = 0;
    sp::results stopped =
        sp::run(waiting, opts().max_workers(2).on_done([&](sp::entry) {
            calls++;
            return true;
        }));
    CHECK_EQ(calls, 30u);
    CHECK_EQ(stopped.size(), 30u);
    CHECK_EQ(stopped.ok(), 1u);
    CHECK_EQ(stopped.at("first").data(), "first"sv);
    CHECK_EQ(stopped.count(sp::kind::cancelled), 29u);
    for (sp::entry e : stopped)
        if (!e.ok())
            CHECK(e.code() == SP_ECANCELED || e.code() == 9);

    // A throwing on_done stops the run and run() rethrows its exception
    // after the run; the map is freed (checked by valgrind and LSan).
    std::size_t calls2 = 0;
    bool rethrown = false;
    try {
        (void)sp::run(t, opts().on_done([&](sp::entry) {
            calls2++;
            throw custom_error();
        }));
    } catch (const custom_error &) {
        rethrown = true;
    }
    CHECK(rethrown);
    CHECK_EQ(calls2, 1u);
}

void test_cancelled_and_timeout()
{
    // A task that polls cancelled(): on the thread and serial backends it
    // sees its time limit and fails (TIMED_OUT with its own code); on the
    // process backend it is also killed at the limit (TIMED_OUT with
    // SP_ETIMEDOUT, or its own code when it gave up before the kill).
    unsigned limit = scaled_ms(5000);
    sp::results res =
        sp::run({{"quick", [](sp::context &c) { c.set_result("done"); }},
                 {"slow",
                  [limit](sp::context &c) {
                      for (unsigned waited = 0; waited < limit; waited++) {
                          if (c.cancelled())
                              return c.fail(9, "gave up");
                          sleep_ms(1);
                      }
                      return c.set_result("never cancelled");
                  }}},
                opts().task_timeout(std::chrono::milliseconds(scaled_ms(50))));
    CHECK_EQ(res.at("quick").kind(), sp::kind::ok);
    sp::entry e = res.at("slow");
    CHECK_EQ(e.kind(), sp::kind::timed_out);
    if (backend == sp::backend::process) // killed, or gave up first
        CHECK(e.code() == SP_ETIMEDOUT || e.code() == 9);
    else
        CHECK_EQ(e.code(), 9);
}

void test_fail_fast()
{
    // Serial runs in input order: after "b" fails, nothing else starts.
    // Elsewhere the failing task is first and every key still comes back.
    sp::results res = sp::run(
        {{"a", [](sp::context &c) { c.set_result("a"); }},
         {"b", [](sp::context &) { throw std::runtime_error("b failed"); }},
         {"c", [](sp::context &c) { c.set_result("c"); }},
         {"d", [](sp::context &c) { c.set_result("d"); }}},
        opts().fail_fast().max_workers(1));
    CHECK_EQ(res.size(), 4u);
    CHECK_EQ(res.at("b").kind(), sp::kind::failed);
    CHECK_EQ(res.at("b").message(), "b failed"sv);
    if (backend == sp::backend::serial) {
        CHECK_EQ(res.at("a").kind(), sp::kind::ok);
        CHECK_EQ(res.at("c").kind(), sp::kind::cancelled);
        CHECK_EQ(res.at("d").kind(), sp::kind::cancelled);
    }
}

void test_process_crash()
{
    // Crash isolation reaches C++ tasks too; the entry view exposes the
    // signal and the exit status.
    sp::results res =
        sp::run({{"signal",
                  [](sp::context &) {
                      std::raise(SIGUSR1);
                      sleep_ms(1000);
                  }},
                 {"exit", [](sp::context &) { _exit(3); }},
                 {"fine", [](sp::context &c) { c.set_result("fine"); }}},
                opts());
    CHECK_EQ(res.at("fine").data(), "fine"sv);
    CHECK_EQ(res.at("signal").kind(), sp::kind::crashed);
    CHECK_EQ(res.at("signal").signal(), SIGUSR1);
    CHECK_EQ(res.at("signal").code(), static_cast<int>(SP_ECRASHED));
    CHECK_EQ(res.at("exit").kind(), sp::kind::crashed);
    CHECK_EQ(res.at("exit").exit_status(), 3);
}

void test_many_tasks()
{
    const int n = 500;
    sp::table t;
    t.reserve(n);
    for (int i = 0; i < n; i++) {
        std::string payload(static_cast<std::size_t>(i % 17), 'x');
        t.add("m" + std::to_string(i), [i, payload](sp::context &c) {
            if (i % 50 == 49)
                throw std::out_of_range("index " + std::to_string(i));
            c.set_result(std::to_string(i) + payload);
        });
    }
    sp::results res = sp::run(t, opts());
    CHECK_EQ(res.size(), static_cast<std::size_t>(n));
    CHECK_EQ(res.failed(), 10u);
    int i = 0;
    for (sp::entry e : res) {
        if (i % 50 == 49) {
            CHECK_EQ(e.message(),
                     std::string_view("index " + std::to_string(i)));
        } else {
            std::string want =
                std::to_string(i) +
                std::string(static_cast<std::size_t>(i % 17), 'x');
            CHECK_EQ(e.data(), std::string_view(want));
        }
        i++;
    }
}

// --- task graphs ------------------------------------------------------------

// Stateless tasks (functions, lambdas without captures): they may be
// spawned and run on process pools.
void config_task(sp::context &c)
{
    c.set_result("21");
}

int twice_task(sp::context &c)
{
    long v = std::stol(std::string(c.dep_result("config")));
    return c.set_result(std::to_string(2 * v));
}

void echo_data(sp::context &c)
{
    c.set_result(c.data());
}

void page_task(sp::context &c)
{
    int n = std::stoi(std::string(c.data()));
    c.set_result(std::to_string(100 * n));
}

void summary_task(sp::context &c)
{
    int pages = std::stoi(std::string(c.data()));
    long bytes = 0;
    for (int n = 1; n <= pages; n++)
        bytes +=
            std::stol(std::string(c.dep_result("page:" + std::to_string(n))));
    c.set_result(std::to_string(pages) + " pages, " + std::to_string(bytes) +
                 " bytes");
}

// Spawns four pages and a summary after them, tries the spawns that must
// fail, and reports their codes as its result.
void index_task(sp::context &c)
{
    std::vector<std::string> keys;
    for (int n = 1; n <= 4; n++) {
        keys.push_back("page:" + std::to_string(n));
        c.spawn(sp::task(keys.back(), page_task).data(std::to_string(n)));
    }
    std::string codes;
    auto attempt = [&](const sp::task &row) {
        try {
            c.spawn(row);
            codes += "added ";
        } catch (const sp::error &ex) {
            codes += std::string(ex.name()) + " ";
        }
    };
    attempt(sp::task("page:1", page_task));               // duplicate
    attempt(sp::task("orphan", page_task).after({"no"})); // unknown dep
    int local = 5;
    attempt(sp::task("stateful", [local](sp::context &x) {
        x.set_result(std::to_string(local));
    }));
    attempt(sp::task(std::string("nul\0key", 7), page_task));
    attempt(
        sp::task("nul-after", page_task).after({std::string("page:1\0", 7)}));
    attempt(sp::task("self", page_task).after({"self"})); // cycle
    c.spawn(sp::task("summary", summary_task).after(keys).data("4"));
    // A lambda without captures, with a policy of its own: it fails its
    // first attempt and the policy's retry runs it again.
    c.spawn(sp::task("spawned-lambda",
                     [](sp::context &x) {
                         if (x.attempt() < 2)
                             return x.fail(5, "first attempt");
                         return x.set_result("attempt " +
                                             std::to_string(x.attempt()) +
                                             " of " + std::string(x.data()));
                     })
                .data("lambda")
                .policy(sp::task_policy().retries(1)));
    c.set_result(codes);
}

void test_dependencies()
{
    std::string prefix = "captured:";
    sp::table t{
        sp::task("report", [](sp::context &c) { c.set_result("never"); })
            .after({"twice", "lookup"}),
        sp::task("twice", twice_task).after({"config"}),
        {"config", config_task},
        {"lookup", [](sp::context &c) { c.fail(1, "no such host"); }},
        sp::task("not-a-dep",
                 [](sp::context &c) { (void)c.dep_result("lookup"); })
            .after({"config"}),
        sp::task("stateful-dep",
                 [prefix](sp::context &c) {
                     c.set_result(prefix + std::string(c.dep_result(
                                               std::string("config"))));
                 })
            .after({"config"}),
        sp::task("with-data", echo_data).data(std::string("a\0b", 3)),
        {"no-data", echo_data},
    };
    CHECK_EQ(t[0].after().size(), 2u);
    CHECK_EQ(t[6].data(), std::string("a\0b", 3));
    CHECK(t[0].policy() == nullptr);
    CHECK(t[0].stateless());
    CHECK(!t[5].stateless());
    CHECK(t[1].stateless());

    sp::results res = sp::run(t, opts());
    CHECK_EQ(res.size(), 8u);
    CHECK_EQ(res.at("config").data(), "21"sv);
    CHECK_EQ(res.at("twice").data(), "42"sv);
    CHECK_EQ(res.at("stateful-dep").data(), "captured:21"sv);
    sp::entry report = res.at("report");
    CHECK_EQ(report.kind(), sp::kind::skipped);
    CHECK_EQ(report.code(), static_cast<int>(SP_ESKIPPED));
    CHECK_EQ(report.cancel_reason(), sp::cancel_reason::dependency);
    CHECK_EQ(report.message(), "dependency 'lookup' FAILED: no such host"sv);
    CHECK_EQ(report.attempts(), 0u);
    sp::entry nodep = res.at("not-a-dep");
    CHECK_EQ(nodep.kind(), sp::kind::failed);
    CHECK_EQ(nodep.message().substr(0, 11), "SP_ENODEP: "sv);
    CHECK_EQ(res.at("with-data").data(), std::string_view("a\0b", 3));
    CHECK_EQ(res.at("no-data").data(), ""sv);

    // The graph is checked before anything runs.
    auto nop = [](sp::context &) {};
    expect_error({{"a", nop}, sp::task("b", nop).after({"nope"})}, opts(),
                 SP_EDEPKEY, "SP_EDEPKEY:");
    expect_error(
        {sp::task("a", nop).after({"b"}), sp::task("b", nop).after({"a"})},
        opts(), SP_ECYCLE, "SP_ECYCLE:");
    expect_error(
        {{"a", nop}, sp::task("b", nop).after({std::string("a\0", 2)})}, opts(),
        SP_EINVAL,
        "SP_EINVAL: task \"b\" at index 1 waits for a task that has "
        "a key with a NUL byte at offset 1");
}

void test_spawn()
{
    sp::results res = sp::run({{"index", index_task}}, opts());
    CHECK_EQ(res.size(), 7u);
    const char *order[] = {"index",  "page:1",  "page:2",        "page:3",
                           "page:4", "summary", "spawned-lambda"};
    for (std::size_t i = 0; i < 7; i++)
        CHECK_EQ(res.by_index(i).key(), std::string_view(order[i]));
    CHECK_EQ(res.at("index").data(),
             "SP_EDUPKEY SP_EDEPKEY SP_ENOTSUP SP_EINVAL SP_EINVAL "
             "SP_ECYCLE "sv);
    CHECK_EQ(res.at("page:3").data(), "300"sv);
    CHECK_EQ(res.at("summary").data(), "4 pages, 1000 bytes"sv);
    sp::entry lambda = res.at("spawned-lambda");
    CHECK_EQ(lambda.kind(), sp::kind::ok);
    CHECK_EQ(lambda.data(), "attempt 2 of lambda"sv);
    CHECK_EQ(lambda.attempts(), 2u);
    CHECK_EQ(lambda.first_kind(), sp::kind::failed);
    CHECK_EQ(lambda.first_code(), 5);
    CHECK_EQ(lambda.first_message(), "first attempt"sv);
}

// --- retries, policies, reasons ----------------------------------------------

int wait_for_cancel(sp::context &c)
{
    unsigned limit = scaled_ms(10000);
    for (unsigned waited = 0; waited < limit; waited++) {
        if (c.cancelled())
            return c.fail(9, "stopped");
        sleep_ms(1);
    }
    return c.set_result("never stopped");
}

int always_fails(sp::context &c)
{
    return c.fail(404, "attempt " + std::to_string(c.attempt()) +
                           ": no such ticker");
}

void test_retries()
{
    using namespace std::chrono_literals;
    sp::table t{
        {"flaky",
         [](sp::context &c) {
             if (c.attempt() < 3)
                 return c.fail(503, "attempt " + std::to_string(c.attempt()));
             return c.set_result("after " + std::to_string(c.attempt()));
         }},
        {"broken", always_fails},
        sp::task("payment", always_fails)
            .policy(sp::task_policy().no_retries()),
        sp::task("only-crashes", always_fails)
            .policy(sp::task_policy().retry_on(sp::retry_outcome::crashed |
                                               sp::retry_outcome::timed_out)),
        sp::task("own-retries", always_fails)
            .policy(
                sp::task_policy().retries(1).retry_backoff(sp::backoff::fixed)),
        sp::task("report", [](sp::context &) {}).after({"broken"}),
        {"once", [](sp::context &c) { c.set_result("fine"); }},
    };
    sp::results res =
        sp::run(t, opts().retries(2).retry_delay(10ms).retry_backoff(
                       sp::backoff::doubling));
    sp::entry flaky = res.at("flaky");
    CHECK_EQ(flaky.kind(), sp::kind::ok);
    CHECK_EQ(flaky.data(), "after 3"sv);
    CHECK_EQ(flaky.attempts(), 3u);
    CHECK_EQ(flaky.first_kind(), sp::kind::failed);
    CHECK_EQ(flaky.first_code(), 503);
    CHECK_EQ(flaky.first_message(), "attempt 1"sv);
    sp::entry broken = res.at("broken");
    CHECK_EQ(broken.kind(), sp::kind::failed);
    CHECK_EQ(broken.attempts(), 3u);
    CHECK_EQ(broken.code(), 404);
    CHECK_EQ(broken.code_origin(), sp::code_origin::task);
    CHECK_EQ(broken.message(), "attempt 3: no such ticker"sv);
    CHECK_EQ(broken.first_message(), "attempt 1: no such ticker"sv);
    // Every attempt, as an entry of its own.
    CHECK_EQ(broken.attempt(2).message(), "attempt 2: no such ticker"sv);
    CHECK_EQ(broken.attempt(2).kind(), sp::kind::failed);
    CHECK_EQ(broken.attempt(2).attempts(), 2u);
    CHECK(broken.attempt(1).end() <= broken.attempt(2).start());
    CHECK_EQ(broken.attempt(3).native(), broken.native());
    CHECK(!broken.attempt(4));
    CHECK(!broken.attempt(0));
    // 10 ms, then 20 ms (doubling) after the end of an attempt: the last
    // attempt cannot start before 30 ms.
    CHECK(broken.start() >= 0.0299);
    CHECK_EQ(res.at("payment").attempts(), 1u);
    CHECK_EQ(res.at("only-crashes").attempts(), 1u);
    CHECK_EQ(res.at("own-retries").attempts(), 2u);
    CHECK(res.at("own-retries").start() >= 0.0099);
    CHECK_EQ(res.at("report").kind(), sp::kind::skipped);
    CHECK_EQ(res.at("report").attempts(), 0u);
    sp::entry once = res.at("once");
    CHECK_EQ(once.attempts(), 1u);
    CHECK_EQ(once.first_kind(), sp::kind::ok);
    CHECK_EQ(once.code_origin(), sp::code_origin::none);

    // retry_on() of the run: a failure is not retried when only crashes
    // are.
    sp::results only =
        sp::run({{"fails", always_fails}},
                opts().retries(3).retry_on(sp::retry_outcome::crashed));
    CHECK_EQ(only.at("fails").attempts(), 1u);

    // A per-task time limit, as a duration.
    unsigned limit = scaled_ms(5000);
    sp::results timed = sp::run(
        {sp::task("slow",
                  [limit](sp::context &c) {
                      for (unsigned waited = 0; waited < limit; waited++) {
                          if (c.cancelled())
                              return c.fail(9, "gave up");
                          sleep_ms(1);
                      }
                      return c.set_result("never cancelled");
                  })
             .policy(sp::task_policy().time_limit(
                 std::chrono::milliseconds(scaled_ms(50)))),
         {"quick", [](sp::context &c) { c.set_result("done"); }}},
        opts());
    CHECK_EQ(timed.at("slow").kind(), sp::kind::timed_out);
    CHECK_EQ(timed.at("quick").kind(), sp::kind::ok);

    // Out of range: thrown before anything runs, naming the row.
    auto nop = [](sp::context &) {};
    expect_error({{"a", nop}}, opts().retries(SP_MAX_RETRIES + 1), SP_EOPTION,
                 "SP_EOPTION:");
    expect_error({{"a", nop}}, opts().retry_delay(-1.0), SP_EOPTION,
                 "SP_EOPTION:");
    bool named = false;
    try {
        (void)sp::run(
            {{"a", nop},
             sp::task("b", nop).policy(sp::task_policy().time_limit(-1.0))},
            opts());
    } catch (const sp::error &ex) {
        named = ex.code() == SP_EOPTION &&
                std::string_view(ex.what()).find("task \"b\" at index 1") !=
                    std::string_view::npos;
    }
    CHECK(named);
}

void test_cancel_reasons()
{
    CHECK_EQ(
        std::string_view(sp::cancel_reason_name(sp::cancel_reason::deadline)),
        "DEADLINE"sv);
    CHECK_EQ(
        std::string_view(sp::cancel_reason_name(sp::cancel_reason::caller)),
        "CALLER"sv);
    CHECK_EQ(std::string_view(
                 sp::cancel_reason_name(static_cast<sp::cancel_reason>(99))),
             "UNKNOWN"sv);

    // "first" fails; "waits" runs beside it and gives up when it sees the
    // stop, or never starts; "never" may have started before the stop on
    // the thread and process backends, but not on the serial one.
    sp::results ff =
        sp::run({{"first", [](sp::context &c) { c.fail(3, "boom"); }},
                 {"waits", wait_for_cancel},
                 {"never", [](sp::context &c) { c.set_result("x"); }}},
                opts().fail_fast().max_workers(2));
    CHECK_EQ(ff.at("first").cancel_reason(), sp::cancel_reason::none);
    CHECK_EQ(ff.at("first").code_origin(), sp::code_origin::task);
    CHECK_EQ(ff.at("waits").kind(), sp::kind::cancelled);
    CHECK_EQ(ff.at("waits").cancel_reason(), sp::cancel_reason::fail_fast);
    if (backend == sp::backend::serial)
        CHECK_EQ(ff.at("never").kind(), sp::kind::cancelled);
    for (sp::entry e : ff) {
        if (e.kind() != sp::kind::cancelled || e.attempts() != 0)
            continue;
        CHECK_EQ(e.cancel_reason(), sp::cancel_reason::fail_fast);
        CHECK_EQ(e.code_origin(), sp::code_origin::library);
        CHECK_EQ(e.message(),
                 "not started: task \"first\" failed (fail-fast)"sv);
    }

    // One worker: the deadline passes while "sleeper" runs, so "later"
    // never starts.
    unsigned limit = scaled_ms(5000);
    sp::results dl =
        sp::run({{"sleeper",
                  [limit](sp::context &c) {
                      for (unsigned waited = 0; waited < limit; waited++) {
                          if (c.cancelled())
                              return 0;
                          sleep_ms(1);
                      }
                      return 0;
                  }},
                 {"later", [](sp::context &c) { c.set_result("x"); }}},
                opts().max_workers(1).deadline(
                    std::chrono::milliseconds(scaled_ms(50))));
    CHECK_EQ(dl.at("later").kind(), sp::kind::cancelled);
    CHECK_EQ(dl.at("later").cancel_reason(), sp::cancel_reason::deadline);
    CHECK_EQ(dl.at("later").attempts(), 0u);

    // A throw is a library code (SP_ETASK).
    sp::results thrown = sp::run(
        {{"t", [](sp::context &) { throw std::runtime_error("x"); }}}, opts());
    CHECK_EQ(thrown.at("t").code_origin(), sp::code_origin::library);
}

// --- cancel handles
// -----------------------------------------------------------

void test_cancel_handle()
{
    static_assert(!std::is_copy_constructible_v<sp::cancel>);
    static_assert(!std::is_copy_assignable_v<sp::cancel>);
    static_assert(std::is_nothrow_move_constructible_v<sp::cancel>);
    static_assert(std::is_nothrow_move_assignable_v<sp::cancel>);

    sp::cancel h;
    CHECK(h.native() != nullptr);
    CHECK(!h.fired());

    // Fired before the run: nothing runs, every key comes back.
    h.fire();
    CHECK(h.fired());
    sp::results none =
        sp::run({{"a", [](sp::context &c) { c.set_result("a"); }},
                 {"b", [](sp::context &c) { c.set_result("b"); }}},
                opts().cancel(h));
    CHECK_EQ(none.size(), 2u);
    CHECK_EQ(none.count(sp::kind::cancelled), 2u);
    for (sp::entry e : none) {
        CHECK_EQ(e.cancel_reason(), sp::cancel_reason::caller);
        CHECK_EQ(e.attempts(), 0u);
    }

    // Reset: runs go on normally.
    h.reset();
    CHECK(!h.fired());
    sp::results fine = sp::run(
        {{"a", [](sp::context &c) { c.set_result("a"); }}}, opts().cancel(h));
    CHECK_EQ(fine.ok(), 1u);

    // Fired from another thread during the run: the polling tasks stop.
    sp::table t;
    for (int i = 0; i < 4; i++)
        t.add("w" + std::to_string(i), wait_for_cancel);
    std::thread firer([&h] {
        sleep_ms(scaled_ms(50));
        h.fire();
    });
    sp::results stopped = sp::run(t, opts().max_workers(2).cancel(h));
    firer.join();
    CHECK_EQ(stopped.size(), 4u);
    CHECK_EQ(stopped.count(sp::kind::cancelled), 4u);
    for (sp::entry e : stopped) {
        CHECK_EQ(e.cancel_reason(), sp::cancel_reason::caller);
        CHECK(e.code() == 9 || e.code() == SP_ECANCELED);
    }

    // Moves hand the C handle over; a moved-from handle does nothing.
    sp_cancel *raw = h.native();
    sp::cancel moved(std::move(h));
    CHECK(moved.native() == raw);
    CHECK(h.native() == nullptr); // NOLINT(bugprone-use-after-move)
    h.fire();
    CHECK(!h.fired());
    CHECK(moved.fired());
    sp::cancel other;
    other = std::move(moved);
    CHECK(other.native() == raw);
    CHECK(other.fired());
}

// --- pools ----------------------------------------------------------------

// A worker's state: not movable (built in place), and its destructor (the
// worker's tear-down) writes a byte to a pipe, so that the test sees it
// from worker processes too.
struct connection {
    connection(unsigned w, int fd)
        : worker(w), name("conn" + std::to_string(w)), fd_(fd)
    {
    }
    connection(const connection &) = delete;
    connection &operator=(const connection &) = delete;
    ~connection()
    {
        char b = 'x';
        if (fd_ >= 0 && write(fd_, &b, 1) != 1)
            std::abort();
    }
    unsigned worker;
    std::string name;
    std::mutex busy; // what makes it immovable
    int fd_;
};

void pool_task(sp::context &c)
{
    connection *conn = c.worker_state<connection>();
    if (!conn)
        throw std::runtime_error("no worker state");
    if (c.worker_state<int>() != nullptr)
        throw std::runtime_error("a state of the wrong type");
    std::lock_guard<std::mutex> hold(conn->busy);
    c.set_result(conn->name + ":" + std::string(c.data()));
}

std::size_t drain(int fd)
{
    std::size_t n = 0;
    char buf[64];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0)
        n += static_cast<std::size_t>(got);
    return n;
}

sp::pool_options pool_opts()
{
    return sp::pool_options().backend(backend);
}

void test_pool()
{
    static_assert(!std::is_copy_constructible_v<sp::pool>);
    static_assert(!std::is_copy_assignable_v<sp::pool>);
    static_assert(std::is_nothrow_move_constructible_v<sp::pool>);
    static_assert(std::is_nothrow_move_assignable_v<sp::pool>);

    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    const unsigned want = backend == sp::backend::serial ? 1u : 3u;
    {
        int wfd = fds[1];
        sp::pool p(pool_opts().max_workers(3).setup(
            [wfd](unsigned w) { return connection(w, wfd); }));
        CHECK_EQ(p.workers(), want);
        CHECK(p.native() != nullptr);
        CHECK_EQ(p.backend(), backend);

        sp::table t;
        for (int i = 0; i < 12; i++)
            t.add(sp::task("p" + std::to_string(i), pool_task)
                      .data(std::to_string(i)));
        for (int round = 0; round < 20; round++) {
            sp::results res = p.run(t, opts());
            CHECK_EQ(res.ok(), 12u);
            for (sp::entry e : res) {
                std::string_view d = e.data();
                CHECK_EQ(d.substr(0, 4), "conn"sv);
                unsigned w = static_cast<unsigned>(
                    std::stoul(std::string(d.substr(4, d.find(':') - 4))));
                CHECK(w < want);
                CHECK_EQ(d.substr(d.find(':') + 1),
                         std::string_view(std::to_string(e.index())));
            }
        }

        // Two threads at once on one pool.
        sp::results from_thread;
        std::thread other([&] { from_thread = p.run(t); });
        sp::results here = p.run(t);
        other.join();
        CHECK_EQ(from_thread.ok(), 12u);
        CHECK_EQ(here.ok(), 12u);

        // Graphs and spawning run on pools too.
        sp::results graph =
            p.run({{"index", index_task},
                   {"config", config_task},
                   sp::task("twice", twice_task).after({"config"})});
        CHECK_EQ(graph.at("summary").data(), "4 pages, 1000 bytes"sv);
        CHECK_EQ(graph.at("twice").data(), "42"sv);

        // A process pool's workers do not have a table made after them:
        // a row with state is refused before anything runs.
        int local = 1;
        sp::table stateful{{"captures", [local](sp::context &c) {
                                c.set_result(std::to_string(local));
                            }}};
        if (backend == sp::backend::process) {
            bool refused = false;
            try {
                (void)p.run(stateful);
            } catch (const sp::error &ex) {
                refused = ex.code() == SP_ENOTSUP &&
                          std::string_view(ex.what()).find(
                              "task \"captures\" at index 0") !=
                              std::string_view::npos;
            }
            CHECK(refused);
        } else {
            CHECK_EQ(p.run(stateful).at("captures").data(), "1"sv);
            // A task may run a table on its own pool.
            sp::results nested =
                p.run({{"outer", [&p](sp::context &c) {
                            sp::results in = p.run({{"inner", config_task}});
                            c.set_result(in.at("inner").data());
                        }}});
            CHECK_EQ(nested.at("outer").data(), "21"sv);
        }

        // Moves: the pool goes with the object.
        sp_pool *raw = p.native();
        sp::pool q(std::move(p));
        CHECK(q.native() == raw);
        CHECK(p.native() == nullptr); // NOLINT(bugprone-use-after-move)
        CHECK_EQ(p.workers(), 0u);
        CHECK_EQ(q.run(t).ok(), 12u);
        bool einval = false;
        try {
            (void)p.run(t);
        } catch (const sp::error &ex) {
            einval = ex.code() == SP_EINVAL;
        }
        CHECK(einval);
        CHECK_EQ(drain(fds[0]), 0u); // no tear-down yet
    }
    // Every worker's state was destroyed in its worker.
    CHECK_EQ(drain(fds[0]), static_cast<std::size_t>(want));
    close(fds[0]);
    close(fds[1]);

    // A set-up returning void: no state.
    sp::pool plain(pool_opts().max_workers(2).setup([](unsigned) {}));
    sp::results res = plain.run(
        {{"state", [](sp::context &c) {
              c.set_result(c.worker_state<int>() == nullptr ? "none" : "some");
          }}});
    CHECK_EQ(res.at("state").data(), "none"sv);
}

void test_pool_setup_throws()
{
    int code = 0;
    std::string message;
    try {
        sp::pool p(pool_opts().max_workers(2).setup([](unsigned w) -> int {
            if (w == 0)
                throw std::runtime_error("no database");
            return 1;
        }));
    } catch (const sp::error &ex) {
        code = ex.code();
        message = ex.what();
    }
    CHECK_EQ(code, static_cast<int>(SP_ESETUP));
    CHECK(message.find("worker 0") != std::string::npos);
    if (backend != sp::backend::process)
        CHECK(message.find("(worker 0 threw: no database)") !=
              std::string::npos);

    // Out of range options are the C library's errors.
    code = 0;
    try {
        sp::pool p(pool_opts().max_workers(SP_MAX_WORKERS + 1));
    } catch (const sp::error &ex) {
        code = ex.code();
    }
    CHECK_EQ(code, static_cast<int>(SP_EOPTION));
}

void test_pool_cancel()
{
    sp::cancel h;
    sp::pool p(pool_opts().max_workers(2).cancel(h));
    sp::table t{{"a", config_task}, {"b", config_task}};
    CHECK_EQ(p.run(t).ok(), 2u);
    h.fire();
    sp::results stopped = p.run(t);
    CHECK_EQ(stopped.count(sp::kind::cancelled), 2u);
    CHECK_EQ(stopped.at("a").cancel_reason(), sp::cancel_reason::caller);
    h.reset();
    CHECK_EQ(p.run(t).ok(), 2u);
}

// --- owned results and export ---------------------------------------------

void test_owned_result()
{
    sp::results res =
        sp::run({{"owned",
                  [](sp::context &c) {
                      const std::size_t n = 100000;
                      auto buf = std::make_unique<char[]>(n + 1);
                      for (std::size_t i = 0; i < n; i++)
                          buf[i] = static_cast<char>('a' + i % 26);
                      return c.set_result(std::move(buf), n);
                  }},
                 {"bytes",
                  [](sp::context &c) {
                      auto buf = std::make_unique<std::byte[]>(4);
                      buf[0] = std::byte{1};
                      buf[1] = std::byte{0};
                      buf[2] = std::byte{2};
                      return c.set_result(std::move(buf), 3);
                  }},
                 {"null",
                  [](sp::context &c) {
                      c.set_result("kept");
                      int rc = c.set_result(std::unique_ptr<char[]>(), 3);
                      if (rc != SP_EINVAL)
                          return c.fail(1, "set_result(null) returned " +
                                               std::to_string(rc));
                      return 0;
                  }},
                 {"replaced",
                  [](sp::context &c) {
                      c.set_result(std::make_unique<unsigned char[]>(8), 7);
                      c.set_result("copy");
                  }}},
                opts());
    CHECK_EQ(res.ok(), 4u);
    std::string_view owned = res.at("owned").data();
    CHECK_EQ(owned.size(), 100000u);
    CHECK_EQ(owned.substr(0, 3), "abc"sv);
    const char tail[] = {static_cast<char>('a' + 99998 % 26),
                         static_cast<char>('a' + 99999 % 26)};
    CHECK_EQ(owned.substr(99998), std::string_view(tail, 2));
    CHECK_EQ(res.at("bytes").data(), std::string_view("\1\0\2", 3));
    CHECK_EQ(res.at("null").data(), "kept"sv);
    CHECK_EQ(res.at("replaced").data(), "copy"sv);
}

void test_export()
{
    sp::results res = sp::run(
        {{"alpha", [](sp::context &c) { c.set_result("a"); }},
         {"beta", [](sp::context &c) { c.fail(2, "no <beta> & \"quotes\""); }}},
        opts());
    std::string trace = res.trace();
    CHECK_EQ(trace.substr(0, 16), "{\"traceEvents\":["sv);
    CHECK(trace.find("\"name\":\"alpha\"") != std::string::npos);
    CHECK(trace.find("\"schema\":\"simplepar-trace\"") != std::string::npos);
    CHECK(trace.find("no <beta> & \\\"quotes\\\"") != std::string::npos);
    std::string svg = res.svg();
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK(svg.find("data-index=\"1\"") != std::string::npos);
    CHECK(svg.find("no &lt;beta&gt; &amp;") != std::string::npos);

    // To a FILE: the same bytes.
    std::FILE *f = std::tmpfile();
    CHECK(f != nullptr);
    res.write_trace(f);
    CHECK_EQ(std::ftell(f), static_cast<long>(trace.size()));
    std::rewind(f);
    res.write_svg(f);
    CHECK_EQ(std::ftell(f), static_cast<long>(svg.size()));
    std::fclose(f);

    // Failures are thrown with the C library's code and message.
    auto code_of = [](auto &&fn) {
        try {
            fn();
        } catch (const sp::error &ex) {
            return ex.code();
        }
        return 0;
    };
    std::FILE *ro = std::fopen("/dev/null", "r");
    CHECK(ro != nullptr);
    CHECK_EQ(code_of([&] { res.write_svg(ro); }), static_cast<int>(SP_EIO));
    std::fclose(ro);
    CHECK_EQ(code_of([&] { res.write_trace(nullptr); }),
             static_cast<int>(SP_EINVAL));
    sp::results empty;
    CHECK_EQ(code_of([&] { (void)empty.svg(); }), static_cast<int>(SP_EINVAL));
}

void test_index_keys()
{
    // Keyless rows, read by position; the same callable twice is fine.
    sp::table t;
    auto same = [](sp::context &c) { c.set_result(std::to_string(c.index())); };
    for (int i = 0; i < 6; i++)
        t.add(same);
    sp::results res = sp::run(t, opts().index_keys());
    CHECK_EQ(res.size(), 6u);
    CHECK_EQ(res.ok(), 6u);
    for (std::size_t i = 0; i < 6; i++) {
        CHECK_EQ(res.by_index(i).data(), std::string_view(std::to_string(i)));
        CHECK_EQ(res.by_index(i).key(), ""sv);
    }
    CHECK(!res.find("0"));
    // A keyed row in an index-keyed run is refused before anything runs.
    t.add("k", same);
    bool threw = false;
    try {
        sp::results again = sp::run(t, opts().index_keys());
        CHECK(false); // not reached: run() threw
    } catch (const sp::error &e) {
        threw = e.code() == SP_EINVAL;
    }
    CHECK(threw);
}

struct test_case {
    const char *name;
    void (*fn)();
    bool process_only;
};

const test_case tests[] = {
    {"lambda_tasks", test_lambda_tasks, false},
    {"return_values_and_fail", test_return_values_and_fail, false},
    {"context_identity", test_context_identity, false},
    {"exception_becomes_failed", test_exception_becomes_failed, false},
    {"non_std_exception", test_non_std_exception, false},
    {"nested_run", test_nested_run, false},
    {"lookup", test_lookup, false},
    {"raii_and_moves", test_raii_and_moves, false},
    {"validation_errors", test_validation_errors, false},
    {"options_builder", test_options_builder, false},
    {"on_done", test_on_done, false},
    {"cancelled_and_timeout", test_cancelled_and_timeout, false},
    {"fail_fast", test_fail_fast, false},
    {"process_crash", test_process_crash, true},
    {"many_tasks", test_many_tasks, false},
    {"dependencies", test_dependencies, false},
    {"spawn", test_spawn, false},
    {"retries", test_retries, false},
    {"cancel_reasons", test_cancel_reasons, false},
    {"cancel_handle", test_cancel_handle, false},
    {"pool", test_pool, false},
    {"pool_setup_throws", test_pool_setup_throws, false},
    {"pool_cancel", test_pool_cancel, false},
    {"owned_result", test_owned_result, false},
    {"export", test_export, false},
    {"index_keys", test_index_keys, false},
};

} // namespace

int main(int argc, char **argv)
{
    if (argc > 1) {
        std::string_view b = argv[1];
        if (b == "thread")
            backend = sp::backend::thread;
        else if (b == "serial")
            backend = sp::backend::serial;
        else if (b == "process")
            backend = sp::backend::process;
        else {
            std::fprintf(stderr, "unknown backend %s\n", argv[1]);
            return 2;
        }
        backend_name = argv[1];
    }
    std::signal(SIGPIPE, SIG_IGN);
    int passed = 0, failed = 0, skipped = 0;
    for (const test_case &tc : tests) {
        if (tc.process_only && backend != sp::backend::process) {
            std::printf("skip %s/%s (process backend only)\n", backend_name,
                        tc.name);
            skipped++;
            continue;
        }
        bool ok = false;
        try {
            tc.fn();
            ok = true;
        } catch (const check_failure &) {
        } catch (const std::exception &ex) {
            std::fprintf(stderr, "unexpected exception: %s\n", ex.what());
        } catch (...) {
            std::fprintf(stderr, "unexpected non-std exception\n");
        }
        std::printf("%s %s/%s\n", ok ? "ok  " : "FAIL", backend_name, tc.name);
        std::fflush(stdout);
        (ok ? passed : failed)++;
    }
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
