// End-to-end: the real l04ctl binary against the real l04d it starts itself.
#include "support/daemon_env.hpp"

#include <l04/store/schema.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <future>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using l04::test::DaemonEnv;
using nlohmann::json;

namespace {
int count_occurrences(const std::string& hay, const std::string& needle) {
    int n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}
}  // namespace

TEST_CASE("prompt streams through an auto-started l04d and the repeat is a cache hit") {
    DaemonEnv env;
    auto r1 = env.ctl({"prompt", "-m", "mock", "-v", "What", "is", "l04?"});
    INFO(r1.err);
    REQUIRE(r1.exit_code == 0);
    CHECK(r1.out.find("Mock answer to \"What is l04?\"") == 0);
    CHECK(r1.out.back() == '\n');
    CHECK(r1.err.find("cache: miss") != std::string::npos);
    CHECK(env.daemon_pid() > 0);
    CHECK(std::filesystem::exists(env.socket_path()));
    CHECK((std::filesystem::status(env.socket_path()).permissions() & std::filesystem::perms::others_all) ==
          std::filesystem::perms::none);
    CHECK((std::filesystem::status(env.runtime_dir()).permissions() & std::filesystem::perms::group_all) ==
          std::filesystem::perms::none);

    auto r2 = env.ctl({"prompt", "-m", "mock", "--json", "What is l04?"});
    REQUIRE(r2.exit_code == 0);
    auto j = json::parse(r2.out);
    CHECK(j["cached"] == true);
    CHECK(j["cache_hit"] == "exact");
    CHECK(j["content"].get<std::string>() + "\n" == r1.out);
    CHECK(j["model_id"] == "mock");
    CHECK(j["provider"] == "mock");
    CHECK(j["token_usage"]["total_tokens"].get<int>() ==
          j["token_usage"]["prompt_tokens"].get<int>() + j["token_usage"]["completion_tokens"].get<int>());

    auto stats = env.ctl({"cache", "stats", "--json"});
    REQUIRE(stats.exit_code == 0);
    auto s = json::parse(stats.out);
    CHECK(s["entries"] == 1);
    CHECK(s["exact_hits"] == 1);
    CHECK(s["misses"] == 1);
}

TEST_CASE("stdin and prompt text combine as documented") {
    DaemonEnv env;
    auto r = env.ctl({"prompt", "-m", "mock", "--json", "summarise"}, "some file content\n");
    REQUIRE(r.exit_code == 0);
    // The mock echoes the start of the prompt: stdin first, then TEXT.
    CHECK(json::parse(r.out)["content"].get<std::string>().find("\"some file content  summarise\"") != std::string::npos);
    auto only_stdin = env.ctl({"prompt", "-m", "mock", "-o", "reply=from stdin"}, "question on stdin");
    CHECK(only_stdin.out == "from stdin\n");
    auto no_stdin = env.ctl({"prompt", "-m", "mock", "--no-stdin", "--json", "just args"}, "ignored");
    CHECK(json::parse(no_stdin.out)["content"].get<std::string>().find("\"just args\"") != std::string::npos);
}

TEST_CASE("models list - models show and config show") {
    DaemonEnv env;
    auto r = env.ctl({"models", "list"});
    REQUIRE(r.exit_code == 0);
    for (const char* id : {"claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-sonnet-20241022",
                           "claude-3-opus", "claude-3-haiku", "gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-3.5-turbo",
                           "text-embedding-3-small", "llama3.1:8b", "llama3.2:3b", "llava-llama3", "mistral",
                           "codellama", "nomic-embed-text", "claude-code", "mock"})
        CHECK_MESSAGE(r.out.find(std::string("\n") + id + " ") != std::string::npos, id);
    auto vision = env.ctl({"models", "list", "--capability", "vision", "--json"});
    for (const auto& m : json::parse(vision.out))
        CHECK(std::find(m["capabilities"].begin(), m["capabilities"].end(), "vision") != m["capabilities"].end());
    auto show = env.ctl({"models", "show", "sonnet", "--json"});
    REQUIRE(show.exit_code == 0);
    CHECK(json::parse(show.out)["id"] == "claude-sonnet-4-5");
    auto bad = env.ctl({"models", "show", "gpt-4x"});
    CHECK(bad.exit_code == 3);
    CHECK(bad.err.find("E4001") != std::string::npos);

    env.env()["OPENAI_API_KEY"] = "sk-test-secret-value";
    auto cfg = env.ctl({"config", "show", "--json"});
    REQUIRE(cfg.exit_code == 0);
    CHECK(cfg.out.find("sk-test-secret-value") == std::string::npos);
    bool found = false;
    for (const auto& row : json::parse(cfg.out))
        if (row["key"] == "providers.openai.api_key") {
            found = true;
            CHECK(row["source"] == "env OPENAI_API_KEY");
        }
    CHECK(found);
}

