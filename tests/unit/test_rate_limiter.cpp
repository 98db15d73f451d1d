// Rate limiter and spend budgets: bucket arithmetic on a ManualClock,
// all-or-nothing debits, settle, shadow mode, config parsing, persistence,
// and N processes hammering one bucket on one SQLite file.
#include <doctest/doctest.h>

#include <l04/core/clock.hpp>
#include <l04/limit/factory.hpp>
#include <l04/limit/spend_budget.hpp>
#include <l04/limit/sqlite_rate_limiter.hpp>
#include <l04/store/schema.hpp>
#include <l04/usage/ledger.hpp>

#include "support/test_util.hpp"

#include <chrono>
#include <cmath>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace l04;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<SqliteRateLimiter> make_rl(const test::TempDir& dir, Clock& clock, RateLimitConfig cfg) {
    auto db = open_state_db(dir.str());
    REQUIRE(db);
    auto rl = SqliteRateLimiter::create(std::move(*db), std::move(cfg), clock);
    REQUIRE(rl);
    return std::move(*rl);
}

RateLimitConfig cfg_with(Limits agent, std::map<std::string, Limits, std::less<>> scopes = {}) {
    RateLimitConfig c;
    c.agent_default = agent;
    c.scopes = std::move(scopes);
    return c;
}

LimitRequest req(std::int64_t tokens = 0, std::string agent = "alice", std::string provider = "openai",
                 std::string model = "gpt-4o") {
    return LimitRequest{std::move(agent), std::move(provider), std::move(model), tokens, -1};
}

// Level of one bucket as buckets() reports it; NaN when absent.
double level(SqliteRateLimiter& rl, const std::string& scope, const std::string& kind) {
    for (const auto& b : rl.buckets())
        if (b.scope == scope && b.kind == kind) return b.level;
    return std::nan("");
}

std::int64_t retry_ms(const Result<Reservation>& r) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::rate_limit_exceeded);
    CHECK(r.error().retryable);
    REQUIRE(r.error().retry_after.has_value());
    return r.error().retry_after->count();
}

// Rows of a table in the shared database.
std::int64_t rows_of(const test::TempDir& dir, const std::string& table) {
    auto db = open_state_db(dir.str());
    REQUIRE(db);
    auto rows = (*db)->prepare("SELECT COUNT(*) FROM " + table);
    REQUIRE(rows);
    REQUIRE(*rows->step());
    return rows->col_int(0);
}

// Leases out, as rows in the shared database.
std::int64_t lease_rows(const test::TempDir& dir) { return rows_of(dir, "limit_leases"); }

std::int64_t counter(const test::TempDir& dir, CounterId id) {
    auto db = open_state_db(dir.str());
    REQUIRE(db);
    return read_counter(**db, id);
}

}  // namespace

TEST_CASE("rate limiter: request bucket starts full - empties - and refills at capacity/60 per second") {
    test::TempDir dir;
    ManualClock clock;
    auto rl = make_rl(dir, clock, cfg_with({60, 0}));
    for (int i = 0; i < 60; ++i) REQUIRE(rl->reserve(req()));
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(0));
    auto r = rl->reserve(req());
    CHECK(retry_ms(r) == 1000);
    CHECK(r.error().message.find("agent:alice") != std::string::npos);
    clock.advance(400ms);
    CHECK(retry_ms(rl->reserve(req())) == 600);
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(0.4));
    clock.advance(600ms);
    CHECK(rl->reserve(req()));
    CHECK_FALSE(rl->reserve(req()));
    clock.advance(30s);
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(30));
    clock.advance(10min);  // never above capacity
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(60));
    for (int i = 0; i < 60; ++i) REQUIRE(rl->reserve(req()));
    CHECK_FALSE(rl->reserve(req()));
    // Other agents have their own bucket.
    CHECK(rl->reserve(req(0, "bob")));
    CHECK(counter(dir, CounterId::rate_limit_rejections) == 4);
}

TEST_CASE("rate limiter: token bucket debits the estimate and names the wait") {
    test::TempDir dir;
    ManualClock clock;
    auto rl = make_rl(dir, clock, cfg_with({0, 1200}));  // 20 tokens/s
    REQUIRE(rl->reserve(req(1000)));
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(200));
    auto r = rl->reserve(req(500));
    CHECK(retry_ms(r) == 15'000);  // (500 - 200) / 20 per s
    CHECK(r.error().message.find("tokens") != std::string::npos);
    clock.advance(15s);
    CHECK(rl->reserve(req(500)));
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(0));

    SUBCASE("a request larger than the capacity is refused at once: waiting cannot help") {
        clock.advance(60s);
        auto big = rl->reserve(req(3000));
        REQUIRE_FALSE(big);
        CHECK(big.error().code == ErrorCode::rate_limit_exceeded);
        CHECK_FALSE(big.error().retryable);
        CHECK_FALSE(big.error().retry_after.has_value());
        CHECK(big.error().message.find("can never fit") != std::string::npos);
        CHECK(big.error().message.find("1200") != std::string::npos);
        CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(1200));  // nothing debited
    }
}

