#pragma once
// Thin RAII wrapper over SQLite: a connection (Db) and prepared statements
// (Stmt). Every database l04 opens is in WAL mode with a busy timeout, so
// several processes (l04d and --no-daemon runs) share it safely. Errors come
// back as E4300-class Results; nothing throws.
#include <l04/core/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace l04 {

class Stmt {
public:
    Stmt() = default;
    Stmt(sqlite3* db, sqlite3_stmt* st) : m_db(db), m_st(st) {}
    Stmt(Stmt&& o) noexcept : m_db(o.m_db), m_st(o.m_st) { o.m_st = nullptr; }
    Stmt& operator=(Stmt&& o) noexcept;
    ~Stmt();

    Stmt& bind(int i, std::int64_t v);
    Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt& bind(int i, double v);
    Stmt& bind(int i, std::string_view v);
    Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    Stmt& bind_blob(int i, const void* data, std::size_t n);
    Stmt& bind_null(int i);

    // true = a row is ready, false = done. Fails on error.
    Result<bool> step();
    // Runs to completion (for statements without rows).
    Status run();
    void reset();

    std::int64_t col_int(int i) const;
    double col_double(int i) const;
    std::string col_text(int i) const;
    std::string col_blob(int i) const;
    bool col_null(int i) const;
    // The same by result column name (the name in the SELECT list, or its
    // AS alias): rows read by name do not break when a column is added or
    // the list is reordered. An unknown name is a programming error: it
    // reads as NULL (0, "") and asserts in debug builds.
    int col_index(std::string_view name) const;
    std::int64_t col_int(std::string_view name) const { return col_int(col_index(name)); }
    double col_double(std::string_view name) const { return col_double(col_index(name)); }
    std::string col_text(std::string_view name) const { return col_text(col_index(name)); }
    std::string col_blob(std::string_view name) const { return col_blob(col_index(name)); }
    bool col_null(std::string_view name) const { return col_null(col_index(name)); }
    std::int64_t col_int(const char* name) const { return col_int(std::string_view(name)); }
    double col_double(const char* name) const { return col_double(std::string_view(name)); }
    std::string col_text(const char* name) const { return col_text(std::string_view(name)); }
    std::string col_blob(const char* name) const { return col_blob(std::string_view(name)); }
    bool col_null(const char* name) const { return col_null(std::string_view(name)); }

private:
    sqlite3* m_db = nullptr;
    sqlite3_stmt* m_st = nullptr;
};

class Db {
public:
    // Opens (creating) the file at path; ":memory:" works for tests.
    static Result<std::unique_ptr<Db>> open(const std::string& path);
    // A second connection to an existing database, for reads only (query_only;
    // never creates the file, never changes its journal mode).
    static Result<std::unique_ptr<Db>> open_reader(const std::string& path);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    Status exec(std::string_view sql);
    Result<Stmt> prepare(std::string_view sql);
    // A statement prepared once per connection and kept (the statement
    // cache): returned reset, bindings cleared. The pointer stays valid
    // while the Db lives; like the Db, it is for one thread at a time.
    Result<Stmt*> cached(std::string_view sql);
    // Prepares sql into out (for stages that keep their statements).
    Status prepare_into(Stmt& out, std::string_view sql);
    std::int64_t last_insert_rowid() const;
    int changes() const;
    // Whether a transaction is open (false after SQLite rolled one back by
    // itself: SQLITE_FULL, SQLITE_IOERR, ...).
    bool in_transaction() const;
    const std::string& path() const { return m_path; }
    std::string last_error() const;

    // Replaces SQLite's default busy wait (sleeps of 1, 2, 5 ... 100 ms
    // between attempts) with short waits: a few yields, then sleeps from
    // 10 us doubling up to 200 us, giving up after `timeout` (then SQLITE_BUSY,
    // reported as a retryable E4300). For connections whose transactions are
    // tiny and latency-critical (rate limiter, circuit breaker).
    void set_short_busy_wait(std::chrono::milliseconds timeout);

    // Applies migrations[i] for every i >= PRAGMA user_version, each in its
    // own transaction, and bumps user_version. Safe against concurrent
    // openers (BEGIN IMMEDIATE, re-checks the version inside).
    Status migrate(const std::vector<std::string_view>& migrations);

private:
    Db() = default;
    static int short_busy_wait(void* self, int count);
    sqlite3* m_db = nullptr;
    std::string m_path;
    std::int64_t m_busy_timeout_ns = 0;
    std::int64_t m_busy_start_ns = 0;
    std::unordered_map<std::string, std::unique_ptr<Stmt>> m_stmts;  // cached()
};

// Resets a prepared statement when the scope ends (ends its read, clears
// bindings): for statements a stage keeps between calls.
class StmtReset {
public:
    explicit StmtReset(Stmt& s) : m_s(s) {}
    ~StmtReset() { m_s.reset(); }
    StmtReset(const StmtReset&) = delete;
    StmtReset& operator=(const StmtReset&) = delete;

private:
    Stmt& m_s;
};

// RAII transaction: BEGIN IMMEDIATE on start, ROLLBACK unless commit() ran
// (a failed commit is rolled back too). The three statements come from the
// connection's statement cache, so a transaction costs no SQL parsing (the
// rate limiter and breaker take one per request). Fails with E4300,
// retryable when the database stayed busy.
class Transaction {
public:
    static Result<Transaction> begin(Db& db);
    Transaction(Transaction&& o) noexcept : m_db(o.m_db) { o.m_db = nullptr; }
    ~Transaction();
    Status commit();

private:
    explicit Transaction(Db& db) : m_db(&db) {}
    Db* m_db;
};

// Creates dir (and parents) with the given mode if missing; an existing
// directory is left as it is. Fails with E4000.
Status ensure_dir(const std::string& dir, unsigned mode = 0700);

// The runtime directory (socket, pid, lock): created 0700 when missing;
// refused (E4000, exit 9) when it is a symlink, not a directory, not owned
// by this user, or open to others (group or other bits): another user who
// created /tmp/l04-<uid> first must never receive the prompts.
Status ensure_private_dir(const std::string& dir);

// The state directory (SQLite, index, log): created 0700 when missing; an
// existing one of ours that others can read is tightened to 0700 (with a
// warning); one owned by another user is refused. Files in it that others
// could read (l04.db, -wal, -shm, the log) are tightened to 0600.
Status ensure_state_dir(const std::string& dir);

}  // namespace l04