TEST_CASE("health and cache stats never start a daemon - health reports the spec's shape") {
    DaemonEnv env;
    auto h = env.ctl({"health"});
    CHECK(h.exit_code == 8);
    CHECK(h.err.find("not running") != std::string::npos);
    CHECK(env.ctl({"cache", "stats"}).exit_code == 8);
    CHECK(env.daemon_pid() == 0);
    CHECK_FALSE(std::filesystem::exists(env.socket_path()));

    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    auto hj = env.ctl({"health", "--json"});
    INFO(hj.err);
    auto j = json::parse(hj.out);
    CHECK(j.contains("gateway"));
    CHECK(j.contains("timestamp"));
    CHECK(j["registry"]["total_models"].get<int>() >= 19);
    CHECK(j["cache"]["entries"] == 0);
    CHECK(j["queue"]["pending_requests"] == 0);
    CHECK(j["providers"]["mock"]["status"] == "healthy");
    CHECK(j["providers"]["openai"]["status"] == "unconfigured");
    CHECK(j["pid"].get<int>() == env.daemon_pid());
    CHECK(env.ctl({"daemon", "status"}).exit_code == 0);
    CHECK(env.ctl({"daemon", "stop"}).exit_code == 0);
    CHECK(env.ctl({"daemon", "status"}).exit_code == 8);
}

TEST_CASE("bad input: unknown model - empty prompt - bad config - each once on stderr with its exit code") {
    DaemonEnv env;
    auto unknown = env.ctl({"prompt", "-m", "gpt-4o-mni", "hello"});
    CHECK(unknown.exit_code == 3);
    CHECK(unknown.err.find("E4001") != std::string::npos);
    CHECK(unknown.err.find("gpt-4o-mini") != std::string::npos);
    CHECK(count_occurrences(unknown.err, "E4001") == 1);
    CHECK(unknown.out.empty());

    auto empty = env.ctl({"prompt", "-m", "mock", "   "});
    CHECK(empty.exit_code == 3);
    CHECK(empty.err.find("E4500") != std::string::npos);

    l04::test::write_file(env.config_dir() + "/l04.toml", "[cache]\nttl = \"soon\"\n");
    auto badcfg = env.ctl({"prompt", "-m", "mock", "hi"});
    CHECK(badcfg.exit_code == 9);
    CHECK(badcfg.err.find("l04.toml:2") != std::string::npos);
    CHECK(badcfg.err.find("cache.ttl") != std::string::npos);

    env.env()["L04_CONFIG"] = env.dir().file("missing.toml");
    auto missing = env.ctl({"prompt", "-m", "mock", "hi"});
    CHECK(missing.exit_code == 9);
    CHECK(missing.err.find("missing.toml") != std::string::npos);
}

TEST_CASE("mock fail_status maps to provider errors and exit codes") {
    DaemonEnv env;
    auto r429 = env.ctl({"prompt", "-m", "mock", "-o", "fail_status=429", "-o", "retry_after=0", "hi"});
    CHECK(r429.exit_code == 5);
    CHECK(r429.err.find("E4401") != std::string::npos);
    auto r401 = env.ctl({"prompt", "-m", "mock", "-o", "fail_status=401", "hi"});
    CHECK(r401.exit_code == 4);
    CHECK(r401.err.find("E4203") != std::string::npos);
    auto broken = env.ctl({"prompt", "-m", "mock", "-o", "fail_after_chunks=2", "hi"});
    CHECK(broken.exit_code == 6);
    CHECK(broken.err.find("E4604") != std::string::npos);
    CHECK_FALSE(broken.out.empty());  // the two chunks that did arrive were printed
}

