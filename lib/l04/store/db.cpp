#include <l04/store/db.hpp>

#include <cassert>
#include <l04/core/clock.hpp>
#include <l04/core/fiber.hpp>

#include <sqlite3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace l04 {

namespace {
Error db_error(sqlite3* db, std::string_view what) {
    Error e(ErrorCode::cache_error, std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "no database"));
    e.retryable = db && (sqlite3_errcode(db) == SQLITE_BUSY || sqlite3_errcode(db) == SQLITE_LOCKED);
    return e;
}
}  // namespace

Stmt& Stmt::operator=(Stmt&& o) noexcept {
    if (this != &o) {
        if (m_st) sqlite3_finalize(m_st);
        m_db = o.m_db;
        m_st = o.m_st;
        o.m_st = nullptr;
    }
    return *this;
}

Stmt::~Stmt() {
    if (m_st) sqlite3_finalize(m_st);
}

Stmt& Stmt::bind(int i, std::int64_t v) {
    sqlite3_bind_int64(m_st, i, v);
    return *this;
}
Stmt& Stmt::bind(int i, double v) {
    sqlite3_bind_double(m_st, i, v);
    return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
    sqlite3_bind_text(m_st, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
}
Stmt& Stmt::bind_blob(int i, const void* data, std::size_t n) {
    sqlite3_bind_blob(m_st, i, data, static_cast<int>(n), SQLITE_TRANSIENT);
    return *this;
}
Stmt& Stmt::bind_null(int i) {
    sqlite3_bind_null(m_st, i);
    return *this;
}

Result<bool> Stmt::step() {
    int rc = sqlite3_step(m_st);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Error e = db_error(m_db, "sqlite step");
    sqlite3_reset(m_st);
    return fail(std::move(e));
}

Status Stmt::run() {
    while (true) {
        L04_TRY_ASSIGN(auto r, step());
        if (!r) break;
    }
    return {};
}

void Stmt::reset() {
    sqlite3_reset(m_st);
    sqlite3_clear_bindings(m_st);
}

int Stmt::col_index(std::string_view name) const {
    const int n = sqlite3_column_count(m_st);
    for (int i = 0; i < n; ++i) {
        const char* c = sqlite3_column_name(m_st, i);
        if (c && name == c) return i;
    }
    assert(!"no such result column");
    return n;  // out of range: SQLite reads it as NULL
}

std::int64_t Stmt::col_int(int i) const { return sqlite3_column_int64(m_st, i); }
double Stmt::col_double(int i) const { return sqlite3_column_double(m_st, i); }
std::string Stmt::col_text(int i) const {
    const auto* p = sqlite3_column_text(m_st, i);
    int n = sqlite3_column_bytes(m_st, i);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}
std::string Stmt::col_blob(int i) const {
    const void* p = sqlite3_column_blob(m_st, i);
    int n = sqlite3_column_bytes(m_st, i);
    return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}
bool Stmt::col_null(int i) const { return sqlite3_column_type(m_st, i) == SQLITE_NULL; }

Result<std::unique_ptr<Db>> Db::open(const std::string& path) {
    std::unique_ptr<Db> db(new Db());
    db->m_path = path;
    int rc = sqlite3_open_v2(path.c_str(), &db->m_db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return fail(db_error(db->m_db, "cannot open database " + path));
    sqlite3_busy_timeout(db->m_db, 10000);
    if (path != ":memory:") {
        L04_TRY(db->exec("PRAGMA journal_mode=WAL"));
    }
    // The WAL is checkpointed every 1000 pages and truncated back to 4 MiB
    // after each checkpoint, so a long-running l04d keeps it bounded.
    if (auto st = db->exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=1000; "
                           "PRAGMA journal_size_limit=4194304");
        !st)
        return fail(st.error());
    return db;
}

Result<std::unique_ptr<Db>> Db::open_reader(const std::string& path) {
    std::unique_ptr<Db> db(new Db());
    db->m_path = path;
    // READWRITE without CREATE: a WAL reader needs write access to the -shm
    // file; query_only refuses every write on this connection.
    int rc = sqlite3_open_v2(path.c_str(), &db->m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return fail(db_error(db->m_db, "cannot open database " + path));
    sqlite3_busy_timeout(db->m_db, 10000);
    L04_TRY(db->exec("PRAGMA query_only=1"));
    return db;
}

Db::~Db() {
    m_stmts.clear();  // finalized before the connection closes
    if (m_db) sqlite3_close_v2(m_db);
}

Result<Stmt*> Db::cached(std::string_view sql) {
    auto it = m_stmts.find(std::string(sql));
    if (it == m_stmts.end()) {
        L04_TRY_ASSIGN(auto st, prepare(sql));
        it = m_stmts.emplace(std::string(sql), std::make_unique<Stmt>(std::move(st))).first;
    } else {
        it->second->reset();
    }
    return it->second.get();
}

Status Db::exec(std::string_view sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(m_db, std::string(sql).c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
        Error e(ErrorCode::cache_error, std::string("sqlite: ") + (msg ? msg : sqlite3_errmsg(m_db)));
        e.retryable = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
        sqlite3_free(msg);
        return fail(std::move(e));
    }
    return {};
}

Result<Stmt> Db::prepare(std::string_view sql) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(m_db, sql.data(), static_cast<int>(sql.size()), &st, nullptr);
    if (rc != SQLITE_OK) return fail(db_error(m_db, "sqlite prepare"));
    return Stmt(m_db, st);
}

Status Db::prepare_into(Stmt& out, std::string_view sql) {
    L04_TRY_ASSIGN(auto st, prepare(sql));
    out = std::move(st);
    return {};
}

std::int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(m_db); }
bool Db::in_transaction() const { return sqlite3_get_autocommit(m_db) == 0; }

