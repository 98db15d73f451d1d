// l04ctl: the l04 command-line client. A thin client of l04d's HTTP API (or,
// with --no-daemon, of the same API run in-process). See l04ctl(1).
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <l04/core/strings.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>

namespace l04ctl {
void setup_logging(int verbose, bool quiet);
}

namespace {

// Rewrites the command line before CLI11 sees it: `l04ctl "some text"` and
// `l04ctl what is a monad` are prompts; `echo hi | l04ctl` too. A single
// unknown word is refused (exit 2) rather than sent to a provider, with the
// command it most likely meant. Returns -1 to go on, else an exit status.
int rewrite_args(const CLI::App& app, std::vector<std::string>& args) {
    std::size_t i = 0;
    while (i < args.size()) {
        const std::string& a = args[i];
        if (a == "--no-daemon" || a == "-v" || a == "-vv" || a == "-vvv" || a == "--verbose" || a == "-q" ||
            a == "--quiet" || a.rfind("--config=", 0) == 0) {
            ++i;
        } else if (a == "--config") {
            i += 2;
        } else {
            break;
        }
    }
    if (i >= args.size()) {
        if (!::isatty(0)) args.insert(args.begin() + static_cast<std::ptrdiff_t>(std::min(i, args.size())), "prompt");
        return -1;
    }
    const std::string& word = args[i];
    if (word.empty() || word[0] == '-') return -1;
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands({})) {
        if (sub->get_name() == word) return -1;  // hidden ones (__complete) included
        if (sub->get_name().empty() || sub->get_group().empty()) continue;
        names.push_back(sub->get_name());
    }
    const bool one_word = word.find_first_of(" \t\n") == std::string::npos;
    std::string near;
    if (one_word) {
        const std::string lw = l04::to_lower(word);
        for (const auto& n : names) {
            const std::size_t d = l04::edit_distance(lw, n);
            if (d <= (n.size() <= 4 ? 1u : 2u) || (lw.size() >= 3 && n.rfind(lw, 0) == 0)) {
                near = n;
                break;
            }
        }
    }
    if (!near.empty() || (one_word && i + 1 == args.size())) {
        std::fprintf(stderr, "l04ctl: unknown command '%s'%s; to send it as a prompt: l04ctl prompt %s\n", word.c_str(),
                     near.empty() ? "" : (" (did you mean '" + near + "'?)").c_str(), word.c_str());
        return l04ctl::k_usage;
    }
    args.insert(args.begin() + static_cast<std::ptrdiff_t>(i), "prompt");
    return -1;
}

const char* k_footer_rest = R"(
Environment: L04_CONFIG, L04_STATE_DIR, L04_RUNTIME_DIR, L04_NO_DAEMON=1, NO_COLOR,
OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, OLLAMA_URL (see `l04ctl config show`).
Files: $XDG_CONFIG_HOME/l04/l04.toml, $XDG_STATE_HOME/l04/, $XDG_RUNTIME_DIR/l04/l04d.sock.)";

// The exit-status part of --help, from the one table in core/error.
std::string footer() {
    std::string out = "Exit status:\n";
    for (const auto& e : l04::exit_status_table()) {
        char num[8];
        std::snprintf(num, sizeof num, "%3d  ", e.status);
        out += num;
        out += e.meaning;
        out += '\n';
    }
    return out + k_footer_rest;
}

}  // namespace

int main(int argc, char** argv) {
    // Everything l04 creates (SQLite files and their -wal/-shm, the index,
    // logs, sockets) holds prompts and answers: readable by this user only.
    ::umask(077);
    std::signal(SIGPIPE, SIG_IGN);
    l04ctl::Context ctx;
    CLI::App app{"l04ctl - one front door to many LLM providers (through the l04d gateway daemon)"};
    app.set_version_flag("--version", std::string("l04ctl ") + L04_VERSION);
    app.footer(footer());
    app.require_subcommand(1);
    app.fallthrough();
    auto* g = app.add_option_group("Global options");
    g->add_flag("--no-daemon", ctx.globals.no_daemon, "Run the pipeline in this process (same state files)");
    g->add_option("--config", ctx.globals.config, "Config file (default $XDG_CONFIG_HOME/l04/l04.toml)");
    g->add_flag("-v,--verbose", ctx.globals.verbose, "More detail on stderr (repeatable)");
    g->add_flag("-q,--quiet", ctx.globals.quiet, "Only the answer and errors");

    l04ctl::add_prompt(app, ctx);
    l04ctl::add_models(app, ctx);
    l04ctl::add_health(app, ctx);
    l04ctl::add_cache(app, ctx);
    l04ctl::add_daemon(app, ctx);
    l04ctl::add_config(app, ctx);
    l04ctl::add_usage(app, ctx);
    l04ctl::add_limits(app, ctx);
    l04ctl::add_batch(app, ctx);
    l04ctl::add_logs(app, ctx);
    l04ctl::add_templates(app, ctx);
    l04ctl::add_chat(app, ctx);
    l04ctl::add_embed(app, ctx);
    l04ctl::add_completion(app, ctx);

    app.parse_complete_callback([&ctx] { l04ctl::setup_logging(ctx.globals.verbose, ctx.globals.quiet); });
    std::vector<std::string> args(argv + 1, argv + argc);
    if (int rc = rewrite_args(app, args); rc >= 0) return rc;
    std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
    try {
        app.parse(args);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return l04ctl::k_usage;
    } catch (const nlohmann::json::exception& e) {
        // An answer of an unexpected shape (an l04d of another version): a
        // reported error with its exit status, never an abort.
        return l04ctl::report(l04::Error(l04::ErrorCode::parse_error,
                                         std::string("l04d sent an answer this l04ctl cannot read: ") + e.what()));
    } catch (const std::exception& e) {
        return l04ctl::report(l04::Error(l04::ErrorCode::internal_error, std::string("unexpected failure: ") + e.what()));
    }
    return l04ctl::g_exit;
}

namespace l04ctl {
// Diagnostics of an in-process pipeline (--no-daemon) go to stderr: warnings
// by default, request lines with -v, debug with -vv.
void setup_logging(int verbose, bool quiet) {
    auto logger = spdlog::stderr_color_mt("l04ctl");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("l04ctl: %l: %v");
    spdlog::set_level(quiet ? spdlog::level::err
                            : verbose >= 2 ? spdlog::level::debug
                            : verbose == 1 ? spdlog::level::info
                                           : spdlog::level::warn);
}
}
