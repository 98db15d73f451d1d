// l04ctl daemon start|stop|status|logs.
#include "common.hpp"

#include <l04/wire/admin_json.hpp>

#include <signal.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

namespace l04ctl {

namespace {

// The pid l04d wrote next to its socket (0 when unknown).
int daemon_pid_of(const std::string& socket_path) {
    const auto slash = socket_path.rfind('/');
    std::ifstream in((slash == std::string::npos ? std::string(".") : socket_path.substr(0, slash)) + "/l04d.pid");
    int pid = 0;
    in >> pid;
    return pid;
}

// Whether pid is a live process (a zombie counts as gone: l04d detached, and
// whoever adopted it may reap late).
bool process_running(int pid) {
    if (::kill(pid, 0) != 0) return false;
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(st, line);
    const auto close = line.rfind(')');
    return !(close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z');
}

// Status and stop wait at most client.status_timeout (5 s) for l04d's
// answer: a stopped or stuck daemon gives exit 8 quickly instead of hanging
// a script.
std::chrono::milliseconds control_timeout(const Context& ctx) {
    return std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout"));
}

int status(Context& ctx, bool quiet) {
    l04::SocketClient c(ctx.settings.socket_path(), control_timeout(ctx));
    if (!l04::daemon_answers(c.path())) {
        if (!quiet) std::printf("l04d is not running (socket %s)\n", c.path().c_str());
        return k_daemon;
    }
    auto j = call_json(c, "GET", "/admin/status");
    if (!j) return report(j.error());
    if (!quiet) {
        using l04::json_field;
        const std::string listen = json_field<std::string>(*j, "listen", "");
        std::printf("l04d %s running, pid %lld, up %.0f s\nsocket: %s\nlisten: %s\nstate:  %s\n",
                    json_field<std::string>(*j, "version", "?").c_str(), json_field<long long>(*j, "pid", 0),
                    json_field(*j, "uptime_s", 0.0), json_field<std::string>(*j, "socket", "?").c_str(),
                    listen.empty() ? "(unix socket only)" : listen.c_str(),
                    json_field<std::string>(*j, "state_dir", "?").c_str());
    }
    if (!quiet) {
        const std::string diff = provider_env_difference(ctx.settings, *j);
        if (diff.empty())
            std::printf("provider environment: the same as this shell's\n");
        else
            std::printf("provider environment: differs from this shell's in %s; `l04ctl daemon restart` starts it "
                        "with this one\n",
                        diff.c_str());
    }
    return k_ok;
}

int stop(Context& ctx) {
    l04::SocketClient c(ctx.settings.socket_path(), control_timeout(ctx));
    if (!l04::daemon_answers(c.path())) {
        if (!ctx.globals.quiet) std::printf("l04d is not running\n");
        return k_ok;
    }
    // The pid, to wait for the process itself: l04d closes its socket
    // first and then still saves the cache index and closes SQLite, so
    // "stopped" must mean the process is gone (a backup of the state
    // directory right after `daemon stop` must not race those writes).
    const int pid = daemon_pid_of(c.path());
    auto j = call_json(c, "POST", "/admin/shutdown");
    if (!j) return report(j.error());
    // Wait (bounded) for the socket to go away, then for the process.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(35);
    while (l04::daemon_answers(c.path()) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    while (pid > 0 && process_running(pid) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (l04::daemon_answers(c.path()) || (pid > 0 && process_running(pid)))
        return report(l04::Error(l04::ErrorCode::daemon_unavailable, "l04d did not stop within 35 s"));
    if (!ctx.globals.quiet) std::printf("l04d stopped\n");
    return k_ok;
}

}  // namespace

void add_daemon(CLI::App& app, Context& ctx) {
    auto* d = app.add_subcommand("daemon", "Control l04d (it also starts on demand)");
    d->require_subcommand(1);

    d->add_subcommand("start", "Start l04d if it is not running")->callback([&ctx] {
        if ((g_exit = ctx.load())) return;
        l04::DaemonStart ds;
        if (!ctx.globals.config.empty()) ds.extra_args = {"--config", ctx.globals.config};
        const bool was_running = l04::daemon_answers(ctx.settings.socket_path());
        if (auto st = l04::ensure_daemon(ctx.settings, ds); !st) {
            g_exit = report(st.error());
            return;
        }
        if (!ctx.globals.quiet && was_running) std::printf("l04d was already running\n");
        g_exit = status(ctx, ctx.globals.quiet);
    });

    d->add_subcommand("stop", "Stop l04d gracefully (in-flight requests finish); returns once it has exited")->callback([&ctx] {
        if ((g_exit = ctx.load_for_daemon_control())) return;
        g_exit = stop(ctx);
    });

    d->add_subcommand("restart",
                      "Stop l04d (in-flight requests finish) and start it again, with this shell's environment "
                      "(provider keys and URLs) and configuration")
        ->callback([&ctx] {
            if ((g_exit = ctx.load())) return;
            if ((g_exit = stop(ctx))) return;
            l04::DaemonStart ds;
            if (!ctx.globals.config.empty()) ds.extra_args = {"--config", ctx.globals.config};
            if (auto st = l04::ensure_daemon(ctx.settings, ds); !st) {
                g_exit = report(st.error());
                return;
            }
            g_exit = status(ctx, ctx.globals.quiet);
        });

    d->add_subcommand("status", "Is l04d running? (exit 8 when not, or when it does not answer within client.status_timeout)")->callback([&ctx] {
        if ((g_exit = ctx.load_for_daemon_control())) return;
        g_exit = status(ctx, ctx.globals.quiet);
    });

    auto follow = std::make_shared<bool>(false);
    auto* logs = d->add_subcommand("logs", "Print l04d's log");
    logs->add_flag("-f,--follow", *follow, "Keep printing new lines (Ctrl-C to stop)");
    logs->callback([&ctx, follow] {
        if ((g_exit = ctx.load())) return;
        const std::string path = l04::daemon_log_path(ctx.settings);
        std::ifstream in(path);
        if (!in) {
            g_exit = report(l04::Error(l04::ErrorCode::config_file_unreadable, "no log at " + path + " (l04d has not run yet?)"));
            return;
        }
        std::string line;
        while (true) {
            while (std::getline(in, line)) std::printf("%s\n", line.c_str());
            std::fflush(stdout);
            if (!*follow) break;
            in.clear();
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
    });
}

}  // namespace l04ctl
