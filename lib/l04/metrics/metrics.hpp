#pragma once
// In-process metrics: counters, gauges and histograms with labels, rendered
// in the Prometheus text exposition format (version 0.0.4). Thread-safe.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace l04 {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
public:
    // Declares a family (idempotent). type: counter, gauge, histogram.
    void declare(const std::string& name, const std::string& type, const std::string& help,
                 std::vector<double> buckets = {});
    void inc(const std::string& name, const Labels& labels = {}, double v = 1);
    void set(const std::string& name, const Labels& labels, double v);
    void add(const std::string& name, const Labels& labels, double v);
    void observe(const std::string& name, const Labels& labels, double v);
    double value(const std::string& name, const Labels& labels = {});
    std::string render();

private:
    struct Hist {
        std::vector<std::uint64_t> counts;
        std::uint64_t count = 0;
        double sum = 0;
    };
    struct Family {
        std::string type, help;
        std::vector<double> buckets;
        std::map<Labels, double> values;
        std::map<Labels, Hist> hists;
    };
    std::mutex m_mu;
    std::map<std::string, Family> m_families;
};

// Default latency buckets in seconds.
std::vector<double> latency_buckets();

}  // namespace l04
