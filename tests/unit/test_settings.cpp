#include "support/test_util.hpp"

#include <l04/config/settings.hpp>

#include <doctest/doctest.h>
#include <l04/core/hash.hpp>
#include <cstring>
#include <pwd.h>
#include <filesystem>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace l04;

namespace {
EnvFn fake_env(std::map<std::string, std::string> vars) {
    return [vars](std::string_view name) -> std::optional<std::string> {
        auto it = vars.find(std::string(name));
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}
}  // namespace

TEST_CASE("settings: defaults - then system file - user file - environment - flags") {
    test::TempDir d;
    test::write_file(d.file("system.toml"), "[cache]\nttl = 100\nenabled = false\n");
    test::write_file(d.file("user.toml"), "[cache]\nttl = \"200s\"\n[rate_limit]\nrequests_per_minute = 5\n");
    SettingsSources src;
    src.system_config = d.file("system.toml");
    src.user_config = d.file("user.toml");
    src.env = fake_env({{"CACHE_TTL", "300"}, {"RATE_LIMIT_REQUESTS_PER_MINUTE", "7"}, {"L04_RATE_LIMIT_REQUESTS_PER_MINUTE", "9"}});
    src.flags = {{"cache.similarity_threshold", "0.9"}};
    auto s = Settings::load(src);
    REQUIRE(s.has_value());
    CHECK(s->get_bool("cache.enabled") == false);
    CHECK(s->source("cache.enabled") == d.file("system.toml"));
    CHECK(s->get_duration_ms("cache.ttl") == 300000);
    CHECK(s->source("cache.ttl") == "env CACHE_TTL");
    // The canonical L04_ name wins over the seed's alias.
    CHECK(s->get_int("rate_limit.requests_per_minute") == 9);
    CHECK(s->source("rate_limit.requests_per_minute") == "env L04_RATE_LIMIT_REQUESTS_PER_MINUTE");
    CHECK(s->get_double("cache.similarity_threshold") == doctest::Approx(0.9));
    CHECK(s->source("cache.similarity_threshold") == "flag");
    CHECK(s->get("routing.strategy") == "balanced");
    CHECK(s->source("routing.strategy") == "default");
}

TEST_CASE("settings: every seed environment name is honoured") {
    std::map<std::string, std::pair<std::string, std::string>> names = {
        {"OPENAI_API_KEY", {"providers.openai.api_key", "k1"}},
        {"ANTHROPIC_API_KEY", {"providers.anthropic.api_key", "k2"}},
        {"OLLAMA_URL", {"providers.ollama.url", "http://127.0.0.1:9"}},
        {"OLLAMA_EMBEDDING_MODEL", {"embedding.ollama_model", "m"}},
        {"OLLAMA_EMBEDDING_DIMENSIONS", {"embedding.ollama_dimensions", "512"}},
        {"CACHE_ENABLED", {"cache.enabled", "false"}},
        {"CACHE_TTL", {"cache.ttl", "10"}},
        {"CACHE_SIMILARITY_THRESHOLD", {"cache.similarity_threshold", "0.9"}},
        {"RATE_LIMIT_ENABLED", {"rate_limit.enabled", "false"}},
        {"RATE_LIMIT_REQUESTS_PER_MINUTE", {"rate_limit.requests_per_minute", "3"}},
        {"RATE_LIMIT_TOKENS_PER_MINUTE", {"rate_limit.tokens_per_minute", "4"}},
        {"CIRCUIT_BREAKER_FAILURE_THRESHOLD", {"circuit_breaker.failure_threshold", "2"}},
        {"CIRCUIT_BREAKER_RECOVERY_TIMEOUT", {"circuit_breaker.recovery_timeout", "30"}},
        {"DEFAULT_ROUTING_STRATEGY", {"routing.strategy", "cheapest"}},
        {"REDIS_URL", {"redis_url", "redis://x"}},
        {"L04_STATE_DIR", {"state_dir", "/tmp/s"}},
        {"L04_RUNTIME_DIR", {"runtime_dir", "/tmp/r"}},
    };
    for (const auto& entry_ : names) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& env = std::get<0>(entry_);
        const auto& kv = std::get<1>(entry_);
        SettingsSources src;
        src.system_config = "/nonexistent/l04.toml";
        src.user_config = "";
        src.env = fake_env({{env, kv.second}, {"HOME", "/tmp/nohome"}});
        auto s = Settings::load(src);
        REQUIRE_MESSAGE(s.has_value(), env);
        CHECK_MESSAGE(s->get(kv.first) == kv.second, env);
    }
}

