#include "support/test_util.hpp"

#include <l04/cache/cache_key.hpp>
#include <l04/cache/response_cache.hpp>
#include <l04/store/schema.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace l04;

namespace {

InferenceRequest req(const std::string& prompt) {
    InferenceRequest r;
    r.messages.push_back({Role::user, prompt, {}, {}, {}});
    return r;
}

InferenceResponse resp(const std::string& content) {
    InferenceResponse r;
    r.content = content;
    r.model_id = "mock";
    r.provider = "mock";
    r.token_usage = {10, 20, 30, false};
    r.cost_usd = 0.5;
    r.tool_calls = {{"c1", "f", "{}"}};
    return r;
}

struct Fixture {
    test::TempDir dir;
    ManualClock clock;
    std::unique_ptr<ResponseCache> cache;
    explicit Fixture(CacheConfig cfg = {}) {
        auto db = open_state_db(dir.str());
        REQUIRE(db.has_value());
        cache = std::make_unique<ResponseCache>(std::move(*db), cfg, clock);
    }
};

// An entry's hits and LRU stamp as written in SQLite (read by another
// connection).
std::pair<std::int64_t, std::int64_t> written_hits(const test::TempDir& dir, const CacheKey& key) {
    auto db = open_state_db(dir.str());
    REQUIRE(db);
    auto st = (*db)->prepare("SELECT hits, last_used_ms FROM cache_entries WHERE key = ?");
    REQUIRE(st);
    st->bind(1, key.exact);
    REQUIRE(*st->step());
    return {st->col_int(0), st->col_int(1)};
}

// Three entries stored 10 ms apart, the first one hit, a fourth stored past
// max_entries = 3: the second (least recently used) is the one evicted.
void evicts_least_recently_used(CacheConfig cfg) {
    cfg.max_entries = 3;
    Fixture f(cfg);
    std::vector<CacheKey> keys;
    for (int i = 0; i < 3; ++i) {
        keys.push_back(make_cache_key(req("q" + std::to_string(i)), "mock", ""));
        REQUIRE(f.cache->store(keys.back(), resp("a" + std::to_string(i))));
        f.clock.advance(std::chrono::milliseconds(10));
    }
    CHECK(f.cache->lookup(keys[0]).has_value());  // 0 is now the most recently used
    f.clock.advance(std::chrono::milliseconds(10));
    keys.push_back(make_cache_key(req("q3"), "mock", ""));
    REQUIRE(f.cache->store(keys.back(), resp("a3")));
    CHECK(f.cache->lookup(keys[0]).has_value());
    CHECK_FALSE(f.cache->lookup(keys[1]).has_value());  // least recently used: evicted
    CHECK(f.cache->lookup(keys[2]).has_value());
    CHECK(f.cache->lookup(keys[3]).has_value());
    CHECK(f.cache->stats().evictions == 1);
    CHECK(f.cache->stats().exact_hits == 4);
    CHECK(f.cache->stats().misses == 1);
}

}  // namespace

TEST_CASE("cache keys: exact key covers everything - scope leaves out only the last user message") {
    auto base = req("what is 2+2?");
    auto k = make_cache_key(base, "gpt-4o", "");
    CHECK(k.exact.size() == 64);
    CHECK(k.prompt == "what is 2+2?");
    CHECK(make_cache_key(base, "gpt-4o", "") .exact == k.exact);

    auto other_prompt = req("what is 3+3?");
    auto k2 = make_cache_key(other_prompt, "gpt-4o", "");
    CHECK(k2.exact != k.exact);
    CHECK(k2.scope == k.scope);

    auto variants = std::vector<std::pair<std::string, InferenceRequest>>{};
    auto v = base;
    v.system_prompt = "be terse";
    variants.emplace_back("system", v);
    v = base;
    v.temperature = 0.2;
    variants.emplace_back("temperature", v);
    v = base;
    v.max_tokens = 10;
    variants.emplace_back("max_tokens", v);
    v = base;
    v.tools.push_back({"f", "", "{}"});
    variants.emplace_back("tools", v);
    v = base;
    v.response_format = R"({"type":"json_object"})";
    variants.emplace_back("response_format", v);
    v = base;
    v.messages.insert(v.messages.begin(), Message{Role::assistant, "earlier turn", {}, {}, {}});
    variants.emplace_back("earlier turns", v);
    v = base;
    v.options["reply"] = option_from_text("x");
    variants.emplace_back("options", v);
    v = base;
    v.messages.back().name = "bob";
    variants.emplace_back("speaker name", v);
    for (const auto& entry_ : variants) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& what = std::get<0>(entry_);
        const auto& r = std::get<1>(entry_);
        auto kv = make_cache_key(r, "gpt-4o", "");
        CHECK_MESSAGE(kv.scope != k.scope, what);
        CHECK_MESSAGE(kv.exact != k.exact, what);
    }
    CHECK(make_cache_key(base, "gpt-4o-mini", "").scope != k.scope);
    CHECK(make_cache_key(base, "gpt-4o", "alice").scope != k.scope);
}

