#pragma once
// The one rule for every request field: for each field of the OpenAI chat
// request l04 accepts, and for each provider kind, whether it is forwarded
// as is, mapped to the provider's own form, used by the gateway itself, or
// refused. Nothing is dropped: a request using a field its provider cannot
// honour is refused with E4502 naming the field and the provider, and the
// router drops such models like ones missing a capability.
//
// The same table says which fields are part of the cache key (`key_text`):
// every forwarded or mapped field is, and each field that is not says why
// (it cannot change the answer). tests/unit/test_request_fields.cpp walks
// the table; docs/providers.md holds its rendering (render_field_table).
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

enum class ProviderKind : std::uint8_t { openai = 0, anthropic = 1, ollama = 2, gemini = 3, command = 4, mock = 5 };
constexpr int k_provider_kind_count = 6;
std::string_view provider_kind_name(ProviderKind k);
std::optional<ProviderKind> parse_provider_kind(std::string_view s);

// How a provider kind handles a field that the request sets.
enum class FieldUse : std::uint8_t {
    forward = 0,  // sent under the same name and shape
    map = 1,      // sent in the provider's own form (doc says which)
    gateway = 2,  // used by l04 itself (routing, ledger, streaming); not sent
    refuse = 3,   // the request is refused with E4502
    partly = 4,   // some values honoured, others refused (doc says which)
};
std::string_view field_use_name(FieldUse u);

struct FieldSupport {
    FieldUse use = FieldUse::refuse;
    const char* doc = "";  // e.g. "stop_sequences", "only 0-1"
};

struct FieldRow {
    const char* name;  // as in the OpenAI request, e.g. "seed", "messages[].content[image_url]"
    // Whether the request sets the field to something that needs a provider
    // to honour it (`n: 1` and `logprobs: false` need nothing).
    bool (*is_set)(const InferenceRequest&);
    // Sets the field to a value that needs honouring (for tests and docs).
    void (*sample)(InferenceRequest&);
    // The field's canonical text for the cache key, or nullptr when the
    // field never changes the answer; then `not_keyed_because` says why.
    std::string (*key_text)(const InferenceRequest&);
    const char* not_keyed_because;
    std::array<FieldSupport, k_provider_kind_count> support;
    // For FieldUse::partly: the reason a value is refused, or nullopt.
    std::optional<std::string> (*partly)(const InferenceRequest&, ProviderKind) = nullptr;
};

// Every row, in documentation order.
const std::vector<FieldRow>& field_table();

struct FieldRefusal {
    std::string field;
    std::string reason;  // "anthropic has no seed", "only 0-1"
};

// The first field of `req` that a provider of kind `kind` cannot honour, or
// nullopt. `options` (-o) are checked against the kind's known options.
std::optional<FieldRefusal> refused_field(const InferenceRequest& req, ProviderKind kind);

// The E4502 error for a refusal on provider `provider` (kind `kind`).
Error refusal_error(const FieldRefusal& r, std::string_view provider, std::string_view model);

// Whether `name` is a top-level field of the chat request that l04 reads
// itself (the parser's list); other top-level fields are "extra".
bool is_request_field_name(std::string_view name);

// Native options (`-o key=value`) a kind knows; empty for openai (any name
// is sent as a top-level field) and command (none). For documentation and
// the refusal message.
std::vector<std::string> known_options(ProviderKind kind);

// Markdown table of field_table() for docs/providers.md.
std::string render_field_table();

// The canonical text of every keyed field except the messages (which the
// cache key splits into scope and prompt): the rows' key_text joined.
std::string keyed_fields_text(const InferenceRequest& req);

// Canonical text of one message for keys and digests: role, text, name,
// tool calls, and each content part (images by the SHA-256 of their bytes'
// base64 text, or their URL).
std::string message_key_text(const Message& m);

// Canonical text of the parts of a message other than its text (images,
// other parts), empty when it has none: what the semantic cache must match
// exactly beside the embedded prompt text.
std::string non_text_parts_key_text(const Message& m);

}  // namespace l04
