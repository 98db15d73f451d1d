#include <l04/metrics/metrics.hpp>

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
    if (type == "histogram") f.buckets = buckets.empty() ? latency_buckets() : std::move(buckets);
}

void Metrics::inc(const std::string& name, const Labels& labels, double v) { add(name, labels, v); }

void Metrics::add(const std::string& name, const Labels& labels, double v) {
    std::lock_guard lk(m_mu);
    m_families[name].values[labels] += v;
}

void Metrics::set(const std::string& name, const Labels& labels, double v) {
    std::lock_guard lk(m_mu);
    m_families[name].values[labels] = v;
}

void Metrics::observe(const std::string& name, const Labels& labels, double v) {
    std::lock_guard lk(m_mu);
    auto& f = m_families[name];
    auto& h = f.hists[labels];
    if (h.counts.size() != f.buckets.size()) h.counts.assign(f.buckets.size(), 0);
    for (std::size_t i = 0; i < f.buckets.size(); ++i)
        if (v <= f.buckets[i]) ++h.counts[i];
    ++h.count;
    h.sum += v;
}

double Metrics::value(const std::string& name, const Labels& labels) {
    std::lock_guard lk(m_mu);
    auto it = m_families.find(name);
    if (it == m_families.end()) return 0;
    auto v = it->second.values.find(labels);
    return v == it->second.values.end() ? 0 : v->second;
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
                for (std::size_t i = 0; i < f.buckets.size(); ++i)
                    out += name + "_bucket" + label_str(labels, "le", num(f.buckets[i])) + " " +
                           num(static_cast<double>(i < h.counts.size() ? h.counts[i] : 0)) + "\n";
                out += name + "_bucket" + label_str(labels, "le", "+Inf") + " " + num(static_cast<double>(h.count)) + "\n";
                out += name + "_sum" + label_str(labels) + " " + num(h.sum) + "\n";
                out += name + "_count" + label_str(labels) + " " + num(static_cast<double>(h.count)) + "\n";
            }
        } else {
            for (const auto& [labels, v] : f.values) out += name + label_str(labels) + " " + num(v) + "\n";
        }
    }
    return out;
}

}  // namespace l04