TEST_CASE("rate limiter: with allow_oversized a request larger than the capacity runs on a full bucket and leaves debt") {
    test::TempDir dir;
    ManualClock clock;
    auto c = cfg_with({0, 1200});  // 20 tokens/s
    c.allow_oversized = true;
    auto rl = make_rl(dir, clock, c);
    SUBCASE("on a full bucket") {
        auto big = rl->reserve(req(3000));
        REQUIRE(big);
        CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(-1800));
        CHECK(retry_ms(rl->reserve(req(200))) == 100'000);  // (200 + 1800) / 20
        clock.advance(100s);
        CHECK(rl->reserve(req(200)));
    }
    SUBCASE("... but not on a bucket that is not full") {
        REQUIRE(rl->reserve(req(600)));
        clock.advance(15s);
        CHECK(retry_ms(rl->reserve(req(3000))) == 15'000);  // until full
    }
}

TEST_CASE("rate limiter: all buckets of a request are debited - or none") {
    test::TempDir dir;
    ManualClock clock;
    auto rl = make_rl(dir, clock,
                      cfg_with({60, 100'000}, {{"provider:openai", {3, 0}}, {"model:gpt-4o", {0, 600}}}));
    REQUIRE(rl->reserve(req(400)));
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(59));
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(99'600));
    CHECK(level(*rl, "provider:openai", "requests") == doctest::Approx(2));
    CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(200));

    // The model's token bucket is short: nothing else may be debited.
    auto r = rl->reserve(req(300));
    CHECK(retry_ms(r) == 10'000);  // (300 - 200) / 10 per s
    CHECK(r.error().message.find("model:gpt-4o") != std::string::npos);
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(59));
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(99'600));
    CHECK(level(*rl, "provider:openai", "requests") == doctest::Approx(2));
    CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(200));

    // The retry_after is the longest wait over the short buckets.
    REQUIRE(rl->reserve(req(0)));
    REQUIRE(rl->reserve(req(0)));  // provider requests now 0 → 20 s per request
    CHECK(retry_ms(rl->reserve(req(300))) == 20'000);

    // A different model of the same provider still meets the provider bucket.
    CHECK_FALSE(rl->reserve(req(0, "bob", "openai", "gpt-4o-mini")));
    // Providers and models without configured limits are not limited.
    for (int i = 0; i < 50; ++i) REQUIRE(rl->reserve(req(10, "carol", "anthropic", "claude")));
    for (const auto& b : rl->buckets()) {
        CHECK(b.scope != "provider:anthropic");
        CHECK(b.scope != "model:claude");
    }
}

TEST_CASE("rate limiter: settle refunds or charges the difference - once - bounded by capacity") {
    test::TempDir dir;
    ManualClock clock;
    auto rl = make_rl(dir, clock, cfg_with({0, 1000}, {{"model:gpt-4o", {0, 600}}}));
    auto r = rl->reserve(req(500));
    REQUIRE(r);
    CHECK(r->id > 0);
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(500));
    CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(100));

    REQUIRE(rl->settle_checked(*r, 120));  // refund 380 to both
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(880));
    CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(480));
    REQUIRE(rl->settle_checked(*r, 0));  // settled already: no-op
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(880));

    auto r2 = rl->reserve(req(100));
    REQUIRE(r2);
    rl->settle(*r2, 400);  // charge 300 more
    CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(480));
    CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(80));

    SUBCASE("refund never lifts a bucket above capacity") {
        auto r3 = rl->reserve(req(50));
        REQUIRE(r3);
        clock.advance(2min);  // both buckets refilled to full
        REQUIRE(rl->settle_checked(*r3, 0));
        CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(1000));
        CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(600));
    }
    SUBCASE("an extra charge is bounded at one capacity of debt") {
        auto r3 = rl->reserve(req(10));
        REQUIRE(r3);
        REQUIRE(rl->settle_checked(*r3, 1'000'000));
        CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(-1000));
        CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(-600));
    }
    SUBCASE("settle applies elapsed refill first") {
        clock.advance(6s);  // +100 agent, +60 model
        auto r3 = rl->reserve(req(0));
        REQUIRE(r3);
        REQUIRE(rl->settle_checked(*r3, 40));
        CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(540));
        CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(100));
    }
    SUBCASE("a reservation another instance made settles here") {
        auto other = make_rl(dir, clock, cfg_with({0, 1000}, {{"model:gpt-4o", {0, 600}}}));
        auto r3 = other->reserve(req(50));
        REQUIRE(r3);
        CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(30));
        REQUIRE(rl->settle_checked(*r3, 0));
        CHECK(level(*rl, "agent:alice", "tokens") == doctest::Approx(480));
        CHECK(level(*rl, "model:gpt-4o", "tokens") == doctest::Approx(80));
    }
    SUBCASE("reservations without token buckets are not persisted") {
        auto plain = rl->reserve(req(10, "", "anthropic", "claude"));
        REQUIRE(plain);
        CHECK(plain->id == 0);
        REQUIRE(rl->settle_checked(*plain, 10));
    }
}

TEST_CASE("rate limiter: unsettled reservations expire after the TTL") {
    test::TempDir dir;
    ManualClock clock;
    auto c = cfg_with({0, 1000});
    c.reservation_ttl_ms = 60'000;
    auto rl = make_rl(dir, clock, c);
    auto r = rl->reserve(req(500));
    REQUIRE(r);
    clock.advance(61s);
    auto pruned = rl->prune_reservations();
    REQUIRE(pruned);
    CHECK(*pruned == 1);
    REQUIRE(rl->settle_checked(*r, 0));  // gone: the estimate stays charged
    // Refilled by time only: a full bucket is pruned like an unused one.
    CHECK(std::isnan(level(*rl, "agent:alice", "tokens")));
    REQUIRE(rl->reserve(req(1000)));
}

