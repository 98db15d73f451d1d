#pragma once
// The text analysis shared by the built-in embedder and the semantic hit
// guard: lower-casing, tokenising, negation scoping, light stemming, and the
// word lists (stopwords, negation cues, directional prepositions, antonym
// axes). Pure functions, thread-safe.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace l04::text {

// Prefix of a negated word's text: "do not delete logs" -> ..., "¬delet", ...
inline constexpr std::string_view k_neg_mark = "\xC2\xAC";  // "¬"

struct Token {
    std::string text;  // stemmed, with the negation mark when negated; "" = clause break
    std::string raw;   // lower-case surface form
    bool stop = false;
    bool number = false;   // contains a digit
    bool negated = false;  // within three content words after a negation cue
    bool cue = false;      // a negation cue ("not", "no", "never", "n't", ...)
};

// 1. lower-case ASCII; split into word tokens (letters, digits, '_', UTF-8
//    bytes; '.' and ',' inside numbers); "n't" becomes "not"; 's/'re/'ll are
//    stripped; punctuation becomes a clause break (a token with empty text);
//    common synonyms become one word ("utilize" -> "use"), in `raw` too;
// 2. negation cues become "not" and mark up to three following content words
//    (until a clause break) as negated;
// 3. light suffix stemming (-ing, -ed, -ies, -es, -s) of non-numbers.
std::vector<Token> analyse(std::string_view text);

// A lower-case word without its plural or third-person ending (only those:
// "plane" and "plan" never meet), mapped through the synonym table, so
// "utilizes" and "uses" read as "use". The hit guard compares these.
std::string inflection_base(std::string word);
std::string canonical_form(std::string_view raw);

bool is_stopword(std::string_view raw);
bool is_negation_cue(std::string_view raw);
// Prepositions whose object's role matters: from X to Y, X than Y, X or Y.
bool is_role(std::string_view raw);
// Antonym axes (on/off, enable/disable, start/stop, ...): {axis, +1 | -1}.
std::optional<std::pair<int, int>> polarity(std::string_view raw);
// The hit guard's axes: the embedder's table plus pairs known only to the
// guard (encode/decode, read/write, left/right, in/out, ...), matched by
// stem so inflections count ("opened"/"closes", "disabling"/"enabled").
std::optional<std::pair<int, int>> polarity_of(std::string_view raw);

}  // namespace l04::text
