// Fuzzes what l04ctl reads from files and arguments a user did not write by
// hand: batch input lines, --schema (the compact form and JSON Schema, with
// any value checked against any schema) and template text. None may crash,
// hang or read out of bounds, whatever the input.
#include <l04/batch/batch.hpp>
#include <l04/config/prompt_template.hpp>
#include <l04/core/json_schema.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    l04::BatchDefaults d;
    d.model = "mock";
    auto items = l04::parse_batch_input(in, d);
    for (const auto& it : items) {
        if (it.request) (void)l04::batch_result_json(it, l04::InferenceResponse{});
        if (it.error) (void)l04::batch_error_json(it, *it.error, l04::exit_status(it.error->code));
    }
    (void)l04::compact_schema(in);
    // Split the input: a schema before the first NUL, a value after it.
    const auto nul = in.find('\0');
    const std::string schema_text = in.substr(0, nul);
    const std::string value_text = nul == std::string::npos ? in : in.substr(nul + 1);
    auto schema = nlohmann::json::parse(schema_text, nullptr, false);
    auto value = nlohmann::json::parse(value_text, nullptr, false);
    if (!schema.is_discarded() && !value.is_discarded()) (void)l04::schema_violation(schema, value);
    bool used = false;
    (void)l04::fill_template(in, {{"input", "x"}, {"a", "b"}}, used);
    (void)l04::template_params(in);
    return 0;
}