TEST_CASE("rate limiter: buckets of idle scopes are pruned once refilled - never one still in debt or use") {
    test::TempDir dir;
    ManualClock clock;
    auto rl = make_rl(dir, clock, cfg_with({60, 0}));
    auto rows = [&] { return rows_of(dir, "limit_buckets"); };
    // 500 distinct `user` values, one request each.
    for (int i = 0; i < 500; ++i) REQUIRE(rl->reserve(req(0, "user-" + std::to_string(i))));
    // A busy one: its bucket is well below capacity.
    for (int i = 0; i < 30; ++i) REQUIRE(rl->reserve(req(0, "busy")));
    CHECK(rows() == 501);
    REQUIRE(rl->prune_reservations());
    CHECK(rows() == 501);  // none refilled yet
    clock.advance(2s);      // +2 requests' worth: the single-use buckets are full again
    REQUIRE(rl->prune_reservations());
    CHECK(rows() == 1);  // only "busy" (28 below capacity) is kept
    CHECK(level(*rl, "agent:busy", "requests") == doctest::Approx(32));
    clock.advance(60s);
    REQUIRE(rl->prune_reservations());
    CHECK(rows() == 0);
    // A pruned bucket behaves as before: full.
    CHECK(level(*rl, "agent:user-7", "requests") != level(*rl, "agent:user-7", "requests"));  // absent: NaN
    REQUIRE(rl->reserve(req(0, "user-7")));
    CHECK(level(*rl, "agent:user-7", "requests") == doctest::Approx(59));
}

TEST_CASE("rate limiter: shadow mode admits - flags and counts - and debits nothing for the flagged") {
    test::TempDir dir;
    ManualClock clock;
    auto c = cfg_with({2, 0});
    c.enforced = false;
    auto rl = make_rl(dir, clock, c);
    auto a = rl->reserve(req());
    auto b = rl->reserve(req());
    auto x = rl->reserve(req());
    auto y = rl->reserve(req());
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(x);
    REQUIRE(y);
    CHECK_FALSE(a->shadow_rejected);
    CHECK_FALSE(b->shadow_rejected);
    CHECK(x->shadow_rejected);
    CHECK(y->shadow_rejected);
    CHECK(level(*rl, "agent:alice", "requests") == doctest::Approx(0));
    CHECK(counter(dir, CounterId::rate_limit_shadow_rejections) == 2);
    CHECK(counter(dir, CounterId::rate_limit_rejections) == 0);
    clock.advance(30s);
    auto z = rl->reserve(req());
    REQUIRE(z);
    CHECK_FALSE(z->shadow_rejected);
}

TEST_CASE("rate limiter: buckets() lists configured scopes and used agent buckets") {
    test::TempDir dir;
    ManualClock clock;
    auto rl = make_rl(dir, clock, cfg_with({60, 1000}, {{"provider:openai", {100, 0}}, {"agent:cron", {5, 0}}}));
    auto bs = rl->buckets();
    REQUIRE(bs.size() == 2);  // configured, unused: full
    CHECK(bs[0].scope == "agent:cron");
    CHECK(bs[0].kind == "requests");
    CHECK(bs[0].capacity == 5);
    CHECK(bs[0].level == 5);
    CHECK(bs[1].scope == "provider:openai");
    CHECK(bs[1].refill_per_s == doctest::Approx(100.0 / 60));
    REQUIRE(rl->reserve(req(10)));
    bs = rl->buckets();
    REQUIRE(bs.size() == 4);
    CHECK(bs[0].scope == "agent:alice");
    CHECK(bs[0].kind == "requests");
    CHECK(bs[0].level == doctest::Approx(59));
    CHECK(bs[1].kind == "tokens");
    CHECK(bs[1].level == doctest::Approx(990));
    CHECK(bs[1].capacity == 1000);
    // agent:cron has no token limit of its own.
    for (int i = 0; i < 5; ++i) REQUIRE(rl->reserve(req(1'000'000, "cron", "ollama", "llama")));
    CHECK_FALSE(rl->reserve(req(0, "cron", "ollama", "llama")));
}

TEST_CASE("rate limiter: limits hold across instances on one file - and follow config changes") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, cfg_with({10, 0}));
    auto b = make_rl(dir, clock, cfg_with({10, 0}));
    for (int i = 0; i < 5; ++i) {
        REQUIRE(a->reserve(req()));
        REQUIRE(b->reserve(req()));
    }
    CHECK_FALSE(a->reserve(req()));
    CHECK_FALSE(b->reserve(req()));
    clock.advance(6s);  // one request back
    CHECK(b->reserve(req()));
    CHECK_FALSE(a->reserve(req()));
    // A lower capacity takes effect at once; a higher one refills towards it.
    clock.advance(10min);
    auto c = make_rl(dir, clock, cfg_with({3, 0}));
    CHECK(std::isnan(level(*c, "agent:alice", "requests")));  // refilled, so pruned: full
    for (int i = 0; i < 3; ++i) REQUIRE(c->reserve(req()));
    CHECK_FALSE(c->reserve(req()));
}

namespace {

RateLimitConfig leasing(Limits agent, std::int64_t lease_ms = 200) {
    auto c = cfg_with(agent);
    c.lease_ms = lease_ms;
    return c;
}

}  // namespace

