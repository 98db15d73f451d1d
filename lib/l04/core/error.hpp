#pragma once
// Errors as values: l04::Error carries an E4xxx code, a message, whether a
// retry may succeed, an optional Retry-After and the HTTP status to answer
// with. l04::Result<T> is an expected-style type with the names of C++23
// std::expected (has_value, value, error, value_or). No exception crosses a
// public lib/ API.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace l04 {

// Stable numbers: they are printed, persisted in the ledger and documented.
enum class ErrorCode : std::uint16_t {
    // Configuration E4000-E4099
    config_error = 4000,
    model_not_found = 4001,
    provider_not_configured = 4002,
    config_file_unreadable = 4003,
    config_invalid = 4004,
    registry_invalid = 4005,
    // Routing E4100-E4199
    no_suitable_model = 4100,
    invalid_strategy = 4101,
    all_models_unavailable = 4102,
    // Provider E4200-E4299
    provider_error = 4200,
    provider_unavailable = 4201,
    timeout = 4202,
    auth_failed = 4203,
    provider_model_not_found = 4204,
    context_length_exceeded = 4205,
    provider_bad_request = 4206,
    provider_overloaded = 4207,
    // Cache E4300-E4399
    cache_error = 4300,
    embedding_failed = 4301,
    cache_index_corrupt = 4302,
    // Rate limit E4400-E4499
    rate_limit_error = 4400,
    rate_limit_exceeded = 4401,
    quota_exhausted = 4402,
    queue_full = 4403,
    deadline_exceeded = 4404,
    // Validation E4500-E4599
    invalid_request = 4500,
    invalid_messages = 4501,
    invalid_parameter = 4502,
    // Response E4600-E4699
    parse_error = 4600,
    empty_response = 4601,
    streaming_error = 4604,
    // Circuit breaker E4700-E4799
    circuit_error = 4700,
    circuit_open = 4701,
    recovery_failed = 4702,
    // Internal / transport to the daemon (still in the configuration band's
    // neighbour: the gateway itself could not do its work).
    internal_error = 4099,
    daemon_unavailable = 4098,
};

// What the pipeline does after a model failed with this code: `next_model`
// when another model or provider may well succeed (its key, its circuit, its
// context window, its quota), `stop` when the request itself is at fault or
// no other model would change the outcome. An error marked retryable always
// moves on, whatever its code says.
enum class Failover : std::uint8_t { stop, next_model };

// Everything l04 decides by an error's code, in one row per code: its stable
// name, whether a retry may succeed (unless the site says otherwise), the HTTP
// status l04d answers with, the exit status l04ctl gives it and the failover
// policy. core/error.cpp holds the one table; every switch that used to
// repeat it reads it instead, and a unit test checks the README's and
// l04ctl(1)'s exit-status tables against it.
struct ErrorSpec {
    ErrorCode code;
    std::string_view name;
    bool retryable;
    int http_status;
    int exit_status;
    Failover failover;
};
// Every code, in numeric order.
const std::vector<ErrorSpec>& error_table();
// The row of a code (a row for internal_error when the number is unknown).
const ErrorSpec& error_spec(ErrorCode code);
// The code with this number, if it is one.
std::optional<ErrorCode> error_code_from_number(long number);

// The exit statuses l04ctl documents, with a one-line meaning each (the
// --help footer is rendered from it; l04ctl(1) and the README say more).
struct ExitStatusInfo {
    int status;
    std::string_view meaning;
};
const std::vector<ExitStatusInfo>& exit_status_table();

// The exit status l04ctl gives an error (the table in l04ctl(1)): 1 internal,
// 3 invalid request, 4 authentication, 5 rate limited / budget / queue full,
// 6 unavailable, 7 timeout, 8 l04d unavailable, 9 configuration. Batch result
// lines carry it too ("exit"), so scripts act on either the same way.
int exit_status(ErrorCode code);

// "E4001" for ErrorCode::model_not_found.
std::string code_string(ErrorCode code);
// A short stable name, e.g. "model_not_found".
std::string_view code_name(ErrorCode code);
// Whether errors of this code are retryable unless the site says otherwise.
bool default_retryable(ErrorCode code);
// The HTTP status l04d answers with for this code.
int default_http_status(ErrorCode code);
// Whether a failure with this error lets the pipeline try the next model.
bool fails_over(ErrorCode code, bool retryable);

struct Error {
    ErrorCode code = ErrorCode::internal_error;
    std::string message;
    bool retryable = false;
    std::optional<std::chrono::milliseconds> retry_after;
    int http_status = 500;
    // Provider's own message or other detail (never contains secrets).
    std::string details;

    Error() = default;
    Error(ErrorCode c, std::string msg)
        : code(c), message(std::move(msg)), retryable(default_retryable(c)),
          http_status(default_http_status(c)) {}

    // "E4001 model_not_found: <message>"
    std::string to_string() const;
};

template <class E>
struct Unexpected {
    E value;
};

// Builds the error alternative of a Result: `return l04::fail(Error{...});`
inline Unexpected<Error> fail(Error e) { return Unexpected<Error>{std::move(e)}; }
inline Unexpected<Error> fail(ErrorCode c, std::string msg) {
    return Unexpected<Error>{Error(c, std::move(msg))};
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T v) : m_v(std::in_place_index<0>, std::move(v)) {}
    Result(Unexpected<Error> e) : m_v(std::in_place_index<1>, std::move(e.value)) {}

    bool has_value() const noexcept { return m_v.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    T& value() & { return std::get<0>(m_v); }
    const T& value() const& { return std::get<0>(m_v); }
    T&& value() && { return std::get<0>(std::move(m_v)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const& { return std::get<1>(m_v); }
    Error&& error() && { return std::get<1>(std::move(m_v)); }
    template <class U>
    T value_or(U&& alt) const& {
        return has_value() ? value() : static_cast<T>(std::forward<U>(alt));
    }

private:
    std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Unexpected<Error> e) : m_e(std::move(e.value)) {}
    bool has_value() const noexcept { return !m_e.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    const Error& error() const& { return *m_e; }
    Error&& error() && { return std::move(*m_e); }

private:
    std::optional<Error> m_e;
};

using Status = Result<void>;

}  // namespace l04

// Early returns for errors as values (as ccache's TRY): in a function that
// returns a Result or Status,
//   L04_TRY(db.exec("..."));                 // returns the error, if any
//   L04_TRY_ASSIGN(auto db, open_db(path));  // declares db = the value
// The error is moved out unchanged (code, message, Retry-After, details).
#define L04_TRY_CONCAT_(a, b) a##b
#define L04_TRY_CONCAT(a, b) L04_TRY_CONCAT_(a, b)
#define L04_TRY(expr)                                                   \
    do {                                                                \
        if (auto l04_try_result_ = (expr); !l04_try_result_)            \
            return ::l04::fail(std::move(l04_try_result_).error());     \
    } while (0)
#define L04_TRY_ASSIGN_(tmp, var, expr)                                 \
    auto tmp = (expr);                                                  \
    if (!tmp) return ::l04::fail(std::move(tmp).error());              \
    var = std::move(*tmp)
#define L04_TRY_ASSIGN(var, expr) L04_TRY_ASSIGN_(L04_TRY_CONCAT(l04_try_value_, __LINE__), var, expr)
