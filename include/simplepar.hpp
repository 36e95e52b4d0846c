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
 *  - Owners of a C handle (results, pool, cancel) are move-only and free
 *    it in their destructor; a moved-from owner holds none.
 *  - A task that can reach a worker process that never had the caller's
 *    memory (a spawned task, any row on a process pool) must be stateless:
 *    a function or a lambda without captures (task::stateless()), its
 *    input given as bytes (task::data()).
 *
 * What each C feature is called here:
 *  - task graphs: task::after() (::sp_task.after), context::dep_result()
 *    (sp_dep_result()), context::spawn() (sp_spawn(); only for tasks
 *    whose callable is a function or a lambda without captures, see
 *    there), task::data() and context::data() (::sp_task.data);
 *  - retries and limits: options::retries() and its siblings,
 *    task::policy() with a task_policy (::sp_task_policy),
 *    context::attempt(), entry::attempts(), entry::attempt(n) and
 *    entry::first_kind() ...;
 *  - cancelling: the move-only class cancel (sp_cancel_create()),
 *    options::cancel(), pool_options::cancel(), entry::cancel_reason();
 *  - pools: the move-only class pool (sp_pool_create()), with per-worker
 *    state made by pool_options::setup() and read with
 *    context::worker_state();
 *  - results: set_result() of a std::unique_ptr<char[]> hands the buffer
 *    over (sp_set_result_owned()); results::write_trace(),
 *    results::write_svg(), results::trace() and results::svg() export a
 *    map.
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
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
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

/** Why a cancelled or skipped task did not run; see ::sp_cancel_reason. */
enum class cancel_reason : int {
    none = SP_CANCEL_NONE,             /**< neither CANCELLED nor SKIPPED */
    deadline = SP_CANCEL_DEADLINE,     /**< the deadline passed */
    fail_fast = SP_CANCEL_FAIL_FAST,   /**< another task failed (fail-fast) */
    on_done = SP_CANCEL_ON_DONE,       /**< on_done asked to stop */
    dependency = SP_CANCEL_DEPENDENCY, /**< a dependency did not end OK */
    backend = SP_CANCEL_BACKEND,       /**< no worker could run it */
    caller = SP_CANCEL_CALLER          /**< a cancel handle fired */
};

/** @brief "NONE", "DEADLINE", "FAIL_FAST", "ON_DONE", "DEPENDENCY",
 * "BACKEND" or "CALLER" (static string; "UNKNOWN" for any other value). */
inline const char *cancel_reason_name(cancel_reason r) noexcept
{
    return sp_cancel_reason_name(static_cast<sp_cancel_reason>(r));
}

/** Who put an entry's code there; see ::sp_code_origin. */
enum class code_origin : int {
    none = SP_ORIGIN_NONE,      /**< an OK entry: its code is 0 */
    task = SP_ORIGIN_TASK,      /**< the task's own number */
    library = SP_ORIGIN_LIBRARY /**< an ::sp_error the library set */
};

/**
 * Outcomes of an attempt that are tried again (options::retry_on(),
 * task_policy::retry_on()); combine them with `|`:
 * `retry_outcome::failed | retry_outcome::timed_out`. See
 * ::SP_RETRY_FAILED.
 */
enum class retry_outcome : unsigned {
    failed = SP_RETRY_FAILED,      /**< it failed (returned, threw) */
    crashed = SP_RETRY_CRASHED,    /**< its worker process died */
    timed_out = SP_RETRY_TIMED_OUT /**< it ran past its time limit */
};

/** @brief Both sets of outcomes. */
constexpr retry_outcome operator|(retry_outcome a, retry_outcome b) noexcept
{
    return static_cast<retry_outcome>(static_cast<unsigned>(a) |
                                      static_cast<unsigned>(b));
}