TEST_CASE("rate limiter leases: a busy bucket is decided in memory - the shared level counts the lease - flush gives back the rest") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({6000, 0}));  // 100/s: a lease of 200 ms is 20 requests
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));  // another process, no leases
    auto first = a->reserve(req());
    REQUIRE(first);
    CHECK_FALSE(first->local);
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1 - 20));
    CHECK(level(*a, "agent:alice", "requests") == doctest::Approx(6000 - 1));  // its own lease shows as available
    for (int i = 0; i < 20; ++i) {
        auto r = a->reserve(req());
        REQUIRE(r);
        CHECK(r->local);
    }
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(5979));  // no database write for those
    auto next = a->reserve(req());  // the lease is used up: a transaction, and a new lease
    REQUIRE(next);
    CHECK_FALSE(next->local);
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 22 - 20));
    a->flush();
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 22));  // exactly what was admitted
    auto again = a->reserve(req());
    REQUIRE(again);
    CHECK_FALSE(again->local);
    a.reset();  // destruction gives the lease back too
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 23));
}

TEST_CASE("rate limiter leases: below half the capacity none is taken - two processes drain the bucket exactly") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({600, 0}));  // 10/s: 2 requests per lease
    auto b = make_rl(dir, clock, cfg_with({600, 0}));
    int admitted = 0, local = 0, local_below_half = 0;
    for (int i = 0; i < 1000; ++i) {
        auto& rl = i % 3 == 0 ? b : a;
        const double shared = level(*b, "agent:alice", "requests");
        auto r = rl->reserve(req());
        if (!r) continue;
        ++admitted;
        local += r->local ? 1 : 0;
        // A lease (2) is taken only while 300 stay; b admits at most one
        // while a uses it up.
        if (r->local && shared < 297) ++local_below_half;
    }
    a->flush();
    CHECK(admitted == 600);  // the clock did not move: exactly the capacity
    CHECK(local > 0);        // while above half, leases were used
    CHECK(local_below_half == 0);
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(0));
}

TEST_CASE("rate limiter leases: settling a leased admission refunds or charges through the lease") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({0, 60000}));  // 1,000 tokens/s: 200 tokens per lease
    auto b = make_rl(dir, clock, cfg_with({0, 60000}));
    auto first = a->reserve(req(100));
    REQUIRE(first);
    CHECK_FALSE(first->local);
    CHECK(level(*b, "agent:alice", "tokens") == doctest::Approx(60000 - 100 - 200));
    auto second = a->reserve(req(100));
    REQUIRE(second);
    REQUIRE(second->local);
    auto third = a->reserve(req(100));
    REQUIRE(third);
    REQUIRE(third->local);
    a->settle(*first, 100);  // as estimated: nothing changes
    a->settle(*second, 40);  // 60 back
    a->settle(*third, 150);  // 50 more
    a->flush();
    CHECK(level(*b, "agent:alice", "tokens") == doctest::Approx(60000 - 100 - 40 - 150));
}

TEST_CASE("rate limiter leases: an expired lease is not used - the next decision gives it back") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({6000, 0}));
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));
    for (int i = 0; i < 2000; ++i) REQUIRE(b->reserve(req()));  // 4000 left: above half, far from full
    REQUIRE(a->reserve(req()));                                  // 1 admitted, a lease of 20
    for (int i = 0; i < 5; ++i) REQUIRE(a->reserve(req())->local);
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(4000 - 1 - 20));
    clock.advance(250ms);  // past the lease; the bucket refilled 25
    auto r = a->reserve(req());
    REQUIRE(r);
    CHECK_FALSE(r->local);  // the expired lease was not used
    // 3979 + 25 refilled + 15 unused given back, 1 admitted, a new lease of 20.
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(3979 + 25 + 15 - 1 - 20));
    a->flush();
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(4000 + 25 - 7));
    // No lease is taken by a limiter without lease_ms (the default).
    for (int i = 0; i < 5; ++i) CHECK_FALSE(b->reserve(req())->local);
}

TEST_CASE("rate limiter leases: a refusal keeps the lease - a request leases only when all its buckets can") {
    test::TempDir dir;
    ManualClock clock;
    {
        auto a = make_rl(dir, clock, leasing({6000, 240}));
        auto b = make_rl(dir, clock, cfg_with({6000, 240}));
        auto first = a->reserve(req(10));
        REQUIRE(first);
        // tokens: 240/min refills 0.8 per 200 ms, less than one token: no
        // lease there, so the request bucket (20 per lease) takes none either.
        CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1));
        CHECK(level(*b, "agent:alice", "tokens") == doctest::Approx(240 - 10));
        CHECK_FALSE(a->reserve(req(10))->local);
    }
    test::TempDir dir2;
    auto a = make_rl(dir2, clock, leasing({6000, 60000}));  // leases of 20 requests and 200 tokens
    auto b = make_rl(dir2, clock, cfg_with({6000, 60000}));
    REQUIRE_FALSE(a->reserve(req(10))->local);
    for (int i = 0; i < 3; ++i) REQUIRE(a->reserve(req(10))->local);
    // A request that can never fit is refused before anything is written:
    // the leases stay, and the next request still uses them.
    auto never = a->reserve(LimitRequest{"alice", "openai", "gpt-4o", 100000, 100000});
    REQUIRE_FALSE(never);
    CHECK_FALSE(never.error().retryable);
    REQUIRE(a->reserve(req(10))->local);
    a->flush();
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 5));
    CHECK(level(*b, "agent:alice", "tokens") == doctest::Approx(60000 - 50));
}

