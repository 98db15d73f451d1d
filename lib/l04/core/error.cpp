#include <l04/core/error.hpp>

#include <algorithm>

namespace l04 {

std::string code_string(ErrorCode code) {
    return "E" + std::to_string(static_cast<unsigned>(code));
}

namespace {

using F = Failover;
// code, name, retryable, HTTP status, exit status, failover.
// Exit statuses: 1 internal, 3 the caller's to fix, 4 credentials, 5 rate
// limited / budget / queue full, 6 unavailable, 7 timeout, 8 l04d
// unavailable, 9 configuration (l04ctl(1), README "Exit status").
const std::vector<ErrorSpec> k_table = {
    {ErrorCode::config_error, "config_error", false, 500, 9, F::stop},
    {ErrorCode::model_not_found, "model_not_found", false, 404, 3, F::stop},
    // Another provider may be configured: move on.
    {ErrorCode::provider_not_configured, "provider_not_configured", false, 500, 9, F::next_model},
    {ErrorCode::config_file_unreadable, "config_file_unreadable", false, 500, 9, F::stop},
    {ErrorCode::config_invalid, "config_invalid", false, 500, 9, F::stop},
    {ErrorCode::registry_invalid, "registry_invalid", false, 500, 9, F::stop},
    {ErrorCode::daemon_unavailable, "daemon_unavailable", true, 500, 8, F::stop},
    {ErrorCode::internal_error, "internal_error", false, 500, 1, F::stop},
    {ErrorCode::no_suitable_model, "no_suitable_model", false, 503, 6, F::stop},
    // The caller named a strategy that does not exist.
    {ErrorCode::invalid_strategy, "invalid_strategy", false, 400, 3, F::stop},
    {ErrorCode::all_models_unavailable, "all_models_unavailable", true, 503, 6, F::stop},
    {ErrorCode::provider_error, "provider_error", true, 502, 6, F::stop},
    {ErrorCode::provider_unavailable, "provider_unavailable", true, 503, 6, F::stop},
    {ErrorCode::timeout, "timeout", true, 504, 7, F::stop},
    // A bad key at one provider says nothing about the next one's.
    {ErrorCode::auth_failed, "auth_failed", false, 401, 4, F::next_model},
    {ErrorCode::provider_model_not_found, "provider_model_not_found", false, 502, 3, F::next_model},
    // A larger window elsewhere may hold the prompt.
    {ErrorCode::context_length_exceeded, "context_length_exceeded", false, 400, 3, F::next_model},
    // The provider refused the request as written: another would too.
    {ErrorCode::provider_bad_request, "provider_bad_request", false, 400, 3, F::stop},
    {ErrorCode::provider_overloaded, "provider_overloaded", true, 503, 6, F::stop},
    {ErrorCode::cache_error, "cache_error", false, 500, 1, F::stop},
    {ErrorCode::embedding_failed, "embedding_failed", false, 500, 1, F::stop},
    {ErrorCode::cache_index_corrupt, "cache_index_corrupt", false, 500, 1, F::stop},
    {ErrorCode::rate_limit_error, "rate_limit_error", false, 500, 5, F::stop},
    {ErrorCode::rate_limit_exceeded, "rate_limit_exceeded", true, 429, 5, F::stop},
    // One provider's quota (or one agent's budget) is not the next one's.
    {ErrorCode::quota_exhausted, "quota_exhausted", false, 429, 5, F::next_model},
    {ErrorCode::queue_full, "queue_full", true, 429, 5, F::stop},
    {ErrorCode::deadline_exceeded, "deadline_exceeded", false, 504, 7, F::stop},
    {ErrorCode::invalid_request, "invalid_request", false, 400, 3, F::stop},
    {ErrorCode::invalid_messages, "invalid_messages", false, 400, 3, F::stop},
    {ErrorCode::invalid_parameter, "invalid_parameter", false, 400, 3, F::stop},
    {ErrorCode::parse_error, "parse_error", false, 502, 6, F::stop},
    {ErrorCode::empty_response, "empty_response", false, 502, 6, F::stop},
    {ErrorCode::streaming_error, "streaming_error", true, 502, 6, F::stop},
    {ErrorCode::circuit_error, "circuit_error", false, 500, 6, F::stop},
    // An open circuit is one provider's: the next model may be elsewhere.
    {ErrorCode::circuit_open, "circuit_open", true, 503, 6, F::next_model},
    {ErrorCode::recovery_failed, "recovery_failed", false, 500, 6, F::stop},
};

const std::vector<ExitStatusInfo> k_exit_statuses = {
    {0, "success"},
    {1, "internal error; `health`: gateway unhealthy"},
    {2, "usage error (bad command line)"},
    {3, "invalid request (empty prompt, unknown model, bad parameter, a field the provider cannot honour)"},
    {4, "authentication failed at a provider"},
    {5, "rate limited, budget exhausted or queue full (retry later)"},
    {6, "all providers unavailable (errors, open circuits, bad responses)"},
    {7, "timeout or deadline passed"},
    {8, "l04d unavailable (not running, could not be started, or not responding)"},
    {9, "configuration error (config file, provider not configured, unsafe runtime directory)"},
    {130, "interrupted (Ctrl-C)"},
    {141, "stdout closed early (`| head`): the request is cancelled, nothing is printed"},
};

}  // namespace

const std::vector<ErrorSpec>& error_table() {
    static const std::vector<ErrorSpec> sorted = [] {
        auto t = k_table;
        std::sort(t.begin(), t.end(), [](const ErrorSpec& a, const ErrorSpec& b) { return a.code < b.code; });
        return t;
    }();
    return sorted;
}

const ErrorSpec& error_spec(ErrorCode code) {
    const auto& t = error_table();
    auto it = std::lower_bound(t.begin(), t.end(), code, [](const ErrorSpec& s, ErrorCode c) { return s.code < c; });
    if (it != t.end() && it->code == code) return *it;
    return error_spec(ErrorCode::internal_error);
}

std::optional<ErrorCode> error_code_from_number(long number) {
    if (number < 0 || number > 0xffff) return std::nullopt;
    const auto c = static_cast<ErrorCode>(number);
    if (error_spec(c).code != c) return std::nullopt;
    return c;
}

const std::vector<ExitStatusInfo>& exit_status_table() { return k_exit_statuses; }

std::string_view code_name(ErrorCode code) {
    const ErrorSpec& s = error_spec(code);
    return s.code == code ? s.name : std::string_view("unknown");
}

bool default_retryable(ErrorCode code) { return error_spec(code).retryable; }

int default_http_status(ErrorCode code) { return error_spec(code).http_status; }

int exit_status(ErrorCode code) { return error_spec(code).exit_status; }

bool fails_over(ErrorCode code, bool retryable) {
    return retryable || error_spec(code).failover == Failover::next_model;
}

std::string Error::to_string() const {
    std::string s = code_string(code);
    s += ' ';
    s += code_name(code);
    s += ": ";
    s += message;
    return s;
}

}  // namespace l04