/** How the delay between attempts grows; see ::sp_backoff. */
enum class backoff : int {
    fixed = SP_BACKOFF_FIXED,      /**< every delay is retry_delay */
    doubling = SP_BACKOFF_DOUBLING /**< twice the last, up to the cap */
};

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Cancelling from outside
 * @{ */

/**
 * @brief A cancel handle (::sp_cancel): fire() stops every run given it
 * (options::cancel()) or every run of a pool given it
 * (pool_options::cancel()), from any thread or a signal handler.
 *
 * Owns its ::sp_cancel and frees it in its destructor. Move-only; a
 * moved-from handle holds none: fire() and reset() do nothing and fired()
 * is false. Runs and pools borrow the handle, so it must outlive every run
 * and pool that has it. Once fired, it stays fired (new runs given it run
 * nothing: every task comes back cancelled) until reset().
 */
class cancel
{
  public:
    /** @brief A new handle, not fired. @throws std::bad_alloc when it
     *  cannot be allocated. */
    cancel()
    {
        if (sp_cancel_create(&c_) != 0)
            throw std::bad_alloc();
    }

    /** @brief Adopt a C handle (may be NULL); the destructor frees it. */
    explicit cancel(sp_cancel *c) noexcept : c_(c)
    {
    }

    cancel(const cancel &) = delete;
    cancel &operator=(const cancel &) = delete;

    /** @brief Take @p other's handle; @p other is left with none. */
    cancel(cancel &&other) noexcept : c_(other.release())
    {
    }

    /** @brief Free this handle, then take @p other's. */
    cancel &operator=(cancel &&other) noexcept
    {
        if (this != &other) {
            sp_cancel_free(c_);
            c_ = other.release();
        }
        return *this;
    }

    /** @brief Frees the handle (sp_cancel_free()). */
    ~cancel()
    {
        sp_cancel_free(c_);
    }

    /** @brief Fire: every run that has the handle stops. One lock-free
     *  atomic store: async-signal-safe (sp_cancel_fire()). */
    void fire() const noexcept
    {
        sp_cancel_fire(c_);
    }

    /** @brief Whether it has fired and not been reset since.
     *  Async-signal-safe. */
    bool fired() const noexcept
    {
        return sp_cancel_fired(c_) != 0;
    }

    /** @brief Make a fired handle usable again: runs that start afterwards
     *  run normally. Async-signal-safe. */
    void reset() const noexcept
    {
        sp_cancel_reset(c_);
    }

    /** @brief The C handle (still owned by this object; may be NULL). */
    sp_cancel *native() const noexcept
    {
        return c_;
    }

    /** @brief Give up ownership: the caller frees the returned handle with
     *  sp_cancel_free(). */
    sp_cancel *release() noexcept
    {
        sp_cancel *c = c_;
        c_ = nullptr;
        return c;
    }

  private:
    sp_cancel *c_ = nullptr;
};

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Tasks
 * @{ */

/**
 * @brief Per-task settings (::sp_task_policy), with builder-style setters:
 * `simplepar::task_policy().time_limit(30s).retries(3)`. Give it to a row
 * with task::policy().
 *
 * A setter not called leaves "the run's setting" (the matching options
 * setter). Values are stored as given; run() checks them before anything
 * runs and throws simplepar::error with ::SP_EOPTION naming the row.
 */
class task_policy
{
  public:
    task_policy() noexcept : native_()
    {
    }

    /** @brief Time limit of each attempt in seconds from its start (as
     *  options::task_timeout(), which it replaces for this task). */
    task_policy &time_limit(double seconds) noexcept
    {
        native_.time_limit = seconds;
        return *this;
    }

    /** @brief Time limit of each attempt as a duration. */
    template <class Rep, class Period>
    task_policy &time_limit(std::chrono::duration<Rep, Period> d) noexcept
    {
        return time_limit(std::chrono::duration<double>(d).count());
    }

    /** @brief Further attempts after a failed one, 1 .. ::SP_MAX_RETRIES;
     *  0 = the run's. */
    task_policy &retries(unsigned n) noexcept
    {
        native_.retries = n;
        return *this;
    }

    /** @brief Never try this task again, whatever the run says (for work
     *  that must not happen twice): ::SP_NO_RETRIES. */
    task_policy &no_retries() noexcept
    {
        native_.retries = SP_NO_RETRIES;
        return *this;
    }

    /** @brief Which outcomes are tried again. */
    task_policy &retry_on(retry_outcome outcomes) noexcept
    {
        native_.retry_on = static_cast<unsigned>(outcomes);
        return *this;
    }

    /** @brief Seconds from the end of a failed attempt to the earliest
     *  start of the next. */
    task_policy &retry_delay(double seconds) noexcept
    {
        native_.retry_delay = seconds;
        return *this;
    }

    /** @brief The delay between attempts as a duration. */
    template <class Rep, class Period>
    task_policy &retry_delay(std::chrono::duration<Rep, Period> d) noexcept
    {
        return retry_delay(std::chrono::duration<double>(d).count());
    }

    /** @brief With backoff::doubling, the longest delay in seconds. */
    task_policy &retry_delay_max(double seconds) noexcept
    {
        native_.retry_delay_max = seconds;
        return *this;
    }

    /** @brief The longest delay as a duration. */
    template <class Rep, class Period>
    task_policy &retry_delay_max(std::chrono::duration<Rep, Period> d) noexcept
    {
        return retry_delay_max(std::chrono::duration<double>(d).count());
    }

    /** @brief How the delay grows. */
    task_policy &retry_backoff(simplepar::backoff b) noexcept
    {
        native_.retry_backoff = static_cast<sp_backoff>(b);
        return *this;
    }

    /** @brief The C policy these setters filled. */
    const sp_task_policy &native() const noexcept
    {
        return native_;
    }

  private:
    sp_task_policy native_;
};

class task;

/**
 * @brief What a running task gets: its identity and the way to report.
 *
 * A thin view of the task's ::sp_ctx, handed by reference to the task and
 * valid only until the task returns (do not keep it). Every member may be
 * called only from inside the task that received it, and is noexcept
 * except dep_result() and spawn(), which throw simplepar::error (inside a
 * task, an exception not caught there makes the task FAILED with its
 * message).
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

    /**
     * @brief Hand a buffer over as the task's result, without a copy
     * (sp_set_result_owned()): for large results.
     *
     * @p buf must hold at least @p len + 1 elements of one byte (char,
     * unsigned char, std::byte, ...): the library writes a NUL at
     * buf[len], not counted in the length. On success the library owns the
     * buffer and frees it with delete[] when it is done (on the process
     * backend in the worker, once the bytes are sent); the entry's data()
     * is then those @p len bytes.
     * @return 0; ::SP_EINVAL for a null @p buf or @p len SIZE_MAX, and then
     *         the buffer is freed here and the earlier result is kept.
     */
    template <class T,
              class = std::enable_if_t<sizeof(T) == 1 &&
                                       std::is_trivially_destructible_v<T>>>
    int set_result(std::unique_ptr<T[]> buf, std::size_t len) noexcept
    {
        int rc = sp_set_result_owned(ctx_, buf.get(), len, release_array<T>);
        if (rc == 0)
            buf.release();
        return rc;
    }

    /** @brief The task's input bytes (task::data(), or a spawned row's),
     *  copied to wherever the task runs; empty when it has none. Valid
     *  until the task returns. See sp_ctx_data(). */
    std::string_view data() const noexcept
    {
        std::size_t len = 0;
        const void *p = sp_ctx_data(ctx_, &len);
        return p ? std::string_view(static_cast<const char *>(p), len)
                 : std::string_view();
    }

    /**
     * @brief The result bytes of @p key, a task this task waits for
     * (task::after()); "" when it stored none. Valid until the task
     * returns; on every backend (see sp_dep_result()).
     * @throws simplepar::error with ::SP_ENODEP when @p key is not in this
     *         task's after() list, with the C library's message.
     */
    std::string_view dep_result(const char *key) const
    {
        std::size_t len = 0;
        const void *p = sp_dep_result(ctx_, key, &len);
        if (!p)
            throw error(SP_ENODEP, sp_last_error());
        return std::string_view(static_cast<const char *>(p), len);
    }

    /** @brief As dep_result(const char *); a key with a NUL byte is not a
     *  dependency (::SP_ENODEP). */
    std::string_view dep_result(const std::string &key) const
    {
        if (key.find('\0') != std::string::npos)
            throw error(SP_ENODEP, "SP_ENODEP: the key has a NUL byte");
        return dep_result(key.c_str());
    }

    /**
     * @brief Add a task to the running call (sp_spawn()): it runs like a
     * row of the table once every task in its after() list has ended OK,
     * and its entry comes after the table's, in spawn order. Everything in
     * @p row is copied: key, data(), after(), policy().
     *
     * The row's callable must be a function or a lambda without captures
     * (task::stateless()): a spawned task may run in another worker
     * process than the one that spawned it, where a capture or a
     * std::function made by the spawner does not exist, while a function's
     * code is at the same address in every worker. Give the spawned task
     * its input as bytes, with task::data(), and read them with data().
     *
     * @throws simplepar::error: ::SP_ENOTSUP for a callable with state,
     *         ::SP_EINVAL for a key or after() key with a NUL byte, and
     *         what sp_spawn() returns (::SP_EDUPKEY, ::SP_EDEPKEY,
     *         ::SP_ENOFN, ...) with its message. Nothing was added then;
     *         the spawner may catch it and go on.
     */
    void spawn(const task &row);

    /** @brief Which attempt of the task is running: 1 for the first, 2
     *  for the first retry, ... (sp_ctx_attempt()). */
    unsigned attempt() const noexcept
    {
        return sp_ctx_attempt(ctx_);
    }

    /**
     * @brief The state its worker's set-up made (pool_options::setup()),
     * if it is a @p T; nullptr when it is not (another type, or the setup
     * returned void), and outside a pool. The state belongs to the worker
     * (thread or process) running the task, lives until the pool ends,
     * and is used by one task at a time.
     *
     * Only for tasks run by a simplepar::pool: on a pool created with
     * sp_pool_create(), read sp_ctx_worker_state(native()) instead.
     */
    template <class T> T *worker_state() const noexcept;

    /** @brief The C context, for sp_set_resultf() and the like. */
    sp_ctx *native() const noexcept
    {
        return ctx_;
    }

  private:
    template <class T> static void release_array(void *p) noexcept
    {
        delete[] static_cast<T *>(p);
    }

    sp_ctx *ctx_;
};

namespace detail
{

/* A pool worker's state: what pool_options::setup() returned, with a tag
 * of its type so that context::worker_state<T>() can check it without
 * RTTI. The C state pointer is a state_box_base *. */
template <class T> struct type_tag {
    static constexpr char id = 0;
};

struct state_box_base {
    explicit state_box_base(const void *t) noexcept : tag(t)
    {
    }
    state_box_base(const state_box_base &) = delete;
    state_box_base &operator=(const state_box_base &) = delete;
    virtual ~state_box_base() = default;
    const void *tag;
};

template <class T> struct state_box final : state_box_base {
    template <class F>
    state_box(F &f, unsigned worker)
        : state_box_base(&type_tag<T>::id), value(std::invoke(f, worker))
    {
    }
    T value;
};

/* The failure of a task whose callable threw; call only inside a catch. */
inline int fail_with_current(sp_ctx *ctx) noexcept
{
    try {
        throw;
    } catch (const std::exception &ex) {
        return sp_fail(ctx, 0, "%s", ex.what());
    } catch (...) {
        return sp_fail(ctx, 0, "%s", unknown_exception_message);
    }
}

/* The C callback of a stateless task: arg is the callable's function
 * pointer (a code address, the same in every forked worker). Converting
 * between function and object pointers is conditionally supported in
 * C++ and supported by every POSIX compiler (dlsym() needs it). */
template <class R> int invoke_plain(sp_ctx *ctx, void *arg) noexcept
{
    context c(ctx);
    try {
        R (*f)(context &) = reinterpret_cast<R (*)(context &)>(arg);
        if constexpr (std::is_void_v<R>) {
            f(c);
            return 0;
        } else {
            return static_cast<int>(f(c));
        }
    } catch (...) {
        return fail_with_current(ctx);
    }
}

} // namespace detail

template <class T> T *context::worker_state() const noexcept
{
    using U = std::remove_cv_t<T>;
    auto *box =
        static_cast<detail::state_box_base *>(sp_ctx_worker_state(ctx_));
    if (!box || box->tag != &detail::type_tag<U>::id)
        return nullptr;
    return &static_cast<detail::state_box<U> *>(box)->value;
}

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
 *
 * A function, or a lambda without captures, is stateless(): it is called
 * through its function pointer, which is valid in every worker process,
 * so only such a task can be spawned (context::spawn()) or run on a
 * process pool. Its input then travels as bytes: data().
 *
 * The setters after(), data() and policy() fill the rest of the row and
 * chain, on a named row or a temporary:
 * `simplepar::task("twice", twice).after({"config"})`.
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
        : key_(std::move(key)), plain_fn_(plain_trampoline(fn)),
          plain_arg_(plain_pointer(fn)), fn_(wrap(std::forward<F>(fn)))
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

    /** @brief Whether the callable is a function or a lambda without
     *  captures (called through its function pointer; see the class). */
    bool stateless() const noexcept
    {
        return plain_fn_ != nullptr;
    }

    /**
     * @brief Keys of tasks of the same run this task waits for
     * (::sp_task.after): it starts once every one of them has ended OK,
     * and comes back skipped if one did not. Read their results with
     * context::dep_result(). run() checks them before anything runs
     * (::SP_EDEPKEY, ::SP_ECYCLE; ::SP_EINVAL for a NUL byte). Replaces
     * the earlier list. @return this row.
     */
    task &after(std::vector<std::string> keys) &
    {
        after_ = std::move(keys);
        return *this;
    }

    /** @brief As after(std::vector<std::string>) &, on a temporary. */
    task &&after(std::vector<std::string> keys) &&
    {
        after_ = std::move(keys);
        return std::move(*this);
    }

    /** @brief The keys this task waits for. */
    const std::vector<std::string> &after() const noexcept
    {
        return after_;
    }

    /**
     * @brief The task's input bytes (::sp_task.data): copied to wherever
     * the task runs (a forked worker, a process pool's worker, a spawned
     * task's worker) and read there with context::data(). Binary-safe.
     * @return this row.
     */
    task &data(std::string bytes) &
    {
        data_ = std::move(bytes);
        return *this;
    }

    /** @brief As data(std::string) &, on a temporary. */
    task &&data(std::string bytes) &&
    {
        data_ = std::move(bytes);
        return std::move(*this);
    }

    /** @brief The input bytes ("" when none). */
    const std::string &data() const noexcept
    {
        return data_;
    }

    /** @brief Settings of this task's own (::sp_task.policy): a time
     *  limit, retries, ... (copied). @return this row. */
    task &policy(const task_policy &p) &noexcept
    {
        policy_ = p;
        has_policy_ = true;
        return *this;
    }

    /** @brief As policy(const task_policy &) &, on a temporary. */
    task &&policy(const task_policy &p) &&noexcept
    {
        policy_ = p;
        has_policy_ = true;
        return std::move(*this);
    }

    /** @brief The row's C policy, or nullptr when policy() was not set. */
    const sp_task_policy *policy() const noexcept
    {
        return has_policy_ ? &policy_.native() : nullptr;
    }

    /** @brief The C callback and argument of a stateless() task (nullptr
     *  otherwise): what run() and context::spawn() give the C library. */
    sp_task_fn stateless_fn() const noexcept
    {
        return plain_fn_;
    }

    /** @brief See stateless_fn(). */
    void *stateless_arg() const noexcept
    {
        return plain_arg_;
    }

  private:
    /* The function pointer type a stateless callable converts to. */
    template <class F>
    using plain_ptr =
        std::invoke_result_t<std::decay_t<F> &, context &> (*)(context &);

    template <class F>
    static constexpr bool is_plain =
        std::is_convertible_v<const std::decay_t<F> &, plain_ptr<F>>;

    template <class F> static sp_task_fn plain_trampoline(const F &fn) noexcept
    {
        if constexpr (is_plain<F>) {
            plain_ptr<F> p = fn;
            using R = std::invoke_result_t<std::decay_t<F> &, context &>;
            if (p)
                return detail::invoke_plain<R>;
        }
        (void)fn;
        return nullptr;
    }

    template <class F> static void *plain_pointer(const F &fn) noexcept
    {
        if constexpr (is_plain<F>) {
            plain_ptr<F> p = fn;
            return reinterpret_cast<void *>(p);
        } else {
            (void)fn;
            return nullptr;
        }
    }

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
    sp_task_fn plain_fn_;
    void *plain_arg_;
    function fn_;
    std::vector<std::string> after_;
    std::string data_;
    task_policy policy_;
    bool has_policy_ = false;
};

