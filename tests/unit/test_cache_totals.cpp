// Running totals of cache_entries (counters 11 and 12, kept by the triggers
// of migration 3): equal to COUNT(*)/SUM(bytes) after every kind of write,
// from any connection, and used for the size bound.
#include "support/test_util.hpp"

#include <l04/cache/cache_key.hpp>
#include <l04/cache/response_cache.hpp>
#include <l04/store/schema.hpp>

#include <doctest/doctest.h>

using namespace l04;

namespace {

struct Totals {
    std::int64_t count = 0, bytes = 0;
    bool operator==(const Totals& o) const { return count == o.count && bytes == o.bytes; }
};

doctest::String toString(const Totals& t) {
    return ("{" + std::to_string(t.count) + ", " + std::to_string(t.bytes) + "}").c_str();
}

Totals counted(Db& db) {
    auto st = db.prepare("SELECT COUNT(*), COALESCE(SUM(bytes),0) FROM cache_entries");
    REQUIRE(st.has_value());
    auto r = st->step();
    REQUIRE((r && *r));
    return {st->col_int(0), st->col_int(1)};
}

Totals running(Db& db) {
    return {read_counter(db, CounterId::cache_entry_count), read_counter(db, CounterId::cache_entry_bytes)};
}

void raw_insert(Db& db, const std::string& key, std::int64_t bytes, std::int64_t expires_ms = 4'000'000'000'000) {
    auto st = db.prepare(
        "INSERT INTO cache_entries(key, scope, target, model_id, provider, prompt, content, created_ms, expires_ms, "
        "last_used_ms, bytes) VALUES(?, 's', 'mock', 'mock', 'mock', 'p', 'c', 0, ?, 0, ?)");
    REQUIRE(st.has_value());
    st->bind(1, key).bind(2, expires_ms).bind(3, bytes);
    REQUIRE(st->run().has_value());
}

CacheKey key(const std::string& prompt) {
    InferenceRequest r;
    r.messages.push_back({Role::user, prompt, {}, {}, {}});
    return make_cache_key(r, "mock", "");
}

InferenceResponse answer(const std::string& content) {
    InferenceResponse r;
    r.content = content;
    r.model_id = "mock";
    r.provider = "mock";
    return r;
}

}  // namespace

TEST_CASE("cache totals: triggers keep count and bytes equal to COUNT/SUM across two connections") {
    test::TempDir dir;
    auto a = open_state_db(dir.str());
    auto b = open_state_db(dir.str());
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    Db& da = **a;
    Db& db = **b;
    CHECK(running(da) == Totals{0, 0});

    raw_insert(da, "k1", 100);
    raw_insert(db, "k2", 250);
    raw_insert(da, "k3", 7);
    CHECK(running(da) == Totals{3, 357});
    CHECK(running(db) == counted(da));

    // UPDATE OF bytes from the other connection; an UPDATE of other columns changes nothing.
    REQUIRE(db.exec("UPDATE cache_entries SET bytes = 1000 WHERE key = 'k1'").has_value());
    REQUIRE(da.exec("UPDATE cache_entries SET hits = hits + 1, last_used_ms = 5 WHERE key = 'k2'").has_value());
    CHECK(running(da) == Totals{3, 1257});
    CHECK(running(da) == counted(db));

    // An upsert that hits the conflict updates bytes, not the count.
    REQUIRE(da.exec("INSERT INTO cache_entries(key, scope, target, model_id, provider, prompt, content, created_ms, "
                    "expires_ms, last_used_ms, bytes) VALUES('k3', 's', 'mock', 'mock', 'mock', 'p', 'c', 0, 1, 0, 70) "
                    "ON CONFLICT(key) DO UPDATE SET bytes = excluded.bytes")
                .has_value());
    CHECK(running(db) == Totals{3, 1320});
    CHECK(running(db) == counted(da));

    // Deletes, one and many, from either side; a rolled-back delete leaves the totals alone.
    REQUIRE(db.exec("DELETE FROM cache_entries WHERE key = 'k2'").has_value());
    CHECK(running(da) == Totals{2, 1070});
    {
        auto tx = Transaction::begin(da);
        REQUIRE(tx.has_value());
        REQUIRE(da.exec("DELETE FROM cache_entries").has_value());
        CHECK(running(da) == Totals{0, 0});
    }  // rolled back
    CHECK(running(db) == Totals{2, 1070});
    REQUIRE(da.exec("DELETE FROM cache_entries").has_value());
    CHECK(running(db) == Totals{0, 0});
    CHECK(counted(db) == Totals{0, 0});
}

