#pragma once
// In-process metrics: counters, gauges and histograms with labels, rendered
// in the Prometheus text exposition format (version 0.0.4). Thread-safe.
//
// Two ways to update a series:
//   - by name and labels (inc/add/set/observe): a lookup under the registry's
//     mutex, for cold paths (start-up, /health refreshes);
//   - through a handle resolved once (series(), histogram()): a lock-free
//     atomic update, for the request path. Handles stay valid as long as
//     the Metrics object; hot callers keep them (see HandleCache).
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace l04 {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
    struct HistCell;

public:
    // A counter's or gauge's series. A default-constructed handle ignores
    // updates.
    class Series {
    public:
        Series() = default;
        void inc(double v = 1) const { add(v); }
        void add(double v) const {
            if (m_cell) m_cell->fetch_add(v, std::memory_order_relaxed);
        }
        void set(double v) const {
            if (m_cell) m_cell->store(v, std::memory_order_relaxed);
        }
        double value() const { return m_cell ? m_cell->load(std::memory_order_relaxed) : 0; }

    private:
        friend class Metrics;
        explicit Series(std::atomic<double>* c) : m_cell(c) {}
        std::atomic<double>* m_cell = nullptr;
    };

    // A histogram's series: one bucket counter is incremented per
    // observation (cumulated when rendered), so a scrape never sees a
    // bucket above _count.
    class Histogram {
    public:
        Histogram() = default;
        void observe(double v) const;

    private:
        friend class Metrics;
        explicit Histogram(HistCell* c) : m_cell(c) {}
        HistCell* m_cell = nullptr;
    };

    // Declares a family (idempotent). type: counter, gauge, histogram.
    // Histogram buckets are fixed by the first declaration that names
    // them (handles already taken keep pointing at valid cells).
    void declare(const std::string& name, const std::string& type, const std::string& help,
                 std::vector<double> buckets = {});
    Series series(const std::string& name, const Labels& labels = {});
    Histogram histogram(const std::string& name, const Labels& labels = {});

    void inc(const std::string& name, const Labels& labels = {}, double v = 1) { series(name, labels).add(v); }
    void set(const std::string& name, const Labels& labels, double v) { series(name, labels).set(v); }
    void add(const std::string& name, const Labels& labels, double v) { series(name, labels).add(v); }
    void observe(const std::string& name, const Labels& labels, double v) { histogram(name, labels).observe(v); }
    double value(const std::string& name, const Labels& labels = {});
    std::string render();

private:
    struct HistCell {
        std::vector<double> bounds;  // upper bounds, ascending
        std::unique_ptr<std::atomic<std::uint64_t>[]> counts;  // bounds.size() + 1 (the last: above every bound)
        std::atomic<double> sum{0};
    };
    struct Family {
        std::string type, help;
        std::vector<double> buckets;
        std::map<Labels, std::atomic<double>> values;  // map nodes never move: handles point into them
        std::map<Labels, HistCell> hists;
    };
    std::mutex m_mu;
    std::map<std::string, Family> m_families;
};

// Handles resolved once per key and kept: a request-path caller looks its
// handles up by one string key under one short lock, instead of building
// label vectors and locking the registry per update. Keys must come from
// bounded sets (registry ids, the bounded agent labels). Thread-safe; the
// returned reference stays valid as long as the cache.
template <class T>
class HandleCache {
public:
    // make() builds the handles the first time the key is seen.
    template <class Make>
    const T& get(std::string_view key, Make&& make) {
        std::lock_guard lk(m_mu);
        m_key.assign(key);
        auto it = m_map.find(m_key);
        if (it == m_map.end()) it = m_map.emplace(m_key, make()).first;
        return it->second;
    }

private:
    std::mutex m_mu;
    std::string m_key;  // reused: no allocation per lookup once warm
    std::unordered_map<std::string, T> m_map;
};

// Default latency buckets in seconds.
std::vector<double> latency_buckets();

}  // namespace l04