/**
 * @brief A task table: rows in input order, which is the order of the
 * results.
 *
 * Owns its keys and callables. run() borrows the table for the duration of
 * the call; on the process backend the workers inherit it through fork(),
 * so the callables and what they capture need no serialisation (see
 * ::SP_BACKEND_PROCESS for what a task may rely on in a worker). A process
 * pool's workers were forked before the table existed: there every row
 * must be task::stateless() (see pool). A table
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

namespace detail
{

/* The message of a key (or an after() key) with a NUL byte. */
inline error nul_in_key(const std::string &what, std::size_t nul)
{
    return error(SP_EINVAL, "SP_EINVAL: " + what +
                                " has a key with a NUL byte at offset " +
                                std::to_string(nul));
}

/* The NULL-terminated C form of row.after() (empty when it has none). */
inline std::vector<const char *> after_list(const task &row,
                                            const std::string &what)
{
    std::vector<const char *> out;
    if (row.after().empty())
        return out;
    out.reserve(row.after().size() + 1);
    for (const std::string &k : row.after()) {
        std::size_t nul = k.find('\0');
        if (nul != std::string::npos)
            throw nul_in_key(what + " waits for a task that", nul);
        out.push_back(k.c_str());
    }
    out.push_back(nullptr);
    return out;
}

} // namespace detail

