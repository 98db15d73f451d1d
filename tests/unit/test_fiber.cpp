// core/fiber: fibers on event-loop threads. Most cases run on ONE loop
// thread, where a wait that blocked the thread instead of parking its fiber
// would stop every other fiber for good: the case would then fail at its
// bound (the futures below), not pass by luck.
#include <l04/core/fiber.hpp>
#include <l04/queue/request_queue.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

using namespace l04;
using namespace std::chrono_literals;

namespace {

// A bound for the test thread's waits: generous, it is only reached when a
// fiber is stuck.
constexpr auto k_bound = 20s;

struct SocketPair {
    int fd[2] = {-1, -1};
    SocketPair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd) == 0); }
    ~SocketPair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
};

Clock::duration real_now() { return SystemClock::instance().now(); }

// Reads one byte, parking on EAGAIN; gives up at the bound, so that a case
// that fails lets its fibers end (the loops' destructor waits for them).
bool read_byte(int fd, char& c) {
    const auto until = real_now() + std::chrono::duration_cast<Clock::duration>(k_bound);
    for (;;) {
        const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 1) return true;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
        if (wait_fd(fd, POLLIN, until) <= 0) return false;
    }
}

bool write_byte(int fd, char c) { return ::send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1; }

}  // namespace

TEST_CASE("fiber: two fibers on one loop thread pass a byte back and forth 1000 times") {
    SocketPair sp;
    std::promise<std::thread::id> a_done, b_done;
    EventLoops loops({.threads = 1});  // last: destroyed first, while what its fibers use is still there
    loops.spawn([&] {
        CHECK(on_fiber());
        bool ok = true;
        for (int i = 0; i < 1000 && ok; ++i) {
            char c = 0;
            ok = write_byte(sp.fd[0], static_cast<char>(i)) && read_byte(sp.fd[0], c) && c == static_cast<char>(i + 1);
        }
        CHECK(ok);
        a_done.set_value(std::this_thread::get_id());
    });
    loops.spawn([&] {
        bool ok = true;
        for (int i = 0; i < 1000 && ok; ++i) {
            char c = 0;
            ok = read_byte(sp.fd[1], c) && write_byte(sp.fd[1], static_cast<char>(c + 1));
        }
        CHECK(ok);
        b_done.set_value(std::this_thread::get_id());
    });
    auto fa = a_done.get_future(), fb = b_done.get_future();
    REQUIRE(fa.wait_for(k_bound) == std::future_status::ready);
    REQUIRE(fb.wait_for(k_bound) == std::future_status::ready);
    const auto ta = fa.get();
    CHECK(ta == fb.get());  // the same loop thread
    CHECK(ta != std::this_thread::get_id());
    CHECK_FALSE(on_fiber());  // the test thread is not a fiber
}

TEST_CASE("fiber: a wait that reaches its deadline returns 0 and the descriptor can be waited on again") {
    SocketPair sp, other, relay;
    std::promise<void> timed_out, waiting_on_other, done;
    std::atomic<int> first{-2}, passed{-2}, second{-2}, on_other{-2};
    EventLoops loops({.threads = 1});
    loops.spawn([&] {
        // A deadline already passed: answered at once, nothing parks.
        passed = wait_fd(sp.fd[0], POLLIN, real_now());
        // A short one: the loop's timer ends the wait.
        first = wait_fd(sp.fd[0], POLLIN, real_now() + 2ms);
        timed_out.set_value();
        // The fiber moves on to another descriptor: the timed-out one
        // becoming ready must not end this wait.
        waiting_on_other.set_value();
        on_other = wait_fd(other.fd[0], POLLIN, real_now() + k_bound);
        // Waited on again after the timeout took it out of the loop's set.
        second = wait_fd(sp.fd[0], POLLIN, real_now() + k_bound);
        done.set_value();
    });
    REQUIRE(timed_out.get_future().wait_for(k_bound) == std::future_status::ready);
    CHECK(passed.load() == 0);
    CHECK(first.load() == 0);
    REQUIRE(waiting_on_other.get_future().wait_for(k_bound) == std::future_status::ready);
    REQUIRE(write_byte(sp.fd[1], 'x'));  // the first descriptor is ready now
    // A round trip through another fiber of the same loop: the loop has
    // polled at least once with the first descriptor ready.
    std::promise<void> relayed;
    loops.spawn([&] {
        char c;
        CHECK(read_byte(relay.fd[0], c));
        relayed.set_value();
    });
    REQUIRE(write_byte(relay.fd[1], 'r'));
    REQUIRE(relayed.get_future().wait_for(k_bound) == std::future_status::ready);
    CHECK(on_other.load() == -2);  // still waiting on the other descriptor
    REQUIRE(write_byte(other.fd[1], 'o'));
    REQUIRE(done.get_future().wait_for(k_bound) == std::future_status::ready);
    CHECK((on_other.load() & POLLIN) != 0);
    CHECK((second.load() & POLLIN) != 0);
}

