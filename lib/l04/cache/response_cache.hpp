#pragma once
// The response cache: exact match by the canonical request hash, then
// semantic match by the prompt's embedding, in SQLite ($state_dir/l04.db,
// table cache_entries). Only successful answers are stored; entries expire
// after the TTL and the least recently used are evicted past max_entries /
// max_bytes. Hit/miss counters live in SQLite so they survive restarts and
// are shared with --no-daemon runs.
//
// Semantic lookups: the prompt (CacheKey::prompt) is embedded by the
// configured Embedder and searched in a VectorIndex restricted to the
// request's scope (CacheKey::scope must be equal: target, system prompt,
// parameters, tools, earlier turns, tenant). Every candidate is re-checked
// against its SQLite row (scope, embedder, dimension, expiry) before it is
// served, so the index can only cause misses, never wrong-scope hits.
//
// The index is a derived copy: SQLite holds every vector. It is loaded
// lazily on the first semantic lookup (exact hits never pay for it) from
// $index_dir/<embedder>-<dims>.hnsw; a file that fails verification is
// rebuilt from SQLite, a valid but stale one (another process wrote, or we
// were killed before saving) is reconciled row by row with SQLite, or
// rebuilt when more than 10% differs. Rows other processes add are picked up
// when SQLite's data_version changes. The index is saved atomically on
// close (when changed) and by save_index().
//
// An embedder failure is E4301: logged, counted (cache_embed_failures); the
// semantic part is skipped and the exact cache works as before.
// Thread-safe: SQLite under one mutex, the index under its own shared lock.
#include <l04/cache/hit_guard.hpp>
#include <l04/cache/cache_key.hpp>
#include <l04/cache/embedder.hpp>
#include <l04/cache/vector_index.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/store/db.hpp>
#include <l04/store/schema.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace l04 {

struct CacheConfig {
    bool enabled = true;
    std::int64_t ttl_ms = 3'600'000;
    std::int64_t max_entries = 100'000;
    std::int64_t max_bytes = 256ll << 20;
    double similarity_threshold = 0.85;
    bool semantic = true;
    // The hit guard and the ambiguity margin (hit_guard.hpp).
    bool semantic_guard = true;
    double semantic_margin = 0.03;
    // Where index files live: "" = "<directory of the database>/cache-index",
    // "-" = never persisted (also the case for an in-memory database).
    std::string index_dir;
    VectorIndexOptions index;
    // Nearest neighbours checked against SQLite per semantic lookup.
    std::size_t semantic_candidates = 8;
    // Compact a heavily deleted index on a background thread (false: inline,
    // for tests).
    bool background_compaction = true;
    // 0: every hit and miss is counted in its own write transaction (short
    // runs, --no-daemon). > 0 (l04d): they are counted in memory and written
    // in one transaction at most this many ms after the first (sooner when
    // many entries are pending, or with the next store), by flush_counts()
    // and on close. stats() adds what is pending, so this process's view is
    // exact at all times; other processes see the counts once written, and
    // a process killed with SIGKILL loses at most this long's counts.
    std::int64_t count_flush_ms = 0;
};

// Why a lookup missed although a semantic candidate cleared the threshold.
struct CacheRefusal {
    std::string reason;     // "" (a plain miss), "ambiguous", or the guard's reason ("numbers", "roles", ...)
    double similarity = 0;  // of the best candidate
};

// One result of ResponseCache::search (for `l04ctl cache search`).
struct CacheSearchHit {
    std::int64_t id = 0;
    double similarity = 0;
    std::string prompt;
    std::string target;
    std::string model_id;
    std::string scope;
    std::int64_t created_ms = 0;
    std::int64_t expires_ms = 0;
    std::int64_t hits = 0;
    // What the hit guard says of serving this entry for the searched text
    // (none when cache.semantic_guard is off).
    HitConflict guard = HitConflict::none;
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
    // Lookups with a semantic candidate above the threshold that still
    // missed: because the hit guard refused it (and nothing else qualified),
    // or as ambiguous. A lookup counts once.
    std::int64_t guard_refusals = 0;
    std::int64_t ambiguous = 0;
    std::int64_t oldest_ms = 0;
    std::int64_t newest_ms = 0;
    std::string embedder;          // "" when semantic lookups are off
    double similarity_threshold = 0;  // the configured default
    bool semantic_guard = true;
    double semantic_margin = 0;
    std::int64_t index_size = 0;   // live vectors (SQLite's count until the index is loaded)
    std::int64_t index_deleted = 0;
    bool index_loaded = false;
    double hit_rate() const {
        auto total = exact_hits + semantic_hits + misses;
        return total ? static_cast<double>(exact_hits + semantic_hits) / static_cast<double>(total) : 0.0;
    }
};

class ResponseCache {
public:
    // Opens on an existing state database (owned by the cache). `embedder`
    // may be null: then only exact lookups happen.
    ResponseCache(std::unique_ptr<Db> db, CacheConfig cfg, Clock& clock, std::shared_ptr<Embedder> embedder = nullptr);
    // Waits for a running compaction and saves the index if it changed.
    ~ResponseCache();
    ResponseCache(const ResponseCache&) = delete;
    ResponseCache& operator=(const ResponseCache&) = delete;

