#pragma once
// The response cache: exact match by the canonical request hash, in SQLite
// ($state_dir/l04.db, table cache_entries). Only successful answers are
// stored; entries expire after the TTL and the least recently used are
// evicted past max_entries / max_bytes. Hit/miss counters live in SQLite so
// they survive restarts and are shared with --no-daemon runs.
// Thread-safe: one connection under a mutex.
#include <l04/cache/cache_key.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/store/db.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace l04 {

struct CacheConfig {
    bool enabled = true;
    std::int64_t ttl_ms = 3'600'000;
    std::int64_t max_entries = 100'000;
    std::int64_t max_bytes = 256ll << 20;
    double similarity_threshold = 0.85;
    bool semantic = true;
};

struct CacheStats {
    bool enabled = true;
    std::int64_t entries = 0;
    std::int64_t bytes = 0;
    std::int64_t exact_hits = 0;
    std::int64_t semantic_hits = 0;
    std::int64_t misses = 0;
    std::int64_t evictions = 0;
    std::int64_t expired = 0;
    std::int64_t stores = 0;
    std::int64_t embed_failures = 0;
    std::int64_t oldest_ms = 0;
    std::int64_t newest_ms = 0;
    std::string embedder;
    std::int64_t index_size = 0;
    std::int64_t index_deleted = 0;
    double hit_rate() const {
        auto total = exact_hits + semantic_hits + misses;
        return total ? static_cast<double>(exact_hits + semantic_hits) / static_cast<double>(total) : 0.0;
    }
};

class ResponseCache {
public:
    // Opens on an existing state database (owned by the caller's Db).
    ResponseCache(std::unique_ptr<Db> db, CacheConfig cfg, Clock& clock);

    // Exact lookup. Counts a hit or a miss. Expired entries are not served.
    std::optional<InferenceResponse> lookup(const CacheKey& key);
    // Stores a successful response; evicts past the bounds.
    Status store(const CacheKey& key, const InferenceResponse& resp);
    CacheStats stats();
    // Deletes entries (all, or of one model, or older than age). Returns count.
    Result<std::int64_t> clear(const std::string& model, std::optional<std::int64_t> older_than_ms);
    // Deletes expired entries and enforces the bounds. Returns count removed.
    Result<std::int64_t> prune();

    const CacheConfig& config() const { return m_cfg; }

private:
    Result<std::int64_t> evict_locked();
    std::unique_ptr<Db> m_db;
    CacheConfig m_cfg;
    Clock& m_clock;
    std::mutex m_mu;
};

}  // namespace l04