TEST_CASE("32 parallel l04ctl prompts start exactly one daemon") {
    DaemonEnv env;
    std::vector<std::future<l04::test::ProcResult>> runs;
    for (int i = 0; i < 32; ++i)
        runs.push_back(std::async(std::launch::async, [&env, i] {
            return env.ctl({"prompt", "-m", "mock", "--no-stream", "parallel " + std::to_string(i)}, {},
                           std::chrono::milliseconds(60000));
        }));
    int ok = 0;
    for (auto& f : runs) {
        auto r = f.get();
        if (r.exit_code == 0) ++ok;
        else MESSAGE(r.err);
    }
    CHECK(ok == 32);
    const std::string log = l04::test::read_file(env.log_path());
    CHECK(count_occurrences(log, " ready on ") == 1);
}

TEST_CASE("a stale socket left by a dead daemon is removed and a new daemon started") {
    DaemonEnv env;
    std::filesystem::create_directories(env.runtime_dir());
    std::filesystem::permissions(env.runtime_dir(), std::filesystem::perms::owner_all);
    // Bind a socket and close it without unlinking: a file nobody answers on.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, env.socket_path().c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
    REQUIRE(std::filesystem::exists(env.socket_path()));
    auto r = env.ctl({"prompt", "-m", "mock", "-o", "reply=alive again", "hi"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "alive again\n");
    CHECK(env.daemon_pid() > 0);
}

TEST_CASE("SIGTERM with a request in flight finishes the request - then l04d exits") {
    DaemonEnv env;
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    const int pid = env.daemon_pid();
    REQUIRE(pid > 0);
    auto fut = std::async(std::launch::async, [&env] {
        return env.ctl({"prompt", "-m", "mock", "-o", "latency_ms=1500", "-o", "reply=finished", "slow"});
    });
    // Wait until l04d reports the request as active (an event, not a time).
    bool in_flight = false;
    for (int i = 0; i < 2000 && !in_flight; ++i) {
        auto h = env.ctl({"health", "--json", "--no-probe"});
        if (h.exit_code == 0 || h.exit_code == 1) in_flight = json::parse(h.out)["queue"]["active_requests"].get<int>() > 0;
    }
    REQUIRE(in_flight);
    ::kill(pid, SIGTERM);
    auto r = fut.get();
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "finished\n");
    CHECK(DaemonEnv::wait_gone(pid));  // exits by itself after finishing the request
    CHECK(l04::test::read_file(env.log_path()).find("l04d stopped") != std::string::npos);
}

TEST_CASE("--no-daemon runs the same pipeline in-process against the same state") {
    DaemonEnv env;
    auto r1 = env.ctl({"--no-daemon", "prompt", "-m", "mock", "--json", "in process"});
    INFO(r1.err);
    REQUIRE(r1.exit_code == 0);
    CHECK(json::parse(r1.out)["cached"] == false);
    CHECK(env.daemon_pid() == 0);
    // The daemon sees the entry the in-process run stored.
    auto r2 = env.ctl({"prompt", "-m", "mock", "--json", "in process"});
    REQUIRE(r2.exit_code == 0);
    CHECK(json::parse(r2.out)["cached"] == true);
    // Global options after the subcommand, and L04_NO_DAEMON, work too.
    env.stop_daemon();
    auto r3 = env.ctl({"cache", "stats", "--json", "--no-daemon"});
    REQUIRE(r3.exit_code == 0);
    CHECK(json::parse(r3.out)["entries"] == 1);
    env.env()["L04_NO_DAEMON"] = "1";
    CHECK(env.ctl({"health", "--json"}).exit_code != 8);
}

