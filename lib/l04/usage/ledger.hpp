#pragma once
// The usage ledger: one SQLite row per finished request (streamed or not,
// cached or not, failed or not) with tokens, cost, latency and outcome.
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/store/db.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <vector>

namespace l04 {

struct UsageRow {
    std::string request_id;
    std::int64_t time_ms = 0;
    std::string agent;
    std::string model;
    std::string provider;
    TokenUsage usage;
    double cost_usd = 0;
    double saved_usd = 0;  // what a cached answer would have cost
    double latency_ms = 0;
    std::optional<double> ttft_ms;
    CacheHit cached = CacheHit::none;
    bool stream = false;
    std::string status = "ok";  // ok or error
    std::optional<int> error_code;
    int attempts = 1;
    // The request's metadata (top-level `metadata`, `l04.metadata`): stored
    // with the row and exported with it (migration 6).
    std::map<std::string, std::string> metadata;
};

struct UsageTotals {
    std::int64_t requests = 0;
    std::int64_t errors = 0;
    std::int64_t cached = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    double cost_usd = 0;
    double saved_usd = 0;
};

// One group of a usage report (by model, provider, agent or day).
struct UsageGroup {
    std::string key;
    std::int64_t requests = 0;
    std::int64_t errors = 0;
    std::int64_t cached = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    double cost_usd = 0;
    double saved_usd = 0;
    double p50_latency_ms = 0;
    double p95_latency_ms = 0;
};

// Aggregated counts for seeding metrics after a restart.
struct UsageAggregate {
    std::string provider, model, status;
    std::int64_t requests = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    double cost_usd = 0;
};

// Rows are written in batches by a background thread (one transaction per
// batch, at most every 25 ms), so a request never waits on a SQLite commit.
// Every read flushes first, so this process always sees its own rows; the
// destructor flushes what is left.
//
// Nothing answered is lost to a crash: with a journal directory, record()
// first appends the row as a JSON line to this process's journal file (one
// write(2), before the answer is released, so it survives SIGKILL), and each
// batch commits the journal offset it covers in the same transaction as its
// rows (table ledger_journal). A Ledger that starts replays the journals of
// processes that are gone (their flock is free) from their committed offset,
// so a row is neither lost nor counted twice. While the database cannot be
// written (a full disk) the writer backs off (100 ms doubling to 5 s), keeps
// the rows, and recovers by itself; rows it cannot write at stop stay in the
// journal for the next start, with a warning that says so.
struct LedgerOptions {
    // false: record() writes synchronously (tools, tests); no journal.
    bool background = true;
    // Where the crash journal lives ("" = none).
    std::string journal_dir;
    // The writer's wait after a failed write, doubling up to max_backoff.
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
};

class Ledger {
public:
    explicit Ledger(std::unique_ptr<Db> db, LedgerOptions opts);
    explicit Ledger(std::unique_ptr<Db> db, bool background = true)
        : Ledger(std::move(db), LedgerOptions{background, {}, std::chrono::milliseconds(100), std::chrono::milliseconds(5000)}) {}
    ~Ledger();
    Ledger(const Ledger&) = delete;
    Ledger& operator=(const Ledger&) = delete;
    // Queues the row (or writes it when not in background mode).
    Status record(const UsageRow& row);
    // Writes every queued row now.
    Status flush();
    // Writes the WAL back into the database and truncates it
    // (wal_checkpoint(TRUNCATE)); l04d calls it every minute so the WAL
    // cannot grow while readers keep passive checkpoints from finishing.
    Status checkpoint();
    // Totals since a wall time, optionally for one agent.
    Result<UsageTotals> totals(std::int64_t since_ms, const std::string& agent = {});
    Result<std::vector<UsageRow>> rows_since(std::int64_t since_ms);
    // Groups rows since since_ms by "model", "provider", "agent", "day" or
    // "" (one total row); fails with E4502 on another `by`.
    Result<std::vector<UsageGroup>> report(std::int64_t since_ms, const std::string& by, const std::string& agent = {});
    // Totals per (provider, model, status) over the whole ledger.
    Result<std::vector<UsageAggregate>> aggregates();
    // Deletes rows older than before_ms; returns how many.
    Result<std::int64_t> prune(std::int64_t before_ms);
    // Rows recorded but not yet committed to the database.
    std::size_t pending() const;
    // Rows replayed from the journals of dead processes when this Ledger
    // started.
    std::int64_t replayed() const { return m_replayed; }
    // This process's journal file ("" without a journal).
    const std::string& journal_path() const { return m_journal_path; }

private:
    struct Pending {
        UsageRow row;
        std::int64_t journal_end = -1;  // offset after its journal line
    };
    // journal_file: the journal (file name) whose offset the rows reach.
    Status write_locked(const std::vector<Pending>& rows, const std::string& journal_file);
    void writer_loop();
    void open_journal(const std::string& dir);
    void replay_journals(const std::string& dir);
    void rotate_journal_if_idle();
    std::unique_ptr<Db> m_db;
    std::mutex m_mu;  // the connection
    mutable std::mutex m_q_mu;
    std::condition_variable m_cv;
    std::vector<Pending> m_pending;
    bool m_stop = false;
    std::chrono::milliseconds m_min_backoff, m_max_backoff;
    std::thread m_writer;
    // The journal (guarded by m_q_mu: appends happen in queue order).
    std::string m_journal_dir;
    std::string m_journal_path;
    int m_journal_fd = -1;
    std::int64_t m_journal_size = 0;
    std::int64_t m_journal_errors = 0;
    std::int64_t m_replayed = 0;
};

}  // namespace l04
