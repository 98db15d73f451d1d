// Circuit breaker: every transition on a ManualClock, 429 handling, fault
// classification, persistence across instances and processes, on real
// SQLite files in a temp dir.
#include <doctest/doctest.h>

#include <l04/core/clock.hpp>
#include <l04/limit/factory.hpp>
#include <l04/limit/sqlite_circuit_breaker.hpp>
#include <l04/store/change_counter.hpp>
#include <l04/store/schema.hpp>

#include "support/test_util.hpp"

#include <chrono>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace l04;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<SqliteCircuitBreaker> make_cb(const test::TempDir& dir, Clock& clock, CircuitBreakerConfig cfg = {}) {
    auto db = open_state_db(dir.str());
    REQUIRE(db);
    auto cb = SqliteCircuitBreaker::create(std::move(*db), cfg, clock);
    REQUIRE(cb);
    return std::move(*cb);
}

Error fault() { return Error(ErrorCode::provider_unavailable, "connection refused"); }

Error too_many(std::chrono::milliseconds ra) {
    Error e(ErrorCode::rate_limit_exceeded, "429 from upstream");
    e.retry_after = ra;
    return e;
}

// Runs fn(breaker) in a child process with its own connection to the state
// in dir (another --no-daemon process); returns fn's exit code (3 when the
// breaker cannot be made).
template <class Fn>
int in_child(const test::TempDir& dir, const ManualClock& clock, Fn&& fn) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ManualClock c(clock.wall_ms());
        auto db = open_state_db(dir.str());
        if (!db) ::_exit(3);
        auto cb = SqliteCircuitBreaker::create(std::move(*db), {}, c);
        if (!cb) ::_exit(3);
        ::_exit(fn(**cb));
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

std::int64_t retry_ms(const Status& st) {
    REQUIRE_FALSE(st);
    REQUIRE(st.error().retry_after.has_value());
    return st.error().retry_after->count();
}

}  // namespace

