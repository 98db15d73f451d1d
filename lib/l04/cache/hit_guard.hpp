#pragma once
// The semantic hit guard: a second opinion on a semantic cache candidate,
// independent of the embedder. Embedders, learned ones included, put
// "turn on the lights" next to "turn off the lights" and "convert 5 km to
// miles" next to "convert 5 miles to km"; their cosine says "close", the
// answer says "wrong". Before a candidate above the threshold is served, the
// guard compares the two prompt texts and refuses the hit when they differ in
// a way that changes the answer:
//   numbers   the sequences of numbers differ ("800 by 600" / "600 by 800",
//             "version 2" / "version 3", or a number only one side has);
//   negation  one prompt is negated and the other is not;
//   polarity  both use one antonym axis with opposite net signs (on/off,
//             enable/disable, encode/decode, ...; matched by stem);
//   roles     a directional preposition (from, to, into, than, or, vs) takes
//             different objects and the objects appear on both sides
//             ("from Paris to London" / "from London to Paris");
//   order     the same content words with two of them swapped ("did the
//             dog bite the man" / "did the man bite the dog");
//   literal   quoted text, `code`, identifiers, paths, URLs, flags or
//             variables differ, case included ("/etc/hosts" / "/etc/hostname",
//             translate "good morning" / "good night");
//   wording   any other word differs, after lower-casing, light stemming and
//             the embedder's synonym table, except articles, the asker's own
//             pronouns, question scaffolding (do, can, is) and politeness:
//             a changed verb ("selects" / "deletes"), entity ("Austria" /
//             "Australia"), language, unit, month, comparison word or a
//             negating prefix ("leap" / "non-leap", "sorted" / "unsorted").
// So a semantic hit is served only for the same words in another form:
// case, punctuation, inflection, known synonyms, filler.
// A refused candidate is a miss (the provider answers), never an error; it is
// counted in `cache stats` as a guard rejection.
#include <string_view>
#include <vector>

namespace l04 {

enum class HitConflict { none, numbers, negation, polarity, roles, order, literal, wording };

const char* to_string(HitConflict c);

// Why `cached` must not answer `query`, or HitConflict::none.
HitConflict semantic_conflict(std::string_view query, std::string_view cached);

// A cached entry found by the vector search.
struct SemanticCandidate {
    double similarity = 0;
    std::string_view prompt;  // the cached prompt text
    std::string_view answer;  // what it would serve (entries with equal answers never compete)
};

struct SemanticChoice {
    int index = -1;  // the candidate to serve, or -1 (a miss)
    HitConflict refused = HitConflict::none;  // why the best candidate above the threshold was refused
    bool ambiguous = false;  // a different answer was within the margin
};

// The semantic hit decision, shared by the cache and its benchmark.
// `cands` is sorted by similarity, best first. The hit is the best candidate
// at or above `threshold` that the guard lets through (when `guard`). It is
// refused as ambiguous when another guard-passing candidate with a different
// answer is within `margin` of it: two cached prompts almost equally close
// to the query mean the query could be either one, and a miss costs one
// provider call while a wrong hit costs a wrong answer. A candidate with
// similarity 1 (the query's own words) is never ambiguous.
SemanticChoice choose_semantic_hit(std::string_view query, const std::vector<SemanticCandidate>& cands,
                                   double threshold, double margin, bool guard);

}  // namespace l04