TEST_CASE("fiber: off a fiber wait_fd is poll - sleep_real and run_blocking run on the calling thread") {
    SocketPair sp;
    CHECK(wait_fd(sp.fd[0], POLLIN, real_now()) == 0);
    REQUIRE(write_byte(sp.fd[1], 'x'));
    CHECK((wait_fd(sp.fd[0], POLLIN, std::nullopt) & POLLIN) != 0);
    std::thread::id ran_on;
    run_blocking([&] { ran_on = std::this_thread::get_id(); });
    CHECK(ran_on == std::this_thread::get_id());
}

TEST_CASE("fiber: a Condition wakes fibers notified by another thread and by a fiber of their own loop") {
    std::mutex mu;
    Condition cond;
    bool go = false, go2 = false;
    int woken = 0, woken2 = 0;
    std::promise<void> all_parked, done;
    constexpr int n = 50;
    std::atomic<int> parked{0};
    EventLoops loops({.threads = 1});
    for (int i = 0; i < n; ++i)
        loops.spawn([&] {
            std::unique_lock lk(mu);
            if (++parked == n) all_parked.set_value();
            while (!go) SystemClock::instance().wait(cond, lk, std::nullopt);
            ++woken;
            while (!go2) SystemClock::instance().wait(cond, lk, std::nullopt);
            if (++woken2 == n) done.set_value();
        });
    REQUIRE(all_parked.get_future().wait_for(k_bound) == std::future_status::ready);
    {
        std::lock_guard lk(mu);
        go = true;
    }
    cond.notify_all();  // from this thread
    // From a fiber of the same loop: the others can only run once it parks.
    loops.spawn([&] {
        std::unique_lock lk(mu);
        while (woken < n) SystemClock::instance().wait(cond, lk, 1ms);
        go2 = true;
        cond.notify_all();
    });
    REQUIRE(done.get_future().wait_for(k_bound) == std::future_status::ready);
    std::lock_guard lk(mu);
    CHECK(woken == n);
    CHECK(woken2 == n);
}

TEST_CASE("fiber: the request queue admits fibers of one loop thread in turn at provider concurrency 1") {
    QueueConfig cfg;
    cfg.default_provider_concurrency = 1;
    RequestQueue q(cfg, SystemClock::instance());
    SocketPair sp;  // the first holder waits here, holding its slot, until the test writes
    std::atomic<int> active{0}, max_active{0}, finished{0};
    std::promise<void> first_in, all_done;
    EventLoops loops({.threads = 1});
    constexpr int n = 20;
    for (int i = 0; i < n; ++i)
        loops.spawn([&, i] {
            {
                auto t = q.acquire("p", Priority::normal);
                CHECK(t.has_value());
                const int now = ++active;
                int seen = max_active.load();
                while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
                }
                if (i == 0) {
                    first_in.set_value();
                    char c;
                    CHECK(read_byte(sp.fd[0], c));
                }
                --active;
            }  // the ticket releases the slot
            if (++finished == n) all_done.set_value();
        });
    REQUIRE(first_in.get_future().wait_for(k_bound) == std::future_status::ready);
    // 19 fibers wait in the queue, parked, while the first holds the slot.
    for (const auto end = std::chrono::steady_clock::now() + k_bound;
         q.stats().pending < n - 1 && std::chrono::steady_clock::now() < end;)
        std::this_thread::yield();
    CHECK(q.stats().pending == n - 1);
    REQUIRE(write_byte(sp.fd[1], 'x'));
    REQUIRE(all_done.get_future().wait_for(k_bound) == std::future_status::ready);
    CHECK(max_active.load() == 1);
    CHECK(q.stats().active == 0);
}