TEST_CASE("circuit breaker: closed until the threshold of consecutive faults - then open") {
    test::TempDir dir;
    ManualClock clock;
    auto cb = make_cb(dir, clock);
    CHECK(cb->allow("openai"));
    CHECK(cb->snapshot("openai").state == CircuitState::closed);
    for (int i = 0; i < 4; ++i) cb->on_failure("openai", fault());
    auto s = cb->snapshot("openai");
    CHECK(s.state == CircuitState::closed);
    CHECK(s.consecutive_failures == 4);
    CHECK(cb->allow("openai"));

    cb->on_failure("openai", fault());
    s = cb->snapshot("openai");
    CHECK(s.state == CircuitState::open);
    CHECK(s.consecutive_failures == 5);
    CHECK(s.opened_at_ms == clock.wall_ms());
    CHECK(s.blocked_until_ms == clock.wall_ms() + 60'000);
    CHECK(s.last_error.find("E4201") != std::string::npos);

    auto st = cb->allow("openai");
    REQUIRE_FALSE(st);
    CHECK(st.error().code == ErrorCode::circuit_open);
    CHECK(st.error().retryable);
    CHECK(retry_ms(st) == 60'000);
    CHECK(st.error().message.find("openai") != std::string::npos);
    // Other providers are unaffected.
    CHECK(cb->allow("anthropic"));
}

TEST_CASE("circuit breaker: a success resets the consecutive count") {
    test::TempDir dir;
    ManualClock clock;
    auto cb = make_cb(dir, clock);
    for (int i = 0; i < 4; ++i) cb->on_failure("p", fault());
    cb->on_success("p");
    CHECK(cb->snapshot("p").consecutive_failures == 0);
    for (int i = 0; i < 4; ++i) cb->on_failure("p", fault());
    CHECK(cb->snapshot("p").state == CircuitState::closed);
    CHECK(cb->allow("p"));
}

TEST_CASE("circuit breaker: open → half-open after the recovery timeout admits exactly one probe") {
    test::TempDir dir;
    ManualClock clock;
    auto cb = make_cb(dir, clock);
    for (int i = 0; i < 5; ++i) cb->on_failure("p", fault());
    clock.advance(59'999ms);
    CHECK(retry_ms(cb->allow("p")) == 1);
    clock.advance(1ms);
    CHECK(cb->allow("p"));  // the probe
    CHECK(cb->snapshot("p").state == CircuitState::half_open);
    auto st = cb->allow("p");  // a second caller while the probe is out
    REQUIRE_FALSE(st);
    CHECK(st.error().code == ErrorCode::circuit_open);
    CHECK(retry_ms(st) == 1000);
    CHECK(st.error().message.find("probe") != std::string::npos);

    SUBCASE("probe succeeds → closed") {
        cb->on_success("p");
        auto s = cb->snapshot("p");
        CHECK(s.state == CircuitState::closed);
        CHECK(s.consecutive_failures == 0);
        CHECK(s.blocked_until_ms == 0);
        CHECK(cb->allow("p"));
        CHECK(cb->allow("p"));
    }
    SUBCASE("probe fails → open again for a full recovery timeout") {
        clock.advance(2s);
        cb->on_failure("p", Error(ErrorCode::timeout, "timed out"));
        auto s = cb->snapshot("p");
        CHECK(s.state == CircuitState::open);
        CHECK(s.opened_at_ms == clock.wall_ms());
        CHECK(s.blocked_until_ms == clock.wall_ms() + 60'000);
        CHECK(retry_ms(cb->allow("p")) == 60'000);
        clock.advance(60s);
        CHECK(cb->allow("p"));
        CHECK(cb->snapshot("p").state == CircuitState::half_open);
    }
    SUBCASE("a probe that never reports is given up after the probe timeout") {
        clock.advance(119'999ms);
        CHECK_FALSE(cb->allow("p"));
        clock.advance(1ms);
        CHECK(cb->allow("p"));  // a new probe
        CHECK_FALSE(cb->allow("p"));
    }
    SUBCASE("a non-fault answer to the probe releases it without a verdict") {
        cb->on_failure("p", Error(ErrorCode::invalid_request, "bad"));
        CHECK(cb->snapshot("p").state == CircuitState::half_open);
        CHECK(cb->allow("p"));
        CHECK_FALSE(cb->allow("p"));
    }
}

TEST_CASE("circuit breaker: results of calls started before the circuit opened are ignored while open") {
    test::TempDir dir;
    ManualClock clock;
    auto cb = make_cb(dir, clock);
    for (int i = 0; i < 5; ++i) cb->on_failure("p", fault());
    const auto before = cb->snapshot("p");
    clock.advance(10s);
    cb->on_success("p");
    cb->on_failure("p", fault());
    const auto after = cb->snapshot("p");
    CHECK(after.state == CircuitState::open);
    CHECK(after.blocked_until_ms == before.blocked_until_ms);
    CHECK(after.consecutive_failures == before.consecutive_failures);
}

TEST_CASE("circuit breaker: the caller's errors are not provider faults") {
    CHECK(counts_as_fault(Error(ErrorCode::provider_error, "")));
    CHECK(counts_as_fault(Error(ErrorCode::provider_unavailable, "")));
    CHECK(counts_as_fault(Error(ErrorCode::timeout, "")));
    CHECK(counts_as_fault(Error(ErrorCode::provider_overloaded, "")));
    CHECK(counts_as_fault(Error(ErrorCode::parse_error, "")));
    CHECK(counts_as_fault(Error(ErrorCode::empty_response, "")));
    CHECK(counts_as_fault(Error(ErrorCode::streaming_error, "")));
    for (auto c : {ErrorCode::auth_failed, ErrorCode::context_length_exceeded, ErrorCode::provider_bad_request,
                   ErrorCode::provider_model_not_found, ErrorCode::invalid_request, ErrorCode::invalid_messages,
                   ErrorCode::invalid_parameter, ErrorCode::rate_limit_exceeded, ErrorCode::quota_exhausted,
                   ErrorCode::deadline_exceeded, ErrorCode::queue_full, ErrorCode::circuit_open}) {
        CAPTURE(static_cast<int>(c));
        CHECK_FALSE(counts_as_fault(Error(c, "")));
    }

    test::TempDir dir;
    ManualClock clock;
    auto cb = make_cb(dir, clock);
    for (int i = 0; i < 10; ++i) {
        cb->on_failure("p", Error(ErrorCode::auth_failed, "401"));
        cb->on_failure("p", Error(ErrorCode::invalid_parameter, "400"));
        cb->on_failure("p", Error(ErrorCode::provider_bad_request, "400"));
        cb->on_failure("p", Error(ErrorCode::context_length_exceeded, "too long"));
    }
    CHECK(cb->snapshot("p").state == CircuitState::closed);
    CHECK(cb->snapshot("p").consecutive_failures == 0);
    CHECK(cb->allow("p"));
    // Interleaved non-faults neither count nor reset the run of faults.
    for (int i = 0; i < 4; ++i) cb->on_failure("p", fault());
    cb->on_failure("p", Error(ErrorCode::auth_failed, "401"));
    cb->on_failure("p", fault());
    CHECK(cb->snapshot("p").state == CircuitState::open);
}

TEST_CASE("circuit breaker: a 429 with Retry-After keeps the provider out without counting a fault") {
    test::TempDir dir;
    ManualClock clock;
    auto cb = make_cb(dir, clock);
    cb->on_failure("p", fault());
    cb->on_failure("p", too_many(30s));
    auto s = cb->snapshot("p");
    CHECK(s.state == CircuitState::closed);
    CHECK(s.consecutive_failures == 1);
    CHECK(s.blocked_until_ms == clock.wall_ms() + 30'000);
    auto st = cb->allow("p");
    // A rate limit, not an open circuit: E4401 with the time that is left.
    CHECK(st.error().code == ErrorCode::rate_limit_exceeded);
    CHECK(st.error().http_status == 429);
    CHECK(retry_ms(st) == 30'000);
    CHECK(st.error().message.find("429") != std::string::npos);
    clock.advance(10s);
    CHECK(retry_ms(cb->allow("p")) == 20'000);
    // A shorter Retry-After does not shorten the block.
    cb->on_failure("p", too_many(1s));
    CHECK(retry_ms(cb->allow("p")) == 20'000);
    clock.advance(20s);
    CHECK(cb->allow("p"));
    CHECK(cb->snapshot("p").state == CircuitState::closed);

    SUBCASE("a 429 without Retry-After changes nothing") {
        cb->on_failure("q", Error(ErrorCode::rate_limit_exceeded, "429"));
        CHECK(cb->allow("q"));
        CHECK(cb->snapshot("q").blocked_until_ms == 0);
        CHECK(cb->snapshot("q").consecutive_failures == 0);
    }
    SUBCASE("many 429s never open the circuit") {
        for (int i = 0; i < 20; ++i) cb->on_failure("p", too_many(1s));
        CHECK(cb->snapshot("p").state == CircuitState::closed);
        CHECK(cb->snapshot("p").consecutive_failures == 1);
    }
    SUBCASE("a 429 answering the half-open probe releases it and holds the provider out") {
        for (int i = 0; i < 5; ++i) cb->on_failure("p", fault());
        clock.advance(60s);
        CHECK(cb->allow("p"));
        cb->on_failure("p", too_many(5s));
        CHECK(cb->snapshot("p").state == CircuitState::half_open);
        CHECK(retry_ms(cb->allow("p")) == 5'000);
        clock.advance(5s);
        CHECK(cb->allow("p"));  // next probe
    }
}

TEST_CASE("circuit breaker: configured threshold and recovery timeout") {
    test::TempDir dir;
    ManualClock clock;
    CircuitBreakerConfig cfg;
    cfg.failure_threshold = 2;
    cfg.recovery_timeout_ms = 5'000;
    auto cb = make_cb(dir, clock, cfg);
    cb->on_failure("p", fault());
    CHECK(cb->allow("p"));
    cb->on_failure("p", fault());
    CHECK(retry_ms(cb->allow("p")) == 5'000);

    auto s = Settings::defaults();
    REQUIRE(s.set("circuit_breaker.failure_threshold", "3", "test"));
    REQUIRE(s.set("circuit_breaker.recovery_timeout", "90s", "test"));
    auto c = circuit_breaker_config_from(s);
    REQUIRE(c);
    CHECK(c->failure_threshold == 3);
    CHECK(c->recovery_timeout_ms == 90'000);
    CHECK(c->probe_timeout_ms == 120'000);
    REQUIRE(s.set("circuit_breaker.failure_threshold", "0", "test"));
    auto bad = circuit_breaker_config_from(s);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == ErrorCode::config_invalid);
}

TEST_CASE("circuit breaker: state persists across instances on one file") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_cb(dir, clock);
    for (int i = 0; i < 3; ++i) a->on_failure("p", fault());
    {
        auto b = make_cb(dir, clock);
        CHECK(b->snapshot("p").consecutive_failures == 3);
        for (int i = 0; i < 2; ++i) b->on_failure("p", fault());
        CHECK_FALSE(b->allow("p"));
    }
    CHECK(a->snapshot("p").state == CircuitState::open);
    CHECK_FALSE(a->allow("p"));
    clock.advance(60s);
    auto b = make_cb(dir, clock);
    CHECK(a->allow("p"));       // a claims the probe ...
    CHECK_FALSE(b->allow("p"));  // ... so b may not send one
    b->on_success("p");         // any success while half-open closes
    CHECK(a->allow("p"));
    CHECK(a->snapshot("p").state == CircuitState::closed);

    auto snaps = b->snapshots();
    REQUIRE(snaps.size() == 1);
    CHECK(snaps[0].provider == "p");
    REQUIRE(b->reset("p"));
    CHECK(a->snapshots().empty());

    // The factory opens the same state.
    auto f = make_circuit_breaker(Settings::defaults(), dir.str(), clock);
    REQUIRE(f);
    for (int i = 0; i < 5; ++i) (*f)->on_failure("q", fault());
    CHECK_FALSE(a->allow("q"));
}

TEST_CASE("circuit breaker: exactly one of many processes gets the half-open probe") {
    test::TempDir dir;
    ManualClock clock;
    const auto later = clock.wall_ms() + 61'000;  // past the recovery timeout
    for (int n : {2, 8, 32}) {
        CAPTURE(n);
        const std::string provider = "p" + std::to_string(n);
        {
            auto cb = make_cb(dir, clock);
            for (int i = 0; i < 5; ++i) cb->on_failure(provider, fault());
            REQUIRE(cb->snapshot(provider).state == CircuitState::open);
        }
        // Every child holds on (alive, so its probe stays live) until all
        // have asked: a probe whose process died would be free again.
        int gate[2], done[2], release[2];
        REQUIRE(::pipe(gate) == 0);
        REQUIRE(::pipe(done) == 0);
        REQUIRE(::pipe(release) == 0);
        std::vector<pid_t> kids;
        for (int i = 0; i < n; ++i) {
            pid_t pid = ::fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                ::close(gate[1]);
                ::close(release[1]);
                ManualClock c(later);
                auto db = open_state_db(dir.str());
                if (!db) ::_exit(3);
                auto cb = SqliteCircuitBreaker::create(std::move(*db), {}, c);
                if (!cb) ::_exit(3);
                char go;
                (void)!::read(gate[0], &go, 1);  // EOF: everyone starts at once
                auto st = (*cb)->allow(provider);
                (void)!::write(done[1], "x", 1);
                (void)!::read(release[0], &go, 1);
                ::_exit(st ? 0 : (st.error().code == ErrorCode::circuit_open ? 1 : 2));
            }
            kids.push_back(pid);
        }
        ::close(gate[0]);
        ::close(gate[1]);
        ::close(done[1]);
        ::close(release[0]);
        for (int i = 0; i < n; ++i) {
            char c;
            REQUIRE(::read(done[0], &c, 1) == 1);
        }
        ::close(release[1]);
        ::close(done[0]);
        int probes = 0, refused = 0;
        for (auto pid : kids) {
            int status = 0;
            REQUIRE(::waitpid(pid, &status, 0) == pid);
            REQUIRE(WIFEXITED(status));
            if (WEXITSTATUS(status) == 0) ++probes;
            if (WEXITSTATUS(status) == 1) ++refused;
        }
        CHECK(probes == 1);
        CHECK(refused == n - 1);
    }
}

TEST_CASE("circuit breaker: a half-open probe held by a process that died is free at once") {
    test::TempDir dir;
    ManualClock clock;
    {
        auto cb = make_cb(dir, clock);
        for (int i = 0; i < 5; ++i) cb->on_failure("p", fault());
        REQUIRE(cb->snapshot("p").state == CircuitState::open);
    }
    clock.advance(61s);
    // A --no-daemon process claims the probe and is killed before it reports.
    REQUIRE(in_child(dir, clock, [](SqliteCircuitBreaker& cb) { return cb.allow("p") ? 0 : 1; }) == 0);  // held the probe
    auto cb = make_cb(dir, clock);
    CHECK(cb->snapshot("p").state == CircuitState::half_open);
    // No wait for the probe timeout (request.timeout): the owner is gone.
    CHECK(cb->allow("p"));
    // Now this (live) process holds it: others are refused.
    auto other = make_cb(dir, clock);
    CHECK_FALSE(other->allow("p"));
}

TEST_CASE("circuit breaker: a CLOSED provider is answered from memory until some process commits a change") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_cb(dir, clock);
    a->on_failure("p", fault());  // a row with one fault: still CLOSED
    CHECK(a->allow("p"));
    CHECK(a->allow("q"));  // no row at all: mirrored too

    // A writer that does not bump the change counter (sqlite3 by hand, an
    // older l04): not seen while the copy is younger than a second, which
    // shows that allow() made no query ...
    {
        auto raw = open_state_db(dir.str());
        REQUIRE(raw);
        REQUIRE((*raw)->exec("UPDATE circuit_breakers SET state = 2, blocked_until_ms = " +
                             std::to_string(clock.wall_ms() + 60'000) + " WHERE provider = 'p'"));
    }
    CHECK(a->allow("p"));
    // ... and seen once the copy is a second old.
    clock.advance(1s);
    CHECK_FALSE(a->allow("p"));
    REQUIRE(a->reset("p"));
    CHECK(a->allow("p"));

    // Another process's commit is seen at once, with no time passing: it
    // bumps the counter file that both map.
    CHECK(a->allow("q"));
    REQUIRE(in_child(dir, clock, [](SqliteCircuitBreaker& cb) {
                for (int i = 0; i < 5; ++i) cb.on_failure("q", fault());
                return cb.allow("q") ? 1 : 0;
            }) == 0);
    CHECK_FALSE(a->allow("q"));
    // This process's own changes too.
    a->on_failure("r", fault());
    CHECK(a->snapshot("r").consecutive_failures == 1);
    a->on_success("r");
    CHECK(a->snapshot("r").consecutive_failures == 0);
}

TEST_CASE("change counter: shared through its file - private without one or when another user owns it") {
    test::TempDir dir;
    const std::string db = dir.str() + "/state.db";
    ChangeCounter a(db), b(db);
    REQUIRE(a.shared());
    CHECK(a.path() == db + "-changes");
    const auto before = b.value();
    a.bump();
    a.bump();
    CHECK(b.value() == before + 2);
    struct stat st {};
    REQUIRE(::stat(a.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    ChangeCounter mem(":memory:");
    CHECK_FALSE(mem.shared());
    mem.bump();
    CHECK(mem.value() == 1);

    if (::geteuid() == 0) {
        REQUIRE(::chown(a.path().c_str(), 12345, 12345) == 0);
        ChangeCounter foreign(db);
        CHECK_FALSE(foreign.shared());  // another user could change it at will
    }
}
