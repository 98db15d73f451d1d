#pragma once
// Cache keys. `exact` hashes the whole canonical request; `scope` hashes
// everything except the last user message (target, system prompt, sampling
// parameters, tools, response format, earlier turns, tenant): a semantic hit
// is only possible between requests whose scope is equal.
#include <l04/core/types.hpp>

#include <string>
#include <string_view>

namespace l04 {

struct CacheKey {
    std::string exact;   // sha256 hex
    std::string scope;   // sha256 hex
    std::string target;  // model id or "route:<strategy>:<caps>"
    std::string prompt;  // last user message text (what is embedded)
};

// `target` is the resolved registry id for an explicit model, or the routing
// target; `tenant` is empty unless the cache is partitioned per agent.
CacheKey make_cache_key(const InferenceRequest& req, std::string_view target, std::string_view tenant);

}  // namespace l04
