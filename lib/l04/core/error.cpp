#include <l04/core/error.hpp>

namespace l04 {

std::string code_string(ErrorCode code) {
    return "E" + std::to_string(static_cast<unsigned>(code));
}

std::string_view code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::config_error: return "config_error";
        case ErrorCode::model_not_found: return "model_not_found";
        case ErrorCode::provider_not_configured: return "provider_not_configured";
        case ErrorCode::config_file_unreadable: return "config_file_unreadable";
        case ErrorCode::config_invalid: return "config_invalid";
        case ErrorCode::registry_invalid: return "registry_invalid";
        case ErrorCode::no_suitable_model: return "no_suitable_model";
        case ErrorCode::invalid_strategy: return "invalid_strategy";
        case ErrorCode::all_models_unavailable: return "all_models_unavailable";
        case ErrorCode::provider_error: return "provider_error";
        case ErrorCode::provider_unavailable: return "provider_unavailable";
        case ErrorCode::timeout: return "timeout";
        case ErrorCode::auth_failed: return "auth_failed";
        case ErrorCode::provider_model_not_found: return "provider_model_not_found";
        case ErrorCode::context_length_exceeded: return "context_length_exceeded";
        case ErrorCode::provider_bad_request: return "provider_bad_request";
        case ErrorCode::provider_overloaded: return "provider_overloaded";
        case ErrorCode::cache_error: return "cache_error";
        case ErrorCode::embedding_failed: return "embedding_failed";
        case ErrorCode::cache_index_corrupt: return "cache_index_corrupt";
        case ErrorCode::rate_limit_error: return "rate_limit_error";
        case ErrorCode::rate_limit_exceeded: return "rate_limit_exceeded";
        case ErrorCode::quota_exhausted: return "quota_exhausted";
        case ErrorCode::queue_full: return "queue_full";
        case ErrorCode::deadline_exceeded: return "deadline_exceeded";
        case ErrorCode::invalid_request: return "invalid_request";
        case ErrorCode::invalid_messages: return "invalid_messages";
        case ErrorCode::invalid_parameter: return "invalid_parameter";
        case ErrorCode::parse_error: return "parse_error";
        case ErrorCode::empty_response: return "empty_response";
        case ErrorCode::streaming_error: return "streaming_error";
        case ErrorCode::circuit_error: return "circuit_error";
        case ErrorCode::circuit_open: return "circuit_open";
        case ErrorCode::recovery_failed: return "recovery_failed";
        case ErrorCode::internal_error: return "internal_error";
        case ErrorCode::daemon_unavailable: return "daemon_unavailable";
    }
    return "unknown";
}

bool default_retryable(ErrorCode code) {
    switch (code) {
        case ErrorCode::provider_error:
        case ErrorCode::provider_unavailable:
        case ErrorCode::timeout:
        case ErrorCode::provider_overloaded:
        case ErrorCode::rate_limit_exceeded:
        case ErrorCode::streaming_error:
        case ErrorCode::circuit_open:
        case ErrorCode::all_models_unavailable:
        case ErrorCode::daemon_unavailable:
        case ErrorCode::queue_full:
            return true;
        default:
            return false;
    }
}

int default_http_status(ErrorCode code) {
    const auto n = static_cast<unsigned>(code);
    switch (code) {
        case ErrorCode::model_not_found: return 404;
        case ErrorCode::invalid_strategy: return 400;  // the caller named it
        case ErrorCode::auth_failed: return 401;
        case ErrorCode::timeout: return 504;
        case ErrorCode::rate_limit_exceeded:
        case ErrorCode::quota_exhausted:
        case ErrorCode::queue_full: return 429;
        case ErrorCode::deadline_exceeded: return 504;
        case ErrorCode::context_length_exceeded:
        case ErrorCode::provider_bad_request: return 400;
        case ErrorCode::circuit_open:
        case ErrorCode::all_models_unavailable:
        case ErrorCode::provider_unavailable:
        case ErrorCode::provider_overloaded: return 503;
        case ErrorCode::internal_error: return 500;
        default: break;
    }
    if (n >= 4500 && n < 4600) return 400;
    if (n >= 4100 && n < 4200) return 503;
    if (n >= 4200 && n < 4300) return 502;
    if (n >= 4600 && n < 4700) return 502;
    return 500;
}

std::string Error::to_string() const {
    std::string s = code_string(code);
    s += ' ';
    s += code_name(code);
    s += ": ";
    s += message;
    return s;
}

int exit_status(ErrorCode code) {
    const auto n = static_cast<unsigned>(code);
    switch (code) {
        case ErrorCode::model_not_found:
        case ErrorCode::invalid_strategy: return 3;
        case ErrorCode::daemon_unavailable: return 8;
        case ErrorCode::internal_error: return 1;
        case ErrorCode::auth_failed: return 4;
        case ErrorCode::timeout:
        case ErrorCode::deadline_exceeded: return 7;
        case ErrorCode::context_length_exceeded:
        case ErrorCode::provider_bad_request:
        case ErrorCode::provider_model_not_found: return 3;
        case ErrorCode::rate_limit_exceeded:
        case ErrorCode::quota_exhausted:
        case ErrorCode::queue_full:
        case ErrorCode::rate_limit_error: return 5;
        default: break;
    }
    if (n >= 4000 && n < 4100) return 9;
    if (n >= 4100 && n < 4300) return 6;
    if (n >= 4300 && n < 4400) return 1;
    if (n >= 4500 && n < 4600) return 3;
    if (n >= 4600 && n < 4800) return 6;
    return 1;
}

}  // namespace l04