TEST_CASE("rate limiter leases: the level does not refill around a lease - no window admits more than the bucket alone") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({6000, 0}));  // 100/s: leases of 20
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));
    REQUIRE_FALSE(a->reserve(req())->local);  // full bucket: 1 admitted, a lease of 20 out (5979 left)
    // 199 ms refill 19.9. Without the lease row the shared level would be
    // back at 5998.9 while a still holds 20: 6018 admissions at once where
    // the bucket alone allows 6000.
    clock.advance(199ms);
    int admitted = 0;
    while (b->reserve(req())) ++admitted;
    CHECK(admitted == 5980);  // the capacity minus the lease out
    while (true) {
        auto r = a->reserve(req());
        if (!r) break;
        ++admitted;
        if (!r->local) break;
    }
    while (b->reserve(req())) ++admitted;
    CHECK(admitted == 6000);  // as the bucket alone: full at 199 ms, nothing more
    a.reset();
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(0).epsilon(1e-9));
    // The lease's row went with it.
    CHECK(lease_rows(dir) == 0);
}

TEST_CASE("rate limiter leases: a lease used up and never given back releases its refill at the refill rate") {
    // The review's second case: a uses its whole lease just before it
    // expires and goes quiet. The level refilled behind the lease's hold
    // while it could be used; that refill must not all come back at once.
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({6000, 0}));  // 100/s: leases of 20
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));
    REQUIRE_FALSE(a->reserve(req())->local);  // 1 admitted, a lease of 20 out until 200 ms
    clock.advance(199ms);
    for (int i = 0; i < 20; ++i) REQUIRE(a->reserve(req())->local);
    clock.advance(1ms);  // the lease can no longer be used
    int admitted = 0;
    while (b->reserve(req())) ++admitted;
    CHECK(admitted == 5980);  // 20 + 5980 within 1 ms: the bucket alone's 6000 (+0.1 of refill)
    clock.advance(100ms);     // 10 refilled, as for the bucket alone
    admitted = 0;
    while (b->reserve(req())) ++admitted;
    CHECK(admitted == 10);
}

TEST_CASE("rate limiter leases: a killed process's lease is lost - its hold ends at the refill rate") {
    test::TempDir dir;
    ManualClock clock;
    // Another process takes a lease of 20 and exits without giving it back
    // (no destructors run: as if killed). The connection of this process
    // opens after the fork (SQLite: no connection across a fork).
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto db = open_state_db(dir.str());
        if (!db) ::_exit(3);
        auto a = SqliteRateLimiter::create(std::move(*db), leasing({6000, 0}), clock);
        if (!a) ::_exit(3);
        auto r = (*a)->reserve(req());
        ::_exit(r && !r->local ? 0 : 4);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1 - 20));
    clock.advance(100ms);  // refills 10, but only up to 6000 - 20 while the lease may be used
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(5980));
    clock.advance(100ms);  // expired: its 20 are lost (as if used); its hold ends at 100/s
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(5980));
    clock.advance(100ms);
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(5990));
    clock.advance(100ms);
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000));
    // The row is gone with the next prune.
    REQUIRE(b->prune_reservations());
    CHECK(lease_rows(dir) == 0);
}

TEST_CASE("rate limiter leases: with the clock moving - processes together admit no more than the bucket alone") {
    test::TempDir dir;
    ManualClock clock;
    auto a = make_rl(dir, clock, leasing({6000, 0}));  // 100/s, leases of 20
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));
    int admitted = 0;
    // 60 s of load at 4x the rate from both, 10 ms steps: a token bucket
    // allows its capacity plus the refill (6000 + 6000).
    for (int step = 0; step < 6000; ++step) {
        for (int k = 0; k < 2; ++k) {
            if (a->reserve(req())) ++admitted;
            if (b->reserve(req())) ++admitted;
        }
        clock.advance(10ms);
    }
    a->flush();
    // A bucket refills only up to its capacity minus the leases out, so
    // the bucket alone's bound holds exactly. At most one lease (20) is left
    // unused when the run ends.
    CHECK(admitted <= 6000 + 6000);
    CHECK(admitted >= 6000 + 6000 - 20);
}

