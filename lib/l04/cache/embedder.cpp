#include <l04/cache/embedder.hpp>
#include <l04/cache/text_features.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <unordered_map>
#include <unordered_set>


namespace l04 {

bool normalize(Vector& v) {
    double s = 0;
    for (float x : v) s += static_cast<double>(x) * x;
    if (!(s > 0) || !std::isfinite(s)) {
        std::fill(v.begin(), v.end(), 0.0f);
        return false;
    }
    const auto inv = static_cast<float>(1.0 / std::sqrt(s));
    for (float& x : v) x *= inv;
    return true;
}

// dot() and dot_kernel() live in half.cpp, with the other SIMD kernels.

namespace {

std::uint64_t fnv1a(std::string_view s, std::uint64_t seed) {
    std::uint64_t h = 1469598103934665603ull ^ (seed * 0x9E3779B97F4A7C15ull);
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    // Final avalanche (splitmix64) so bucket and sign bits are independent.
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

// A sparse accumulator of one feature block. Each feature keeps its
// occurrence count, its weight and the sum of its signs (antonyms share a
// feature with opposite signs).
struct Block {
    struct Entry {
        int count = 0;
        int sign_sum = 0;
        float weight = 0;
    };
    std::unordered_map<std::string, Entry> tf;
    void add(const std::string& f, float w, int sign = 1) {
        auto& e = tf[f];
        ++e.count;
        e.sign_sum += sign;
        e.weight = std::max(e.weight, w);
    }
};

// Hashes the block into buckets (signed hashing: collisions cancel out on
// average), L2-normalises it and adds it to acc scaled by `weight`.
void fold(const Block& b, std::uint64_t seed, float weight, std::vector<double>& acc) {
    if (b.tf.empty() || weight == 0) return;
    const std::size_t dim = acc.size();
    std::vector<double> tmp(dim, 0.0);
    for (const auto& [f, e] : b.tf) {
        // Sublinear tf: 1 + ln(count); the sign share keeps "on off" at zero.
        const double v = e.weight * (1.0 + std::log(static_cast<double>(e.count))) *
                         (static_cast<double>(e.sign_sum) / e.count);
        const std::uint64_t h = fnv1a(f, seed);
        tmp[h % dim] += ((h >> 63) ? -1.0 : 1.0) * v;
    }
    double norm = 0;
    for (double x : tmp) norm += x * x;
    if (norm <= 0) return;
    const double scale = weight / std::sqrt(norm);
    for (std::size_t i = 0; i < dim; ++i) acc[i] += tmp[i] * scale;
}

}  // namespace

BuiltinEmbedder::BuiltinEmbedder(BuiltinEmbedderOptions opts) : m_opts(opts) {
    if (m_opts.dimension == 0) m_opts.dimension = 384;
}

std::string BuiltinEmbedder::name() const {
    if (m_opts == BuiltinEmbedderOptions{}) return "builtin-v2";
    // A tuned variant must never share an index with builtin-v2.
    char buf[192];
    std::snprintf(buf, sizeof buf, "builtin-v2-d%zu-u%.3g-s%.3g-b%.3g-c%.3g-p%.3g-n%.3g-g%.3g", m_opts.dimension,
                  m_opts.unigram_weight, m_opts.stopword_weight, m_opts.bigram_weight, m_opts.char_weight,
                  m_opts.polarity_boost, m_opts.number_boost, m_opts.negation_boost);
    return buf;
}

std::vector<std::string> BuiltinEmbedder::tokens(std::string_view text) {
    std::vector<std::string> out;
    for (auto& t : text::analyse(text))
        if (!t.text.empty()) out.push_back(t.text);
    return out;
}

Vector BuiltinEmbedder::embed_one(std::string_view text) const {
    const auto toks = text::analyse(text);
    Block uni, bi, chr;
    const text::Token* prev = nullptr;
    const text::Token* last_stop = nullptr;
    for (const auto& t : toks) {
        if (t.raw.empty()) {  // clause breaks do not cut bigrams: order still matters across commas
            last_stop = nullptr;
            continue;
        }
        float w = t.stop ? m_opts.stopword_weight : 1.0f;
        if (t.number) w *= m_opts.number_boost;
        if (t.cue || t.negated) w *= m_opts.negation_boost;
        if (auto axis = text::polarity(t.raw)) {
            // Both sides of an antonym pair are one feature with opposite
            // signs; negation flips the side ("not open" ~ "closed").
            const int sign = axis->second * (t.negated ? -1 : 1);
            uni.add("\x01axis" + std::to_string(axis->first), m_opts.polarity_boost, sign);
        } else {
            uni.add(t.text, w);
        }
        if (t.stop) {
            last_stop = &t;
            continue;
        }
        if (prev) bi.add(prev->text + "\x1f" + t.text, 1.0f);
        // Role features: the word after a directional preposition ("from
        // paris", "to london", "than java") so swapped entities differ.
        if (last_stop && text::is_role(last_stop->raw)) bi.add(last_stop->raw + "\x1e" + t.text, 1.0f);
        last_stop = nullptr;
        prev = &t;
        if (t.number) continue;
        const std::string w2 = (t.negated ? "{" : "<") + (t.negated ? t.text.substr(text::k_neg_mark.size()) : t.text) + ">";
        for (std::size_t n = 3; n <= 4; ++n)
            for (std::size_t i = 0; i + n <= w2.size(); ++i) chr.add(w2.substr(i, n), 1.0f);
    }
    std::vector<double> acc(m_opts.dimension, 0.0);
    fold(uni, 1, m_opts.unigram_weight, acc);
    fold(bi, 2, m_opts.bigram_weight, acc);
    fold(chr, 3, m_opts.char_weight, acc);
    Vector v(acc.size());
    for (std::size_t i = 0; i < acc.size(); ++i) v[i] = static_cast<float>(acc[i]);
    normalize(v);
    return v;
}

Result<std::vector<Vector>> BuiltinEmbedder::embed(const std::vector<std::string>& texts) {
    std::vector<Vector> out;
    out.reserve(texts.size());
    for (const auto& t : texts) out.push_back(embed_one(t));
    return out;
}

}  // namespace l04