TEST_CASE("a runtime directory another user could reach is refused - state files are private") {
    {
        DaemonEnv env;
        std::filesystem::create_directories(env.runtime_dir());
        std::filesystem::permissions(env.runtime_dir(), std::filesystem::perms::owner_all |
                                                            std::filesystem::perms::group_read |
                                                            std::filesystem::perms::group_exec |
                                                            std::filesystem::perms::others_read |
                                                            std::filesystem::perms::others_exec);
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        CHECK(r.exit_code == 9);
        CHECK(r.err.find("chmod 700") != std::string::npos);
        CHECK(env.daemon_pid() == 0);
    }
    {
        // Created first by someone else (here: uid 65534, as /tmp/l04-<uid> could be).
        DaemonEnv env;
        std::filesystem::create_directories(env.runtime_dir());
        std::filesystem::permissions(env.runtime_dir(), std::filesystem::perms::owner_all);
        REQUIRE(::chown(env.runtime_dir().c_str(), 65534, 65534) == 0);
        if (::getuid() == 65534) return;  // cannot pretend to be someone else
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        CHECK(r.exit_code == 9);
        CHECK(r.err.find("belongs to uid 65534") != std::string::npos);
        auto d = l04::test::run({l04::test::bin("l04d"), "--foreground"}, env.options());
        CHECK(d.exit_code == 9);
    }
    {
        // A symlink in its place.
        DaemonEnv env;
        std::filesystem::create_directories(env.dir().file("elsewhere"));
        std::filesystem::create_directory_symlink(env.dir().file("elsewhere"), env.runtime_dir());
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        CHECK(r.exit_code == 9);
        CHECK(r.err.find("not a directory") != std::string::npos);
    }
    {
        // A state directory others can read is tightened; every file is 0600.
        DaemonEnv env;
        std::filesystem::create_directories(env.state_dir());
        std::filesystem::permissions(env.state_dir(), std::filesystem::perms::all);
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(env.ctl({"daemon", "stop"}).exit_code == 0);
        struct stat st {};
        REQUIRE(::stat(env.state_dir().c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0700);
        for (const auto& e : std::filesystem::directory_iterator(env.state_dir())) {
            if (!e.is_regular_file()) continue;
            INFO(e.path().string());
            REQUIRE(::stat(e.path().c_str(), &st) == 0);
            CHECK((st.st_mode & 077) == 0);
        }
    }
    {
        // A state directory others could write to, holding a file planted by another user: refused.
        DaemonEnv env;
        std::filesystem::create_directories(env.state_dir());
        std::filesystem::permissions(env.state_dir(), std::filesystem::perms::all);
        const std::string planted = env.state_dir() + "/l04.db-wal";
        std::ofstream(planted) << "";
        REQUIRE(::chown(planted.c_str(), 65534, 65534) == 0);
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        CHECK(r.exit_code == 9);
        CHECK(r.err.find("not yours") != std::string::npos);
    }
}

TEST_CASE("a reader that goes away (| head) ends the prompt at once - exit 141 - nothing on stderr") {
    DaemonEnv env;
    std::string reply;
    for (int i = 0; i < 200; ++i) reply += "word" + std::to_string(i) + " ";
    // 200 words in about 50 chunks, 200 ms apart: 10 s if it ran to the end.
    const std::string cmd = "'" + l04::test::bin("l04ctl") + "' prompt -m mock -o chunk_delay_ms=200 -o 'reply=" + reply +
                            "' hi | head -c 20; echo \" rc=${PIPESTATUS[0]}\"";
    auto o = env.options();
    o.timeout = std::chrono::milliseconds(20000);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = l04::test::run({"/bin/bash", "-c", cmd}, o);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.out, r.err);
    CHECK(r.out.find("rc=141") != std::string::npos);
    CHECK(r.err.find("l04ctl") == std::string::npos);  // no error message on a broken pipe
    CHECK(took < std::chrono::seconds(6));
    // The ledger says the caller went away, not "ok" and not a provider error.
    env.stop_daemon();
    auto db = l04::open_state_db(env.state_dir());
    REQUIRE(db);
    auto st = (*db)->prepare("SELECT status FROM usage ORDER BY id DESC LIMIT 1");
    REQUIRE(st);
    REQUIRE(*st->step());
    CHECK(st->col_text(0) == "cancelled");
}

