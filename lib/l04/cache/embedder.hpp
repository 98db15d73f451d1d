#pragma once
// Embedders turn prompt text into unit-length float vectors for the semantic
// cache. Vectors of different embedders (different name() or dimension())
// are never compared: each (name, dimension) has its own index, and a cached
// entry remembers which embedder produced its vector.
//
//   builtin-v2   offline, deterministic feature hashing (see BuiltinEmbedder)
//   ollama:<m>   POST {url}/api/embed            (nomic-embed-text, 768)
//   openai:<m>   POST {base_url}/embeddings       (text-embedding-3-small)
//
// Failures are E4301 (embedding_failed); the cache then skips the semantic
// lookup and the request still runs.
#include <l04/core/error.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

using Vector = std::vector<float>;

// Contract: embed() returns exactly one vector per input text, each of
// dimension() floats with L2 norm 1 (an all-zero text embeds to a zero
// vector, which never reaches any threshold). Fails with E4301 and never
// throws. Implementations are thread-safe.
class Embedder {
public:
    virtual ~Embedder() = default;
    // Stable identity persisted with every vector ("builtin-v2").
    virtual std::string name() const = 0;
    virtual std::size_t dimension() const = 0;
    virtual Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) = 0;
};

// Tuning knobs of the built-in embedder (the defaults are what builtin-v2
// means; changing them changes the vectors, so a non-default set gets a
// different name()).
struct BuiltinEmbedderOptions {
    std::size_t dimension = 384;
    float unigram_weight = 1.0f;   // content words
    float stopword_weight = 0.15f; // a stopword's unigram, relative to a content word
    float bigram_weight = 0.6f;    // ordered pairs of adjacent content words
    float char_weight = 0.9f;      // character 3/4-grams of content words
    float polarity_boost = 1.5f;   // signed on/off, enable/disable, ... axes
    float number_boost = 2.0f;     // numbers weigh this much more than words
    float negation_boost = 1.5f;   // "not" and the words it scopes
    bool operator==(const BuiltinEmbedderOptions&) const = default;
};

// The offline embedder: deterministic, no network, no model file.
// Method (builtin-v2), per text:
//  1. lower-case ASCII; split into word tokens (letters, digits, '_', UTF-8
//     bytes; '.' and ',' inside numbers); expand "n't" to "not"; strip 's/'re
//     /'ll; map about 100 common synonyms to one word ("utilize" -> "use",
//     "generate" -> "create", "retrieve" -> "obtain"; text_features.cpp);
//     light suffix stemming (-ing, -ed, -ies, -es, -s).
//  2. negation: "not", "no", "never", "without", "cannot", ... become one
//     cue token "not"; up to three following content words (until
//     punctuation) are rewritten "¬word", so "do not delete logs" shares
//     nothing with "delete logs" beyond the verb's character n-grams.
//  3. features, each hashed (signed, 64-bit FNV-1a with a per-block seed) into
//     `dimension` buckets with sublinear term frequency 1 + ln(tf):
//       - unigrams of words (stopwords weighted 0.15, numbers x2, negated
//         words x1.5),
//       - ordered bigrams of adjacent content words, and role pairs of a
//         directional preposition and the next content word ("from paris",
//         "to london", "than java"), so swapped entities differ,
//       - character 3- and 4-grams of content words with boundary marks
//         (morphology, typos),
//       - polarity axes: each antonym pair (on/off, enable/disable, start/
//         stop, increase/decrease, ...) is one signed unigram feature, +w
//         for one side and -w for the other (negation flips it), so "turn
//         on" vs "turn off" is pushed apart instead of only losing one word.
//     Each block is L2-normalised, scaled by its weight, summed, and the
//     result L2-normalised.
// Quality (bench/semantic_quality_bench, bench/RESULTS.md), with the cache's
// hit guard and margin: at cosine 0.85 it hits 160 of the 999 GPTCache
// paraphrases with 2 wrong hits (both between near-duplicate origins) and
// none of the 103 hand-written near misses. Without the guard it is not safe
// (swapped entities keep every word). It is lexical: rewordings that keep the
// words hit, paraphrases that change most of them miss; use the Ollama or
// OpenAI embedder for those.
class BuiltinEmbedder final : public Embedder {
public:
    explicit BuiltinEmbedder(BuiltinEmbedderOptions opts = {});
    std::string name() const override;
    std::size_t dimension() const override { return m_opts.dimension; }
    Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) override;
    // One text (never fails).
    Vector embed_one(std::string_view text) const;
    // The token stream after normalisation, negation scoping and stemming
    // (for tests and for tuning).
    static std::vector<std::string> tokens(std::string_view text);

private:
    BuiltinEmbedderOptions m_opts;
};

// Scales v to unit length in place; returns false (and leaves zeros) when v
// is all zero or not finite.
bool normalize(Vector& v);
// Dot product (the cosine similarity of unit vectors). AVX2+FMA (with F16C,
// which every AVX2 CPU has) when the CPU has them, checked once at run time;
// portable code otherwise. Implemented in half.cpp.
float dot(const float* a, const float* b, std::size_t n);
// "avx2+fma" or "portable": which kernel dot() uses on this machine.
const char* dot_kernel();

}  // namespace l04
