#pragma once
// The offline mock provider. Its answer is derived deterministically from the
// prompt and streamed in several chunks. Per-request options (`-o key=value`,
// the "l04.options" object) drive it:
//   reply=TEXT              answer TEXT instead of the derived one
//   latency_ms=N            wait N ms before answering (on the injected clock)
//   chunk_delay_ms=N        wait N ms between streamed chunks
//   fail_status=N           fail as a provider answering HTTP N would (429, 500, 503, 401, ...)
//   retry_after=S           with fail_status: the Retry-After seconds to report
//   fail_after_chunks=N     stream N chunks, then break the stream (E4604)
//   usage_prompt_tokens=N, usage_completion_tokens=N   report this usage
#include <l04/provider/provider.hpp>

namespace l04 {

class MockProvider final : public Provider {
public:
    MockProvider(std::string id, Clock& clock) : m_id(std::move(id)), m_clock(clock) {}
    const std::string& id() const override { return m_id; }
    Result<InferenceResponse> complete(const ProviderRequest& req) override;
    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override;
    ProviderHealth health_check(std::chrono::milliseconds timeout) override;
    // Deterministic offline vectors (the built-in embedder's features) of
    // the model's embedding_dimensions, or `dimensions` when asked.
    Result<EmbedResult> embed(const EmbedCall& call) override;

    // The answer the mock gives to this request (before chunking).
    static std::string answer_for(const InferenceRequest& req);
    // The pieces the answer is streamed in (at least 3 for any non-empty answer).
    static std::vector<std::string> chunks_of(const std::string& answer);

private:
    Result<InferenceResponse> run(const ProviderRequest& req, const ChunkSink* sink);
    std::string m_id;
    Clock& m_clock;
};

}  // namespace l04
