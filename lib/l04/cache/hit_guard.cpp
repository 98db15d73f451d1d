#include <l04/cache/hit_guard.hpp>
#include <l04/cache/text_features.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace l04 {

namespace {

struct Facts {
    std::vector<std::string> numbers;                // in order, normalised
    bool negated = false;                            // any negation cue
    std::map<int, int> axes;                         // antonym axis -> net sign
    std::map<std::string, std::string> role_of;      // content word -> preposition before it
    std::vector<std::string> words;                  // content word stems, in order
};

// "v2.10.0" -> "2.10.0", "1,000" -> "1000"; keeps unit suffixes ("50k").
std::string normalise_number(const std::string& raw) {
    std::string out;
    std::size_t i = 0;
    while (i < raw.size() && !std::isdigit(static_cast<unsigned char>(raw[i]))) ++i;
    for (; i < raw.size(); ++i)
        if (raw[i] != ',') out.push_back(raw[i]);
    return out;
}

std::string plain(const text::Token& t) {
    return t.negated ? t.text.substr(text::k_neg_mark.size()) : t.text;
}

// Prepositions that give their object a direction. "by", "with", "in" are
// left out: passive and reordered paraphrases move words across them.
bool directional(std::string_view w) {
    return w == "from" || w == "to" || w == "into" || w == "onto" || w == "than" || w == "vs" || w == "or";
}

Facts facts_of(std::string_view s) {
    Facts f;
    const auto toks = text::analyse(s);
    std::string role;  // the directional preposition waiting for its object
    for (const auto& t : toks) {
        if (t.text.empty()) {
            role.clear();
            continue;
        }
        if (t.cue) {
            f.negated = true;
            continue;
        }
        if (auto axis = text::polarity_of(t.raw)) f.axes[axis->first] += axis->second * (t.negated ? -1 : 1);
        if (t.number) f.numbers.push_back(normalise_number(t.raw));
        if (directional(t.raw)) {
            role = t.raw;
            continue;
        }
        if (t.stop) continue;
        const std::string w = plain(t);
        f.words.push_back(w);
        auto [it, fresh] = f.role_of.emplace(w, role);
        if (!fresh && it->second.empty()) it->second = role;
        role.clear();
    }
    return f;
}

int sign(int x) { return (x > 0) - (x < 0); }

// Entities that trade places: two or more words present on both sides whose
// directional preposition changed ("from Paris to London" / "from London to
// Paris", "5 km to miles" / "5 miles to km"). One moved word is a rewording.
bool roles_swapped(const Facts& a, const Facts& b) {
    int moved = 0;
    for (const auto& [w, ra] : a.role_of) {
        auto it = b.role_of.find(w);
        if (it != b.role_of.end() && it->second != ra && (!ra.empty() || !it->second.empty())) ++moved;
    }
    return moved >= 2;
}

// The same content words with two of them trading places ("did the dog
// bite the man" / "did the man bite the dog"): who does what to whom
// changed. Larger reorderings ("X has Y as its default" / "the default of X
// is Y") are how paraphrases are written, and pass.
bool reordered(const Facts& a, const Facts& b) {
    if (a.words.size() != b.words.size() || a.words.size() < 2) return false;
    std::vector<std::size_t> diff;
    for (std::size_t i = 0; i < a.words.size(); ++i)
        if (a.words[i] != b.words[i]) diff.push_back(i);
    return diff.size() == 2 && a.words[diff[0]] == b.words[diff[1]] && a.words[diff[1]] == b.words[diff[0]];
}

}  // namespace

const char* to_string(HitConflict c) {
    switch (c) {
        case HitConflict::none: return "none";
        case HitConflict::numbers: return "numbers";
        case HitConflict::negation: return "negation";
        case HitConflict::polarity: return "polarity";
        case HitConflict::roles: return "roles";
        case HitConflict::order: return "order";
    }
    return "none";
}

namespace {

HitConflict conflict(const Facts& q, const Facts& c) {
    if (q.numbers != c.numbers) return HitConflict::numbers;
    if (q.negated != c.negated) return HitConflict::negation;
    for (const auto& [axis, s] : q.axes) {
        auto it = c.axes.find(axis);
        if (it != c.axes.end() && sign(it->second) * sign(s) < 0) return HitConflict::polarity;
    }
    if (roles_swapped(q, c)) return HitConflict::roles;
    if (reordered(q, c)) return HitConflict::order;
    return HitConflict::none;
}

}  // namespace

HitConflict semantic_conflict(std::string_view query, std::string_view cached) {
    return conflict(facts_of(query), facts_of(cached));
}

SemanticChoice choose_semantic_hit(std::string_view query, const std::vector<SemanticCandidate>& cands,
                                   double threshold, double margin, bool guard) {
    SemanticChoice out;
    std::optional<Facts> qf;  // the query is analysed once, and only when a candidate needs it
    auto refuses = [&](const SemanticCandidate& c) {
        if (!qf) qf = facts_of(query);
        return conflict(*qf, facts_of(c.prompt));
    };
    auto passes = [&](const SemanticCandidate& c) {
        if (!guard) return true;
        const auto why = refuses(c);
        if (why != HitConflict::none && out.refused == HitConflict::none) out.refused = why;
        return why == HitConflict::none;
    };
    std::size_t i = 0;
    for (; i < cands.size(); ++i) {
        // 1e-6: the same text re-embedded must reach a threshold of 1.0.
        if (cands[i].similarity + 1e-6 < threshold) return out;
        if (passes(cands[i])) break;
    }
    if (i == cands.size()) return out;
    // A candidate whose vector equals the query's (the same words after
    // normalisation: case and punctuation aside) is the query.
    const bool identical = cands[i].similarity + 1e-6 >= 1.0;
    for (std::size_t j = i + 1; j < cands.size() && !identical && margin > 0; ++j) {
        if (cands[j].similarity + margin < cands[i].similarity) break;
        if (cands[j].answer == cands[i].answer) continue;
        if (guard && refuses(cands[j]) != HitConflict::none) continue;
        out.ambiguous = true;
        return out;
    }
    out.index = static_cast<int>(i);
    return out;
}

}  // namespace l04
