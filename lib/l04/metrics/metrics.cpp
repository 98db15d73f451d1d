#include <l04/metrics/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace l04 {

std::vector<double> latency_buckets() {
    return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

void Metrics::declare(const std::string& name, const std::string& type, const std::string& help,
                      std::vector<double> buckets) {
    std::lock_guard lk(m_mu);
    auto& f = m_families[name];
    f.type = type;
    f.help = help;
    if (type == "histogram" && f.buckets.empty()) {
        f.buckets = buckets.empty() ? latency_buckets() : std::move(buckets);
        std::sort(f.buckets.begin(), f.buckets.end());
    }
}

Metrics::Series Metrics::series(const std::string& name, const Labels& labels) {
    std::lock_guard lk(m_mu);
    auto& f = m_families[name];
    return Series(&f.values.try_emplace(labels).first->second);
}

Metrics::Histogram Metrics::histogram(const std::string& name, const Labels& labels) {
    std::lock_guard lk(m_mu);
    auto& f = m_families[name];
    auto [it, fresh] = f.hists.try_emplace(labels);
    if (fresh) {
        it->second.bounds = f.buckets;
        it->second.counts = std::make_unique<std::atomic<std::uint64_t>[]>(f.buckets.size() + 1);
    }
    return Histogram(&it->second);
}

void Metrics::Histogram::observe(double v) const {
    if (!m_cell) return;
    // The first bucket whose upper bound holds v (le: v <= bound); NaN
    // only in +Inf.
    const auto i = std::isnan(v) ? m_cell->bounds.size()
                                 : static_cast<std::size_t>(
                                       std::lower_bound(m_cell->bounds.begin(), m_cell->bounds.end(), v) -
                                       m_cell->bounds.begin());
    m_cell->counts[i].fetch_add(1, std::memory_order_relaxed);
    if (!std::isnan(v)) m_cell->sum.fetch_add(v, std::memory_order_relaxed);  // one NaN would spoil _sum for good
}

double Metrics::value(const std::string& name, const Labels& labels) {
    std::lock_guard lk(m_mu);
    auto it = m_families.find(name);
    if (it == m_families.end()) return 0;
    auto v = it->second.values.find(labels);
    return v == it->second.values.end() ? 0 : v->second.load(std::memory_order_relaxed);
}

namespace {

std::string escape_label(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string label_str(const Labels& labels, const std::string& extra_k = {}, const std::string& extra_v = {}) {
    if (labels.empty() && extra_k.empty()) return {};
    std::string s = "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) s += ',';
        first = false;
        s += k + "=\"" + escape_label(v) + "\"";
    }
    if (!extra_k.empty()) {
        if (!first) s += ',';
        s += extra_k + "=\"" + extra_v + "\"";
    }
    return s + "}";
}

std::string num(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
    else std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

}  // namespace

std::string Metrics::render() {
    std::lock_guard lk(m_mu);
    std::string out;
    for (const auto& [name, f] : m_families) {
        if (f.type.empty()) continue;
        out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + " " + f.type + "\n";
        if (f.type == "histogram") {
            for (const auto& [labels, h] : f.hists) {
                std::uint64_t cumulative = 0;
                for (std::size_t i = 0; i < h.bounds.size(); ++i) {
                    cumulative += h.counts[i].load(std::memory_order_relaxed);
                    out += name + "_bucket" + label_str(labels, "le", num(h.bounds[i])) + " " +
                           num(static_cast<double>(cumulative)) + "\n";
                }
                // +Inf and _count are the same number by construction.
                cumulative += h.counts[h.bounds.size()].load(std::memory_order_relaxed);
                out += name + "_bucket" + label_str(labels, "le", "+Inf") + " " + num(static_cast<double>(cumulative)) + "\n";
                out += name + "_sum" + label_str(labels) + " " + num(h.sum.load(std::memory_order_relaxed)) + "\n";
                out += name + "_count" + label_str(labels) + " " + num(static_cast<double>(cumulative)) + "\n";
            }
        } else {
            for (const auto& [labels, v] : f.values)
                out += name + label_str(labels) + " " + num(v.load(std::memory_order_relaxed)) + "\n";
        }
    }
    return out;
}

}  // namespace l04
