#include <l04/store/schema.hpp>

#include <vector>

namespace l04 {

namespace {
const std::vector<std::string_view>& migrations() {
    static const std::vector<std::string_view> m = {
        // 1: counters, response cache, usage ledger
        R"sql(
CREATE TABLE counters(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  value INTEGER NOT NULL DEFAULT 0);
INSERT INTO counters(id, name) VALUES
  (1, 'cache_exact_hits'), (2, 'cache_semantic_hits'), (3, 'cache_misses'),
  (4, 'cache_evictions'), (5, 'cache_stores'), (6, 'cache_embed_failures'), (7, 'cache_expired');
CREATE TABLE cache_entries(
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  scope TEXT NOT NULL,
  target TEXT NOT NULL,
  model_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  prompt TEXT NOT NULL,
  content TEXT NOT NULL,
  finish_reason TEXT NOT NULL DEFAULT 'stop',
  tool_calls BLOB,
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  cost_usd REAL NOT NULL DEFAULT 0,
  embedder TEXT,
  dims INTEGER,
  vector BLOB,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  last_used_ms INTEGER NOT NULL,
  hits INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL);
CREATE INDEX cache_entries_lru ON cache_entries(last_used_ms);
CREATE INDEX cache_entries_scope ON cache_entries(scope);
CREATE INDEX cache_entries_expires ON cache_entries(expires_ms);
CREATE TABLE usage(
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  agent TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  estimated INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  saved_usd REAL NOT NULL,
  latency_ms REAL NOT NULL,
  ttft_ms REAL,
  cached INTEGER NOT NULL,
  stream INTEGER NOT NULL,
  status TEXT NOT NULL,
  error_code INTEGER,
  attempts INTEGER NOT NULL);
CREATE INDEX usage_time ON usage(time_ms);
CREATE INDEX usage_agent_time ON usage(agent, time_ms);
)sql",
        // 2: rate-limit buckets and reservations, circuit breakers, limiter counters
        R"sql(
CREATE TABLE limit_buckets(
  scope TEXT NOT NULL,
  kind INTEGER NOT NULL,
  level REAL NOT NULL,
  capacity REAL NOT NULL,
  refill_per_s REAL NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY(scope, kind)) WITHOUT ROWID;
CREATE TABLE limit_reservations(
  id INTEGER PRIMARY KEY,
  agent TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE circuit_breakers(
  provider TEXT PRIMARY KEY,
  state INTEGER NOT NULL DEFAULT 0,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  opened_at_ms INTEGER NOT NULL DEFAULT 0,
  blocked_until_ms INTEGER NOT NULL DEFAULT 0,
  probe_until_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  updated_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
INSERT INTO counters(id, name) VALUES
  (8, 'rate_limit_rejections'), (9, 'rate_limit_shadow_rejections'), (10, 'budget_rejections');
)sql",
        // 3: running totals of cache_entries (row count, SUM(bytes)) kept by
        // triggers, so the size bound is checked in O(1) by any connection.
        // Initialised from the table as it is (inside the migration's
        // BEGIN IMMEDIATE, so no concurrent writer is missed). The created_ms
        // index gives `cache stats` its oldest/newest entry without reading
        // every row (created_ms is stored after the vector blob).
        R"sql(
CREATE INDEX cache_entries_created ON cache_entries(created_ms);
INSERT INTO counters(id, name, value) VALUES
  (11, 'cache_entry_count', (SELECT COUNT(*) FROM cache_entries)),
  (12, 'cache_entry_bytes', (SELECT COALESCE(SUM(bytes), 0) FROM cache_entries));
CREATE TRIGGER cache_entries_totals_insert AFTER INSERT ON cache_entries BEGIN
  UPDATE counters SET value = value + CASE id WHEN 11 THEN 1 ELSE NEW.bytes END WHERE id IN (11, 12);
END;
CREATE TRIGGER cache_entries_totals_delete AFTER DELETE ON cache_entries BEGIN
  UPDATE counters SET value = value - CASE id WHEN 11 THEN 1 ELSE OLD.bytes END WHERE id IN (11, 12);
END;
CREATE TRIGGER cache_entries_totals_update AFTER UPDATE OF bytes ON cache_entries BEGIN
  UPDATE counters SET value = value + NEW.bytes - OLD.bytes WHERE id = 12;
END;
)sql",
        // 4: semantic candidates refused by the hit guard or as ambiguous
        R"sql(
INSERT OR IGNORE INTO counters(id, name) VALUES (13, 'cache_guard_refusals'), (14, 'cache_ambiguous');
)sql",
        // 5: the rest of an answer beyond its first choice (logprobs, the
        // other choices of n > 1), so a cached answer is the whole answer
        R"sql(
ALTER TABLE cache_entries ADD COLUMN extra BLOB NOT NULL DEFAULT '';
)sql",
        // 6: the request's metadata, kept with its ledger row (JSON object text)
        R"sql(
ALTER TABLE usage ADD COLUMN metadata TEXT NOT NULL DEFAULT '';
)sql",
        // 7: how far each process's crash journal of ledger rows is written
        // (committed with the rows, so a replay neither loses nor repeats one)
        R"sql(