TEST_CASE("fiber: run_blocking moves a thread-blocking call off the loop and rethrows its exception") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);  // blocking descriptors
    std::promise<std::string> got;
    std::promise<void> thrown;
    std::optional<EventLoops> loops;
    loops.emplace(EventLoops::Options{.threads = 1});
    loops->spawn([&] {
        std::thread::id helper;
        char buf[8] = {};
        ssize_t n = 0;
        // A blocking read: on the loop thread it would stop the writer below.
        run_blocking([&] {
            helper = std::this_thread::get_id();
            n = ::read(p[0], buf, sizeof buf);
        });
        CHECK(helper != std::this_thread::get_id());
        got.set_value(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))));
        try {
            run_blocking([] { throw std::runtime_error("from the helper"); });
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "from the helper");
            thrown.set_value();
        }
    });
    loops->spawn([&] { CHECK(::write(p[1], "ping", 4) == 4); });
    auto f = got.get_future();
    const bool ready = f.wait_for(k_bound) == std::future_status::ready;
    if (!ready) CHECK(::write(p[1], "x", 1) == 1);  // let a stuck reader end before the loops go
    REQUIRE(ready);
    CHECK(f.get() == "ping");
    REQUIRE(thrown.get_future().wait_for(k_bound) == std::future_status::ready);
    loops.reset();
    ::close(p[0]);
    ::close(p[1]);
}

TEST_CASE("fiber: a BlockingScope makes waits block the thread - sleeps park the fiber otherwise") {
    std::promise<void> done;
    std::atomic<bool> other_ran{false};
    EventLoops loops({.threads = 1});
    loops.spawn([&] {
        CHECK(on_fiber());
        {
            const BlockingScope outer;
            CHECK_FALSE(on_fiber());
            {
                const BlockingScope inner;
                CHECK_FALSE(on_fiber());
            }
            CHECK_FALSE(on_fiber());
            // The thread sleeps: the other fiber cannot run meanwhile.
            SystemClock::instance().sleep_for(1ms);
            CHECK_FALSE(other_ran.load());
        }
        CHECK(on_fiber());
        // The fiber sleeps: the other one runs.
        while (!other_ran.load()) SystemClock::instance().sleep_for(1ms);
        done.set_value();
    });
    loops.spawn([&] { other_ran = true; });
    REQUIRE(done.get_future().wait_for(k_bound) == std::future_status::ready);
}

TEST_CASE("fiber: an exception escaping a fiber ends that fiber only") {
    std::promise<void> done;
    EventLoops loops({.threads = 1});
    loops.spawn([] { throw std::runtime_error("escapes"); });
    loops.spawn([&] { done.set_value(); });
    REQUIRE(done.get_future().wait_for(k_bound) == std::future_status::ready);
    // Both fibers are gone, the one that threw included.
    for (const auto end = std::chrono::steady_clock::now() + k_bound;
         loops.fibers() != 0 && std::chrono::steady_clock::now() < end;)
        std::this_thread::yield();
    CHECK(loops.fibers() == 0);
}

TEST_CASE("fiber: 300 fibers parked on their own sockets over 2 threads - then all released") {
    constexpr int n = 300;
    std::vector<std::unique_ptr<SocketPair>> pairs;
    for (int i = 0; i < n; ++i) pairs.push_back(std::make_unique<SocketPair>());
    std::atomic<int> finished{0};
    std::mutex mu;
    std::set<std::thread::id> threads;
    std::promise<void> done;
    {
        EventLoops loops({.threads = 2, .stack_bytes = 64u << 10});
        CHECK(loops.threads() == 2);
        for (int i = 0; i < n; ++i)
            loops.spawn([&, i] {
                {
                    std::lock_guard lk(mu);
                    threads.insert(std::this_thread::get_id());
                }
                char c = 0;
                CHECK(read_byte(pairs[static_cast<std::size_t>(i)]->fd[0], c));
                CHECK(c == 'g');
                if (++finished == n) done.set_value();
            });
        for (const auto end = std::chrono::steady_clock::now() + k_bound;
             loops.fibers() < n && std::chrono::steady_clock::now() < end;)
            std::this_thread::yield();
        CHECK(loops.fibers() == n);
        CHECK(finished.load() == 0);
        for (auto& p : pairs) REQUIRE(write_byte(p->fd[1], 'g'));
        REQUIRE(done.get_future().wait_for(k_bound) == std::future_status::ready);
        // The destructor waits for the fibers still leaving and joins.
    }
    CHECK(finished.load() == n);
    CHECK(threads.size() == 2);
}
