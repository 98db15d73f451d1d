#pragma once
// The semantic cache's vector index: an hnswlib HNSW graph over unit vectors
// (cosine similarity as inner product), one index per (embedder, dimension).
// The graph stores each vector in half precision (half.hpp): half the memory
// and half the bytes a search reads. Similarities it reports are the float
// query against the stored halves, within about 5e-4 of the float cosine;
// ResponseCache decides on the float vectors SQLite keeps.
//
// The index is a derived copy: SQLite holds every vector, and any index file
// that does not verify is thrown away and rebuilt from SQLite by the caller.
//
// Labels are SQLite row ids (> 0). Each label carries two 64-bit tags chosen
// by the caller: `group` (the cache scope: searches may be restricted to one
// group) and `stamp` (identifies the row's content, so a reused row id is
// detected when reconciling with SQLite).
//
// Concurrency: one writer, many readers. add/remove/compact/load take the
// lock exclusively, search/save/stats share it, so an add never races a
// search (hnswlib's own locks are not relied upon). Writers are not starved:
// every locker passes a gate mutex first, and a waiting writer holds it, so
// new readers queue behind the writer (glibc's rwlock prefers readers).
//
// File format (native little-endian; written by save(), checked by load()):
//   header  magic "L04HNSW\0", u32 version (2: half vectors; a version-1
//           file, with float vectors, is rebuilt), u32 dimension, char[64] embedder,
//           u64 elements, u64 live, u64 M, u64 ef_construction,
//           u64 payload bytes, u64 payload checksum, u64 header checksum
//   payload i32 max level, u32 entry point, then per element its level-0
//           block (links, vector as u16 halves, label), then per element u32 level + upper
//           link lists, then per element u64 group, u64 stamp.
// load() verifies the header, the checksum (a 64-bit multiply-xor hash over
// 8-byte words), and then every structural invariant hnswlib assumes but
// never checks (neighbour ids in range, list sizes, levels, entry point,
// unique labels, finite vectors) before any search can touch the graph.
#include <l04/cache/half.hpp>
#include <l04/core/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace l04 {

struct VectorIndexOptions {
    // M=32 / ef_search=96: recall@10 0.991 at p99 0.70 ms at 100k x 384
    // (bench/RESULTS.md, "Semantic cache", (e)); M=16 needed ef 256 for that,
    // and ef 128 puts p99 at 0.9-1.15 ms on this kind of machine.
    // A loaded index keeps the M it was built with; rebuilds use this one.
    std::size_t m = 32;                  // HNSW graph degree
    std::size_t ef_construction = 200;   // build-time beam width
    std::size_t ef_search = 96;          // query-time beam width (at least k)
    std::size_t initial_capacity = 1024; // grows by doubling
    // Group searches scan the group exactly when it has at most this many
    // live members (cheap, and exact); larger groups use the graph.
    std::size_t brute_force_limit = 2048;
    // compact() is due when deleted / elements exceeds this (and there are
    // at least compact_min_deleted deleted elements).
    double compact_deleted_fraction = 0.25;
    std::size_t compact_min_deleted = 256;
};

struct VectorMatch {
    std::int64_t label = 0;
    float similarity = 0;  // cosine, in [-1, 1]
};

struct VectorIndexStats {
    std::size_t live = 0;      // searchable elements
    std::size_t deleted = 0;   // marked deleted, still in the graph
    std::size_t capacity = 0;
};

// One entry of a snapshot (for reconciling with SQLite).
struct VectorIndexEntry {
    std::int64_t label = 0;
    std::uint64_t group = 0;
    std::uint64_t stamp = 0;
};

class VectorIndex {
public:
    // An empty index for vectors of `dimension` floats from `embedder`.
    VectorIndex(std::string embedder, std::size_t dimension, VectorIndexOptions opts = {});
    ~VectorIndex();
    VectorIndex(const VectorIndex&) = delete;
    VectorIndex& operator=(const VectorIndex&) = delete;

    // Loads and fully verifies an index file. Fails with E4302
    // (cache_index_corrupt) on a missing, truncated, corrupted, foreign
    // (other embedder or dimension) or structurally invalid file; never
    // crashes and never returns a partially valid index.
    // Removes "<path>.tmp.<pid>.<n>" files left by a save whose process
    // died (killed mid-write); files of living processes are left alone.
    // Returns how many were removed.
    static std::size_t remove_stale_temp_files(const std::string& path);
    static Result<std::unique_ptr<VectorIndex>> load(const std::string& path, const std::string& embedder,
                                                     std::size_t dimension, VectorIndexOptions opts = {});
    // Writes the index atomically: temp file in the same directory, fsync,
    // rename, fsync of the directory. Fails with E4300; the old file stays.
    Status save(const std::string& path) const;

    // Adds (or replaces) label's vector. The vector is normalised; a wrong
    // dimension or a zero/non-finite vector fails with E4300.
    Status add(std::int64_t label, std::span<const float> vec, std::uint64_t group, std::uint64_t stamp);
    // Marks label deleted. Returns false when it was not live.
    bool remove(std::int64_t label);
    bool contains(std::int64_t label) const;

    // The k nearest live vectors, most similar first. With `group`, only
    // that group's members: exact scan for small groups, graph search with
    // a widening beam (then an exact scan) for large ones.
    std::vector<VectorMatch> search(std::span<const float> query, std::size_t k,
                                    std::optional<std::uint64_t> group = std::nullopt) const;
    // Exact k nearest by scanning every live vector (benchmarks, tests).
    std::vector<VectorMatch> search_exact(std::span<const float> query, std::size_t k) const;

    // Whether enough of the graph is deleted to make compact() worthwhile.
    bool needs_compaction() const;
    // Rebuilds the graph from the live vectors. Readers and writers are only
    // blocked while the snapshot is copied and while the result is swapped
    // in; adds and removes made during the rebuild are replayed.
    Status compact();

    VectorIndexStats stats() const;
    std::vector<VectorIndexEntry> entries() const;
    const std::string& embedder() const { return m_embedder; }
    std::size_t dimension() const { return m_dim; }

private:
    struct Graph;
    struct Meta {
        std::uint64_t group = 0;
        std::uint64_t stamp = 0;
        std::size_t group_pos = 0;  // position in m_groups[group]
    };
    struct JournalOp {
        bool add = false;
        std::int64_t label = 0;
        std::vector<float> vec;
        std::uint64_t group = 0, stamp = 0;
    };

    Status add_locked(std::int64_t label, const float* unit, std::uint64_t group, std::uint64_t stamp);
    bool remove_locked(std::int64_t label);
    const Half* vector_of(std::int64_t label) const;
    std::vector<VectorMatch> scan_locked(const float* q, std::size_t k, const std::vector<std::int64_t>& labels) const;

    std::string m_embedder;
    std::size_t m_dim;
    VectorIndexOptions m_opts;
    std::unique_ptr<Graph> m_graph;
    std::unordered_map<std::int64_t, Meta> m_meta;                           // live labels only
    std::unordered_map<std::uint64_t, std::vector<std::int64_t>> m_groups;   // live members per group
    std::shared_lock<std::shared_mutex> read_lock() const;
    std::unique_lock<std::shared_mutex> write_lock() const;
    mutable std::mutex m_gate;
    mutable std::shared_mutex m_mu;
    std::mutex m_compact_mu;
    bool m_compacting = false;  // guarded by m_mu
    std::vector<JournalOp> m_journal;  // guarded by m_mu, while compacting
};

// 64-bit checksum used by the index file (exposed for tests).
std::uint64_t index_checksum(const void* data, std::size_t n);

}  // namespace l04