TEST_CASE("exact cache: miss - store - hit - counters persist in SQLite") {
    Fixture f;
    auto k = make_cache_key(req("hello"), "mock", "");
    CHECK_FALSE(f.cache->lookup(k).has_value());
    REQUIRE(f.cache->store(k, resp("world")).has_value());
    auto hit = f.cache->lookup(k);
    REQUIRE(hit.has_value());
    CHECK(hit->content == "world");
    CHECK(hit->from_cache());
    CHECK(hit->cache_hit == CacheHit::exact);
    CHECK(hit->cost_usd == 0);
    CHECK(hit->token_usage.total_tokens == 30);
    CHECK(hit->tool_calls.size() == 1);
    auto s = f.cache->stats();
    CHECK(s.entries == 1);
    CHECK(s.exact_hits == 1);
    CHECK(s.misses == 1);
    CHECK(s.hit_rate() == doctest::Approx(0.5));

    // A second cache object on the same file sees the same entries and counters.
    auto db = open_state_db(f.dir.str());
    REQUIRE(db);
    ResponseCache again(std::move(*db), {}, f.clock);
    CHECK(again.lookup(k).has_value());
    CHECK(again.stats().exact_hits == 2);
}

TEST_CASE("exact cache: hits are counted exactly when several processes read and write the cache at once") {
    // l04d and --no-daemon runs share l04.db: 4 processes x 200 hits on one
    // entry, while each also stores entries of its own (writes that move
    // the WAL past the readers' snapshots). Each counting its hits one
    // transaction each (--no-daemon), or in memory (l04d's count_flush_ms).
    for (const std::int64_t flush_ms : {0, 1000}) {
        CAPTURE(flush_ms);
        Fixture f;
        auto k = make_cache_key(req("shared"), "mock", "");
        REQUIRE(f.cache->store(k, resp("answer")).has_value());
        constexpr int kProcs = 4, kHits = 200;
        int gate[2];
        REQUIRE(::pipe(gate) == 0);
        std::vector<pid_t> kids;
        for (int p = 0; p < kProcs; ++p) {
            const pid_t pid = ::fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                ::close(gate[1]);
                char go;
                (void)!::read(gate[0], &go, 1);
                int got = 0;
                {
                    auto db = open_state_db(f.dir.str());
                    if (!db) ::_exit(3);
                    ManualClock clock;
                    CacheConfig cfg;
                    cfg.count_flush_ms = flush_ms;
                    ResponseCache c(std::move(*db), cfg, clock);
                    for (int i = 0; i < kHits; ++i) {
                        if (c.lookup(k)) ++got;
                        // Every other round stores: hits pending in memory
                        // go out with a store, or when the cache closes.
                        if (i % 2) continue;
                        auto own = make_cache_key(req("p" + std::to_string(p) + "-" + std::to_string(i)), "mock", "");
                        (void)c.store(own, resp("x"));
                    }
                }
                ::_exit(got == kHits ? 0 : 4);
            }
            kids.push_back(pid);
        }
        ::close(gate[0]);
        ::close(gate[1]);
        for (auto pid : kids) {
            int status = 0;
            REQUIRE(::waitpid(pid, &status, 0) == pid);
            REQUIRE(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
        }
        CHECK(f.cache->stats().exact_hits == kProcs * kHits);
        CHECK(written_hits(f.dir, k).first == kProcs * kHits);
    }
}