int Db::changes() const { return sqlite3_changes(m_db); }
std::string Db::last_error() const { return sqlite3_errmsg(m_db); }

void Db::set_short_busy_wait(std::chrono::milliseconds timeout) {
    m_busy_timeout_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    sqlite3_busy_handler(m_db, &Db::short_busy_wait, this);
}

int Db::short_busy_wait(void* self, int count) {
    auto* db = static_cast<Db*>(self);
    // Inside an SQLite call, which its caller may make under a mutex: the
    // thread waits, a fiber never yields here (core/fiber.hpp).
    const BlockingScope no_yield;
    // Another process holds the lock: real time.
    Clock& clock = SystemClock::instance();
    const auto now_ns = clock.now().count();
    if (count == 0) db->m_busy_start_ns = now_ns;
    if (now_ns - db->m_busy_start_ns >= db->m_busy_timeout_ns) return 0;
    if (count < 4) {
        std::this_thread::yield();
    } else {
        const int step = std::min(count - 4, 5);  // 10, 20, 40, 80, 160, 200 us
        clock.sleep_for(std::chrono::microseconds(std::min(200, 10 << step)));
    }
    return 1;
}

Status Db::migrate(const std::vector<std::string_view>& migrations) {
    auto version = [&]() -> Result<std::int64_t> {
        L04_TRY_ASSIGN(auto st, prepare("PRAGMA user_version"));
        L04_TRY(st.step());
        return st.col_int(0);
    };
    auto v = version();
    if (!v) return fail(v.error());
    if (static_cast<std::size_t>(*v) >= migrations.size()) return {};
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*this));
    v = version();
    if (!v) return fail(v.error());
    for (auto i = static_cast<std::size_t>(*v); i < migrations.size(); ++i) {
        if (auto st = exec(migrations[i]); !st) return st;
    }
    if (auto st = exec("PRAGMA user_version=" + std::to_string(migrations.size())); !st) return st;
    return tx.commit();
}