inline void context::spawn(const task &row)
{
    std::string what = "spawned task \"" + row.key() + "\"";
    std::size_t nul = row.key().find('\0');
    if (nul != std::string::npos)
        throw detail::nul_in_key("a spawned task", nul);
    if (row.fn() && !row.stateless())
        throw error(SP_ENOTSUP,
                    "SP_ENOTSUP: " + what +
                        " has a callable with state (captures, or a "
                        "std::function), which cannot reach another worker "
                        "process: give it a function or a lambda without "
                        "captures, and its input as data()");
    std::vector<const char *> after = detail::after_list(row, what);
    sp_task t{};
    t.key = row.key().c_str();
    t.fn = row.stateless_fn();
    t.arg = row.stateless_arg();
    t.after = after.empty() ? nullptr : after.data();
    t.data = row.data().empty() ? nullptr : row.data().data();
    t.len = row.data().size();
    t.policy = row.policy();
    int rc = sp_spawn(ctx_, &t);
    if (rc != 0)
        throw error(rc, sp_last_error());
}

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

    /** @brief Whether code() is the task's own number or a library
     *  ::sp_error (sp_entry_code_origin()); none for OK entries. */
    simplepar::code_origin code_origin() const noexcept
    {
        return static_cast<simplepar::code_origin>(sp_entry_code_origin(e_));
    }

    /** @brief Why a cancelled or skipped task did not run (or gave up);
     *  cancel_reason::none for entries of other kinds. */
    simplepar::cancel_reason cancel_reason() const noexcept
    {
        return static_cast<simplepar::cancel_reason>(
            sp_entry_cancel_reason(e_));
    }

    /** @brief How many times the task's callable was started: 1 for one
     *  run, more after retries, 0 when it never started. kind(), code(),
     *  message(), data(), the times and worker() are the last attempt's.
     */
    unsigned attempts() const noexcept
    {
        return sp_entry_attempts(e_);
    }

    /** @brief How the first attempt ended (for a task tried more than
     *  once, its first failure); kind() for a task tried once. */
    simplepar::kind first_kind() const noexcept
    {
        return static_cast<simplepar::kind>(sp_entry_first_kind(e_));
    }

    /** @brief The first attempt's code (see first_kind()). */
    int first_code() const noexcept
    {
        return sp_entry_first_code(e_);
    }

    /** @brief The first attempt's message (see first_kind()). */
    std::string_view first_message() const noexcept
    {
        return sp_entry_first_message(e_);
    }

    /** @brief Attempt n (1 .. attempts()) as an entry of its own
     *  (sp_entry_attempt()): the last is this entry; an earlier one has
     *  that attempt's kind, code, message, times and worker, and no data.
     *  An empty view for n out of range. */
    entry attempt(unsigned n) const noexcept
    {
        return entry(sp_entry_attempt(e_, n));
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

    /**
     * @brief Write the map as a Chrome trace-event JSON document (for
     * Perfetto or chrome://tracing) to @p f, flushed and left open; see
     * sp_results_write_trace() for the schema.
     * @throws simplepar::error with ::SP_EIO when a write or the flush
     *         failed (the output is incomplete), ::SP_EINVAL for a null
     *         @p f or an object that holds no map; the C library's message.
     */
    void write_trace(std::FILE *f) const
    {
        check_written(sp_results_write_trace(res_, f));
    }

    /** @brief Write the map as an SVG Gantt chart to @p f; see
     *  sp_results_write_svg(). @throws as write_trace(std::FILE *). */
    void write_svg(std::FILE *f) const
    {
        check_written(sp_results_write_svg(res_, f));
    }

    /** @brief The trace document of write_trace() as a string.
     *  @throws as write_trace(std::FILE *), and ::SP_EIO when no temporary
     *  file could be had (std::tmpfile()). */
    std::string trace() const
    {
        return to_string(sp_results_write_trace);
    }

    /** @brief The SVG document of write_svg() as a string. @throws as
     *  trace(). */
    std::string svg() const
    {
        return to_string(sp_results_write_svg);
    }

  private:
    static void check_written(int rc)
    {
        if (rc != 0)
            throw error(rc, sp_last_error());
    }

    struct file_closer {
        void operator()(std::FILE *f) const noexcept
        {
            std::fclose(f);
        }
    };

    std::string to_string(int (*write)(const sp_results *, std::FILE *)) const
    {
        std::unique_ptr<std::FILE, file_closer> f(std::tmpfile());
        if (!f)
            throw error(SP_EIO, std::string("SP_EIO: tmpfile: ") +
                                    std::strerror(errno));
        check_written(write(res_, f.get()));
        std::rewind(f.get());
        std::string out;
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0)
            out.append(buf, n);
        if (std::ferror(f.get()))
            throw error(SP_EIO, "SP_EIO: could not read the temporary file "
                                "back");
        return out;
    }

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

    /** @brief Further attempts for a task that ended with one of the
     *  retry_on() outcomes, 0 .. ::SP_MAX_RETRIES; 0 = none (default). A
     *  row's task_policy may set its own. See ::sp_options.retries. */
    options &retries(unsigned n) noexcept
    {
        native_.retries = n;
        return *this;
    }

    /** @brief Which outcomes are tried again (default: all three). */
    options &retry_on(retry_outcome outcomes) noexcept
    {
        native_.retry_on = static_cast<unsigned>(outcomes);
        return *this;
    }

    /** @brief Seconds from the end of a failed attempt to the earliest
     *  start of the next; 0 = at once (default). */
    options &retry_delay(double seconds) noexcept
    {
        native_.retry_delay = seconds;
        return *this;
    }

    /** @brief The delay between attempts as a duration. */
    template <class Rep, class Period>
    options &retry_delay(std::chrono::duration<Rep, Period> d) noexcept
    {
        return retry_delay(std::chrono::duration<double>(d).count());
    }

    /** @brief With backoff::doubling, the longest delay in seconds; 0 = no
     *  cap. */
    options &retry_delay_max(double seconds) noexcept
    {
        native_.retry_delay_max = seconds;
        return *this;
    }

    /** @brief The longest delay as a duration. */
    template <class Rep, class Period>
    options &retry_delay_max(std::chrono::duration<Rep, Period> d) noexcept
    {
        return retry_delay_max(std::chrono::duration<double>(d).count());
    }

    /** @brief How the delay grows (default backoff::fixed). */
    options &retry_backoff(simplepar::backoff b) noexcept
    {
        native_.retry_backoff = static_cast<sp_backoff>(b);
        return *this;
    }

    /** @brief A cancel handle that stops the run when fired; borrowed, so
     *  it must outlive the run. */
    options &cancel(const simplepar::cancel &c) noexcept
    {
        native_.cancel = c.native();
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
    } catch (...) {
        return fail_with_current(ctx);
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
 * &res), which has the signature of simple_parallel(). stateless_only:
 * the workers do not have the table (a process pool), so every row's
 * callable must be stateless. */
