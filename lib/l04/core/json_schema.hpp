#pragma once
// Structured output: `--schema` takes a JSON Schema (a file, inline JSON, or
// the compact "name str, age int" form), sends it as response_format, and
// checks the answer against it here. The validator covers the JSON Schema
// keywords structured-output providers accept: type (one or a list),
// properties, required, additionalProperties (boolean or schema), items,
// enum, const, minimum/maximum, minLength/maxLength, minItems/maxItems,
// anyOf, and $ref to "#/$defs/..." or "#/definitions/...". A keyword it does
// not know is ignored, as the specification says.
#include <l04/core/error.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace l04 {

// "name str, age int, tags [str], ok bool, score float: a description"
// → an object schema with every field required and no others allowed.
// Types: str/string, int/integer, float/number/num, bool/boolean, and [T]
// for arrays. Fails with E4502 on a malformed spec.
Result<nlohmann::json> compact_schema(std::string_view spec);

// Reads --schema's argument: inline JSON (starts with '{'), a file path, or
// the compact form. The result is an object schema.
Result<nlohmann::json> load_schema_arg(const std::string& arg);

// "" when value satisfies schema, else where and why it does not
// ("$.age: expected integer, got string").
std::string schema_violation(const nlohmann::json& schema, const nlohmann::json& value);

}  // namespace l04