TEST_CASE("a daemon that stops answering gives exit 8 quickly - daemon stop works with a broken config file") {
    DaemonEnv env;
    env.env()["L04_STATUS_TIMEOUT"] = "400ms";
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    const int pid = env.daemon_pid();
    REQUIRE(pid > 0);
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    const auto t0 = std::chrono::steady_clock::now();
    auto st = env.ctl({"daemon", "status"});
    auto cs = env.ctl({"cache", "stats"});
    const auto took = std::chrono::steady_clock::now() - t0;
    // A prompt waits for its own deadline plus 5 s, not 30 s more.
    const auto p0 = std::chrono::steady_clock::now();
    auto pr = env.ctl({"prompt", "-m", "mock", "--timeout", "1s", "hi"});
    const auto prompt_took = std::chrono::steady_clock::now() - p0;
    ::kill(pid, SIGCONT);
    CHECK(pr.exit_code == 8);
    CHECK(prompt_took < std::chrono::seconds(9));
    CHECK(st.exit_code == 8);
    CHECK(st.err.find("(pid " + std::to_string(pid) + ") is not responding") != std::string::npos);
    CHECK(cs.exit_code == 8);
    CHECK(took < std::chrono::seconds(5));
    // A broken config file does not keep the daemon from being stopped.
    std::filesystem::create_directories(env.config_dir());
    std::ofstream(env.config_dir() + "/l04.toml") << "this is [not toml\n";
    CHECK(env.ctl({"prompt", "-m", "mock", "hi"}).exit_code == 9);
    auto status = env.ctl({"daemon", "status"});
    CHECK(status.exit_code == 0);
    CHECK(status.err.find("warning") != std::string::npos);
    auto stop = env.ctl({"daemon", "stop"});
    INFO(stop.err);
    CHECK(stop.exit_code == 0);
    CHECK(DaemonEnv::wait_gone(pid, std::chrono::seconds(10)));
}

TEST_CASE("an l04d that exits at start is reported at once with its reason - never after the start timeout") {
    DaemonEnv env;
    // A stand-in l04d that fails the way a read-only state directory makes
    // the real one fail (root ignores permissions, so the test fakes it).
    const std::string fake = env.dir().file("fake-l04d");
    std::ofstream(fake) << "#!/bin/sh\necho 'l04d: cannot open the state database: attempt to write a readonly "
                           "database' >&2\nexit 9\n";
    std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
    env.env()["L04D_PATH"] = fake;
    SUBCASE("its stderr reaches the log: the reason comes from the log") {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        const auto took = std::chrono::steady_clock::now() - t0;
        INFO(r.err);
        CHECK(r.exit_code == 8);
        CHECK(r.err.find("l04d exited at start") != std::string::npos);
        CHECK(r.err.find("attempt to write a readonly database") != std::string::npos);
        CHECK(r.err.find(env.log_path()) != std::string::npos);
        CHECK(took < std::chrono::seconds(5));  // the start timeout is 10 s
    }
    SUBCASE("one that says nothing: no line of an earlier run is given as its reason") {
        std::ofstream(fake) << "#!/bin/sh\nexit 3\n";
        std::filesystem::create_directories(env.state_dir());
        std::ofstream(env.log_path()) << "2026-11-27 l04d stopped (an earlier run)\n";
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        INFO(r.err);
        CHECK(r.exit_code == 8);
        CHECK(r.err.find("l04d exited at start") != std::string::npos);
        CHECK(r.err.find("an earlier run") == std::string::npos);
    }
    SUBCASE("no log can be written: the reason comes straight from its stderr - no log is named") {
        std::filesystem::create_directories(env.log_path());  // a directory: the log cannot be opened
        const auto t0 = std::chrono::steady_clock::now();
        auto r = env.ctl({"prompt", "-m", "mock", "hi"});
        const auto took = std::chrono::steady_clock::now() - t0;
        INFO(r.err);
        CHECK(r.exit_code == 8);
        CHECK(r.err.find("attempt to write a readonly database") != std::string::npos);
        CHECK(r.err.find("log:") == std::string::npos);
        CHECK(took < std::chrono::seconds(5));
    }
}

