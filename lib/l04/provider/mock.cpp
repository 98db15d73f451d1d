#include <l04/provider/mock.hpp>
#include <l04/cache/replay.hpp>
#include <l04/core/hash.hpp>
#include <l04/core/request_fields.hpp>
#include <l04/core/strings.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace l04 {

namespace {

std::optional<std::int64_t> opt_int(const InferenceRequest& r, const std::string& k) {
    auto it = r.options.find(k);
    if (it == r.options.end()) return std::nullopt;
    char* end = nullptr;
    long long v = std::strtoll(it->second.text.c_str(), &end, 10);
    if (end == it->second.text.c_str()) return std::nullopt;
    return v;
}

bool cancelled(const ProviderRequest& req) { return req.cancel && req.cancel->cancelled.load(); }

}  // namespace

std::string MockProvider::answer_for(const InferenceRequest& req) {
    if (auto it = req.options.find("reply"); it != req.options.end()) return it->second.text;
    std::string prompt = last_user_text(req);
    std::string shown(trim(prompt).substr(0, 120));
    for (auto& c : shown)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (trim(prompt).size() > 120) shown += "...";
    // The digest covers everything the mock was sent (every keyed field,
    // images by their bytes), so tests can see that a field arrived.
    Sha256 h;
    h.update_field(req.system_prompt);
    for (const auto& m : req.messages) h.update_field(message_key_text(m));
    h.update_field(keyed_fields_text(req));
    const std::string tag = h.hex_digest().substr(0, 8);
    int images = 0;
    for (const auto& m : req.messages)
        for (const auto& p : m.parts) images += p.is_image() ? 1 : 0;
    const std::string with =
        images == 0 ? "" : " (with " + std::to_string(images) + (images == 1 ? " image" : " images") + ")";
    return "Mock answer to \"" + shown + "\"" + with + ": this reply comes from l04's offline mock provider (digest " +
           tag + "), so the whole pipeline can be tried without a network.";
}

std::vector<std::string> MockProvider::chunks_of(const std::string& answer) { return stream_pieces(answer); }