TEST_CASE("settings: L04_CONFIG names the user file - paths follow XDG") {
    test::TempDir d;
    test::write_file(d.file("my.toml"), "agent = \"cron-job\"\n");
    SettingsSources src;
    src.system_config = "/nonexistent";
    src.env = fake_env({{"L04_CONFIG", d.file("my.toml")}, {"XDG_STATE_HOME", "/x/state"}, {"XDG_RUNTIME_DIR", "/x/run"},
                        {"XDG_CONFIG_HOME", "/x/cfg"}});
    auto s = Settings::load(src);
    REQUIRE(s.has_value());
    CHECK(s->get("agent") == "cron-job");
    CHECK(s->state_dir() == "/x/state/l04");
    // One daemon per state directory: the runtime directory carries a digest
    // of the state directory.
    const std::string tag = sha256_hex("/x/state/l04").substr(0, 12);
    CHECK(s->runtime_dir() == "/x/run/l04-" + tag);
    CHECK(s->socket_path() == "/x/run/l04-" + tag + "/l04d.sock");
    CHECK(s->config_dir() == "/x/cfg/l04");
    SettingsSources other = src;
    other.env = fake_env({{"L04_CONFIG", d.file("my.toml")}, {"XDG_STATE_HOME", "/y/state"}, {"XDG_RUNTIME_DIR", "/x/run"}});
    auto s2 = Settings::load(other);
    REQUIRE(s2.has_value());
    CHECK(s2->runtime_dir() != s->runtime_dir());
    other.env = fake_env({{"L04_CONFIG", d.file("my.toml")}, {"HOME", "/home/cron"}});
    auto s3 = Settings::load(other);
    REQUIRE(s3.has_value());
    CHECK(s3->runtime_dir() == "/tmp/l04-" + std::to_string(::getuid()) + "-" +
                                   sha256_hex("/home/cron/.local/state/l04").substr(0, 12));
}

TEST_CASE("settings: bad files and values are refused with file - line and key") {
    test::TempDir d;
    SettingsSources src;
    src.system_config = "/nonexistent";
    src.env = fake_env({});

    test::write_file(d.file("a.toml"), "[cache]\nttl = \"soon\"\n");
    src.user_config = d.file("a.toml");
    auto a = Settings::load(src);
    REQUIRE_FALSE(a);
    CHECK(a.error().code == ErrorCode::config_invalid);
    CHECK(a.error().message.find("a.toml:2:") != std::string::npos);
    CHECK(a.error().message.find("cache.ttl") != std::string::npos);

    test::write_file(d.file("b.toml"), "[cache]\ntll = 5\n");
    src.user_config = d.file("b.toml");
    auto b = Settings::load(src);
    REQUIRE_FALSE(b);
    CHECK(b.error().message.find("did you mean 'cache.ttl'") != std::string::npos);

    test::write_file(d.file("c.toml"), "[cache\nttl = 5\n");
    src.user_config = d.file("c.toml");
    auto c = Settings::load(src);
    REQUIRE_FALSE(c);
    CHECK(c.error().message.find("c.toml:1:") != std::string::npos);

    src.user_config = d.file("missing.toml");
    auto m = Settings::load(src);
    REQUIRE_FALSE(m);
    CHECK(m.error().code == ErrorCode::config_file_unreadable);

    src.user_config = "";
    src.env = fake_env({{"CACHE_SIMILARITY_THRESHOLD", "high"}, {"HOME", "/nonexistent"}});
    auto e = Settings::load(src);
    REQUIRE_FALSE(e);
    CHECK(e.error().message.find("CACHE_SIMILARITY_THRESHOLD") != std::string::npos);
}

