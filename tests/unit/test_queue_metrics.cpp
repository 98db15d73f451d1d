#include <l04/metrics/metrics.hpp>
#include <l04/queue/request_queue.hpp>

#include <doctest/doctest.h>
#include <vector>
#include <cmath>

#include <atomic>
#include <thread>

using namespace l04;

TEST_CASE("queue: concurrency per provider - deadlines - full queue") {
    ManualClock clock;
    QueueConfig cfg;
    cfg.default_provider_concurrency = 1;
    cfg.max_size = 1;
    RequestQueue q(cfg, clock);
    auto t1 = q.acquire("p", Priority::normal);
    REQUIRE(t1);
    CHECK(q.stats().active == 1);
    // Another provider is independent.
    auto other = q.acquire("other", Priority::normal);
    REQUIRE(other);
    // A deadline already passed fails at once.
    auto late = q.acquire("p", Priority::high, Deadline::at(clock.now() - std::chrono::milliseconds(1)));
    REQUIRE_FALSE(late);
    CHECK(late.error().code == ErrorCode::deadline_exceeded);

    // A waiter whose deadline passes while it waits fails early.
    std::atomic<bool> done{false};
    Result<QueueTicket> waited = fail(ErrorCode::internal_error, "unset");
    std::thread th([&] {
        waited = q.acquire("p", Priority::normal, Deadline::after(clock, std::chrono::milliseconds(1000)));
        done = true;
    });
    while (q.stats().pending == 0) std::this_thread::yield();
    // The queue holds one waiter: a second is rejected as full.
    auto full = q.acquire("p", Priority::normal);
    REQUIRE_FALSE(full);
    CHECK(full.error().code == ErrorCode::queue_full);
    clock.advance(std::chrono::milliseconds(1001));
    th.join();
    REQUIRE_FALSE(waited);
    CHECK(waited.error().code == ErrorCode::deadline_exceeded);
    CHECK(q.stats().expired == 2);
}

TEST_CASE("queue: high priority is served first - aging lets low priority through") {
    ManualClock clock;
    QueueConfig cfg;
    cfg.default_provider_concurrency = 1;
    cfg.aging_ms = 1000;
    RequestQueue q(cfg, clock);
    auto hold = q.acquire("p", Priority::normal);
    REQUIRE(hold);
    std::vector<std::string> order;
    std::mutex mu;
    auto waiter = [&](Priority p, const std::string& name) {
        return std::thread([&, p, name] {
            auto t = q.acquire("p", p);
            std::lock_guard lk(mu);
            order.push_back(name);
        });
    };
    auto low = waiter(Priority::low, "low");
    while (q.stats().pending < 1) std::this_thread::yield();
    clock.advance(std::chrono::milliseconds(2500));  // low has aged past normal and high
    auto high = waiter(Priority::high, "high");
    while (q.stats().pending < 2) std::this_thread::yield();
    hold = Result<QueueTicket>(QueueTicket());  // release the slot
    low.join();
    high.join();
    REQUIRE(order.size() == 2);
    CHECK(order[0] == "low");

    std::vector<std::string> order2;
    auto hold2 = q.acquire("p", Priority::normal);
    auto lo = std::thread([&] {
        auto t = q.acquire("p", Priority::low);
        std::lock_guard lk(mu);
        order2.push_back("low");
    });
    while (q.stats().pending < 1) std::this_thread::yield();
    auto hi = std::thread([&] {
        auto t = q.acquire("p", Priority::high);
        std::lock_guard lk(mu);
        order2.push_back("high");
    });
    while (q.stats().pending < 2) std::this_thread::yield();
    hold2 = Result<QueueTicket>(QueueTicket());
    lo.join();
    hi.join();
    REQUIRE(order2.size() == 2);
    CHECK(order2[0] == "high");
}

TEST_CASE("metrics: Prometheus text format") {
    Metrics m;
    m.declare("l04_requests_total", "counter", "Requests.");
    m.declare("l04_latency_seconds", "histogram", "Latency.", {0.1, 1});
    m.inc("l04_requests_total", {{"model", "a\"b"}});
    m.inc("l04_requests_total", {{"model", "a\"b"}}, 2);
    m.observe("l04_latency_seconds", {{"model", "x"}}, 0.05);
    m.observe("l04_latency_seconds", {{"model", "x"}}, 0.5);
    m.observe("l04_latency_seconds", {{"model", "x"}}, 5);
    auto t = m.render();
    CHECK(t.find("# TYPE l04_requests_total counter\n") != std::string::npos);
    CHECK(t.find("l04_requests_total{model=\"a\\\"b\"} 3\n") != std::string::npos);
    CHECK(t.find("l04_latency_seconds_bucket{model=\"x\",le=\"0.1\"} 1\n") != std::string::npos);
    CHECK(t.find("l04_latency_seconds_bucket{model=\"x\",le=\"1\"} 2\n") != std::string::npos);
    CHECK(t.find("l04_latency_seconds_bucket{model=\"x\",le=\"+Inf\"} 3\n") != std::string::npos);
    CHECK(t.find("l04_latency_seconds_count{model=\"x\"} 3\n") != std::string::npos);
    CHECK(m.value("l04_requests_total", {{"model", "a\"b"}}) == 3);
}