namespace {

Status run_cached(Db& db, std::string_view sql) {
    L04_TRY_ASSIGN(Stmt * st, db.cached(sql));
    StmtReset reset(*st);
    return st->run();
}

}  // namespace

Result<Transaction> Transaction::begin(Db& db) {
    L04_TRY(run_cached(db, "BEGIN IMMEDIATE"));
    return Transaction(db);
}

Transaction::~Transaction() {
    if (m_db) (void)run_cached(*m_db, "ROLLBACK");
}

Status Transaction::commit() {
    auto st = run_cached(*m_db, "COMMIT");
    if (st) m_db = nullptr;  // else the destructor rolls back
    return st;
}

Status ensure_private_dir(const std::string& dir) {
    std::error_code ec;
    const auto parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
        std::filesystem::create_directories(parent, ec);
        if (ec) return fail(ErrorCode::config_error, "cannot create directory " + parent.string() + ": " + ec.message());
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return fail(ErrorCode::config_error, "cannot create directory " + dir + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0)
        return fail(ErrorCode::config_error, "cannot inspect " + dir + ": " + std::strerror(errno));
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
        return fail(ErrorCode::config_error, "refusing to use " + dir + ": it is not a directory (a symlink?)");
    if (st.st_uid != ::getuid())
        return fail(ErrorCode::config_error, "refusing to use " + dir + ": it belongs to uid " + std::to_string(st.st_uid) +
                                                 ", not you (uid " + std::to_string(::getuid()) +
                                                 "); another user may have created it. Set XDG_RUNTIME_DIR or "
                                                 "L04_RUNTIME_DIR to a directory of your own");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        return fail(ErrorCode::config_error, "refusing to use " + dir + ": its mode is " + mode +
                                                 ", so others could reach the socket; run `chmod 700 " + dir + "`");
    }
    return {};
}

Status ensure_state_dir(const std::string& dir) {
    if (auto st = ensure_dir(dir, 0700); !st) return st;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        return fail(ErrorCode::config_error, "cannot inspect " + dir + ": " + std::strerror(errno));
    if (st.st_uid != ::getuid() && ::getuid() != 0)
        return fail(ErrorCode::config_error, "refusing to use state directory " + dir + ": it belongs to uid " +
                                                 std::to_string(st.st_uid) + ", not you");
    if ((st.st_mode & 022) != 0) {
        // Others could write here: anything they may have planted (a file of
        // theirs, a symlink to one) would receive our prompts. Refuse unless
        // every entry is ours and no symlink.
        std::error_code ec;
        for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
            struct stat es {};
            if (::lstat(e.path().c_str(), &es) != 0) continue;
            if (S_ISLNK(es.st_mode) || es.st_uid != ::getuid())
                return fail(ErrorCode::config_error,
                            "refusing to use state directory " + dir + ": others could write to it and " +
                                e.path().string() + " is " + (S_ISLNK(es.st_mode) ? "a symlink" : "not yours") +
                                "; move it away and run `chmod 700 " + dir + "`");
        }
    }
    if ((st.st_mode & 077) != 0) {
        spdlog::warn("state directory {} was open to others (mode {:03o}); tightened to 700", dir,
                     static_cast<unsigned>(st.st_mode & 0777));
        ::chmod(dir.c_str(), 0700);
    }
    for (const char* f : {"/l04.db", "/l04.db-wal", "/l04.db-shm", "/l04d.log"}) {
        const std::string path = dir + f;
        struct stat fs {};
        if (::lstat(path.c_str(), &fs) == 0 && S_ISREG(fs.st_mode) && (fs.st_mode & 077) != 0)
            ::chmod(path.c_str(), 0600);
    }
    return {};
}

Status ensure_dir(const std::string& dir, unsigned mode) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return {};  // never change an existing directory's mode
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(ErrorCode::config_error, "cannot create directory " + dir + ": " + ec.message());
    ::chmod(dir.c_str(), mode);
    return {};
}

}  // namespace l04
