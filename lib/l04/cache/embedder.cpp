#include <l04/cache/embedder.hpp>

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

float dot(const float* a, const float* b, std::size_t n) {
    // Four accumulators let the compiler vectorise without -ffast-math.
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

namespace {

constexpr std::string_view k_neg_mark = "\xC2\xAC";  // "¬"

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

const std::unordered_set<std::string_view>& stopwords() {
    static const std::unordered_set<std::string_view> s = {
        "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing",
        "have", "has", "had", "having", "i", "me", "my", "we", "our", "us", "you", "your", "he", "him", "his", "she",
        "her", "it", "its", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who",
        "whom", "whose", "of", "at", "by", "for", "with", "about", "to", "from", "into", "onto", "as", "and", "or",
        "but", "if", "then", "so", "than", "too", "very", "can", "could", "will", "would", "shall", "should", "may",
        "might", "must", "just", "also", "there", "here", "how", "when", "where", "why", "all", "any", "both", "each",
        "some", "such", "own", "same", "other", "only", "again", "further", "once", "please", "via", "per", "s",
        "t", "using", "use", "used", "i'm", "let", "get", "one", "way", "like", "tell", "give"};
    return s;
}

const std::unordered_set<std::string_view>& negation_cues() {
    static const std::unordered_set<std::string_view> s = {"not", "no",   "never",   "without", "cannot", "nothing",
                                                           "none", "nor", "neither", "nobody",  "nowhere"};
    return s;
}

// Prepositions whose object's role matters (from X to Y, X than Y).
const std::unordered_set<std::string_view>& roles() {
    static const std::unordered_set<std::string_view> s = {"from", "to", "into", "than", "by", "onto", "or", "vs"};
    return s;
}

// Antonym axes: word -> (axis, sign). Raw lower-case words, not stems.
const std::unordered_map<std::string_view, std::pair<int, int>>& polarity() {
    static const std::unordered_map<std::string_view, std::pair<int, int>> m = [] {
        static const char* pairs[][2] = {
            {"on", "off"},           {"enable", "disable"},     {"enabled", "disabled"},   {"enables", "disables"},
            {"start", "stop"},       {"started", "stopped"},    {"starts", "stops"},       {"increase", "decrease"},
            {"increases", "decreases"}, {"increased", "decreased"}, {"open", "close"},     {"opened", "closed"},
            {"up", "down"},          {"before", "after"},       {"above", "below"},        {"maximum", "minimum"},
            {"max", "min"},          {"true", "false"},         {"add", "remove"},         {"added", "removed"},
            {"buy", "sell"},         {"accept", "reject"},      {"allow", "deny"},         {"allowed", "denied"},
            {"include", "exclude"},  {"included", "excluded"},  {"win", "lose"},           {"hot", "cold"},
            {"best", "worst"},       {"import", "export"},      {"encrypt", "decrypt"},    {"upload", "download"},
            {"push", "pull"},        {"lock", "unlock"},        {"install", "uninstall"},  {"connect", "disconnect"},
            {"higher", "lower"},     {"larger", "smaller"},     {"faster", "slower"},      {"north", "south"},
            {"east", "west"},        {"positive", "negative"},  {"success", "failure"},    {"succeed", "fail"},
            {"valid", "invalid"},    {"public", "private"},     {"send", "receive"},       {"love", "hate"},
            {"mute", "unmute"},      {"show", "hide"},          {"visible", "hidden"},     {"compress", "decompress"},
            {"synchronous", "asynchronous"}, {"ascending", "descending"}, {"inside", "outside"}, {"cheap", "expensive"},
            {"cheapest", "priciest"}, {"earliest", "latest"},   {"oldest", "newest"},      {"minimize", "maximize"},
            {"lowercase", "uppercase"}, {"mount", "unmount"},   {"arrive", "depart"},      {"arrival", "departure"},
            {"enter", "exit"},       {"login", "logout"},       {"subscribe", "unsubscribe"}, {"freeze", "unfreeze"},
        };
        std::unordered_map<std::string_view, std::pair<int, int>> out;
        int axis = 0;
        for (auto& p : pairs) {
            ++axis;
            out.emplace(p[0], std::make_pair(axis, +1));
            out.emplace(p[1], std::make_pair(axis, -1));
        }
        return out;
    }();
    return m;
}

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }
bool has_digit(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}
bool ends_with(std::string_view s, std::string_view suf) {
    return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

std::string stem(std::string w) {
    if (has_digit(w) || w.size() <= 3) return w;
    if (ends_with(w, "ies") && w.size() > 4) w = w.substr(0, w.size() - 3) + "y";
    else if (ends_with(w, "sses")) w.resize(w.size() - 2);
    else if (ends_with(w, "s") && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is")) w.pop_back();
    if (ends_with(w, "ing") && w.size() > 5) w.resize(w.size() - 3);
    else if (ends_with(w, "ied") && w.size() > 4) w = w.substr(0, w.size() - 3) + "y";
    else if (ends_with(w, "ed") && w.size() > 4) w.resize(w.size() - 2);
    if (ends_with(w, "e") && w.size() > 4) w.pop_back();
    return w;
}

struct Token {
    std::string text;  // stemmed, with the negation mark when negated
    std::string raw;   // lower-case surface form
    bool stop = false;
    bool number = false;
    bool negated = false;
    bool cue = false;
};

// Lower-cases, splits and expands contractions. A token with empty text is a
// clause break (punctuation).
std::vector<Token> split(std::string_view in) {
    std::string s;
    s.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        // U+2019 RIGHT SINGLE QUOTATION MARK -> '
        if (i + 2 < in.size() && static_cast<unsigned char>(in[i]) == 0xE2 &&
            static_cast<unsigned char>(in[i + 1]) == 0x80 && static_cast<unsigned char>(in[i + 2]) == 0x99) {
            s.push_back('\'');
            i += 2;
            continue;
        }
        auto c = static_cast<unsigned char>(in[i]);
        s.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c));
    }
    std::vector<Token> out;
    auto push = [&](std::string w) {
        Token t;
        t.raw = std::move(w);
        out.push_back(std::move(t));
    };
    auto emit = [&](std::string w) {
        if (w.empty()) return;
        if (ends_with(w, "n't") || w == "cannot") {
            std::string base = w == "cannot" ? "can" : w.substr(0, w.size() - 3);
            if (base == "ca") base = "can";
            else if (base == "wo") base = "will";
            else if (base == "sha") base = "shall";
            if (!base.empty()) push(std::move(base));
            push("not");
            return;
        }
        if (auto q = w.find('\''); q != std::string::npos) w.resize(q);
        if (!w.empty()) push(std::move(w));
    };
    std::string cur;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const bool digit_joint = (c == '.' || c == ',') && !cur.empty() &&
                                 std::isdigit(static_cast<unsigned char>(cur.back())) && i + 1 < s.size() &&
                                 std::isdigit(static_cast<unsigned char>(s[i + 1]));
        const bool apostrophe = c == '\'' && !cur.empty() && i + 1 < s.size() &&
                                std::isalpha(static_cast<unsigned char>(s[i + 1]));
        if (is_word_byte(c) || digit_joint || apostrophe) {
            cur.push_back(static_cast<char>(c));
            continue;
        }
        emit(std::move(cur));
        cur.clear();
        if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == '\n' || c == '(' ||
            c == ')')
            out.push_back(Token{});  // clause break
    }
    emit(std::move(cur));
    return out;
}