TEST_CASE("exact cache: hits counted in memory are exact in stats and written within count_flush_ms") {
    // l04d (count_flush_ms > 0) counts hits and misses in memory; another
    // process (b, each hit its own transaction) sees them once written.
    CacheConfig cfg;
    cfg.count_flush_ms = 1000;
    Fixture f(cfg);
    auto other_db = open_state_db(f.dir.str());
    REQUIRE(other_db);
    ResponseCache b(std::move(*other_db), {}, f.clock);
    auto entry_hits = [&](const CacheKey& key) { return written_hits(f.dir, key); };
    auto k = make_cache_key(req("counted"), "mock", "");
    REQUIRE(f.cache->store(k, resp("v")));
    for (int i = 0; i < 3; ++i) CHECK(f.cache->lookup(k).has_value());
    CHECK_FALSE(f.cache->lookup(make_cache_key(req("absent"), "mock", "")).has_value());
    CHECK(f.cache->stats().exact_hits == 3);  // exact for this process at once
    CHECK(f.cache->stats().misses == 1);
    CHECK(b.stats().exact_hits == 0);  // not written yet
    CHECK(b.stats().misses == 0);
    CHECK(entry_hits(k).first == 0);

    // Written by the first count once count_flush_ms has passed since the
    // first pending one, with the entry's hits and LRU stamp.
    f.clock.advance(std::chrono::milliseconds(999));
    CHECK(f.cache->lookup(k).has_value());
    CHECK(b.stats().exact_hits == 0);
    f.clock.advance(std::chrono::milliseconds(1));
    CHECK(f.cache->lookup(k).has_value());
    CHECK(b.stats().exact_hits == 5);
    CHECK(b.stats().misses == 1);
    CHECK(entry_hits(k) == std::make_pair<std::int64_t, std::int64_t>(5, f.clock.wall_ms()));
    CHECK(f.cache->stats().exact_hits == 5);  // written and pending are not counted twice

    // With the next store, by flush_counts() (l04d: every second), on close.
    CHECK(f.cache->lookup(k).has_value());
    CHECK(f.cache->lookup(k).has_value());
    CHECK(b.stats().exact_hits == 5);
    REQUIRE(f.cache->store(make_cache_key(req("another"), "mock", ""), resp("w")));
    CHECK(b.stats().exact_hits == 7);
    CHECK(f.cache->lookup(k).has_value());
    REQUIRE(f.cache->flush_counts());
    CHECK(b.stats().exact_hits == 8);
    CHECK(f.cache->lookup(k).has_value());
    f.cache.reset();
    CHECK(b.stats().exact_hits == 9);
    CHECK(entry_hits(k).first == 9);
    // The other process's own hits are written at once, and add up.
    CHECK(b.lookup(k).has_value());
    CHECK(b.stats().exact_hits == 10);
}

TEST_CASE("exact cache: pending hits keep an entry from eviction as written ones do") {
    // The least recently used entry is chosen after the pending LRU stamps
    // are written, in the store's own transaction.
    CacheConfig cfg;
    cfg.count_flush_ms = 60'000;
    evicts_least_recently_used(cfg);
}

TEST_CASE("exact cache: TTL on the injected clock") {
    CacheConfig cfg;
    cfg.ttl_ms = 1000;
    Fixture f(cfg);
    auto k = make_cache_key(req("ttl"), "mock", "");
    REQUIRE(f.cache->store(k, resp("v")));
    f.clock.advance(std::chrono::milliseconds(999));
    CHECK(f.cache->lookup(k).has_value());
    f.clock.advance(std::chrono::milliseconds(1));
    CHECK_FALSE(f.cache->lookup(k).has_value());
    auto pruned = f.cache->prune();
    REQUIRE(pruned);
    CHECK(*pruned == 1);
    CHECK(f.cache->stats().entries == 0);
    CHECK(f.cache->stats().expired == 1);
}

TEST_CASE("exact cache: least recently used entries are evicted past the bounds") {
    evicts_least_recently_used({});

    CacheConfig bytes_cfg;
    bytes_cfg.max_bytes = 50;
    Fixture g(bytes_cfg);
    auto big1 = make_cache_key(req("b1"), "mock", "");
    auto big2 = make_cache_key(req("b2"), "mock", "");
    REQUIRE(g.cache->store(big1, resp(std::string(30, 'x'))));
    g.clock.advance(std::chrono::milliseconds(1));
    REQUIRE(g.cache->store(big2, resp(std::string(30, 'y'))));
    CHECK_FALSE(g.cache->lookup(big1).has_value());
    CHECK(g.cache->lookup(big2).has_value());
}