template <class Call>
results run_with(const table &tasks, const options &opts, Call &&call,
                 bool stateless_only = false)
{
    std::vector<sp_task> rows(tasks.size()); // zeroed: reserved fields 0
    sp_options native = opts.native();
    std::vector<std::vector<const char *>> after(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); i++) {
        const task &t = tasks[i];
        std::string what = "task at index " + std::to_string(i);
        std::size_t nul = t.key().find('\0');
        if (nul != std::string::npos)
            throw nul_in_key(what, nul);
        what = "task \"" + t.key() + "\" at index " + std::to_string(i);
        if (stateless_only && t.fn() && !t.stateless())
            throw error(SP_ENOTSUP,
                        "SP_ENOTSUP: " + what +
                            " has a callable with state (captures, or a "
                            "std::function), which a process pool's "
                            "workers, forked when the pool was created, do "
                            "not have: give it a function or a lambda "
                            "without captures, and its input as data()");
        after[i] = after_list(t, what);
        // An index-keyed run passes an empty key as NULL; any other key
        // goes as it is, so the C library refuses it with its message.
        rows[i].key =
            native.index_keys && t.key().empty() ? nullptr : t.key().c_str();
        if (t.stateless()) {
            rows[i].fn = t.stateless_fn();
            rows[i].arg = t.stateless_arg();
        } else {
            rows[i].fn = t.fn() ? invoke_task : nullptr;
            rows[i].arg = const_cast<task *>(&t);
        }
        rows[i].after = after[i].empty() ? nullptr : after[i].data();
        rows[i].data = t.data().empty() ? nullptr : t.data().data();
        rows[i].len = t.data().size();
        rows[i].policy = t.policy();
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
 *         key, empty callable, an after() key not in the table, a cycle,
 *         option or task_policy out of range, no worker could be
 *         started...): nothing has run. A key, or an after() key,
 *         containing a NUL byte gives ::SP_EINVAL.
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