std::vector<Token> analyse(std::string_view text) {
    std::vector<Token> toks = split(text);
    int scope = 0;  // content words still under negation
    std::vector<Token> out;
    out.reserve(toks.size());
    for (auto& t : toks) {
        if (t.raw.empty()) {
            scope = 0;
            out.push_back(std::move(t));
            continue;
        }
        if (negation_cues().count(t.raw)) {
            t.cue = true;
            t.text = "not";
            scope = 3;
            out.push_back(std::move(t));
            continue;
        }
        t.number = has_digit(t.raw);
        t.stop = !t.number && stopwords().count(t.raw) > 0;
        t.text = t.number ? t.raw : stem(t.raw);
        if (!t.stop && scope > 0) {
            t.negated = true;
            t.text = std::string(k_neg_mark) + t.text;
            --scope;
        }
        out.push_back(std::move(t));
    }
    return out;
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
    if (m_opts == BuiltinEmbedderOptions{}) return "builtin-v1";
    // A tuned variant must never share an index with builtin-v1.
    char buf[160];
    std::snprintf(buf, sizeof buf, "builtin-v1-d%zu-u%.3g-b%.3g-c%.3g-p%.3g-n%.3g-g%.3g", m_opts.dimension,
                  m_opts.unigram_weight, m_opts.bigram_weight, m_opts.char_weight, m_opts.polarity_boost,
                  m_opts.number_boost, m_opts.negation_boost);
    return buf;
}

std::vector<std::string> BuiltinEmbedder::tokens(std::string_view text) {
    std::vector<std::string> out;
    for (auto& t : analyse(text))
        if (!t.text.empty()) out.push_back(t.text);
    return out;
}

Vector BuiltinEmbedder::embed_one(std::string_view text) const {
    const auto toks = analyse(text);
    Block uni, bi, chr;
    const Token* prev = nullptr;
    const Token* last_stop = nullptr;
    for (const auto& t : toks) {
        if (t.raw.empty()) {  // clause breaks do not cut bigrams: order still matters across commas
            last_stop = nullptr;
            continue;
        }
        float w = t.stop ? 0.15f : 1.0f;
        if (t.number) w *= m_opts.number_boost;
        if (t.cue || t.negated) w *= m_opts.negation_boost;
        if (auto it = polarity().find(t.raw); it != polarity().end()) {
            // Both sides of an antonym pair are one feature with opposite
            // signs; negation flips the side ("not open" ~ "closed").
            const int sign = it->second.second * (t.negated ? -1 : 1);
            uni.add("\x01axis" + std::to_string(it->second.first), m_opts.polarity_boost, sign);
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
        if (last_stop && roles().count(last_stop->raw)) bi.add(last_stop->raw + "\x1e" + t.text, 1.0f);
        last_stop = nullptr;
        prev = &t;
        if (t.number) continue;
        const std::string w2 = (t.negated ? "{" : "<") + (t.negated ? t.text.substr(k_neg_mark.size()) : t.text) + ">";
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