TEST_CASE("rate limiter: scope limits parse from settings - and the factory honours enabled") {
    auto ok = parse_scope_limits(" provider:openai=500/200000; model:gpt-4o=100/- ,agent:cron=10,, agent:ci=0/5000",
                                 Limits{60, 100'000});
    REQUIRE(ok);
    CHECK(ok->size() == 4);
    CHECK(ok->at("provider:openai") == Limits{500, 200'000});
    CHECK(ok->at("model:gpt-4o") == Limits{100, 0});
    CHECK(ok->at("agent:cron") == Limits{10, 100'000});  // omitted tpm: the agent default
    CHECK(ok->at("agent:ci") == Limits{0, 5000});
    for (const char* bad : {"openai=5", "provider:openai", "provider:=5", "tenant:x=5", "model:m=five",
                            "model:m=5/x", "model:m=-5", "model:m=1,model:m=2"}) {
        CAPTURE(bad);
        auto r = parse_scope_limits(bad, {});
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::config_invalid);
        CHECK(r.error().message.find("rate_limit.scopes") != std::string::npos);
    }

    test::TempDir dir;
    ManualClock clock;
    auto s = Settings::defaults();
    REQUIRE(s.set("rate_limit.requests_per_minute", "2", "test"));
    REQUIRE(s.set("rate_limit.scopes", "provider:openai=1", "test"));
    auto cfg = rate_limit_config_from(s);
    REQUIRE(cfg);
    CHECK(cfg->enforced);
    CHECK(cfg->agent_default == Limits{2, 100'000});
    auto rl = make_rate_limiter(s, dir.str(), clock);
    REQUIRE(rl);
    CHECK((*rl)->reserve(req(5)));
    CHECK_FALSE((*rl)->reserve(req(5, "bob")));  // provider:openai is empty
    CHECK((*rl)->reserve(req(5, "bob", "ollama", "llama")));
    CHECK_FALSE((*rl)->buckets().empty());

    REQUIRE(s.set("rate_limit.enabled", "false", "test"));
    auto off = make_rate_limiter(s, dir.str(), clock);
    REQUIRE(off);
    for (int i = 0; i < 10; ++i) CHECK((*off)->reserve(req(5)));
    CHECK((*off)->buckets().empty());

    REQUIRE(s.set("rate_limit.scopes", "provider:openai", "test"));
    auto broken = make_rate_limiter(s, dir.str(), clock);
    REQUIRE(s.set("rate_limit.enabled", "true", "test"));
    broken = make_rate_limiter(s, dir.str(), clock);
    REQUIRE_FALSE(broken);
    CHECK(broken.error().code == ErrorCode::config_invalid);
}

TEST_CASE("spend budget: daily and monthly USD limits per agent from the usage ledger") {
    CHECK(utc_day_start_ms(1'700'000'000'000) == 1'699'920'000'000);        // 2023-11-14T00:00Z
    CHECK(utc_month_start_ms(1'700'000'000'000) == 1'698'796'800'000);      // 2023-11-01T00:00Z
    CHECK(utc_next_month_start_ms(1'700'000'000'000) == 1'701'388'800'000);  // 2023-12-01T00:00Z

    test::TempDir dir;
    ManualClock clock;  // 2023-11-14T22:13:20Z
    auto ledger_db = open_state_db(dir.str());
    REQUIRE(ledger_db);
    Ledger ledger(std::move(*ledger_db), /*background=*/false);
    auto spend_row = [&](const std::string& agent, double usd, std::int64_t at_ms) {
        UsageRow row;
        row.request_id = "r" + std::to_string(at_ms);
        row.time_ms = at_ms;
        row.agent = agent;
        row.model = "gpt-4o";
        row.provider = "openai";
        row.cost_usd = usd;
        REQUIRE(ledger.record(row));
    };

    auto s = Settings::defaults();
    REQUIRE(s.set("budget.daily_usd", "1", "test"));
    REQUIRE(s.set("budget.monthly_usd", "20", "test"));
    REQUIRE(s.set("budget.agents", "ci=0.5; free=-/-", "test"));
    auto budget = make_spend_budget(s, dir.str(), clock);
    REQUIRE(budget);
    CHECK((*budget)->active());
    CHECK((*budget)->limits_for("ci") == BudgetLimits{0.5, 20});
    CHECK((*budget)->limits_for("free") == BudgetLimits{0, 0});

    const auto now = clock.wall_ms();
    spend_row("alice", 0.6, now - 1000);
    spend_row("alice", 9.0, utc_month_start_ms(now) + 1000);     // earlier this month
    spend_row("alice", 50.0, utc_month_start_ms(now) - 1000);    // last month
    CHECK((*budget)->check("alice"));
    auto sp = (*budget)->spend("alice");
    REQUIRE(sp);
    CHECK(sp->day_usd == doctest::Approx(0.6));
    CHECK(sp->month_usd == doctest::Approx(9.6));

    spend_row("alice", 0.5, now);
    auto st = (*budget)->check("alice");
    REQUIRE_FALSE(st);
    CHECK(st.error().code == ErrorCode::quota_exhausted);
    CHECK(st.error().message.find("daily") != std::string::npos);
    CHECK(st.error().message.find("$1.10") != std::string::npos);
    CHECK(st.error().message.find("alice") != std::string::npos);
    REQUIRE(st.error().retry_after.has_value());
    CHECK(st.error().retry_after->count() == utc_day_start_ms(now) + 86'400'000 - now);

    clock.advance(std::chrono::milliseconds(utc_day_start_ms(now) + 86'400'000 - now));  // next UTC day
    CHECK((*budget)->check("alice"));
    spend_row("alice", 10.0, clock.wall_ms());  // 20.1 this month (and over today's too)
    auto mst = (*budget)->check("alice");
    REQUIRE_FALSE(mst);
    CHECK(mst.error().message.find("monthly") != std::string::npos);
    CHECK(mst.error().message.find("$20.10") != std::string::npos);
    CHECK(mst.error().retry_after->count() == utc_next_month_start_ms(clock.wall_ms()) - clock.wall_ms());

    spend_row("ci", 0.5, clock.wall_ms());
    CHECK_FALSE((*budget)->check("ci"));
    spend_row("free", 1000, clock.wall_ms());
    CHECK((*budget)->check("free"));
    CHECK((*budget)->check("nobody"));
    CHECK(counter(dir, CounterId::budget_rejections) == 3);

    CHECK_FALSE(parse_budget_agents("alice", {}));
    CHECK_FALSE(parse_budget_agents("alice=x", {}));
    CHECK_FALSE(parse_budget_agents("=1", {}));
    auto none = make_spend_budget(Settings::defaults(), dir.str(), clock);
    REQUIRE(none);
    CHECK_FALSE((*none)->active());
    CHECK((*none)->check("alice"));
}

namespace {

struct HammerResult {
    std::int64_t admitted = 0, rejected = 0, errors = 0;
    std::int64_t local = 0;  // admitted from a lease
    std::int64_t t0_ms = 0;
    std::int64_t last_ms = 0;  // latest wall time any reserve() returned at
    bool children_ok = true;
};

// Forks n processes that call reserve() for agent "hammer" in a loop from t0
// to t0 + run_ms (system clock) on the state database in dir. When
// prime_level is set, the bucket row is written with that level as of t0
// before anyone starts.
HammerResult hammer(const test::TempDir& dir, int n, const RateLimitConfig& cfg, std::int64_t run_ms,
                    std::optional<double> prime_level) {
    HammerResult res;
    {
        auto db = open_state_db(dir.str());  // migrate once, before the crowd
        REQUIRE(db);
    }
    int results[2], gate[2];
    REQUIRE(::pipe(results) == 0);
    REQUIRE(::pipe(gate) == 0);
    std::vector<pid_t> kids;
    for (int i = 0; i < n; ++i) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(results[0]);
            ::close(gate[1]);
            std::int64_t out[5] = {0, 0, 0, 0, 0};
            auto db = open_state_db(dir.str());
            if (!db) ::_exit(3);
            auto rl = SqliteRateLimiter::create(std::move(*db), cfg, SystemClock::instance());
            if (!rl) ::_exit(3);
            std::int64_t t0 = 0;
            if (::read(gate[0], &t0, sizeof t0) != sizeof t0) ::_exit(4);
            auto& clock = SystemClock::instance();
            while (clock.wall_ms() < t0) std::this_thread::sleep_for(100us);
            while (clock.wall_ms() < t0 + run_ms) {
                auto r = (*rl)->reserve(LimitRequest{"hammer", "p", "m", 0, -1});
                if (r) {
                    ++out[0];
                    out[4] += r->local ? 1 : 0;
                } else if (r.error().code == ErrorCode::rate_limit_exceeded) ++out[1];
                else ++out[2];
                out[3] = clock.wall_ms();  // the decision read the clock before this
            }
            if (::write(results[1], out, sizeof out) != sizeof out) ::_exit(5);
            ::_exit(0);
        }
        kids.push_back(pid);
    }
    ::close(results[1]);
    ::close(gate[0]);
    const std::int64_t t0 = SystemClock::instance().wall_ms() + 150;
    if (prime_level) {
        auto db = open_state_db(dir.str());
        REQUIRE(db);
        const double cap = static_cast<double>(cfg.agent_default.requests_per_minute);
        auto st = (*db)->prepare(
            "INSERT INTO limit_buckets(scope, kind, level, capacity, refill_per_s, updated_ms) "
            "VALUES('agent:hammer', 0, ?, ?, ?, ?)");
        REQUIRE(st);
        st->bind(1, *prime_level).bind(2, cap).bind(3, cap / 60.0).bind(4, t0);
        REQUIRE(st->run());
    }
    for (int i = 0; i < n; ++i) REQUIRE(::write(gate[1], &t0, sizeof t0) == sizeof t0);
    ::close(gate[1]);
    res.t0_ms = t0;
    for (int i = 0; i < n; ++i) {
        std::int64_t out[5] = {0, 0, 0, 0, 0};
        if (::read(results[0], out, sizeof out) != sizeof out) res.children_ok = false;
        res.admitted += out[0];
        res.local += out[4];
        res.rejected += out[1];
        res.errors += out[2];
        res.last_ms = std::max(res.last_ms, out[3]);
    }
    ::close(results[0]);
    for (auto pid : kids) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        res.children_ok = res.children_ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    return res;
}

}  // namespace

// N processes hammer one bucket on one SQLite file with the system clock.
// The admitted total must never exceed level0 + refill × elapsed, elapsed
// running from the start to the latest moment any decision returned (a
// process may check the deadline, then wait for the lock, then decide late),
// and must reach at least 95% of level0 + refill × the run time. Two buckets: capacity 50 refilled at 50/min (the
// capacity is what matters), and one with a high refill (6000/min = 100/s)
// primed at level 50, where the refill arithmetic under contention matters.
TEST_CASE("rate limiter: N processes on one bucket admit no more than it allows (cross-process)") {
    constexpr std::int64_t k_run_ms = 1000;
    for (int n : {2, 8, 32}) {
        CAPTURE(n);
        {
            test::TempDir dir;
            auto r = hammer(dir, n, cfg_with({50, 0}), k_run_ms, std::nullopt);
            const double refill = 50.0 / 60.0;
            const double bound = 50 + refill * static_cast<double>(r.last_ms - r.t0_ms) / 1000.0;
            const double expected = 50 + refill * k_run_ms / 1000.0;
            INFO("n=" << n << " cap 50 @50/min: admitted " << r.admitted << " rejected " << r.rejected
                         << " bound " << bound);
            CHECK(r.children_ok);
            CHECK(r.errors == 0);
            CHECK(r.rejected > 0);
            CHECK(static_cast<double>(r.admitted) <= bound);
            CHECK(static_cast<double>(r.admitted) >= 0.95 * expected);
        }
        {
            test::TempDir dir;
            auto r = hammer(dir, n, cfg_with({6000, 0}), k_run_ms, 50.0);
            const double refill = 100.0;
            const double bound = 50 + refill * static_cast<double>(r.last_ms - r.t0_ms) / 1000.0;
            const double expected = 50 + refill * k_run_ms / 1000.0;
            INFO("n=" << n << " level 50 @100/s: admitted " << r.admitted << " rejected " << r.rejected
                         << " bound " << bound);
            CHECK(r.children_ok);
            CHECK(r.errors == 0);
            CHECK(r.rejected > 0);
            CHECK(static_cast<double>(r.admitted) <= bound);
            CHECK(static_cast<double>(r.admitted) >= 0.95 * expected);
        }
    }
}

TEST_CASE("rate limiter leases: busy processes leasing one bucket admit no more than it allows (cross-process)") {
    // --no-daemon runs deciding flat out lease (lease_only_when_busy); the
    // bucket starts full, so leases are used until it is half empty and
    // every decision after that is a transaction (a small capacity: a few
    // hundred of them, so that a loaded machine or a sanitizer build still
    // drains it within the second). The processes exit without giving
    // their leases back, as if killed.
    constexpr std::int64_t k_run_ms = 1000;
    for (int n : {2, 8}) {
        CAPTURE(n);
        test::TempDir dir;
        RateLimitConfig cfg = cfg_with({600, 0});  // 10/s: leases of 2
        cfg.lease_ms = 200;
        cfg.lease_only_when_busy = true;
        auto r = hammer(dir, n, cfg, k_run_ms, std::nullopt);
        const double refill = 10.0;
        const double bound = 600 + refill * static_cast<double>(r.last_ms - r.t0_ms) / 1000.0;
        const double expected = 600 + refill * k_run_ms / 1000.0;
        INFO("n=" << n << " cap 600 @10/s, leases: admitted " << r.admitted << " (" << r.local
                     << " from leases) rejected " << r.rejected << " bound " << bound);
        CHECK(r.children_ok);
        CHECK(r.errors == 0);
        CHECK(r.rejected > 0);
        CHECK(r.local > 0);
        CHECK(static_cast<double>(r.admitted) <= bound);
        CHECK(static_cast<double>(r.admitted) >= 0.95 * expected);
    }
}

TEST_CASE("rate limiter leases: a --no-daemon run leases only a bucket it decided on within lease_ms") {
    test::TempDir dir;
    ManualClock clock;
    RateLimitConfig cfg = cfg_with({6000, 0});  // 100/s: leases of 20
    cfg.lease_ms = 200;
    cfg.lease_only_when_busy = true;
    auto a = make_rl(dir, clock, cfg);
    auto b = make_rl(dir, clock, cfg_with({6000, 0}));
    REQUIRE_FALSE(a->reserve(req())->local);  // a first decision: no lease
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1));
    clock.advance(200ms);                      // refills the one admitted
    REQUIRE_FALSE(a->reserve(req())->local);  // the last decision was lease_ms ago: still no lease
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1));
    clock.advance(199ms);
    REQUIRE_FALSE(a->reserve(req())->local);  // busy now: this transaction also takes a lease
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1 - 20));
    for (int i = 0; i < 20; ++i) REQUIRE(a->reserve(req())->local);
    // Another bucket (agent bob) is not busy because alice's is.
    REQUIRE_FALSE(a->reserve(req(0, "bob"))->local);
    REQUIRE_FALSE(a->reserve(req(0, "bob"))->local);  // now it is: a lease for bob
    REQUIRE(a->reserve(req(0, "bob"))->local);
    CHECK(level(*b, "agent:bob", "requests") == doctest::Approx(6000 - 2 - 20));
    a.reset();  // the run ends: what it holds goes back
    CHECK(level(*b, "agent:alice", "requests") == doctest::Approx(6000 - 1 - 20));
    CHECK(level(*b, "agent:bob", "requests") == doctest::Approx(6000 - 3));
}

