// store/db: the statement cache, rows read by column name, and the one
// transaction type (real SQLite files, two connections).
#include <doctest/doctest.h>
#include <l04/store/db.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>

using namespace l04;

namespace {

std::string temp_db(const char* tag) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("l04-db-" + std::string(tag) + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return (dir / "t.db").string();
}

}  // namespace

TEST_CASE("db: cached statements are prepared once and come back reset") {
    auto db = Db::open(":memory:");
    REQUIRE(db);
    REQUIRE((*db)->exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)"));
    REQUIRE((*db)->exec("INSERT INTO t(name, score) VALUES('a', 1.5), ('b', 2.5)"));
    auto s1 = (*db)->cached("SELECT id, name, score FROM t WHERE name = ?");
    REQUIRE(s1);
    (*s1)->bind(1, "b");
    REQUIRE(*(*s1)->step());
    // Left mid-read on purpose: the next use starts clean.
    auto s2 = (*db)->cached("SELECT id, name, score FROM t WHERE name = ?");
    REQUIRE(s2);
    CHECK(*s1 == *s2);  // the same statement object
    // Bindings were cleared: an unbound parameter is NULL, which matches no row.
    auto none = (*s2)->step();
    REQUIRE(none);
    CHECK_FALSE(*none);
    (*s2)->reset();
    (*s2)->bind(1, "a");
    REQUIRE(*(*s2)->step());
    CHECK((*s2)->col_text("name") == "a");
    CHECK((*s2)->col_double("score") == doctest::Approx(1.5));
    CHECK((*s2)->col_int("id") == 1);
    CHECK((*s2)->col_index("score") == 2);
    // A bad statement is an error, not a cached entry.
    CHECK_FALSE((*db)->cached("SELEC nonsense"));
}

TEST_CASE("db: columns are read by name or alias whatever the SELECT order") {
    auto db = Db::open(":memory:");
    REQUIRE(db);
    REQUIRE((*db)->exec("CREATE TABLE t(a INTEGER, b TEXT, c BLOB)"));
    REQUIRE((*db)->exec("INSERT INTO t VALUES(7, 'seven', x'0001')"));
    auto st = (*db)->prepare("SELECT c, b AS label, a FROM t");
    REQUIRE(st);
    REQUIRE(*st->step());
    CHECK(st->col_int("a") == 7);
    CHECK(st->col_text("label") == "seven");
    CHECK(st->col_blob("c") == std::string("\x00\x01", 2));
    CHECK_FALSE(st->col_null("a"));
}

TEST_CASE("db: a transaction commits or rolls back - a second connection waits for it") {
    const std::string path = temp_db("tx");
    auto a = Db::open(path);
    auto b = Db::open(path);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE((*a)->exec("CREATE TABLE IF NOT EXISTS t(v INTEGER)"));
    const auto count = [&](Db& db) {
        auto st = db.prepare("SELECT COUNT(*) AS n FROM t");
        REQUIRE(st);
        REQUIRE(*st->step());
        return st->col_int("n");
    };
    {
        auto tx = Transaction::begin(**a);
        REQUIRE(tx);
        REQUIRE((*a)->exec("INSERT INTO t VALUES(1)"));
        // Not committed: the other connection does not see it.
        CHECK(count(**b) == 0);
    }  // rolled back
    CHECK(count(**a) == 0);
    {
        auto tx = Transaction::begin(**a);
        REQUIRE(tx);
        REQUIRE((*a)->exec("INSERT INTO t VALUES(2)"));
        // BEGIN IMMEDIATE took the write lock: the other connection's
        // transaction cannot start (E4300 once its busy wait is over).
        (*b)->set_short_busy_wait(std::chrono::milliseconds(1));
        auto other = Transaction::begin(**b);
        CHECK_FALSE(other);
        REQUIRE(tx->commit());
    }
    CHECK(count(**b) == 1);
    auto again = Transaction::begin(**b);
    REQUIRE(again);
    REQUIRE((*b)->exec("INSERT INTO t VALUES(3)"));
    REQUIRE(again->commit());
    CHECK(count(**a) == 2);
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
