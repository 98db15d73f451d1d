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
    std::multiset<std::string> significant;          // every word stem that can change the answer
    std::vector<std::string> sequence;               // the same, in order (prepositions included)
    std::multiset<std::string> literals;             // quoted text, code spans, identifiers, paths, URLs
};

// Words whose presence or absence does not change what is asked: articles,
// the asker's own pronouns, request scaffolding and politeness. Everything
// else counts (question words, prepositions, modals and auxiliaries such as
// can/do/did, tense, quantifiers, second and third persons): a miss costs
// one provider call, a wrong hit a wrong answer.
bool ignorable(std::string_view raw) {
    static const std::set<std::string_view> k = {
        "a", "an", "the", "is", "are", "am", "be", "being", "have", "has", "having",
        // The asker's own pronouns ("my code" / "our code"); "you", "us",
        // "he", "she", "they" name someone else and count.
        "i", "me", "my", "mine", "we", "our",
        "it", "its", "this", "that", "these", "those", "of", "as", "just", "also", "there", "here",
        "please", "pls", "kindly", "thanks", "thank", "really", "actually", "basically", "simply", "s", "t",
        "some", "so", "ok", "okay", "hi", "hello", "hey",
        // Scaffolding of a request: "explain X", "tell me about X", "I want
        // to know X", "help me with X" ask for X.
        "explain", "describe", "tell", "know", "want", "help", "able", "possible", "way", "about", "let",
        "show", "give", "mean"};
    return k.count(raw) > 0;
}

// The literal pieces of a prompt, case and all: `code spans`, quoted text
// ("...", '...', “...”, ‘...’) and words that look like identifiers, paths,
// URLs, flags or variables (a '/', '_', '.', '$', '-' or '::' inside, a
// leading '-', camelCase). Two prompts that differ in one of these ask
// about different things however alike their words are.
std::multiset<std::string> literals_of(std::string_view s) {
    std::multiset<std::string> out;
    std::size_t i = 0;
    auto close = [&](std::string_view open_seq, std::string_view close_seq) -> bool {
        if (s.substr(i, open_seq.size()) != open_seq) return false;
        const auto start = i + open_seq.size();
        const auto end = s.find(close_seq, start);
        if (end == std::string_view::npos || end == start) return false;
        out.emplace(s.substr(start, end - start));
        i = end + close_seq.size();
        return true;
    };
    std::string word;
    auto flush_word = [&] {
        while (!word.empty() && std::string_view(".,;:!?)]}").find(word.back()) != std::string_view::npos) word.pop_back();
        while (!word.empty() && std::string_view("([{").find(word.front()) != std::string_view::npos) word.erase(0, 1);
        bool ident = false;
        for (std::size_t k = 0; k < word.size() && !ident; ++k) {
            const char c = word[k];
            const bool inner = k > 0 && k + 1 < word.size();
            if (c == '/' || c == '\\' || c == '_' || c == '$' || c == '=' || c == '<' || c == '>' || c == '#' ||
                c == '@' || c == '(' || c == '[' || c == '{' || c == '*' || c == '+' || c == '%' || c == '|' || c == '&')
                ident = true;
            else if ((c == '.' || c == ':' || c == '-') && inner &&
                     !(c == '.' && std::isdigit(static_cast<unsigned char>(word[k - 1])) &&
                       std::isdigit(static_cast<unsigned char>(word[k + 1]))))
                ident = true;
            else if (k == 0 && c == '-' && word.size() > 1)
                ident = true;
            else if (k > 0 && std::islower(static_cast<unsigned char>(word[k - 1])) &&
                     std::isupper(static_cast<unsigned char>(c)))
                ident = true;  // camelCase
        }
        // An apostrophe inside a word ("don't", "user's") is English, not code.
        if (ident) out.insert(word);
        word.clear();
    };
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const bool word_start = word.empty();
        if (word_start && (close("```", "```") || close("`", "`") || close("\"", "\"") ||
                           close("\xE2\x80\x9C", "\xE2\x80\x9D") || close("\xE2\x80\x98", "\xE2\x80\x99") ||
                           ((i == 0 || !std::isalnum(static_cast<unsigned char>(s[i - 1]))) && close("'", "'")))) {
            continue;
        }
        if (std::isspace(c)) {
            flush_word();
            ++i;
            continue;
        }
        word.push_back(static_cast<char>(c));
        ++i;
    }
    flush_word();
    return out;
}

// "v2.10.0" -> "2.10.0", "1,000" -> "1000"; keeps every other letter
// ("50k", "co2" and "no2", "aes256" and "sha256" stay apart).
std::string normalise_number(const std::string& raw) {
    std::string out;
    std::size_t i = 0;
    if (raw.size() > 1 && raw[0] == 'v' && std::isdigit(static_cast<unsigned char>(raw[1]))) i = 1;
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
    f.literals = literals_of(s);
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
        if (t.number) {
            f.numbers.push_back(normalise_number(t.raw));
            f.sequence.push_back(f.numbers.back());  // "yen is 200 dollars" / "dollars is 200 yen"
        }
        if (!t.number && !ignorable(t.raw)) {
            // The surface form up to an inflection ending (never a stem:
            // "plane" and "plan", "state" and "stats" stay apart), through
            // the synonym table, marked when it is under a negation so that
            // where a "not" stands counts too.
            std::string w = (t.negated ? std::string(text::k_neg_mark) : std::string()) + text::canonical_form(t.raw);
            f.significant.insert(w);
            f.sequence.push_back(std::move(w));
        }
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

// The same significant words in another order: who does what to whom may
// have changed ("did the dog bite the man" / "did the man bite the dog",
// "is a square a rectangle" / "is a rectangle a square", "treat warnings as
// errors" / "treat errors as warnings"). Paraphrases that only reorder are
// refused too: a miss costs one provider call.
bool reordered(const Facts& a, const Facts& b) {
    return a.significant == b.significant && a.sequence != b.sequence;
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
        case HitConflict::literal: return "literal";
        case HitConflict::wording: return "wording";
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
    if (q.literals != c.literals) return HitConflict::literal;
    if (roles_swapped(q, c)) return HitConflict::roles;
    if (reordered(q, c)) return HitConflict::order;
    if (q.significant != c.significant) return HitConflict::wording;
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