/* ------------------------------------------------------------------------ */
/** @name Pools: workers that outlive a run
 * @{ */

/**
 * @brief Options of a pool (::sp_pool_options), with builder-style
 * setters: `simplepar::pool_options().max_workers(4).setup(open_db)`.
 *
 * A default-constructed object means every default. Values are checked
 * when the pool is created. Copyable.
 */
class pool_options
{
  public:
    /** The stored form of a set-up: makes a worker's state (a
     *  detail::state_box_base, or nullptr) or throws. */
    using setup_function = std::function<void *(unsigned)>;

    pool_options() noexcept : native_()
    {
    }

    /** @brief Where the pool's tasks run (default backend::thread; serial
     *  = one worker, the calling thread; process = worker processes forked
     *  at the pool's creation). */
    pool_options &backend(simplepar::backend b) noexcept
    {
        native_.backend = static_cast<sp_backend>(b);
        return *this;
    }

    /** @brief The pool's number of workers, all started with it; 0 = the
     *  number of online CPUs. */
    pool_options &max_workers(unsigned n) noexcept
    {
        native_.max_workers = n;
        return *this;
    }

    /** @brief Stack size of each worker thread in bytes (thread pools). */
    pool_options &stack_size(std::size_t bytes) noexcept
    {
        native_.stack_size = bytes;
        return *this;
    }