TEST_CASE("cache totals: ResponseCache stores - upserts - clears and evictions keep them exact") {
    test::TempDir dir;
    ManualClock clock;
    CacheConfig cfg;
    cfg.max_entries = 4;
    auto cdb = open_state_db(dir.str());
    auto other = open_state_db(dir.str());
    REQUIRE(cdb.has_value());
    REQUIRE(other.has_value());
    ResponseCache cache(std::move(*cdb), cfg, clock);
    Db& od = **other;

    REQUIRE(cache.store(key("one"), answer("first answer")).has_value());
    REQUIRE(cache.store(key("two"), answer("second")).has_value());
    CHECK(running(od) == counted(od));
    CHECK(running(od).count == 2);
    const auto before = running(od);
    REQUIRE(cache.store(key("one"), answer("a much longer first answer")).has_value());  // upsert
    CHECK(running(od).count == 2);
    CHECK(running(od).bytes == before.bytes + 14);
    CHECK(running(od) == counted(od));

    // Rows another process adds count toward the bound: the next store evicts down to 4.
    for (int i = 0; i < 5; ++i) raw_insert(od, "other" + std::to_string(i), 10);
    CHECK(running(od).count == 7);
    clock.advance(std::chrono::milliseconds(10));
    REQUIRE(cache.store(key("three"), answer("third")).has_value());
    CHECK(running(od).count == 4);
    CHECK(running(od) == counted(od));
    CHECK(cache.stats().evictions == 4);
    CHECK(cache.stats().entries == 4);
    CHECK(cache.stats().bytes == counted(od).bytes);

    auto cleared = cache.clear("", std::nullopt);
    REQUIRE(cleared.has_value());
    CHECK(*cleared == 4);
    CHECK(running(od) == Totals{0, 0});
}

TEST_CASE("cache totals: max_bytes is enforced from the running byte total") {
    test::TempDir dir;
    ManualClock clock;
    CacheConfig cfg;
    cfg.max_bytes = 100;
    auto cdb = open_state_db(dir.str());
    REQUIRE(cdb.has_value());
    ResponseCache cache(std::move(*cdb), cfg, clock);
    for (int i = 0; i < 6; ++i) {
        clock.advance(std::chrono::milliseconds(1));
        REQUIRE(cache.store(key("p" + std::to_string(i)), answer(std::string(30, 'x'))).has_value());
    }
    auto db = open_state_db(dir.str());
    REQUIRE(db.has_value());
    const auto t = counted(**db);
    CHECK(t.bytes <= 100);
    CHECK(running(**db) == t);
    CHECK(t.count == 3);  // 32 bytes each (prompt + content)
    CHECK(cache.stats().evictions == 3);
    // The newest three survive (least recently used go first).
    CHECK(cache.lookup(key("p5")).has_value());
    CHECK_FALSE(cache.lookup(key("p2")).has_value());
}

TEST_CASE("cache totals: stats count live entries only - expired rows are subtracted until pruned") {
    test::TempDir dir;
    ManualClock clock;
    CacheConfig cfg;
    cfg.ttl_ms = 1000;
    auto cdb = open_state_db(dir.str());
    REQUIRE(cdb.has_value());
    ResponseCache cache(std::move(*cdb), cfg, clock);
    const auto t0 = clock.wall_ms();
    REQUIRE(cache.store(key("old"), answer("old answer")).has_value());
    clock.advance(std::chrono::milliseconds(600));
    REQUIRE(cache.store(key("new"), answer("new answer")).has_value());
    auto s = cache.stats();
    CHECK(s.entries == 2);
    CHECK(s.oldest_ms == t0);
    CHECK(s.newest_ms == t0 + 600);
    clock.advance(std::chrono::milliseconds(500));  // "old" expired, not yet pruned
    s = cache.stats();
    CHECK(s.entries == 1);
    CHECK(s.bytes == 13);
    CHECK(s.oldest_ms == t0 + 600);
    CHECK(s.newest_ms == t0 + 600);
    auto db = open_state_db(dir.str());
    REQUIRE(db.has_value());
    CHECK(running(**db).count == 2);
    REQUIRE(cache.prune().has_value());
    CHECK(running(**db) == Totals{1, 13});
    CHECK(cache.stats().entries == 1);
}

TEST_CASE("cache totals: migration 3 initialises the totals from the rows already there") {
    test::TempDir dir;
    {
        auto db = open_state_db(dir.str());
        REQUIRE(db.has_value());
        raw_insert(**db, "a", 11);
        raw_insert(**db, "b", 22);
        // Back to a version-2 database that already holds rows.
        REQUIRE((*db)->exec("DROP TRIGGER cache_entries_totals_insert; DROP TRIGGER cache_entries_totals_delete; "
                            "DROP TRIGGER cache_entries_totals_update; DROP INDEX cache_entries_created; "
                            "DELETE FROM counters WHERE id IN (11, 12); ALTER TABLE cache_entries DROP COLUMN extra; "
                            "ALTER TABLE usage DROP COLUMN metadata; DROP TABLE ledger_journal; "
                            "ALTER TABLE circuit_breakers DROP COLUMN probe_pid; ALTER TABLE circuit_breakers DROP COLUMN probe_start; "
                            "DROP TABLE budget_reservations; DROP TABLE embedding_cache; DROP TABLE stored_responses; "
                            "DROP TABLE limit_leases; "
                            "PRAGMA user_version = 2;")
                        .has_value());
        raw_insert(**db, "c", 33);  // no triggers: not counted anywhere yet
    }
    auto db = open_state_db(dir.str());
    REQUIRE(db.has_value());
    CHECK(running(**db) == Totals{3, 66});
    raw_insert(**db, "d", 4);
    CHECK(running(**db) == Totals{4, 70});
    CHECK(running(**db) == counted(**db));
}
