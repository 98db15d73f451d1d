#pragma once
// Fibers on a few event-loop threads (issue 16): l04d serves each
// connection on a small stackful fiber instead of a thread of its own. The
// pipeline stays synchronous; only its blocking points yield to the loop:
//
//   - socket waits (the server's reads and writes, the HTTP/1.1 client's
//     connect and reads) go through wait_fd(), which parks the fiber while
//     the loop's epoll watches the descriptor;
//   - real-time sleeps (SystemClock::sleep_for: backoff, Retry-After, the
//     mock's latency) park the fiber on the loop's timer heap;
//   - the request queue waits on a Condition, which wakes fibers and threads;
//   - work that can only block a thread (libcurl's easy interface, a child
//     process, a batch's worker threads) runs on a helper thread through
//     run_blocking() while the fiber waits.
//
// Off a fiber (l04ctl, tests, helper threads, the daemon's housekeeping)
// every one of these blocks the calling thread exactly as before, so the
// same code runs in both worlds.
//
// Rules for code that may run on a fiber:
//   - never hold a mutex across a call that can yield (a second fiber on the
//     same thread taking that mutex would block the loop for good); code
//     that must wait while holding one opens a BlockingScope, as SQLite's
//     busy handler does;
//   - a fiber never moves between threads: thread_locals and errno stay its
//     own between yields;
//   - one fiber at a time waits on a given descriptor, and another party
//     ends that wait with shutdown(), never close(): close() drops the
//     descriptor from epoll silently and the waiter sleeps to its deadline;
//   - what can still stall a loop thread: SQLite waiting for another
//     process's lock (its busy handler blocks the thread, under the stage's
//     mutex), and CPU-bound work (embedding, loading the HNSW index). Both
//     are short in l04d's normal running; docs/NOTES.md says more.
#include <l04/core/clock.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace l04 {

// True when the caller runs on a fiber and may yield (no BlockingScope open).
bool on_fiber();

// Waits until `fd` is ready for `events` (POLLIN and/or POLLOUT) or until
// `deadline` (SystemClock time; nullopt: no deadline). On a fiber the fiber
// parks while the loop polls; elsewhere this is poll(). Returns poll-style
// revents (> 0), 0 once the deadline has passed, -1 on error (errno set).
// Readiness may be spurious: callers retry their read or write and wait
// again on EAGAIN.
int wait_fd(int fd, short events, std::optional<Clock::duration> deadline);

// Sleeps `d` of real time: parks the fiber, or blocks the thread.
void sleep_real(Clock::duration d);

// Runs fn on a helper thread while the calling fiber waits; off a fiber,
// runs fn right here. An exception fn throws is rethrown to the caller.
void run_blocking(const std::function<void()>& fn);
// The same for a call with a result (need not be default-constructible).
template <class F>
auto run_blocking_result(F&& fn) -> decltype(fn()) {
    std::optional<decltype(fn())> out;
    run_blocking([&] { out.emplace(fn()); });
    return std::move(*out);
}

// While one is open on this thread, on_fiber() is false: every wait above
// blocks the thread instead of yielding. For waits made while a mutex is
// held (SQLite's busy handler runs inside calls made under one).
class BlockingScope {
public:
    BlockingScope();
    ~BlockingScope();
    BlockingScope(const BlockingScope&) = delete;
    BlockingScope& operator=(const BlockingScope&) = delete;
};

// A condition variable that threads and fibers can both wait on. Waiters
// hold the caller's mutex when they start waiting, as with
// std::condition_variable; notify_all() may be called with it held or not.
// Waits go through Clock::wait(Condition&, ...) so a ManualClock drives them.
class Condition {
public:
    void notify_all();
    // Fiber side of Clock::wait: unlocks lk, parks until notified or until
    // `deadline` (SystemClock time), locks lk again. Spurious wake-ups are
    // possible.
    void wait_fiber(std::unique_lock<std::mutex>& lk, std::optional<Clock::duration> deadline);
    std::condition_variable& cv() { return m_cv; }

    struct Handle {
        void* loop;
        std::uint64_t fiber;
        std::uint64_t gen;
    };

private:
    std::condition_variable m_cv;
    std::mutex m_mu;
    std::vector<Handle> m_fibers;  // guarded by m_mu
};

// A few threads, each an epoll loop running fibers. Fibers stay on the
// thread they start on.
class EventLoops {
public:
    struct Options {
        std::size_t threads = 0;            // 0: one per core
        std::size_t stack_bytes = 256u << 10;  // each fiber's stack (mapped, touched pages only)
    };
    explicit EventLoops(Options opts);
    // Lets the fibers still running finish, then joins the threads.
    ~EventLoops();
    EventLoops(const EventLoops&) = delete;
    EventLoops& operator=(const EventLoops&) = delete;

    // Starts fn on a new fiber on the next thread (round robin). Safe from
    // any thread. An exception escaping fn is logged and ends that fiber.
    void spawn(std::function<void()> fn);
    std::size_t threads() const;
    // Fibers started and not yet finished, over all threads.
    std::size_t fibers() const;

    struct Loop;

private:
    std::vector<std::unique_ptr<Loop>> m_loops;
    std::size_t m_next = 0;
    std::mutex m_mu;
};

}  // namespace l04
