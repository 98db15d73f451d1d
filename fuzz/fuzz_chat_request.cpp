// parse_chat_request on arbitrary bodies, on a 256 KiB stack as in l04d's
// connection threads; an accepted request also survives the round trip
// through chat_request_to_json (what l04ctl sends) and the field table.
// The other body parsers of l04d's edge (/v1/completions, /v1/embeddings,
// /v1/responses) get the same bytes: none may crash, and what the
// Responses translation accepts must round-trip like a chat request.
#include <l04/cache/cache_key.hpp>
#include <l04/core/request_fields.hpp>
#include <l04/wire/completions_json.hpp>
#include <l04/wire/openai_json.hpp>
#include <l04/wire/responses_json.hpp>

#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

struct Job {
    std::string body;
};

void round_trip(const l04::InferenceRequest& r) {
    const auto key = l04::make_cache_key(r, "t", "");
    auto back = l04::parse_chat_request(l04::to_wire(l04::chat_request_to_json(r)));
    if (!back) std::abort();
    if (l04::make_cache_key(*back, "t", "").exact != key.exact) std::abort();
}

void* run(void* p) {
    const auto* job = static_cast<Job*>(p);
    if (auto c = l04::parse_completions_request(job->body)) round_trip(c->req);
    if (auto e = l04::parse_embeddings_request(job->body)) {
        if (e->req.inputs.empty()) std::abort();  // 'input' is required
    }
    if (auto rq = l04::parse_responses_request(job->body)) round_trip(rq->req);
    auto r = l04::parse_chat_request(job->body);
    if (!r) return nullptr;
    for (int k = 0; k < l04::k_provider_kind_count; ++k) (void)l04::refused_field(*r, static_cast<l04::ProviderKind>(k));
    const auto key = l04::make_cache_key(*r, "t", "");
    const std::string wire = l04::to_wire(l04::chat_request_to_json(*r));
    auto back = l04::parse_chat_request(wire);
    if (!back) std::abort();  // what we write we must read
    if (l04::make_cache_key(*back, "t", "").exact != key.exact) std::abort();
    return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Job job{std::string(reinterpret_cast<const char*>(data), size)};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256u << 10);
    pthread_t th;
    if (pthread_create(&th, &attr, run, &job) == 0) pthread_join(th, nullptr);
    pthread_attr_destroy(&attr);
    return 0;
}