TEST_CASE("settings: secrets are never displayed") {
    SettingsSources src;
    src.system_config = "/nonexistent";
    src.env = fake_env({{"OPENAI_API_KEY", "sk-very-secret"}, {"HOME", "/nonexistent"}});
    auto s = Settings::load(src);
    REQUIRE(s);
    CHECK(s->get("providers.openai.api_key") == "sk-very-secret");
    CHECK(s->display_value("providers.openai.api_key") == "(set, hidden)");
    CHECK(s->display_value("providers.anthropic.api_key") == "(unset)");
    for (const auto& info : settings_table())
        CHECK(s->display_value(info.key).find("sk-very-secret") == std::string::npos);
}

TEST_CASE("settings: queue.provider_concurrency defaults to 64 and must be an integer") {
    SettingsSources src;
    src.system_config = "/nonexistent";
    src.user_config = "";
    src.env = [](std::string_view n) -> std::optional<std::string> {
        if (n == "L04_QUEUE_PROVIDER_CONCURRENCY") return std::string("many");
        return std::nullopt;
    };
    CHECK_FALSE(Settings::load(src));
    src.env = [](std::string_view) { return std::nullopt; };
    auto s = Settings::load(src);
    REQUIRE(s);
    CHECK(s->get_int("queue.provider_concurrency") == 64);
}

TEST_CASE("settings: the systemd user socket in XDG_RUNTIME_DIR/l04 is used with the default state directory") {
    test::TempDir d;
    std::filesystem::create_directories(d.file("run/l04"));
    // The account's home, as a systemd user service has it.
    const passwd* pw = ::getpwuid(::getuid());
    REQUIRE(pw);
    const std::string account_home = pw->pw_dir;
    SettingsSources src;
    src.system_config = "/nonexistent";
    src.env = fake_env({{"HOME", account_home}, {"XDG_RUNTIME_DIR", d.file("run")}, {"XDG_CONFIG_HOME", d.file("cfg")}});
    auto before = Settings::load(src);
    REQUIRE(before.has_value());
    CHECK(before->runtime_dir().rfind(d.file("run") + "/l04-", 0) == 0);  // no socket yet: the digest directory
    // A plain file of that name is not a socket.
    test::write_file(d.file("run/l04/l04d.sock"), "x");
    CHECK(Settings::load(src)->runtime_dir() != d.file("run/l04"));
    std::filesystem::remove(d.file("run/l04/l04d.sock"));
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string sock = d.file("run/l04/l04d.sock");
    REQUIRE(sock.size() < sizeof a.sun_path);
    std::memcpy(a.sun_path, sock.c_str(), sock.size() + 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    auto s = Settings::load(src);
    REQUIRE(s.has_value());
    CHECK(s->runtime_dir() == d.file("run/l04"));
    CHECK(s->socket_path() == sock);
    // Another state directory (or an explicit runtime directory) keeps its own:
    // L04_STATE_DIR, XDG_STATE_HOME, or a HOME other than the account's (a cron job).
    src.env = fake_env({{"HOME", account_home}, {"XDG_RUNTIME_DIR", d.file("run")}, {"L04_STATE_DIR", d.file("other")}});
    CHECK(Settings::load(src)->runtime_dir() != d.file("run/l04"));
    src.env = fake_env({{"HOME", account_home}, {"XDG_RUNTIME_DIR", d.file("run")}, {"XDG_STATE_HOME", d.file("st")}});
    CHECK(Settings::load(src)->runtime_dir() != d.file("run/l04"));
    src.env = fake_env({{"HOME", d.str()}, {"XDG_RUNTIME_DIR", d.file("run")}});
    CHECK(Settings::load(src)->runtime_dir() != d.file("run/l04"));
    src.env = fake_env({{"HOME", account_home}, {"XDG_RUNTIME_DIR", d.file("run")}, {"L04_RUNTIME_DIR", d.file("mine")}});
    CHECK(Settings::load(src)->runtime_dir() == d.file("mine"));
    ::close(fd);
}
