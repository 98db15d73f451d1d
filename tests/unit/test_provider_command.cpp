// The command adapter against a small shell script that behaves like a CLI
// (`claude -p`): reads the prompt on stdin, streams lines, exits non-zero,
// hangs. Timeouts are short; the tests never sleep to wait for time (the
// streaming test uses a file handshake instead).
#include "support/test_util.hpp"

#include <l04/core/clock.hpp>
#include <l04/http/transport.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/factory.hpp>

#include <doctest/doctest.h>

#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <csignal>
#include <filesystem>

using namespace l04;

namespace {

// The fake CLI. The first argument picks the behaviour.
constexpr const char* k_script = R"(#!/bin/sh
mode="$1"; shift
case "$mode" in
  echo)
    input=$(cat)
    printf 'line one\n'
    printf 'you said: %s\n' "$input"
    ;;
  args)
    cat >/dev/null
    printf '%s|' "$@"
    ;;
  count)
    wc -c | tr -d ' \n'
    ;;
  handshake)
    cat >/dev/null
    printf 'first\n'
    while [ ! -e "$1" ]; do sleep 0.01; done
    printf 'second\n'
    ;;
  fail_rate)
    cat >/dev/null
    printf 'partial output\n'
    echo "API Error: 429 rate limit reached for requests" >&2
    exit 1
    ;;
  fail_auth)
    cat >/dev/null
    echo "Invalid API key . Please run /login" >&2
    exit 1
    ;;
  fail_other)
    cat >/dev/null
    echo "something unexpected broke" >&2
    exit 3
    ;;
  noisy_ok)
    cat >/dev/null
    echo "warning: nothing serious" >&2
    printf 'fine\n'
    ;;
  hang)
    cat >/dev/null
    printf 'partial\n'
    sleep 30 &
    echo $! > "$1"
    wait
    ;;
  no_stdin)
    printf 'did not read\n'
    ;;
  self_kill)
    cat >/dev/null
    kill -9 $$
    ;;
esac
)";

struct Cli {
    test::TempDir dir;
    std::string script;
    ProviderInfo info;
    ModelInfo model;
    ManualClock clock;
    std::unique_ptr<Provider> provider;

    explicit Cli(std::vector<std::string> args) {
        script = dir.file("fake-claude");
        test::write_file(script, k_script);
        ::chmod(script.c_str(), 0755);
        info.id = "claude-code";
        info.kind = "command";
        info.command = {script};
        info.command.insert(info.command.end(), args.begin(), args.end());
        model.id = "claude-code";
        model.provider = "claude-code";
        model.name = "claude-code";
        ProviderConfig cfg;
        cfg.info = &info;
        cfg.configured = true;
        // Not a real transport: the command adapter never uses one.
        struct NoTransport final : Transport {
            Result<HttpResponseHead> perform(const HttpRequest&, const HeadFn&, const DataFn&) override {
                return fail(ErrorCode::internal_error, "no network in command tests");
            }
        };
        static NoTransport none;
        auto p = make_provider(cfg, none, clock);
        REQUIRE(p);
        provider = std::move(*p);
    }

    ProviderRequest request(const InferenceRequest& r, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                            const CancelToken* cancel = nullptr) {
        return ProviderRequest{r, model, timeout, cancel};
    }
};

InferenceRequest prompt(const std::string& text) {
    InferenceRequest r;
    r.request_id = "req_cmd";
    r.messages.push_back(Message{Role::user, text, "", "", {}});
    return r;
}

// Whether a process has exited, waiting at most 2 s for the exit event
// (signal delivery is asynchronous) through a pidfd, not by sleeping.
bool process_exits(pid_t pid) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) return errno == ESRCH;  // already gone and reaped
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 2000);
    ::close(fd);
    return rc == 1;
}

}  // namespace

TEST_CASE("command: prompt on stdin - stdout as the answer - estimated usage") {
    Cli cli({"echo"});
    auto req = prompt("What is 4200 + 42?");
    auto r = cli.provider->complete(cli.request(req));
    REQUIRE(r);
    CHECK(r->content == "line one\nyou said: What is 4200 + 42?\n");
    CHECK(r->finish_reason == "stop");
    CHECK(r->metadata.at("provider_model") == "claude-code");
    CHECK(r->token_usage.estimated);
    CHECK(r->metadata.at("usage_estimated") == "true");
    CHECK(r->token_usage.prompt_tokens == estimate_prompt_tokens(req));
    CHECK(r->token_usage.completion_tokens == estimate_tokens(r->content));
    CHECK(r->token_usage.total_tokens == r->token_usage.prompt_tokens + r->token_usage.completion_tokens);
}

TEST_CASE("command: stdout is streamed as it comes (line two waits for line one to be delivered)") {
    Cli cli({"handshake"});
    const std::string go = cli.dir.file("go");
    cli.info.command.push_back(go);
    // Rebuild with the handshake path as an argument.
    ProviderConfig cfg;
    cfg.info = &cli.info;
    cfg.configured = true;
    auto p = make_command_provider(cfg, cli.clock);
    std::vector<std::string> chunks;
    int finals = 0;
    auto r = p->stream(cli.request(prompt("x")), [&](const StreamChunk& c) {
        if (c.is_final) {
            ++finals;
            return true;
        }
        chunks.push_back(c.delta);
        if (c.delta.find("first") != std::string::npos) test::write_file(go, "");
        return true;
    });
    REQUIRE(r);
    CHECK(r->content == "first\nsecond\n");
    REQUIRE(chunks.size() >= 2);
    CHECK(chunks.front() == "first\n");
    CHECK(finals == 1);
}