    /** @brief A cancel handle that stops every run of the pool while it is
     *  fired, those in flight and those that start; borrowed, so it must
     *  outlive the pool. */
    pool_options &cancel(const simplepar::cancel &c) noexcept
    {
        native_.cancel = c.native();
        return *this;
    }

    /**
     * @brief Per-worker set-up: @p fn is called as `fn(unsigned worker)`
     * once in each worker when it starts, in the worker thread or worker
     * process (and again in a process worker that replaces one that died,
     * with the same index), before it runs any task.
     *
     * What it returns, if not void, is the worker's state: kept in the
     * worker, read by its tasks with `context::worker_state<T>()` (T the
     * returned type, built in place: it need not be movable), and
     * destroyed there when the pool ends: T's destructor is the worker's
     * tear-down (it must not throw). A worker process that dies does not
     * run it.
     *
     * If @p fn throws, the worker's set-up fails: the pool's constructor
     * ends the workers already started (destroying their states) and
     * throws simplepar::error with ::SP_ESETUP, whose message names the
     * worker and, on thread and serial pools, ends with what() of the
     * exception (a worker process cannot send it). In a replacement
     * worker, a throw leaves the pool with one worker fewer (see
     * sp_pool_run()). The callable is copied into the pool and lives as
     * long as it; on a process pool the workers have their copy of it.
     */
    template <class F> pool_options &setup(F &&fn)
    {
        using D = std::decay_t<F>;
        static_assert(std::is_invocable_v<D &, unsigned>,
                      "a set-up is callable as fn(unsigned worker)");
        using R = std::invoke_result_t<D &, unsigned>;
        if constexpr (std::is_void_v<R>) {
            setup_ = [f = std::forward<F>(fn)](unsigned w) mutable -> void * {
                std::invoke(f, w);
                return nullptr;
            };
        } else {
            using T = std::remove_cv_t<std::remove_reference_t<R>>;
            static_assert(std::is_nothrow_destructible_v<T>,
                          "a worker state's destructor is its tear-down "
                          "and must not throw");
            setup_ = [f = std::forward<F>(fn)](unsigned w) mutable -> void * {
                return static_cast<detail::state_box_base *>(
                    new detail::state_box<T>(f, w));
            };
        }
        return *this;
    }

    /** @brief The C options these setters filled (setup excluded: the pool
     *  installs its own trampolines when setup() was set). */
    const sp_pool_options &native() const noexcept
    {
        return native_;
    }

    /** @brief The set-up (empty when none). */
    const setup_function &setup_fn() const noexcept
    {
        return setup_;
    }

  private:
    sp_pool_options native_;
    setup_function setup_;
};

namespace detail
{

/* What a pool's C set-up and tear-down get as their user pointer. It is
 * allocated before sp_pool_create(), so a process pool's fork server and
 * workers have their copy of it; it lives until sp_pool_free() returns. */
struct pool_hooks {
    pool_options::setup_function setup;
    std::mutex lock;
    std::string thrown; // the first set-up exception seen in this process