TEST_CASE("spend budget: worst cases are reserved - concurrent processes cannot overshoot together - release frees") {
    test::TempDir dir;
    ManualClock clock;
    auto s = Settings::defaults();
    REQUIRE(s.set("budget.daily_usd", "1", "test"));
    {
        auto budget = make_spend_budget(s, dir.str(), clock);
        REQUIRE(budget);
        // $0.40 worst case each: two fit in $1.00, the third does not.
        auto a = (*budget)->reserve("alice", 0.40);
        auto b = (*budget)->reserve("alice", 0.40);
        REQUIRE(a);
        REQUIRE(b);
        CHECK(*a > 0);
        auto c = (*budget)->reserve("alice", 0.40);
        REQUIRE_FALSE(c);
        CHECK(c.error().code == ErrorCode::quota_exhausted);
        CHECK(c.error().message.find("$0.80") != std::string::npos);  // held by requests in flight
        CHECK(c.error().message.find("$0.40") != std::string::npos);  // what this one may cost
        CHECK((*budget)->reserve("bob", 0.40));                       // another agent's own budget
        (*budget)->release(*a);
        CHECK((*budget)->reserve("alice", 0.40));
        // A reservation of a process that died expires.
        clock.advance(std::chrono::hours(2));
        CHECK((*budget)->reserve("alice", 0.90));
    }
    // 8 processes at once, each wanting $0.30 of a fresh agent's $1.00: 3 fit.
    int gate[2];
    REQUIRE(::pipe(gate) == 0);
    std::vector<pid_t> kids;
    for (int i = 0; i < 8; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(gate[1]);
            ManualClock c(clock.wall_ms());
            auto b = make_spend_budget(s, dir.str(), c);
            if (!b) ::_exit(3);
            char go;
            (void)!::read(gate[0], &go, 1);
            auto r = (*b)->reserve("carol", 0.30);
            ::_exit(r ? 0 : (r.error().code == ErrorCode::quota_exhausted ? 1 : 2));
        }
        kids.push_back(pid);
    }
    ::close(gate[0]);
    ::close(gate[1]);
    int admitted = 0, refused = 0;
    for (auto pid : kids) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFEXITED(status));
        if (WEXITSTATUS(status) == 0) ++admitted;
        if (WEXITSTATUS(status) == 1) ++refused;
    }
    CHECK(admitted == 3);
    CHECK(refused == 5);
}