TEST_CASE("command: {model} is replaced - a rich conversation becomes a transcript") {
    Cli cli({"args", "--model", "{model}", "-p"});
    auto r = cli.provider->complete(cli.request(prompt("x")));
    REQUIRE(r);
    CHECK(r->content == "--model|claude-code|-p|");

    Cli echo({"echo"});
    InferenceRequest req = prompt("first question");
    req.system_prompt = "Be brief.";
    req.messages.push_back(Message{Role::assistant, "first answer", "", "", {}});
    req.messages.push_back(Message{Role::user, "second question", "", "", {}});
    auto t = echo.provider->complete(echo.request(req));
    REQUIRE(t);
    CHECK(t->content ==
          "line one\nyou said: System: Be brief.\n\nUser: first question\n\nAssistant: first answer\n\nUser: second "
          "question\n");
}

TEST_CASE("command: a prompt larger than a pipe buffer is written completely") {
    Cli cli({"count"});
    const std::string big(300000, 'x');
    auto r = cli.provider->complete(cli.request(prompt(big)));
    REQUIRE(r);
    CHECK(r->content == "300000");
}

TEST_CASE("command: a CLI that never reads stdin still answers (no SIGPIPE)") {
    Cli cli({"no_stdin"});
    auto r = cli.provider->complete(cli.request(prompt(std::string(200000, 'y'))));
    REQUIRE(r);
    CHECK(r->content == "did not read\n");
}

TEST_CASE("command: exit status and stderr map to errors") {
    {
        Cli cli({"fail_rate"});
        std::string seen;
        auto r = cli.provider->stream(cli.request(prompt("x")), [&](const StreamChunk& c) {
            seen += c.delta;
            return true;
        });
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::rate_limit_exceeded);
        CHECK(r.error().retryable);
        CHECK(r.error().details == "API Error: 429 rate limit reached for requests");
        CHECK(seen == "partial output\n");  // streamed, yet the exit status makes it a failure
    }
    {
        Cli cli({"fail_auth"});
        auto r = cli.provider->complete(cli.request(prompt("x")));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::auth_failed);
        CHECK_FALSE(r.error().retryable);
    }
    {
        Cli cli({"fail_other"});
        auto r = cli.provider->complete(cli.request(prompt("x")));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::provider_error);
        CHECK_FALSE(r.error().retryable);
        CHECK(r.error().message.find("exited with status 3") != std::string::npos);
        CHECK(r.error().details == "something unexpected broke");
    }
    {
        Cli cli({"noisy_ok"});
        auto r = cli.provider->complete(cli.request(prompt("x")));
        REQUIRE(r);
        CHECK(r->content == "fine\n");
    }
    {
        Cli cli({"self_kill"});
        auto r = cli.provider->complete(cli.request(prompt("x")));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::provider_unavailable);
        CHECK(r.error().retryable);
        CHECK(r.error().message.find("signal 9") != std::string::npos);
    }
}

TEST_CASE("command: a hanging CLI is killed at the timeout - with what it started") {
    Cli cli({"hang"});
    const std::string pidfile = cli.dir.file("sleep.pid");
    cli.info.command.push_back(pidfile);
    ProviderConfig cfg;
    cfg.info = &cli.info;
    cfg.configured = true;
    auto p = make_command_provider(cfg, cli.clock);
    std::string seen;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = p->stream(cli.request(prompt("x"), std::chrono::milliseconds(300)), [&](const StreamChunk& c) {
        seen += c.delta;
        return true;
    });
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::timeout);
    CHECK(r.error().retryable);
    CHECK(seen == "partial\n");
    CHECK(took >= std::chrono::milliseconds(300));
    CHECK(took < std::chrono::seconds(3));
    const std::string pid_text = test::read_file(pidfile);
    REQUIRE_FALSE(pid_text.empty());
    CHECK(process_exits(static_cast<pid_t>(std::stol(pid_text))));  // the group was killed
}

TEST_CASE("command: cancel by the sink or by the token kills the CLI") {
    Cli cli({"hang"});
    cli.info.command.push_back(cli.dir.file("sleep.pid"));
    ProviderConfig cfg;
    cfg.info = &cli.info;
    cfg.configured = true;
    auto p = make_command_provider(cfg, cli.clock);
    auto gone = p->stream(cli.request(prompt("x")), [](const StreamChunk&) { return false; });
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code == ErrorCode::streaming_error);
    CHECK_FALSE(gone.error().retryable);

    CancelToken cancel;
    const auto t0 = std::chrono::steady_clock::now();
    auto cancelled = p->stream(cli.request(prompt("x"), std::chrono::seconds(20), &cancel), [&](const StreamChunk&) {
        cancel.cancelled = true;  // the caller leaves after the first chunk
        return true;
    });
    REQUIRE_FALSE(cancelled);
    CHECK(cancelled.error().code == ErrorCode::streaming_error);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}

TEST_CASE("command: missing executable - health") {
    ProviderInfo info;
    info.id = "claude-code";
    info.kind = "command";
    info.command = {"/nonexistent/l04-no-such-cli", "-p"};
    ProviderConfig cfg;
    cfg.info = &info;
    cfg.configured = true;
    ManualClock clock;
    auto p = make_command_provider(cfg, clock);
    ModelInfo m;
    m.name = "x";
    auto req = prompt("x");
    auto r = p->complete(ProviderRequest{req, m, std::chrono::seconds(1), nullptr});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::provider_not_configured);
    CHECK(p->health_check(std::chrono::seconds(1)).state == HealthState::unhealthy);

    Cli cli({"echo"});
    auto h = cli.provider->health_check(std::chrono::seconds(1));
    CHECK(h.state == HealthState::healthy);
    CHECK(h.message == "command found at " + cli.script);
}