    void note(unsigned worker, const char *what) noexcept
    {
        try {
            std::lock_guard<std::mutex> hold(lock);
            if (thrown.empty())
                thrown = "worker " + std::to_string(worker) + " threw: " + what;
        } catch (...) {
        }
    }
};

inline int pool_setup(unsigned worker, void *user, void **state) noexcept
{
    pool_hooks *h = static_cast<pool_hooks *>(user);
    try {
        *state = h->setup(worker);
        return 0;
    } catch (const std::exception &ex) {
        h->note(worker, ex.what());
    } catch (...) {
        h->note(worker, unknown_exception_message);
    }
    return SP_ETASK;
}

inline void pool_teardown(unsigned, void *, void *state) noexcept
{
    delete static_cast<state_box_base *>(state);
}

} // namespace detail

/**
 * @brief A pool of workers that outlive a run (::sp_pool): threads,
 * processes, or the calling thread, started once, with optional
 * per-worker state, running many tables at microseconds per run.
 *
 * Owns its ::sp_pool and frees it in its destructor, which waits for runs
 * in flight on other threads, ends every worker (their states are
 * destroyed there) and leaves no thread, process or descriptor. Move-only;
 * a moved-from pool holds none (run() then throws ::SP_EINVAL). Never
 * destroy a pool from one of its own tasks.
 *
 * Any number of threads may call run() on one pool at once, and a task may
 * call run() on its own pool (nested runs never deadlock): see
 * sp_pool_run().
 *
 * **Process pools** fork their workers when the pool is created, from a
 * fork server: the workers have the program's memory as it was then. A
 * table made later does not exist in them, so on a process pool every row
 * must be task::stateless() (a function or a lambda without captures, its
 * input given as task::data()); run() throws ::SP_ENOTSUP otherwise,
 * before anything runs. Create process pools early, before the program
 * starts other threads.
 */
class pool
{
  public:
    /**
     * @brief Create the pool and start all its workers, each having run its
     * set-up when this returns.
     * @throws simplepar::error: ::SP_EOPTION for an option out of range,
     *         ::SP_ESETUP when a set-up threw (see pool_options::setup()),
     *         ::SP_ETHREAD, ::SP_EFORK, ... when workers could not be
     *         started; nothing is left behind.
     */
    explicit pool(const pool_options &po = pool_options())
        : hooks_(new detail::pool_hooks),
          backend_(static_cast<simplepar::backend>(po.native().backend))
    {
        sp_pool_options native = po.native();
        if (po.setup_fn()) {
            hooks_->setup = po.setup_fn();
            native.setup = detail::pool_setup;
            native.teardown = detail::pool_teardown;
            native.user = hooks_.get();
        }
        int rc = sp_pool_create(&native, &pool_);
        if (rc != 0) {
            std::string message = sp_last_error();
            std::lock_guard<std::mutex> hold(hooks_->lock);
            if (rc == SP_ESETUP && !hooks_->thrown.empty())
                message += " (" + hooks_->thrown + ")";
            throw error(rc, message);
        }
    }

    pool(const pool &) = delete;
    pool &operator=(const pool &) = delete;

    /** @brief Take @p other's pool; @p other is left with none. */
    pool(pool &&other) noexcept
        : pool_(other.pool_), hooks_(std::move(other.hooks_)),
          backend_(other.backend_)
    {
        other.pool_ = nullptr;
    }

    /** @brief Free this pool (as the destructor), then take @p other's. */
    pool &operator=(pool &&other) noexcept
    {
        if (this != &other) {
            sp_pool_free(pool_);
            pool_ = other.pool_;
            other.pool_ = nullptr;
            hooks_ = std::move(other.hooks_);
            backend_ = other.backend_;
        }
        return *this;
    }

    /** @brief Ends the workers and frees the pool (sp_pool_free()). */
    ~pool()
    {
        sp_pool_free(pool_);
    }

    /**
     * @brief Run every task of @p tasks on the pool's workers and return
     * the results map: run() with the pool's workers, whose backend and
     * stack size apply (options::backend() and stack_size() are ignored;
     * options::max_workers() lowers this run's share of the workers).
     * @throws as run(), and ::SP_ENOTSUP on a process pool for a row that
     *         is not task::stateless(); ::SP_EINVAL for a moved-from pool.
     */
    [[nodiscard]] results run(const table &tasks,
                              const options &opts = options()) const
    {
        sp_pool *p = pool_;
        return detail::run_with(
            tasks, opts,
            [p](const sp_task *rows, std::size_t n, const sp_options *o,
                sp_results **out) { return sp_pool_run(p, rows, n, o, out); },
            backend_ == simplepar::backend::process);
    }

    /** @brief The pool's number of workers; 0 for a moved-from pool. */
    unsigned workers() const noexcept
    {
        return sp_pool_workers(pool_);
    }

    /** @brief Where the pool's tasks run. */
    simplepar::backend backend() const noexcept
    {
        return backend_;
    }

    /** @brief The C pool (still owned by this object; may be NULL). */
    sp_pool *native() const noexcept
    {
        return pool_;
    }

  private:
    sp_pool *pool_ = nullptr;
    std::unique_ptr<detail::pool_hooks> hooks_;
    simplepar::backend backend_;
};

/** @} */

} // namespace simplepar

#endif /* SIMPLEPAR_HPP */