TEST_CASE("metrics: handles update without the registry lock - and agree with the by-name API") {
    Metrics m;
    m.declare("c_total", "counter", "C.");
    m.declare("h_seconds", "histogram", "H.", {1, 0.1});  // sorted when declared
    const auto c = m.series("c_total", {{"k", "v"}});
    const auto h = m.histogram("h_seconds", {{"k", "v"}});
    constexpr int k_threads = 4, k_each = 20000;
    std::vector<std::thread> threads;
    std::atomic<bool> stop{false};
    // A scraper renders while the writers run: +Inf always equals _count.
    std::thread scraper([&] {
        while (!stop) {
            const auto t = m.render();
            const std::string inf_key = "h_seconds_bucket{k=\"v\",le=\"+Inf\"} ", cnt_key = "h_seconds_count{k=\"v\"} ";
            const auto inf = t.find(inf_key), cnt = t.find(cnt_key);
            if (inf == std::string::npos || cnt == std::string::npos) continue;
            const auto a = std::stoll(t.substr(inf + inf_key.size())), b = std::stoll(t.substr(cnt + cnt_key.size()));
            CHECK(a == b);
        }
    });
    for (int i = 0; i < k_threads; ++i)
        threads.emplace_back([&, i] {
            for (int n = 0; n < k_each; ++n) {
                c.inc();
                h.observe(n % 3 == 0 ? 0.05 : n % 3 == 1 ? 0.5 : 5.0 + i);
            }
        });
    for (auto& t : threads) t.join();
    stop = true;
    scraper.join();
    CHECK(m.value("c_total", {{"k", "v"}}) == k_threads * k_each);
    m.inc("c_total", {{"k", "v"}}, 2);  // by name: the same series
    CHECK(c.value() == k_threads * k_each + 2);
    const auto t = m.render();
    // 20000 = 3 * 6666 + 2: n % 3 == 0 and n % 3 == 1 each once more than n % 3 == 2.
    CHECK(t.find("h_seconds_bucket{k=\"v\",le=\"0.1\"} " + std::to_string(k_threads * (k_each / 3 + 1)) + "\n") !=
          std::string::npos);
    CHECK(t.find("h_seconds_bucket{k=\"v\",le=\"1\"} " + std::to_string(k_threads * (2 * (k_each / 3) + 2)) + "\n") !=
          std::string::npos);
    CHECK(t.find("h_seconds_count{k=\"v\"} " + std::to_string(k_threads * k_each) + "\n") != std::string::npos);
    // A default handle ignores updates; a NaN lands in +Inf only.
    Metrics::Series none;
    none.inc();
    CHECK(none.value() == 0);
    m.histogram("h_seconds", {{"k", "nan"}}).observe(std::nan(""));
    const auto t2 = m.render();
    CHECK(t2.find("h_seconds_bucket{k=\"nan\",le=\"1\"} 0\n") != std::string::npos);
    CHECK(t2.find("h_seconds_count{k=\"nan\"} 1\n") != std::string::npos);
    CHECK(t2.find("h_seconds_sum{k=\"nan\"} 0\n") != std::string::npos);  // not NaN for good

    // HandleCache builds once per key.
    HandleCache<Metrics::Series> cache;
    int built = 0;
    for (int i = 0; i < 3; ++i)
        cache.get("openai\x1fgpt-4o", [&] {
                 ++built;
                 return m.series("c_total", {{"k", "cached"}});
             }).inc();
    CHECK(built == 1);
    CHECK(m.value("c_total", {{"k", "cached"}}) == 3);
}

TEST_CASE("deadlines are monotonic: a wall clock step neither expires nor extends one") {
    ManualClock clock;
    const auto after = Deadline::after(clock, std::chrono::milliseconds(1000));
    const auto dated = Deadline::at_wall(clock, clock.wall_ms() + 1000);  // a caller's date, taken once
    CHECK(Deadline().never());
    CHECK_FALSE(Deadline().passed(clock));
    clock.step_wall(std::chrono::hours(1));  // forward: nothing expires
    CHECK_FALSE(after.passed(clock));
    CHECK_FALSE(dated.passed(clock));
    CHECK(after.remaining_ms(clock) == 1000);
    clock.step_wall(-std::chrono::hours(2));  // back: nothing is extended
    CHECK(dated.remaining_ms(clock) == 1000);
    CHECK(after.reached_after(clock, std::chrono::milliseconds(1000)));
    CHECK_FALSE(after.reached_after(clock, std::chrono::milliseconds(999)));
    clock.advance(std::chrono::milliseconds(1000));
    CHECK(after.passed(clock));
    CHECK(dated.passed(clock));

    // A queue waiter keeps waiting across a wall step, and expires on time.
    QueueConfig cfg;
    cfg.default_provider_concurrency = 1;
    RequestQueue q(cfg, clock);
    auto hold = q.acquire("p", Priority::normal);
    REQUIRE(hold);
    std::atomic<bool> done{false};
    Result<QueueTicket> waited = fail(ErrorCode::internal_error, "unset");
    std::thread th([&] {
        waited = q.acquire("p", Priority::normal, Deadline::after(clock, std::chrono::milliseconds(500)));
        done = true;
    });
    while (q.stats().pending == 0) std::this_thread::yield();
    clock.step_wall(std::chrono::hours(24));
    // (the waiter re-reads the time at least every 1 ms of real time)
    for (int i = 0; i < 20 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK_FALSE(done.load());
    clock.advance(std::chrono::milliseconds(501));
    th.join();
    REQUIRE_FALSE(waited);
    CHECK(waited.error().code == ErrorCode::deadline_exceeded);
}
