#include "support/test_util.hpp"

#include <l04/config/registry.hpp>

#include <doctest/doctest.h>

using namespace l04;

TEST_CASE("registry: the installed catalogue has every model of the spec") {
    auto reg = Registry::load({test::models_toml_path()});
    REQUIRE(reg.has_value());
    for (const char* id : {"claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-sonnet-20241022",
                           "claude-3-opus", "claude-3-haiku", "gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-3.5-turbo",
                           "text-embedding-3-small", "llama3.1:8b", "llama3.2:3b", "llava-llama3", "mistral",
                           "codellama", "nomic-embed-text", "claude-code", "mock", "gemini-2.5-flash", "gemini-2.5-pro"}) {
        const ModelInfo* m = reg->find(id);
        REQUIRE_MESSAGE(m != nullptr, id);
        CHECK(reg->provider(m->provider) != nullptr);
        CHECK(m->context_window > 0);
    }
    const ModelInfo* g = reg->find("gpt-4o-mini");
    CHECK(g->input_price == doctest::Approx(0.15));
    CHECK(g->output_price == doctest::Approx(0.60));
    CHECK(g->capabilities.has(Capability::vision));
    CHECK(reg->find("sonnet")->id == "claude-sonnet-4-5");
    CHECK(reg->find("claude-3-opus")->name == "claude-3-opus-20240229");
    CHECK(reg->find("nomic-embed-text")->embedding_dimensions == 768);
    CHECK(reg->provider("claude-code")->kind == "command");
    CHECK(reg->provider("claude-code")->command.at(0) == "claude");
}

TEST_CASE("registry: capability index") {
    auto reg = Registry::load({test::models_toml_path()});
    REQUIRE(reg);
    CapabilitySet emb;
    emb.add(Capability::embedding);
    auto e = reg->with_capabilities(emb);
    CHECK(e.size() == 4);  // text-embedding-3-small, gemini-embedding-001, nomic-embed-text, mock-embed
    CapabilitySet vt;
    vt.add(Capability::vision);
    vt.add(Capability::tool_use);
    for (const auto* m : reg->with_capabilities(vt)) {
        CHECK(m->capabilities.has(Capability::vision));
        CHECK(m->capabilities.has(Capability::tool_use));
    }
    std::size_t brute = 0;
    for (const auto& m : reg->models()) brute += m.capabilities.contains_all(vt);
    CHECK(reg->with_capabilities(vt).size() == brute);
    CHECK(reg->with_capabilities({}).size() == reg->models().size());
}

TEST_CASE("registry: the user's file overrides and extends") {
    test::TempDir d;
    test::write_file(d.file("models.toml"), R"(
[providers.groq]
kind = "openai"
base_url = "https://api.groq.example/openai/v1"
api_key_env = "GROQ_API_KEY"

[[models]]
id = "gpt-4o"
provider = "openai"
capabilities = ["text"]
context_window = 1000
input_price = 9.0

[[models]]
id = "llama-3.3-70b"
provider = "groq"
capabilities = ["text", "streaming"]
context_window = 131072
)");
    auto reg = Registry::load({test::models_toml_path(), d.file("models.toml")});
    REQUIRE(reg.has_value());
    CHECK(reg->find("gpt-4o")->input_price == doctest::Approx(9.0));
    CHECK(reg->find("gpt-4o")->context_window == 1000);
    CHECK(reg->find("llama-3.3-70b")->provider == "groq");
    CHECK(reg->provider("groq")->api_key_env == "GROQ_API_KEY");
    // A missing optional user file is fine.
    CHECK(Registry::load({test::models_toml_path(), d.file("absent.toml")}).has_value());
}

TEST_CASE("registry: malformed files are refused with file - line - column and what was expected") {
    auto bad = [](const std::string& text) {
        auto r = Registry::parse(text, "models.toml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == ErrorCode::registry_invalid);
        return r.error().message;
    };
    CHECK(bad("[[models]\nid = 'x'\n").find("models.toml:1:") == 0);
    auto m1 = bad("[providers.p]\nkind = 'openai'\n[[models]]\nid = 'x'\nprovider = 'p'\ncontext_window = 'big'\n");
    CHECK(m1.find("models.toml:6:") == 0);
    CHECK(m1.find("'context_window' must be an integer") != std::string::npos);
    auto m2 = bad("[[models]]\nprovider = 'p'\n");
    CHECK(m2.find("missing required key 'id'") != std::string::npos);
    auto m3 = bad("[[models]]\nid = 'x'\nprovider = 'p'\ncapabilities = ['text', 'telepathy']\n");
    CHECK(m3.find("unknown capability 'telepathy'") != std::string::npos);
    auto m4 = bad("[providers.p]\nkind = 'carrier-pigeon'\n");
    CHECK(m4.find("models.toml:2:") == 0);
    auto m5 = bad("[[models]]\nid = 'x'\nprovider = 'p'\nquality = 3.0\n");
    CHECK(m5.find("within 0..1") != std::string::npos);
    auto m6 = bad("modles = []\n");
    CHECK(m6.find("unknown top-level key 'modles'") != std::string::npos);
    // A model naming an undefined provider is caught after merging.
    test::TempDir d;
    test::write_file(d.file("m.toml"), "[[models]]\nid = 'x'\nprovider = 'nowhere'\n");
    auto r = Registry::load({d.file("m.toml")});
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("nowhere") != std::string::npos);
}

TEST_CASE("registry: cost arithmetic") {
    ModelInfo m;
    m.input_price = 2.5;
    m.output_price = 10.0;
    TokenUsage u{1000, 500, 1500, false};
    CHECK(cost_usd(m, u) == doctest::Approx(0.0025 + 0.005));
}
