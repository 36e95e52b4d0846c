// SPDX-License-Identifier: MIT
/**
 * @file simplepar.hpp
 * @brief simplepar for C++17: lambdas as tasks, an RAII results map,
 * exceptions caught at the task boundary.
 *
 * A header-only face over the C API of simplepar.h; link with -lsimplepar
 * as for C (`pkg-config --cflags --libs simplepar`) and compile with
 * -std=c++17 or later.
 *
 * @code
 * simplepar::results res = simplepar::run(
 *     {{"three", [](simplepar::context &c) { c.set_result("9"); }},
 *      {"bad", [](simplepar::context &) { throw std::runtime_error("no"); }}},
 *     simplepar::options().backend(simplepar::backend::thread));
 * for (simplepar::entry e : res)
 *     std::cout << e.key() << ' ' << simplepar::kind_name(e.kind()) << '\n';
 * @endcode
 *
 * Conventions, beyond those of simplepar.h:
 *  - Every type and function lives in namespace simplepar. The C API stays
 *    reachable: each wrapper has a native() accessor.
 *  - Functions marked noexcept never throw. The others throw
 *    std::bad_alloc when memory runs out, and what their comment says.
 *  - Exceptions never cross the C library's frames: what a task or the
 *    completion callback throws is caught at the boundary (see run()).
 *  - Views (entry, std::string_view) borrow from the results object they
 *    came from and stay valid until that map is destroyed. Moving a
 *    results object moves the map, so views stay valid with the new owner.
 *  - Thread-safety is that of the C API: no global state; any number of
 *    threads may call run() at once, and a task may call run() again.
 *
 * Room to grow: run() turns a table into C rows and calls
 * simple_parallel() through detail::run_with(), which takes the C entry
 * point as a parameter. A persistent pool (a class owning the C pool handle,
 * with its own run(const table &, const options &)), task dependencies (a
 * setter on task filling sp_task.after) and spawning (a member of context)
 * can each be added beside these types without changing them.
 *
 * Doxygen format, as simplepar.h.
 */
#ifndef SIMPLEPAR_HPP
#define SIMPLEPAR_HPP

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "simplepar.hpp needs C++17 or later; C programs include simplepar.h"
#endif

#include "simplepar.h"

