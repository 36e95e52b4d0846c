// SPDX-License-Identifier: MIT
// The C++ face, <simplepar.hpp>, on the backend named by argv[1]: lambda
// tasks, exceptions turned into FAILED entries, the RAII results map and its
// moves, lookup and iteration, options, on_done, validation errors thrown as
// simplepar::error.
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
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

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