Result<InferenceResponse> MockProvider::run(const ProviderRequest& req, const ChunkSink* sink) {
    const auto& r = req.request;
    // The request's deadline holds for the mock like for a real provider:
    // a latency or a paced stream that would pass it ends at it with E4202.
    const auto t0 = m_clock.now();
    const auto budget_ms = std::max<std::int64_t>(0, req.timeout.count());
    const auto elapsed_ms = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(m_clock.now() - t0).count();
    };
    const auto times_out = [&](std::int64_t wait_ms, const std::string& what) -> std::optional<Error> {
        if (elapsed_ms() + wait_ms <= budget_ms) return std::nullopt;
        m_clock.sleep_for(std::chrono::milliseconds(std::max<std::int64_t>(0, budget_ms - elapsed_ms())));
        Error e(ErrorCode::timeout, m_id + " did not " + what + " within the request's " + std::to_string(budget_ms) + " ms");
        e.retryable = false;
        return e;
    };
    if (auto lat = opt_int(r, "latency_ms"); lat && *lat > 0) {
        if (auto e = times_out(*lat, "answer")) return fail(std::move(*e));
        m_clock.sleep_for(std::chrono::milliseconds(*lat));
    }
    if (cancelled(req)) return fail(ErrorCode::streaming_error, "request cancelled by the caller");
    if (auto status = opt_int(r, "fail_status"); status && *status >= 400) {
        std::map<std::string, std::string> headers;
        if (auto it = r.options.find("retry_after"); it != r.options.end()) headers["retry-after"] = it->second.text;
        std::string body = R"({"error":{"message":"mock provider told to fail with HTTP )" +
                           std::to_string(*status) + R"(","type":"mock_error"}})";
        return fail(error_from_http(static_cast<int>(*status), body, headers, m_id, m_clock.wall_ms()));
    }
    std::string answer = answer_for(r);
    std::string finish = "stop";
    // The mock honours stop and max_tokens (as words) like a model would.
    for (const auto& st : r.stop)
        if (auto at = answer.find(st); !st.empty() && at != std::string::npos) answer.resize(at);
    if (r.max_tokens && *r.max_tokens >= 0) {
        std::size_t words = 0, i = 0;
        for (; i < answer.size(); ++i)
            if (answer[i] == ' ' && ++words == static_cast<std::size_t>(*r.max_tokens)) break;
        if (i < answer.size()) {
            answer.resize(i);
            finish = "length";
        }
    }
    InferenceResponse resp;
    resp.request_id = r.request_id;
    resp.model_id = req.model.id;
    resp.provider = m_id;
    resp.metadata["provider_model"] = req.model.name;
    resp.finish_reason = finish;
    for (std::int64_t i = 1; i < r.n.value_or(1); ++i)
        resp.more_choices.push_back({answer + " (choice " + std::to_string(i) + ")", {}, finish, ""});

    const auto delay = opt_int(r, "chunk_delay_ms").value_or(0);
    const auto fail_after = opt_int(r, "fail_after_chunks");
    auto chunks = chunks_of(answer);
    std::int64_t sent = 0;
    for (const auto& piece : chunks) {
        if (fail_after && sent >= *fail_after) {
            Error e(ErrorCode::streaming_error,
                    m_id + " stream broke after " + std::to_string(sent) + " chunks without its final event");
            e.retryable = true;
            return fail(std::move(e));
        }
        if (sink) {
            if (sent > 0 && delay > 0) {
                if (auto e = times_out(delay, "finish its stream")) return fail(std::move(*e));
                m_clock.sleep_for(std::chrono::milliseconds(delay));
            }
            if (cancelled(req)) return fail(ErrorCode::streaming_error, "request cancelled by the caller");
            StreamChunk c;
            c.delta = piece;
            if (!(*sink)(c)) return fail(ErrorCode::streaming_error, "caller went away");
        }
        resp.content += piece;
        ++sent;
    }
    TokenUsage u;
    u.prompt_tokens = opt_int(r, "usage_prompt_tokens").value_or(estimate_prompt_tokens(r));
    std::int64_t completion = estimate_tokens(answer);
    for (const auto& c : resp.more_choices) completion += estimate_tokens(c.content);
    u.completion_tokens = opt_int(r, "usage_completion_tokens").value_or(completion);
    u.total_tokens = u.prompt_tokens + u.completion_tokens;
    u.estimated = false;  // the mock is the provider: what it reports is exact
    resp.token_usage = u;
    if (sink) {
        StreamChunk fin;
        fin.is_final = true;
        fin.usage = u;
        fin.finish_reason = resp.finish_reason;
        (*sink)(fin);
    }
    return resp;
}

Result<InferenceResponse> MockProvider::complete(const ProviderRequest& req) { return run(req, nullptr); }

Result<InferenceResponse> MockProvider::stream(const ProviderRequest& req, const ChunkSink& sink) {
    return run(req, &sink);
}

ProviderHealth MockProvider::health_check(std::chrono::milliseconds) { return {HealthState::healthy, 0.0, "offline mock"}; }


Result<EmbedResult> MockProvider::embed(const EmbedCall& call) {
    std::int64_t dims = call.dimensions.value_or(call.model.embedding_dimensions > 0 ? call.model.embedding_dimensions : 384);
    if (dims < 1 || dims > 8192) return fail(ErrorCode::invalid_parameter, "mock embeddings: dimensions must be 1..8192");
    // Feature hashing of lower-cased words (FNV-1a; a text without words
    // hashes whole), L2-normalised: the same text gives the same vector,
    // texts sharing words are close, and no text gives a zero vector.
    EmbedResult r;
    for (const auto& t : call.inputs) {
        std::vector<float> v(static_cast<std::size_t>(dims), 0.0f);
        std::string word;
        auto flush = [&] {
            if (word.empty()) return;
            std::uint64_t h = 1469598103934665603ull;
            for (unsigned char c : word) h = (h ^ c) * 1099511628211ull;
            v[h % v.size()] += 1.0f;
            word.clear();
        };
        for (unsigned char c : t) {
            if (std::isalnum(c) || c >= 0x80) word += static_cast<char>(std::tolower(c));
            else flush();
        }
        flush();
        if (std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; })) {
            word = t;
            flush();
        }
        double norm = 0;
        for (float x : v) norm += static_cast<double>(x) * x;
        if (norm > 0)
            for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
        r.vectors.push_back(std::move(v));
        r.prompt_tokens += estimate_tokens(t);
    }
    return r;
}

}  // namespace l04