TEST_CASE("exact cache: clear by model and by age") {
    CacheConfig cfg;
    cfg.ttl_ms = std::chrono::milliseconds(std::chrono::hours(24)).count();
    Fixture f(cfg);
    auto a = make_cache_key(req("a"), "mock", "");
    auto b = make_cache_key(req("b"), "gpt-4o", "");
    REQUIRE(f.cache->store(a, resp("1")));
    auto rb = resp("2");
    rb.model_id = "gpt-4o";
    f.clock.advance(std::chrono::hours(2));
    REQUIRE(f.cache->store(b, rb));
    auto old = f.cache->clear("", std::chrono::milliseconds(std::chrono::hours(1)).count());
    REQUIRE(old);
    CHECK(*old == 1);
    CHECK_FALSE(f.cache->lookup(a).has_value());
    auto bym = f.cache->clear("gpt-4o", std::nullopt);
    REQUIRE(bym);
    CHECK(*bym == 1);
    CHECK(f.cache->stats().entries == 0);
}

TEST_CASE("exact cache: an in-memory database serves exact hits on its one connection") {
    auto db = open_state_db(":memory:");
    REQUIRE(db);
    ManualClock clock;
    ResponseCache cache(std::move(*db), {}, clock);
    auto k = make_cache_key(req("in memory"), "mock", "");
    CHECK_FALSE(cache.lookup(k));
    REQUIRE(cache.store(k, resp("kept")));
    auto hit = cache.lookup(k);
    REQUIRE(hit);
    CHECK(hit->content == "kept");
    CHECK(cache.stats().exact_hits == 1);
}

namespace {

// Lookups of key A on two threads while this thread clears the cache and
// stores A and B again in alternating order (SQLite reuses freed ids, so
// each id moves between the two keys): exact lookups read through their own
// connections, outside the cache's mutex, and a read of A may be counted
// after its id went to B. Every hit returned is counted once, A's rows get
// at most the hits returned for A, and B, never looked up, never gets one.
void hits_race_clear_and_store(CacheConfig cfg) {
    Fixture f(cfg);
    const auto ka = make_cache_key(req("race a"), "mock", "");
    const auto kb = make_cache_key(req("race b"), "mock", "");
    REQUIRE(f.cache->store(ka, resp("a")));
    REQUIRE(f.cache->store(kb, resp("b")));
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> hits_a{0}, wrong{0};
    auto reader = [&] {
        while (!stop.load())
            if (auto h = f.cache->lookup(ka)) (h->content == "a" ? hits_a : wrong)++;
    };
    auto written = [&](const CacheKey& k) -> std::int64_t {
        auto db = open_state_db(f.dir.str());
        REQUIRE(db);
        auto st = (*db)->prepare("SELECT hits FROM cache_entries WHERE key = ?");
        REQUIRE(st);
        st->bind(1, k.exact);
        auto row = st->step();
        return row && *row ? st->col_int(0) : 0;
    };
    std::int64_t credited_a = 0, credited_b = 0;
    std::thread r1(reader), r2(reader);
    for (int i = 0; i < 300; ++i) {
        REQUIRE(f.cache->flush_counts());
        credited_a += written(ka);
        credited_b += written(kb);
        f.clock.advance(std::chrono::milliseconds(1));  // a new created_ms for each incarnation
        REQUIRE(f.cache->clear("", std::nullopt));
        const bool a_first = i % 2 != 0;
        REQUIRE(f.cache->store(a_first ? ka : kb, resp(a_first ? "a" : "b")));
        REQUIRE(f.cache->store(a_first ? kb : ka, resp(a_first ? "b" : "a")));
    }
    stop = true;
    r1.join();
    r2.join();
    REQUIRE(f.cache->flush_counts());
    credited_a += written(ka);
    credited_b += written(kb);
    CHECK(wrong.load() == 0);
    CHECK(hits_a.load() > 0);
    CHECK(f.cache->stats().exact_hits == hits_a.load());
    CHECK(credited_a <= hits_a.load());
    CHECK(credited_b == 0);
}

}  // namespace

TEST_CASE("exact cache: hits read outside the mutex while entries are cleared and stored again - counted per hit") {
    hits_race_clear_and_store({});
}

TEST_CASE("exact cache: the same race with hits counted in memory") {
    CacheConfig cfg;
    cfg.count_flush_ms = 1000;
    hits_race_clear_and_store(cfg);
}
