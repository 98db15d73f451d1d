#pragma once
// Providers for pipeline tests (tests/unit/test_gateway.cpp and others):
// ScriptedProvider answers each call from a script (failover, retries);
// GateProvider holds every call until released (concurrency bounds).
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/provider/provider.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace l04::test {

// An answer with the given usage, as a provider would return it.
inline InferenceResponse ok(const std::string& content, std::int64_t in = 100, std::int64_t out = 50) {
    InferenceResponse r;
    r.content = content;
    r.token_usage = {in, out, in + out, false};
    return r;
}

// A scripted failure ("scripted"), with a Retry-After when given.
inline Error err(ErrorCode c, std::optional<std::chrono::milliseconds> retry_after = std::nullopt) {
    Error e(c, "scripted");
    e.retry_after = retry_after;
    return e;
}

// A provider whose results are scripted per call (for failover and retries).
class ScriptedProvider final : public Provider {
public:
    ScriptedProvider(std::string id, std::vector<Result<InferenceResponse>> script)
        : m_id(std::move(id)), m_script(std::move(script)) {}
    const std::string& id() const override { return m_id; }
    Result<InferenceResponse> complete(const ProviderRequest&) override { return next(); }
    Result<InferenceResponse> stream(const ProviderRequest&, const ChunkSink& sink) override {
        if (open_first) sink(StreamChunk{});  // like OpenAI's role event, before the outcome is known
        auto r = next();
        if (r) {
            StreamChunk c;
            c.delta = r->content;
            sink(c);
        }
        return r;
    }
    ProviderHealth health_check(std::chrono::milliseconds) override { return {}; }
    int calls = 0;
    bool open_first = false;

private:
    Result<InferenceResponse> next() {
        ++calls;
        if (m_script.empty()) return fail(ErrorCode::provider_unavailable, "script exhausted: still down");
        auto r = m_script.front();
        m_script.erase(m_script.begin());
        return r;
    }
    std::string m_id;
    std::vector<Result<InferenceResponse>> m_script;
};


// A provider whose calls block until released; it records the most calls
// that were inside it at once.
class GateProvider final : public Provider {
public:
    const std::string& id() const override { return m_id; }
    Result<InferenceResponse> complete(const ProviderRequest&) override {
        std::unique_lock lk(m_mu);
        ++m_inside;
        m_max_inside = std::max(m_max_inside, m_inside);
        m_cv.notify_all();
        m_cv.wait(lk, [&] { return m_open; });
        --m_inside;
        return ok("through the gate");
    }
    Result<InferenceResponse> stream(const ProviderRequest& r, const ChunkSink&) override { return complete(r); }
    ProviderHealth health_check(std::chrono::milliseconds) override { return {}; }
    // Waits until `n` calls are inside (false after 5 s).
    bool wait_inside(int n) {
        std::unique_lock lk(m_mu);
        return m_cv.wait_for(lk, std::chrono::seconds(5), [&] { return m_inside >= n; });
    }
    void open() {
        std::lock_guard lk(m_mu);
        m_open = true;
        m_cv.notify_all();
    }
    int max_inside() {
        std::lock_guard lk(m_mu);
        return m_max_inside;
    }

private:
    std::string m_id = "openai";
    std::mutex m_mu;
    std::condition_variable m_cv;
    int m_inside = 0;
    int m_max_inside = 0;
    bool m_open = false;
};

}  // namespace l04::test