    // Exact lookup, then semantic within the key's scope at `threshold`
    // (default: the configured similarity_threshold). Counts one exact hit,
    // semantic hit or miss. Expired entries are never served. Hits carry
    // cache_hit (exact/semantic) and similarity (1.0 for exact).
    // `refusal`, when given, says why a miss was not a semantic hit.
    std::optional<InferenceResponse> lookup(const CacheKey& key, std::optional<double> threshold = std::nullopt,
                                            CacheRefusal* refusal = nullptr);
    // Stores a successful response with its prompt's embedding (when the
    // embedder fails the entry is stored for exact hits only); evicts past
    // the bounds, deleting evicted entries from the index too.
    Status store(const CacheKey& key, const InferenceResponse& resp);
    CacheStats stats();
    // The k entries (any scope) whose prompts are nearest to `text`, most
    // similar first, expired ones included. E4301 when embedding fails,
    // E4300 when semantic lookups are off.
    Result<std::vector<CacheSearchHit>> search(const std::string& text, std::size_t k);
    // Deletes entries (all, or of one model, or older than age). Returns count.
    Result<std::int64_t> clear(const std::string& model, std::optional<std::int64_t> older_than_ms);
    // Deletes expired entries and enforces the bounds. Returns count removed.
    Result<std::int64_t> prune();
    // Writes the hits and misses counted in memory (count_flush_ms > 0) in
    // one transaction; they stay pending when it fails.
    Status flush_counts();
    // Writes the index file now (no-op when not loaded or not persisted).
    Status save_index();
    // Compacts the index now (loading it first).
    Status compact_index();
    // Loads (or rebuilds) the semantic index now, when the semantic cache is
    // on: l04d does it at start on its main thread, so that the first
    // semantic lookup neither waits for it nor stalls an event loop.
    void warm_index() { (void)ensure_index(); }
    // Path of this embedder's index file ("" when not persisted).
    std::string index_path() const;

    const CacheConfig& config() const { return m_cfg; }
    Embedder* embedder() const { return m_embedder.get(); }

private:
    struct Row;
    Result<std::vector<std::int64_t>> evict_locked();
    // Counts a hit on entry id created at created_ms (hits, LRU stamp, the
    // global counter): in one write transaction, or pending (count_flush_ms;
    // written only to that same entry: an id can be reused once its row is
    // deleted); m_mu held.
    void count_hit_locked(std::int64_t id, std::int64_t created_ms, std::int64_t now, CounterId counter);
    void count_miss_locked(std::int64_t now);
    // Hits and misses counted in memory, not yet written (m_mu).
    struct PendingCounts {
        struct Entry {
            std::int64_t created_ms = 0;
            std::int64_t hits = 0;
            std::int64_t last_used_ms = 0;
        };
        std::unordered_map<std::int64_t, Entry> entries;
        std::int64_t exact_hits = 0;
        std::int64_t semantic_hits = 0;
        std::int64_t misses = 0;
        std::int64_t since_ms = 0;  // wall time of the first pending count
        bool empty() const { return entries.empty() && exact_hits == 0 && semantic_hits == 0 && misses == 0; }
    };
    void note_pending_locked(std::int64_t now);
    // Writes the pending counts inside the caller's transaction, all or
    // nothing (a savepoint); true when written (then clear them on commit).
    // A failure that ended the transaction itself is an error.
    Result<bool> write_counts_locked();
    Status flush_counts_locked();
    bool semantic_on() const { return m_cfg.semantic && m_embedder != nullptr; }
    Result<Vector> embed_prompt(const std::string& text);
    // Loads, verifies and reconciles (or rebuilds) the index on first use.
    std::shared_ptr<VectorIndex> ensure_index();
    Result<std::shared_ptr<VectorIndex>> rebuild_index_locked();
    Status reconcile_locked(VectorIndex& idx, bool& rebuilt);
    // Adds rows other processes committed since the last sync.
    void sync_new_rows(VectorIndex& idx);
    void forget(const std::vector<std::int64_t>& ids);
    void maybe_compact(const std::shared_ptr<VectorIndex>& idx);
    void remember_vector(const std::string& exact, Vector v);
    std::optional<Vector> take_vector(const std::string& exact);

    std::unique_ptr<Db> m_db;
    CacheConfig m_cfg;
    Clock& m_clock;
    std::shared_ptr<Embedder> m_embedder;
    std::string m_embedder_name;
    std::size_t m_dims = 0;
    std::mutex m_mu;  // m_db, m_pending, m_counts, m_max_synced, m_data_version
    PendingCounts m_counts;
    // Prompt vectors computed by lookup() for the store() that follows a
    // miss (bounded, oldest dropped), so a miss embeds once.
    std::list<std::pair<std::string, Vector>> m_pending;
    std::mutex m_index_mu;  // taken before m_mu, never after
    std::shared_ptr<VectorIndex> m_index;
    std::atomic<bool> m_index_dirty{false};
    std::int64_t m_max_synced = 0;
    std::int64_t m_data_version = -1;
    // Exact lookups read through connections of their own, taken from this
    // pool (WAL readers run side by side), so that lookups on two threads
    // never queue behind each other's SELECT under m_mu: in l04d a thread
    // waiting for a mutex stops every connection of its event loop. None
    // for an in-memory database (another connection would be another
    // database).
    std::unique_ptr<Db> take_reader();
    void give_reader(std::unique_ptr<Db> db);
    bool m_has_readers = false;  // a file database: another connection sees the same data
    std::mutex m_readers_mu;
    std::vector<std::unique_ptr<Db>> m_readers;  // idle ones
    std::atomic<Clock::duration> m_readers_retry_at{Clock::duration::zero()};  // after a failed open
    std::mutex m_compact_mu;
    std::thread m_compactor;
    std::atomic<bool> m_compact_running{false};
};

// The 64-bit tag of a hex digest (its first 16 hex digits).
std::uint64_t digest_tag(const std::string& hex);

}  // namespace l04
