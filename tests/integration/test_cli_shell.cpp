// l04ctl at the shell: unknown words, bare prompts, completion scripts run by
// a real bash, and `config init`.
#include "support/daemon_env.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

using l04::test::DaemonEnv;

TEST_CASE("l04ctl - an unknown word is refused with a suggestion - more words are a prompt") {
    DaemonEnv env;
    auto typo = env.ctl({"modls"});
    CHECK(typo.exit_code == 2);
    CHECK(typo.err.find("unknown command 'modls' (did you mean 'models'?)") != std::string::npos);
    auto typo2 = env.ctl({"helth", "--json"});
    CHECK(typo2.exit_code == 2);
    CHECK(typo2.err.find("did you mean 'health'?") != std::string::npos);
    // One word that is no command is not sent anywhere either.
    auto word = env.ctl({"zebra"});
    CHECK(word.exit_code == 2);
    CHECK(word.err.find("l04ctl prompt zebra") != std::string::npos);
    CHECK(env.daemon_pid() == 0);  // nothing was started for any of them

    auto bare = env.ctl({"what is a monad", "-m", "mock"});
    INFO(bare.err);
    REQUIRE(bare.exit_code == 0);
    CHECK(bare.out.find("Mock answer to \"what is a monad\"") != std::string::npos);
    auto words = env.ctl({"--no-daemon", "explain", "this", "please", "-m", "mock"});
    REQUIRE(words.exit_code == 0);
    CHECK(words.out.find("explain this please") != std::string::npos);
    auto piped = env.ctl({"--no-daemon"}, "a piped question\n");
    // Routed with no provider there: the routing error proves it ran as a prompt.
    CHECK(piped.exit_code == 6);
    CHECK(piped.err.find("l04ctl: E4") != std::string::npos);
}

TEST_CASE("l04ctl completion - bash completes subcommands - options and model ids - zsh and fish scripts are generated") {
    DaemonEnv env;
    auto script = env.ctl({"completion", "bash"});
    REQUIRE(script.exit_code == 0);
    const std::string path = env.dir().file("l04ctl.bash");
    std::ofstream(path) << script.out;
    auto syntax = l04::test::run({"/bin/bash", "-n", path});
    CHECK(syntax.exit_code == 0);

    // Drive the completion function the way bash does on Tab.
    auto complete = [&](const std::string& words, int cword) {
        l04::test::ProcOptions o = env.options();
        o.env["PATH"] = std::string(L04_BIN_DIR) + ":/usr/bin:/bin";
        const std::string prog = "source " + path + "; COMP_WORDS=(" + words + "); COMP_CWORD=" + std::to_string(cword) +
                                 "; _l04ctl; printf '%s\\n' \"${COMPREPLY[@]}\"";
        return l04::test::run({"/bin/bash", "-c", prog}, o).out;
    };
    CHECK(complete("l04ctl mod", 1) == "models\n");
    CHECK(complete("l04ctl ba", 1) == "batch\n");
    const std::string subs = complete("l04ctl cache ''", 2);
    CHECK(subs.find("stats") != std::string::npos);
    CHECK(subs.find("clear") != std::string::npos);
    CHECK(complete("l04ctl batch in.jsonl --ord", 3) == "--ordered\n");
    CHECK(complete("l04ctl --no-daemon logs --js", 3) == "--json\n");
    const std::string models = complete("l04ctl prompt -m moc", 3);
    CHECK(models.find("mock\n") != std::string::npos);
    CHECK(models.find("mock-1\n") != std::string::npos);  // aliases too
    CHECK(complete("l04ctl prompt --priority h", 3) == "high\n");
    CHECK(complete("l04ctl completion f", 2) == "fish\n");
    // Template names, for -t and for templates show|edit.
    std::filesystem::create_directories(env.config_dir() + "/templates");
    std::ofstream(env.config_dir() + "/templates/summary.toml") << "prompt = \"{input}\"\n";
    std::ofstream(env.config_dir() + "/templates/sql.toml") << "prompt = \"{input}\"\n";
    CHECK(complete("l04ctl prompt -t su", 3) == "summary\n");
    CHECK(complete("l04ctl templates show ''", 3) == "sql\nsummary\n");
    // Completing never starts the daemon.
    CHECK(env.daemon_pid() == 0);

    auto zsh = env.ctl({"completion", "zsh"});
    CHECK(zsh.exit_code == 0);
    CHECK(zsh.out.rfind("#compdef l04ctl", 0) == 0);
    CHECK(zsh.out.find("bashcompinit") != std::string::npos);
    auto fish = env.ctl({"completion", "fish"});
    CHECK(fish.exit_code == 0);
    CHECK(fish.out.find("complete -c l04ctl -n '__fish_use_subcommand' -a 'batch'") != std::string::npos);
    CHECK(fish.out.find("-l model -r -a '(l04ctl __complete models 2>/dev/null)'") != std::string::npos);
    CHECK(env.ctl({"completion", "tcsh"}).exit_code == 2);
}

