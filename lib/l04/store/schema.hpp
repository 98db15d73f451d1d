#pragma once
// The state database ($state_dir/l04.db): one SQLite file shared by l04d and
// --no-daemon runs. Migrations are append-only; numbers persisted in it
// (counter ids, enum values) are stable.
#include <l04/store/db.hpp>

#include <memory>
#include <string>

namespace l04 {

// Stable ids of the rows in the `counters` table.
enum class CounterId : int {
    cache_exact_hits = 1,
    cache_semantic_hits = 2,
    cache_misses = 3,
    cache_evictions = 4,
    cache_stores = 5,
    cache_embed_failures = 6,
    cache_expired = 7,
    rate_limit_rejections = 8,
    rate_limit_shadow_rejections = 9,
    budget_rejections = 10,
    // Running totals of cache_entries (rows, SUM(bytes)), kept by triggers
    // (migration 3) so every connection and process updates them.
    cache_entry_count = 11,
    cache_entry_bytes = 12,
    // Semantic lookups that found a candidate above the threshold and still
    // missed: refused by the hit guard, or ambiguous (migration 4).
    cache_guard_refusals = 13,
    cache_ambiguous = 14,
};

// Opens (creating and migrating) $state_dir/l04.db; ":memory:" for tests.
Result<std::unique_ptr<Db>> open_state_db(const std::string& state_dir);
// Path of the state database under state_dir.
std::string state_db_path(const std::string& state_dir);

// Adds delta to a counter (in the caller's transaction if any).
Status bump_counter(Db& db, CounterId id, std::int64_t delta = 1);
std::int64_t read_counter(Db& db, CounterId id);

}  // namespace l04