#include <chrono>
#include <climits>
#include <cstddef>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace simplepar
{

/* ------------------------------------------------------------------------ */
/** @name Errors
 * @{ */

/**
 * @brief A call that failed up front: invalid table or options, or no
 * worker could be started. Nothing has run when it is thrown.
 *
 * code() is the ::sp_error value simple_parallel() returned (e.g.
 * ::SP_EDUPKEY) and what() the text sp_last_error() gave for it, e.g.
 * `SP_EDUPKEY: duplicate task key "b" at index 3 (first at index 1)`.
 */
class error : public std::runtime_error
{
  public:
    /** @brief An error with an ::sp_error @p code and its message. */
    error(int code, const std::string &message)
        : std::runtime_error(message), code_(code)
    {
    }

    /** @brief The ::sp_error code (negative). */
    int code() const noexcept
    {
        return code_;
    }

    /** @brief The code's symbolic name, e.g. "SP_EDUPKEY" (static string). */
    const char *name() const noexcept
    {
        return sp_err_name(code_);
    }

  private:
    int code_;
};

/** The message of a FAILED entry whose task threw something that is not a
 *  std::exception (an int, a string, ...). */
inline constexpr const char *unknown_exception_message =
    "task threw an exception not derived from std::exception";

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Enumerations
 * Scoped forms of the C enumerations, with the same values.
 * @{ */

/** Where the tasks run; see ::sp_backend. */
enum class backend : int {
    thread = SP_BACKEND_THREAD,  /**< threads of this process (default) */
    serial = SP_BACKEND_SERIAL,  /**< inline on the calling thread */
    process = SP_BACKEND_PROCESS /**< forked worker processes */
};

/** How a task ended; see ::sp_kind. */
enum class kind : int {
    ok = SP_KIND_OK,               /**< returned 0 / void */
    failed = SP_KIND_FAILED,       /**< failed, returned non-zero or threw */
    crashed = SP_KIND_CRASHED,     /**< its worker process died */
    timed_out = SP_KIND_TIMED_OUT, /**< ran past the deadline or its limit */
    cancelled = SP_KIND_CANCELLED, /**< never started */
    skipped = SP_KIND_SKIPPED      /**< a dependency did not end OK */
};

/** @brief "OK", "FAILED", "CRASHED", "TIMED_OUT", "CANCELLED" or "SKIPPED"
 * (static string; "UNKNOWN" for any other value). */
inline const char *kind_name(kind k) noexcept
{
    return sp_kind_name(static_cast<sp_kind>(k));
}

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Tasks
 * @{ */

/**
 * @brief What a running task gets: its identity and the way to report.
 *
 * A thin view of the task's ::sp_ctx, handed by reference to the task and
 * valid only until the task returns (do not keep it). Every member is
 * noexcept and may be called only from inside the task that received it.
 */
class context
{
  public:
    /** @brief Wrap a C context (done by run(); useful to call C++ code
     *  from a C task). */
    explicit context(sp_ctx *ctx) noexcept : ctx_(ctx)
    {
    }
    context(const context &) = delete;
    context &operator=(const context &) = delete;

    /**
     * @brief Store the task's result (copied at once; a later call
     * replaces it).
     * @return 0, or ::SP_ENOMEM when the copy could not be made: the
     *         earlier result is kept and, if the task then succeeds, its
     *         entry is FAILED with ::SP_ENOMEM, so ignoring the value never
     *         loses an error. See sp_set_result().
     */
    int set_result(std::string_view bytes) noexcept
    {
        return sp_set_result(ctx_, bytes.data(), bytes.size());
    }

    /** @brief Store @p len bytes from @p data (NULL only when @p len is 0).
     *  Same return values as set_result(std::string_view). */
    int set_result(const void *data, std::size_t len) noexcept
    {
        return sp_set_result(ctx_, data, len);
    }

    /**
     * @brief Store the bytes of a contiguous container of trivially
     * copyable elements (std::vector<std::byte>, std::vector<unsigned
     * char>, std::array<std::uint8_t, N>, ...): size() * sizeof(element)
     * bytes from data(). Same return values as
     * set_result(std::string_view).
     */
    template <class Bytes,
              class Elem = std::remove_cv_t<std::remove_pointer_t<
                  decltype(std::data(std::declval<const Bytes &>()))>>,
              class = std::enable_if_t<
                  !std::is_convertible_v<const Bytes &, std::string_view> &&
                  std::is_trivially_copyable_v<Elem>>>
    int set_result(const Bytes &bytes) noexcept
    {
        return sp_set_result(ctx_, std::data(bytes),
                             std::size(bytes) * sizeof(Elem));
    }

    /**
     * @brief Mark the task failed with @p code and @p message (copied; a
     * NUL byte in it ends it). Return its value from the task:
     * `return c.fail(7, "no quote for " + ticker);`
     * @return the recorded code: @p code, or ::SP_ETASK when it is 0.
     */
    int fail(int code, std::string_view message) noexcept
    {
        std::size_t len = message.size();
        return sp_fail(ctx_, code, "%.*s",
                       static_cast<int>(len > INT_MAX ? INT_MAX : len),
                       message.data() ? message.data() : "");
    }

    /** @brief Mark the task failed with @p code and no message (the entry
     *  then says "task returned N"). @return as fail(int, std::string_view).
     */
    int fail(int code) noexcept
    {
        return sp_fail(ctx_, code, nullptr);
    }

    /** @brief Whether the task has been asked to stop (deadline, its time
     *  limit, fail-fast, or stop from on_done); long tasks should poll it.
     *  See sp_cancelled(). */
    bool cancelled() const noexcept
    {
        return sp_cancelled(ctx_) != 0;
    }

    /** @brief The task's key (borrowed from its table). */
    std::string_view key() const noexcept
    {
        return sp_ctx_key(ctx_);
    }

    /** @brief The task's index in its table. */
    std::size_t index() const noexcept
    {
        return sp_ctx_index(ctx_);
    }

    /** @brief The worker running the task: 0 .. workers-1. */
    unsigned worker() const noexcept
    {
        return sp_ctx_worker(ctx_);
    }

    /** @brief The C context, for sp_set_resultf() and the like. */
    sp_ctx *native() const noexcept
    {
        return ctx_;
    }

  private:
    sp_ctx *ctx_;
};

/**
 * @brief One row of a task table: a key and a callable.
 *
 * The callable is anything invocable as `f(simplepar::context &)` that
 * returns void (success unless it called context::fail()) or an integer
 * (0 success, anything else the entry's code, as in C); bool is refused at
 * compile time since `true` would read as failure. It is stored in a
 * std::function, so it must be copy-constructible.
 *
 * Whatever the callable throws is caught before it reaches the C library,
 * on the thread or in the process that ran it: the entry becomes FAILED
 * with code ::SP_ETASK and what() as its message
 * (::unknown_exception_message for a non-std exception), also when the
 * task had stored a result or called context::fail() first. A C++
 * exception therefore never ends the program nor the run, and the other
 * tasks carry on.
 */
class task
{
  public:
    /** The stored form of every callable. */
    using function = std::function<int(context &)>;

    /**
     * @brief A row: @p key (must be unique in its table, non-empty and free
     * of NUL bytes; checked by run()) and the callable @p fn (copied or
     * moved in). An empty std::function or null function pointer is
     * reported by run() as ::SP_ENOFN.
     */
    template <class F, class = std::enable_if_t<
                           !std::is_same_v<std::decay_t<F>, task> &&
                           std::is_invocable_v<std::decay_t<F> &, context &>>>
    task(std::string key, F &&fn)
        : key_(std::move(key)), fn_(wrap(std::forward<F>(fn)))
    {
    }

    /** @brief The key. */
    const std::string &key() const noexcept
    {
        return key_;
    }

    /** @brief The callable. */
    const function &fn() const noexcept
    {
        return fn_;
    }

  private:
    template <class T> struct is_std_function : std::false_type {
    };
    template <class Sig>
    struct is_std_function<std::function<Sig>> : std::true_type {
    };

    template <class F> static function wrap(F &&fn)
    {
        using D = std::decay_t<F>;
        using R = std::invoke_result_t<D &, context &>;
        static_assert(std::is_copy_constructible_v<D>,
                      "a simplepar task is kept in a std::function, so it "
                      "must be copyable");
        static_assert(std::is_void_v<R> ||
                          (std::is_convertible_v<R, int> &&
                           !std::is_same_v<std::decay_t<R>, bool>),
                      "a simplepar task returns void or int (0 = success)");
        // A null pointer or empty std::function stays empty, so that run()
        // reports it as SP_ENOFN instead of calling it.
        if constexpr (std::is_pointer_v<std::remove_reference_t<F>> ||
                      is_std_function<D>::value)
            if (!fn)
                return function();
        if constexpr (std::is_void_v<R>)
            return [f = std::forward<F>(fn)](context &c) mutable {
                std::invoke(f, c);
                return 0;
            };
        else
            return function(std::forward<F>(fn));
    }

    std::string key_;
    function fn_;
};

/**
 * @brief A task table: rows in input order, which is the order of the
 * results.
 *
 * Owns its keys and callables. run() borrows the table for the duration of
 * the call; on the process backend the workers inherit it through fork(),
 * so the callables and what they capture need no serialisation (see
 * ::SP_BACKEND_PROCESS for what a task may rely on in a worker). A table
 * may be run again, and by several threads at once: its callables are then
 * called concurrently, so what they share must be thread-safe.
 */
class table
{
  public:
    table() = default;

    /** @brief A table of @p rows: `{{"a", fa}, {"b", fb}}`. */
    table(std::initializer_list<task> rows) : rows_(rows)
    {
    }

    /** @brief A table of @p rows, moved in. */
    explicit table(std::vector<task> rows) : rows_(std::move(rows))
    {
    }

    /** @brief Append a row (see task::task()). @return *this. */
    template <class F> table &add(std::string key, F &&fn)
    {
        static_assert(std::is_invocable_v<std::decay_t<F> &, context &>,
                      "a simplepar task is callable as fn(simplepar::context "
                      "&)");
        rows_.emplace_back(std::move(key), std::forward<F>(fn));
        return *this;
    }

    /** @brief Append a row without a key, for an index-keyed run
     *  (options::index_keys()). @return *this. */
    template <class F, class = std::enable_if_t<
                           !std::is_same_v<std::decay_t<F>, task> &&
                           std::is_invocable_v<std::decay_t<F> &, context &>>>
    table &add(F &&fn)
    {
        rows_.emplace_back(std::string(), std::forward<F>(fn));
        return *this;
    }

    /** @brief Append a row. @return *this. */
    table &add(task row)
    {
        rows_.push_back(std::move(row));
        return *this;
    }

    /** @brief Room for @p n rows. */
    void reserve(std::size_t n)
    {
        rows_.reserve(n);
    }

    /** @brief Number of rows. */
    std::size_t size() const noexcept
    {
        return rows_.size();
    }

    /** @brief Whether the table has no row. */
    bool empty() const noexcept
    {
        return rows_.empty();
    }

    /** @brief Row @p i (unchecked). */
    const task &operator[](std::size_t i) const noexcept
    {
        return rows_[i];
    }

    /** @brief Rows in input order. */
    std::vector<task>::const_iterator begin() const noexcept
    {
        return rows_.begin();
    }

    /** @brief End of the rows. */
    std::vector<task>::const_iterator end() const noexcept
    {
        return rows_.end();
    }

  private:
    std::vector<task> rows_;
};

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Results
 * @{ */

/**
 * @brief A view of one entry of a results map; see the sp_entry_*
 * accessors for the meaning of each field.
 *
 * Cheap to copy. Valid until the map it came from is destroyed. An empty
 * view (from find() with an unknown key) tests false, and its accessors
 * are safe: key "", code ::SP_EINVAL, kind cancelled, worker
 * ::SP_NO_WORKER, no data.
 */
class entry
{
  public:
    /** @brief An empty view. */
    entry() noexcept = default;

    /** @brief A view of a C entry (may be NULL). */
    explicit entry(const sp_entry *e) noexcept : e_(e)
    {
    }

    /** @brief Whether the view refers to an entry. */
    explicit operator bool() const noexcept
    {
        return e_ != nullptr;
    }

    /** @brief The key (the map's copy, NUL-terminated). */
    std::string_view key() const noexcept
    {
        return sp_entry_key(e_);
    }

    /** @brief The index in the task table. */
    std::size_t index() const noexcept
    {
        return sp_entry_index(e_);
    }

    /** @brief How the task ended. */
    simplepar::kind kind() const noexcept
    {
        return static_cast<simplepar::kind>(sp_entry_kind(e_));
    }

    /** @brief Whether the task ended OK. */
    bool ok() const noexcept
    {
        return e_ && sp_entry_kind(e_) == SP_KIND_OK;
    }

    /** @brief 0 for OK; the task's code; or an ::sp_error (see
     *  sp_entry_code()). */
    int code() const noexcept
    {
        return sp_entry_code(e_);
    }

    /** @brief The failure message ("" when there is none). */
    std::string_view message() const noexcept
    {
        return sp_entry_message(e_);
    }

    /** @brief The result bytes (empty when the task stored none). Binary
     *  data is fine: the length is the stored length. */
    std::string_view data() const noexcept
    {
        std::size_t len = 0;
        const void *p = sp_entry_data(e_, &len);
        return p ? std::string_view(static_cast<const char *>(p), len)
                 : std::string_view();
    }

    /** @brief Start time in seconds since the call started. */
    double start() const noexcept
    {
        return sp_entry_start(e_);
    }

    /** @brief End time in seconds since the call started. */
    double end() const noexcept
    {
        return sp_entry_end(e_);
    }

    /** @brief The worker that ran the task, or ::SP_NO_WORKER. */
    unsigned worker() const noexcept
    {
        return sp_entry_worker(e_);
    }

    /** @brief CRASHED: the signal that killed the worker, else 0. */
    int signal() const noexcept
    {
        return sp_entry_signal(e_);
    }

    /** @brief CRASHED by exit() in the task: its status, else -1. */
    int exit_status() const noexcept
    {
        return sp_entry_exit_status(e_);
    }

    /** @brief The C entry (NULL for an empty view). */
    const sp_entry *native() const noexcept
    {
        return e_;
    }

  private:
    const sp_entry *e_ = nullptr;
};

/**
 * @brief The results map of one run: one entry per task, in input order,
 * with lookup by key. Owns its ::sp_results and frees it in its destructor.
 *
 * Move-only. A moved-from or default-constructed object holds no map and
 * behaves as an empty one (size() 0, find() empty). Reading a results
 * object from several threads at once is safe; nothing mutates it.
 */
class results
{
  public:
    /** @brief No map: an empty result. */
    results() noexcept = default;

    /** @brief Take ownership of @p res (may be NULL); it is freed with
     *  sp_results_free() by the destructor. */
    explicit results(sp_results *res) noexcept : res_(res)
    {
    }

    results(const results &) = delete;
    results &operator=(const results &) = delete;

    /** @brief Take @p other's map; @p other is left empty. */
    results(results &&other) noexcept : res_(other.release())
    {
    }

    /** @brief Free this map, then take @p other's; @p other is left empty.
     */
    results &operator=(results &&other) noexcept
    {
        if (this != &other) {
            sp_results_free(res_);
            res_ = other.release();
        }
        return *this;
    }

    /** @brief Frees the map (sp_results_free()); every view of it becomes
     *  invalid. */
    ~results()
    {
        sp_results_free(res_);
    }

    /** @brief Number of entries (= tasks). */
    std::size_t size() const noexcept
    {
        return sp_results_count(res_);
    }

    /** @brief Whether there is no entry. */
    bool empty() const noexcept
    {
        return size() == 0;
    }

    /** @brief Entries that ended OK. */
    std::size_t ok() const noexcept
    {
        return sp_results_ok(res_);
    }

    /** @brief Entries that did not end OK. */
    std::size_t failed() const noexcept
    {
        return sp_results_failed(res_);
    }

    /** @brief Entries that ended with @p k. */
    std::size_t count(kind k) const noexcept
    {
        return sp_results_count_kind(res_, static_cast<sp_kind>(k));
    }

    /** @brief Wall time of the run in seconds. */
    double elapsed() const noexcept
    {
        return sp_results_elapsed(res_);
    }

    /** @brief Workers the run used. */
    unsigned workers() const noexcept
    {
        return sp_results_workers(res_);
    }

    /** @brief The entry for @p key in O(1); an empty view when no task had
     *  that key. */
    entry find(const char *key) const noexcept
    {
        return entry(sp_results_get(res_, key));
    }

    /** @brief As find(const char *); a key with a NUL byte matches nothing.
     */
    entry find(const std::string &key) const noexcept
    {
        if (key.find('\0') != std::string::npos)
            return entry();
        return find(key.c_str());
    }

    /** @brief As find(const char *) (copies the key to terminate it). */
    entry find(std::string_view key) const
    {
        return find(std::string(key));
    }

    /** @brief Same as find(): an empty view when the key is unknown. */
    entry operator[](const char *key) const noexcept
    {
        return find(key);
    }

    /** @brief Same as find(). */
    entry operator[](const std::string &key) const noexcept
    {
        return find(key);
    }

    /** @brief Same as find(). */
    entry operator[](std::string_view key) const
    {
        return find(key);
    }

    /** @brief The entry for @p key. @throws std::out_of_range when no task
     *  had that key. */
    entry at(const char *key) const
    {
        return found_or_throw(find(key), key ? key : "(null)");
    }

    /** @brief As at(const char *). */
    entry at(const std::string &key) const
    {
        return found_or_throw(find(key), key);
    }

    /** @brief As at(const char *). */
    entry at(std::string_view key) const
    {
        return found_or_throw(find(key), key);
    }

    /** @brief The entry of task @p index in input order; an empty view
     *  when out of range. */
    entry by_index(std::size_t index) const noexcept
    {
        return entry(sp_results_at(res_, index));
    }

    /** @brief Input iterator over the entries in input order; yields
     *  entry views by value. */
    class iterator
    {
      public:
        using iterator_category = std::input_iterator_tag;
        using value_type = entry;
        using difference_type = std::ptrdiff_t;
        using reference = entry;
        /** operator->() returns this holder of a view. */
        struct pointer {
            entry e;
            const entry *operator->() const noexcept
            {
                return &e;
            }
        };

        iterator() noexcept = default;
        iterator(const sp_results *res, std::size_t i) noexcept
            : res_(res), i_(i)
        {
        }
        entry operator*() const noexcept
        {
            return entry(sp_results_at(res_, i_));
        }
        pointer operator->() const noexcept
        {
            return pointer{**this};
        }
        iterator &operator++() noexcept
        {
            ++i_;
            return *this;
        }
        iterator operator++(int) noexcept
        {
            iterator old = *this;
            ++i_;
            return old;
        }
        friend bool operator==(const iterator &a, const iterator &b) noexcept
        {
            return a.res_ == b.res_ && a.i_ == b.i_;
        }
        friend bool operator!=(const iterator &a, const iterator &b) noexcept
        {
            return !(a == b);
        }

      private:
        const sp_results *res_ = nullptr;
        std::size_t i_ = 0;
    };

    /** @brief First entry (input order). */
    iterator begin() const noexcept
    {
        return iterator(res_, 0);
    }

    /** @brief Past the last entry. */
    iterator end() const noexcept
    {
        return iterator(res_, size());
    }

    /** @brief The C map (still owned by this object; may be NULL). */
    const sp_results *native() const noexcept
    {
        return res_;
    }

    /** @brief Give up ownership: the caller frees the returned map with
     *  sp_results_free(); this object is left empty. */
    sp_results *release() noexcept
    {
        sp_results *r = res_;
        res_ = nullptr;
        return r;
    }

  private:
    static entry found_or_throw(entry e, std::string_view key)
    {
        if (!e)
            throw std::out_of_range(
                "simplepar::results::at: no task with key \"" +
                std::string(key) + "\"");
        return e;
    }

    sp_results *res_ = nullptr;
};

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Running
 * @{ */

/**
 * @brief Options of one run, with builder-style setters:
 * `simplepar::options().backend(simplepar::backend::process).max_workers(4)`.
 *
 * A default-constructed object means every default (an all-zero
 * ::sp_options). Setters store values as given and never throw except
 * on_done() (std::bad_alloc); ranges are checked by run(), which throws
 * simplepar::error with ::SP_EOPTION for a value out of range, with the C
 * library's message. Copyable; run() only reads it.
 */
class options
{
  public:
    options() noexcept : native_()
    {
    }

    /** @brief Where tasks run (default backend::thread). */
    options &backend(simplepar::backend b) noexcept
    {
        native_.backend = static_cast<sp_backend>(b);
        return *this;
    }

    /** @brief Most workers at once; 0 = default (see
     *  ::sp_options.max_workers). */
    options &max_workers(unsigned n) noexcept
    {
        native_.max_workers = n;
        return *this;
    }

    /** @brief Fail fast (@p on, the default of this setter) or collect all
     *  (the default of a run). */
    options &fail_fast(bool on = true) noexcept
    {
        native_.on_error = on ? SP_FAIL_FAST : SP_COLLECT_ALL;
        return *this;
    }

    /** @brief Overall deadline in seconds from the start of the run; 0 =
     *  none. */
    options &deadline(double seconds) noexcept
    {
        native_.deadline = seconds;
        return *this;
    }

    /** @brief Overall deadline as a duration, e.g.
     *  std::chrono::milliseconds(500). */
    template <class Rep, class Period>
    options &deadline(std::chrono::duration<Rep, Period> d) noexcept
    {
        return deadline(std::chrono::duration<double>(d).count());
    }

    /** @brief Time limit of each task in seconds from its start; 0 = none.
     */
    options &task_timeout(double seconds) noexcept
    {
        native_.task_timeout = seconds;
        return *this;
    }

    /** @brief Time limit of each task as a duration. */
    template <class Rep, class Period>
    options &task_timeout(std::chrono::duration<Rep, Period> d) noexcept
    {
        return task_timeout(std::chrono::duration<double>(d).count());
    }

    /** @brief Stack size of each worker thread in bytes; 0 = the system's
     *  (thread backend). */
    options &stack_size(std::size_t bytes) noexcept
    {
        native_.stack_size = bytes;
        return *this;
    }

    /** @brief An index-keyed run (@p on, the default of this setter):
     *  every row's key is empty (table::add(fn)) and the results are read
     *  by position (results::by_index()); see ::sp_options.index_keys. A
     *  row with a key then makes run() throw ::SP_EINVAL. */
    options &index_keys(bool on = true) noexcept
    {
        native_.index_keys = on ? 1 : 0;
        return *this;
    }

    /**
     * @brief Completion callback: @p fn is called as `fn(entry)` once per
     * task as it ends, in completion order (cancelled tasks included),
     * always on the thread that called run() and never concurrently with
     * itself, on every backend. It returns void (go on) or a value
     * convertible to bool: true stops the run, as a non-zero return does
     * in C (tasks not started come back cancelled).
     *
     * The entry it receives stays valid until the returned results object
     * is destroyed. If @p fn throws, the run is stopped as if it had
     * returned true, and run() rethrows that exception once every task
     * has ended (the results are freed; later throws in that run are
     * dropped, and fn is not called again).
     */
    template <class F> options &on_done(F &&fn)
    {
        using R = std::invoke_result_t<std::decay_t<F> &, entry>;
        static_assert(std::is_void_v<R> || std::is_convertible_v<R, bool>,
                      "on_done returns void or bool (true = stop)");
        if constexpr (std::is_void_v<R>)
            on_done_ = [f = std::forward<F>(fn)](entry e) mutable {
                std::invoke(f, e);
                return false;
            };
        else
            on_done_ = [f = std::forward<F>(fn)](entry e) mutable {
                return static_cast<bool>(std::invoke(f, e));
            };
        return *this;
    }

    /** @brief The C options these setters filled (on_done excluded: run()
     *  installs its own trampoline when on_done() was set). */
    const sp_options &native() const noexcept
    {
        return native_;
    }

    /** @brief The completion callback (empty when none). */
    const std::function<bool(entry)> &done_callback() const noexcept
    {
        return on_done_;
    }

  private:
    sp_options native_;
    std::function<bool(entry)> on_done_;
};

namespace detail
{

/* The C callback of every C++ task; arg is the task row. noexcept, so no
 * exception ever unwinds into the C library. (The C typedef has C language
 * linkage; GCC and Clang, like every mainstream compiler, give C and C++
 * functions the same calling convention.) */
inline int invoke_task(sp_ctx *ctx, void *arg) noexcept
{
    const task *t = static_cast<const task *>(arg);
    context c(ctx);
    try {
        return t->fn()(c);
    } catch (const std::exception &ex) {
        return sp_fail(ctx, 0, "%s", ex.what());
    } catch (...) {
        return sp_fail(ctx, 0, "%s", unknown_exception_message);
    }
}

/* State of the completion callback during one run. */
struct done_state {
    const std::function<bool(entry)> *fn;
    std::exception_ptr thrown;
};

inline int invoke_done(const sp_entry *e, void *user) noexcept
{
    done_state *st = static_cast<done_state *>(user);
    if (st->thrown)
        return 1;
    try {
        return (*st->fn)(entry(e)) ? 1 : 0;
    } catch (...) {
        st->thrown = std::current_exception();
        return 1;
    }
}

/* Build the C rows of a table and run them through call(rows, n, opts,
 * &res), which has the signature of simple_parallel(). */
template <class Call>
results run_with(const table &tasks, const options &opts, Call &&call)
{
    std::vector<sp_task> rows(tasks.size()); // zeroed: reserved fields 0
    sp_options native = opts.native();
    for (std::size_t i = 0; i < tasks.size(); i++) {
        const task &t = tasks[i];
        std::size_t nul = t.key().find('\0');
        if (nul != std::string::npos)
            throw error(SP_EINVAL, std::string("SP_EINVAL: task at index ") +
                                       std::to_string(i) +
                                       " has a key with a NUL byte at offset " +
                                       std::to_string(nul));
        // An index-keyed run passes an empty key as NULL; any other key
        // goes as it is, so the C library refuses it with its message.
        rows[i].key =
            native.index_keys && t.key().empty() ? nullptr : t.key().c_str();
        rows[i].fn = t.fn() ? invoke_task : nullptr;
        rows[i].arg = const_cast<task *>(&t);
    }
    done_state st{&opts.done_callback(), nullptr};
    if (opts.done_callback()) {
        native.on_done = invoke_done;
        native.on_done_arg = &st;
    }
    sp_results *res = nullptr;
    int rc = call(rows.data(), rows.size(), &native, &res);
    if (rc != 0)
        throw error(rc, sp_last_error());
    results out(res);
    if (st.thrown)
        std::rethrow_exception(st.thrown);
    return out;
}

} // namespace detail

/**
 * @brief Run every task of @p tasks and return the results map.
 *
 * The C++ form of simple_parallel(): same backends, validation, run control
 * and guarantees. The table and options are borrowed for the duration of
 * the call. Every key comes back in the map: OK with its result bytes, or
 * FAILED / CRASHED / TIMED_OUT / CANCELLED with a code and message. An
 * exception thrown by a task is caught in the worker (thread, forked
 * process or calling thread) and becomes that task's FAILED entry with
 * code ::SP_ETASK and what() as its message; it never ends the program.
 *
 * @param tasks  the task table, e.g. `{{"a", fa}, {"b", fb}}`.
 * @param opts   options; default: every default.
 * @return the results map, owned by the returned object.
 * @throws simplepar::error when the call fails up front, with the
 *         ::sp_error code and sp_last_error() text (invalid key, duplicate
 *         key, empty callable, option out of range, no worker could be
 *         started...): nothing has run. A key containing a NUL byte gives
 *         ::SP_EINVAL.
 * @throws whatever the on_done callback threw, after every task ended.
 * @throws std::bad_alloc when the C rows cannot be allocated.
 *
 * Thread-safe and re-entrant, as simple_parallel(): a task may call run().
 */
[[nodiscard]] inline results run(const table &tasks,
                                 const options &opts = options())
{
    return detail::run_with(tasks, opts, simple_parallel);
}

/** @} */

} // namespace simplepar

#endif /* SIMPLEPAR_HPP */