TEST_CASE("l04ctl config init writes a commented starter config that parses when uncommented") {
    DaemonEnv env;
    auto r = env.ctl({"config", "init"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::string path = env.config_dir() + "/l04.toml";
    REQUIRE(std::filesystem::exists(path));
    CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::others_all) == std::filesystem::perms::none);
    const std::string text = l04::test::read_file(path);
    CHECK(text.find("# ttl = ") != std::string::npos);
    CHECK(text.find("[rate_limit]") != std::string::npos);
    CHECK(text.find("# prompts = true") != std::string::npos);
    // Not overwritten without --force.
    CHECK(env.ctl({"config", "init"}).exit_code == 9);
    CHECK(env.ctl({"config", "init", "--force"}).exit_code == 0);
    // Every key uncommented at its default: the file is still valid.
    std::ofstream(path) << std::regex_replace(text, std::regex("^# ([a-z_0-9]+ = )", std::regex::multiline), "$1");
    auto show = env.ctl({"config", "show"});
    INFO(show.err);
    CHECK(show.exit_code == 0);
    CHECK(show.out.find(path) != std::string::npos);
}

TEST_CASE("l04ctl chat through a pseudo-terminal - Ctrl-C cancels an answer and the session goes on - turns are logged") {
    DaemonEnv env;
    l04::test::ProcOptions o = env.options();
    o.timeout = std::chrono::seconds(90);
    auto r = l04::test::run({"/usr/bin/python3", std::string(L04_SOURCE_DIR) + "/tests/integration/scripts/chat_pty.py",
                             l04::test::bin("l04ctl")},
                            o);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("OK") != std::string::npos);
    // Two answered turns in one conversation; the cancelled one is not logged.
    auto logs = env.ctl({"logs", "--json"});
    std::vector<nlohmann::json> rows;
    std::size_t pos = 0, nl;
    while ((nl = logs.out.find('\n', pos)) != std::string::npos) {
        rows.push_back(nlohmann::json::parse(logs.out.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["prompt"] == "first question");
    CHECK(rows[1]["prompt"] == "line a\nline b");
    CHECK(rows[0]["conversation_id"] == rows[1]["conversation_id"]);
    // The second turn was sent with the first as history.
    CHECK(rows[1]["usage"]["prompt_tokens"].get<int>() > rows[0]["usage"]["prompt_tokens"].get<int>() + 20);
    // Line history is kept, readable by the user only.
    const std::string hist = env.state_dir() + "/chat_history";
    CHECK(std::filesystem::exists(hist));
    CHECK((std::filesystem::status(hist).permissions() & std::filesystem::perms::others_all) == std::filesystem::perms::none);

    // Piped (not a terminal): plain lines, same commands.
    auto piped = env.ctl({"chat", "-m", "mock"}, "hello there\n/usage\n/exit\n");
    CHECK(piped.exit_code == 0);
    CHECK(piped.out.find("Mock answer to \"hello there\"") != std::string::npos);
    CHECK(piped.out.find("1 turn(s)") != std::string::npos);
    CHECK(env.ctl({"chat", "--cid", "c-none", "-m", "mock"}, "x\n").exit_code == 3);
}
