// Structured output checks (core/json_schema) and template filling
// (config/prompt_template).
#include <l04/config/prompt_template.hpp>
#include <l04/core/json_schema.hpp>

#include "support/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>

using namespace l04;
using nlohmann::json;

TEST_CASE("compact schema - fields - types - lists - descriptions") {
    auto s = compact_schema("name str, age int, score float: 0 to 1, ok bool, tags [str]\nnote");
    REQUIRE(s);
    CHECK((*s)["type"] == "object");
    CHECK((*s)["additionalProperties"] == false);
    CHECK((*s)["required"] == json({"name", "age", "score", "ok", "tags", "note"}));
    CHECK((*s)["properties"]["age"]["type"] == "integer");
    CHECK((*s)["properties"]["score"]["description"] == "0 to 1");
    CHECK((*s)["properties"]["tags"] == json({{"type", "array"}, {"items", {{"type", "string"}}}}));
    CHECK((*s)["properties"]["note"]["type"] == "string");
    CHECK_FALSE(compact_schema("age years"));
    CHECK_FALSE(compact_schema(""));
    CHECK_FALSE(compact_schema("a str, a int"));
    CHECK_FALSE(compact_schema("{bad} str"));
}

TEST_CASE("schema violations name the place and the reason") {
    const json s = json::parse(R"({
      "type": "object",
      "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "kind": {"enum": ["cat", "dog"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "owner": {"$ref": "#/$defs/person"},
        "maybe": {"type": ["string", "null"]},
        "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}
      },
      "required": ["name", "age"],
      "additionalProperties": false,
      "$defs": {"person": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}
    })");
    CHECK(schema_violation(s, json::parse(R"({"name":"Ada","age":36})")) == "");
    CHECK(schema_violation(s, json::parse(R"({"name":"Ada","age":36.0,"kind":"cat","tags":["a"],"owner":{"id":1},"maybe":null,"either":true})")) == "");
    CHECK(schema_violation(s, json::parse(R"({"name":"Ada"})")) == "$: the required field 'age' is missing");
    CHECK(schema_violation(s, json::parse(R"({"name":"Ada","age":"36"})")) == "$.age: expected integer, got string");
    CHECK(schema_violation(s, json::parse(R"({"name":"Ada","age":36.5})")) == "$.age: expected integer, got number");
    CHECK(schema_violation(s, json::parse(R"({"name":"Ada","age":200})")).find("maximum") != std::string::npos);
    CHECK(schema_violation(s, json::parse(R"({"name":"","age":1})")).find("shorter") != std::string::npos);
    CHECK(schema_violation(s, json::parse(R"({"name":"A","age":1,"extra":1})")) == "$: the field 'extra' is not allowed");
    CHECK(schema_violation(s, json::parse(R"({"name":"A","age":1,"kind":"cow"})")).find("is not one of") != std::string::npos);
    CHECK(schema_violation(s, json::parse(R"({"name":"A","age":1,"tags":["a",2]})")) == "$.tags[1]: expected string, got integer");
    CHECK(schema_violation(s, json::parse(R"({"name":"A","age":1,"tags":["a","b","c"]})")).find("more than") != std::string::npos);
    CHECK(schema_violation(s, json::parse(R"({"name":"A","age":1,"owner":{}})")) == "$.owner: the required field 'id' is missing");
    CHECK(schema_violation(s, json::parse(R"({"name":"A","age":1,"either":"x"})")).find("anyOf") != std::string::npos);
    CHECK(schema_violation(s, json::parse(R"([1])")) == "$: expected object, got array");
    // A schema referring to itself without end is stopped, not followed forever.
    const json loop = json::parse(R"({"$ref":"#"})");
    CHECK(schema_violation(loop, json(1)).find("too deep") != std::string::npos);
}

TEST_CASE("--schema arguments - inline JSON - a file - the compact form") {
    test::TempDir d;
    test::write_file(d.file("s.json"), R"({"type":"object","properties":{"x":{"type":"integer"}}})");
    auto f = load_schema_arg(d.file("s.json"));
    REQUIRE(f);
    CHECK((*f)["properties"]["x"]["type"] == "integer");
    CHECK(load_schema_arg(R"({"type":"object"})"));
    CHECK(load_schema_arg("x int"));
    CHECK_FALSE(load_schema_arg(R"({"type":"array"})"));  // the top is an object
    CHECK_FALSE(load_schema_arg("{not json"));
    test::write_file(d.file("bad.json"), "nope");
    CHECK_FALSE(load_schema_arg(d.file("bad.json")));
}

TEST_CASE("templates - parameters - literal braces - missing values - names") {
    bool used = false;
    auto r = fill_template("Sum {input} in {n} words {{literal}} {\"json\": 1} {x y}", {{"input", "TEXT"}, {"n", "5"}}, used);
    REQUIRE(r);
    CHECK(*r == "Sum TEXT in 5 words {literal} {\"json\": 1} {x y}");
    CHECK(used);
    used = false;
    auto m = fill_template("{a} and {b} and {a}", {{"a", "1"}}, used);
    REQUIRE_FALSE(m);
    CHECK(m.error().message.find("'b'") != std::string::npos);
    CHECK_FALSE(used);
    CHECK(template_params("{a} {input} {{no}} {a} {b_2}") == std::vector<std::string>{"a", "input", "b_2"});
    CHECK(valid_template_name("summ-2.v1"));
    CHECK_FALSE(valid_template_name("../etc/passwd"));
    CHECK_FALSE(valid_template_name(".hidden"));
    CHECK_FALSE(valid_template_name("a/b"));
    CHECK_FALSE(valid_template_name(""));

    test::TempDir d;
    std::filesystem::create_directories(d.file("templates"));
    test::write_file(d.file("templates/t.toml"),
                     "description = \"d\"\nsystem = \"be {tone}\"\nprompt = \"{input}\"\nmodel = \"mock\"\n"
                     "temperature = 0.5\nmax_tokens = 7\nschema = \"a int\"\n[options]\nreply = \"R\"\ntop_k = 4\n"
                     "[defaults]\ntone = \"brief\"\n");
    test::write_file(d.file("templates/bad.toml"), "promt = \"typo\"\n");
    auto t = load_template(d.str(), "t");
    REQUIRE(t);
    CHECK(t->system == "be {tone}");
    CHECK(t->model == "mock");
    CHECK(*t->temperature == doctest::Approx(0.5));
    CHECK(*t->max_tokens == 7);
    CHECK(t->schema == "a int");
    CHECK(t->options.at("reply").text == "R");
    CHECK(t->options.at("top_k").kind == OptionValue::Kind::number);
    CHECK(t->defaults.at("tone") == "brief");
    auto bad = load_template(d.str(), "bad");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("unknown key 'promt'") != std::string::npos);
    auto missing = load_template(d.str(), "nope");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.find("there are: bad, t") != std::string::npos);
    CHECK(template_names(d.str()) == std::vector<std::string>{"bad", "t"});
}