CREATE TABLE ledger_journal(file TEXT PRIMARY KEY, committed INTEGER NOT NULL) WITHOUT ROWID;
)sql",
        // 8: which process holds a half-open probe (pid and its start time),
        // so a probe whose process died is free at once
        R"sql(
ALTER TABLE circuit_breakers ADD COLUMN probe_pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE circuit_breakers ADD COLUMN probe_start INTEGER NOT NULL DEFAULT 0;
)sql",
        // 9: spend reserved by requests in flight (their worst-case cost), so
        // concurrent requests cannot overshoot a budget together
        R"sql(
CREATE TABLE budget_reservations(
  id INTEGER PRIMARY KEY,
  agent TEXT NOT NULL,
  usd REAL NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE INDEX budget_reservations_agent ON budget_reservations(agent);
)sql",
        // 10: the exact cache of /v1/embeddings (one row per model, size and
        // text) and the stored /v1/responses (previous_response_id): each
        // row one turn (its system text, input messages and answer) and the
        // id of the response it continued')
        R"sql(
CREATE TABLE embedding_cache(
  key TEXT PRIMARY KEY,
  model_id TEXT NOT NULL,
  vector BLOB NOT NULL,
  tokens INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX embedding_cache_expires ON embedding_cache(expires_ms);
CREATE TABLE stored_responses(
  id TEXT PRIMARY KEY,
  parent TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  model TEXT NOT NULL,
  turn TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX stored_responses_created ON stored_responses(created_ms);
)sql",
        // 11: rate-limit leases out (debited from a bucket, usable by one
        // process until until_ms, then holding less and less, at the
        // bucket's refill rate): a bucket refills only up to its capacity
        // minus what the leases out hold, so leasing processes admit no
        // more than the bucket alone would in any window. Random ids,
        // never reused (a holder deletes its own row by id)
        R"sql(
CREATE TABLE limit_leases(
  id INTEGER PRIMARY KEY,
  scope TEXT NOT NULL,
  kind INTEGER NOT NULL,
  amount REAL NOT NULL,
  refill_per_s REAL NOT NULL,
  until_ms INTEGER NOT NULL);
CREATE INDEX limit_leases_bucket ON limit_leases(scope, kind, until_ms);
)sql",
    };
    return m;
}
}  // namespace

std::string state_db_path(const std::string& state_dir) { return state_dir + "/l04.db"; }

Result<std::unique_ptr<Db>> open_state_db(const std::string& state_dir) {
    std::string path = state_dir == ":memory:" ? state_dir : state_db_path(state_dir);
    if (state_dir != ":memory:") {
        L04_TRY(ensure_state_dir(state_dir));
    }
    L04_TRY_ASSIGN(auto db, Db::open(path));
    L04_TRY(db->migrate(migrations()));
    return db;
}

Status bump_counter(Db& db, CounterId id, std::int64_t delta) {
    // Cached: a cache hit bumps a counter on every request.
    L04_TRY_ASSIGN(Stmt* st, db.cached("UPDATE counters SET value = value + ? WHERE id = ?"));
    StmtReset reset(*st);
    st->bind(1, delta).bind(2, static_cast<int>(id));
    return st->run();
}

std::int64_t read_counter(Db& db, CounterId id) {
    auto st = db.cached("SELECT value FROM counters WHERE id = ?");
    if (!st) return 0;
    StmtReset reset(**st);  // ends the read: a kept statement must not hold a snapshot
    (*st)->bind(1, static_cast<int>(id));
    auto r = (*st)->step();
    return (r && *r) ? (*st)->col_int(0) : 0;
}

}  // namespace l04
