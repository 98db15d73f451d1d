#pragma once
// The usage ledger: one SQLite row per finished request (streamed or not,
// cached or not, failed or not) with tokens, cost, latency and outcome.
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/store/db.hpp>

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
// destructor flushes what is left. A crash loses at most the last batch.
class Ledger {
public:
    // background=false: record() writes synchronously (tools, tests).
    explicit Ledger(std::unique_ptr<Db> db, bool background = true);
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

private:
    Status write_locked(const std::vector<UsageRow>& rows);
    void writer_loop();
    std::unique_ptr<Db> m_db;
    std::mutex m_mu;  // the connection
    std::mutex m_q_mu;
    std::condition_variable m_cv;
    std::vector<UsageRow> m_pending;
    bool m_stop = false;
    std::thread m_writer;
};

}  // namespace l04
