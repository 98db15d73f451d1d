#pragma once
// The specification's /v1/completions surface beside OpenAI's chat one:
//   * the specification's shape: a chat body (messages, temperature,
//     max_tokens, a `routing` object) answered by {content, model_id,
//     provider, token_usage, latency_ms, cached, request_id, metadata}, and
//     its stream of {content, is_final} chunks ending in one final chunk
//     with the usage (a failure mid-stream is an {error, is_final: false,
//     finish_reason: "error"} chunk and no final one);
//   * OpenAI's legacy text completion on the same path: a body with
//     `prompt` instead of `messages`, answered as `text_completion` with
//     `choices[].text`.
// Both are turned into an InferenceRequest and go through the same pipeline
// as chat; fields of the legacy API that l04 cannot honour (echo, suffix,
// best_of > 1, logprobs, several prompts) are refused with E4502, never
// dropped.
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace l04 {

enum class CompletionShape : std::uint8_t { spec = 0, legacy = 1 };

struct CompletionsRequest {
    InferenceRequest req;
    CompletionShape shape = CompletionShape::spec;
};

Result<CompletionsRequest> parse_completions_request(std::string_view body);

// The specification's response and stream chunks.
nlohmann::json spec_completion_json(const InferenceResponse& r);
nlohmann::json spec_chunk_json(const StreamChunk& c, const std::string& request_id);
nlohmann::json spec_final_chunk_json(const InferenceResponse& r);
nlohmann::json spec_error_chunk_json(const Error& e, const std::string& request_id);

// OpenAI's legacy text completion and its stream chunks.
nlohmann::json legacy_completion_json(const InferenceResponse& r);
nlohmann::json legacy_chunk_json(const std::string& text, const std::string& id, std::int64_t created_s,
                                 const std::string& model, const char* finish_reason);

// POST /v1/embeddings (OpenAI's shape): `input` a string or an array of
// strings (token arrays are refused), `model`, `dimensions`,
// `encoding_format` float | base64, `user`, and an `l04` object (agent,
// cache, timeout, metadata). Any other field is refused with E4502.
struct EmbeddingsRequest {
    EmbedRequest req;
    bool base64 = false;
};
Result<EmbeddingsRequest> parse_embeddings_request(std::string_view body);
nlohmann::json embeddings_response_json(const EmbedResponse& r, bool base64);
// Little-endian float32 bytes in base64, as OpenAI's encoding_format=base64.
std::string floats_base64(const std::vector<float>& v);

}  // namespace l04