TEST_CASE("a prompt larger than the whole per-minute token limit is refused at once - exit 5 - no retry time - --wait does not wait") {
    DaemonEnv env;
    env.env()["L04_RATE_LIMIT_TOKENS_PER_MINUTE"] = "200";
    std::string big;
    for (int i = 0; i < 400; ++i) big += "word ";
    for (const std::vector<std::string>& extra : {std::vector<std::string>{}, std::vector<std::string>{"--wait"}}) {
        std::vector<std::string> args{"prompt", "-m", "mock", "--no-cache", "--timeout", "20s"};
        args.insert(args.end(), extra.begin(), extra.end());
        args.push_back(big);
        const auto t0 = std::chrono::steady_clock::now();
        auto r = env.ctl(args);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
        INFO(r.err);
        CHECK(r.exit_code == 5);
        CHECK(r.err.find("E4401") != std::string::npos);
        CHECK(r.err.find("can never fit") != std::string::npos);
        CHECK(r.err.find("retry after") == std::string::npos);
    }
    // A prompt that fits is served.
    CHECK(env.ctl({"prompt", "-m", "mock", "--no-cache", "short"}).exit_code == 0);
    // Configured to pass, the same prompt runs on a full bucket (which then
    // goes into debt).
    DaemonEnv fresh;
    fresh.env()["L04_RATE_LIMIT_ALLOW_OVERSIZED"] = "true";
    fresh.env()["L04_RATE_LIMIT_TOKENS_PER_MINUTE"] = "200";
    auto ok = fresh.ctl({"prompt", "-m", "mock", "--no-cache", "--no-daemon", big});
    INFO(ok.err);
    CHECK(ok.exit_code == 0);
}

TEST_CASE("one daemon per state directory - another HOME gets its own l04d - a shared socket refuses a foreign state directory") {
    DaemonEnv a;
    // Default runtime directories (no L04_RUNTIME_DIR): the digest of the
    // state directory keeps two state directories on two daemons.
    const std::string rt = a.dir().file("xdg-run");
    std::filesystem::create_directories(rt);
    std::filesystem::permissions(rt, std::filesystem::perms::owner_all);
    a.env().erase("L04_RUNTIME_DIR");
    a.env()["XDG_RUNTIME_DIR"] = rt;
    auto other = a.env();
    other["L04_STATE_DIR"] = a.dir().file("state-b");
    REQUIRE(a.ctl({"prompt", "-m", "mock", "-o", "reply=from a", "hi"}).exit_code == 0);
    auto opts = a.options();
    opts.env = other;
    auto b = l04::test::run({l04::test::bin("l04ctl"), "prompt", "-m", "mock", "-o", "reply=from b", "hi"}, opts);
    INFO(b.err);
    CHECK(b.exit_code == 0);
    std::vector<std::string> runtime_dirs;
    for (const auto& e : std::filesystem::directory_iterator(rt)) runtime_dirs.push_back(e.path().filename().string());
    CHECK(runtime_dirs.size() == 2);  // l04-<digest a>, l04-<digest b>
    CHECK(std::filesystem::exists(a.dir().file("state-b") + "/l04.db"));
    // Both daemons stop by their own pid files.
    for (const auto& d : runtime_dirs) {
        std::ifstream in(rt + "/" + d + "/l04d.pid");
        int pid = 0;
        in >> pid;
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            DaemonEnv::wait_gone(pid);
        }
    }
    // An explicit shared runtime directory: the daemon there refuses a
    // client with another state directory (409, exit 8), never mixes them.
    DaemonEnv c;
    REQUIRE(c.ctl({"daemon", "start"}).exit_code == 0);
    auto copts = c.options();
    copts.env["L04_STATE_DIR"] = c.dir().file("state-other");
    auto foreign = l04::test::run({l04::test::bin("l04ctl"), "prompt", "-m", "mock", "hi"}, copts);
    INFO(foreign.err);
    CHECK(foreign.exit_code == 8);
    CHECK(foreign.err.find("serves the state directory") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(c.dir().file("state-other") + "/l04.db"));
}
