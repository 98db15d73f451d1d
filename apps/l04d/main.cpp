// l04d: the l04 daemon. Hosts the pipeline and keeps its state warm (rate
// limit buckets, cache index, provider connections, breaker states, metrics),
// serving the OpenAI-compatible HTTP API on a Unix socket and, when asked, on
// loopback TCP. See l04d(8).
#include <l04/bootstrap.hpp>
#include <l04/core/logging.hpp>
#include <l04/core/strings.hpp>
#include <l04/server/api.hpp>
#include <l04/server/http_server.hpp>
#include <l04/store/db.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <optional>
#include <variant>
#include <sys/file.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// Exit codes shared with l04ctl's documentation.
constexpr int k_exit_ok = 0;
constexpr int k_exit_usage = 2;
constexpr int k_exit_config = 9;
constexpr int k_exit_internal = 1;

int g_ready_fd = -1;  // detached start: tell the waiting parent we are up

// A step of start-up that failed: main returns this code (the reason has
// been printed or logged already).
struct Exit {
    int code;
};

struct Args {
    bool foreground = false;
    bool started_by_client = false;
    std::string listen, socket_path, config_path, idle, log_level, log_format, state_dir, runtime_dir;
};

// The command line; an Exit for --help, --version and usage errors.
std::variant<Args, Exit> parse_args(int argc, char** argv) {
    CLI::App app{"l04d - the l04 LLM gateway daemon (OpenAI-compatible API on a Unix socket, optional loopback TCP)"};
    app.set_version_flag("--version", std::string("l04d ") + L04_VERSION);
    Args a;
    app.add_flag("--foreground,-f", a.foreground, "Stay attached to the terminal and log to stderr");
    app.add_flag("--started-by-client", a.started_by_client, "(internal) started on demand by l04ctl")->group("");
    app.add_option("--listen,-l", a.listen, "Also serve HTTP on HOST:PORT (loopback unless told otherwise)");
    app.add_option("--socket", a.socket_path, "Unix socket path (default $XDG_RUNTIME_DIR/l04/l04d.sock)");
    app.add_option("--config,-c", a.config_path, "Config file (default $XDG_CONFIG_HOME/l04/l04.toml)");
    app.add_option("--idle-timeout", a.idle, "Exit after this long without requests (e.g. 10m; 0 = never)");
    app.add_option("--log-level", a.log_level, "trace, debug, info, warn, error, off");
    app.add_option("--log-format", a.log_format, "text or json");
    app.add_option("--state-dir", a.state_dir, "State directory (SQLite, index)");
    app.add_option("--runtime-dir", a.runtime_dir, "Runtime directory (socket, pid, lock)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return Exit{app.exit(e) == 0 ? k_exit_ok : k_exit_usage};
    }
    return a;
}

l04::Result<l04::Settings> load_settings(const Args& a) {
    l04::SettingsSources src;
    src.user_config = a.config_path;
    auto flag = [&](const char* key, const std::string& v) {
        if (!v.empty()) src.flags[key] = v;
    };
    flag("daemon.listen", a.listen);
    flag("daemon.idle_timeout", a.idle);
    flag("log.level", a.log_level);
    flag("log.format", a.log_format);
    flag("state_dir", a.state_dir);
    flag("runtime_dir", a.runtime_dir);
    return l04::Settings::load(src);
}

// Forks into the background. The parent waits until the child is ready (a
// byte on the pipe) or has failed (the pipe closes without one), so its exit
// status is true, and returns that Exit; the child returns nothing, with its
// output going to the state directory's l04d.log.
std::optional<Exit> detach(const l04::Settings& settings, const std::string& sock) {
    if (auto st = l04::ensure_state_dir(settings.state_dir()); !st) {
        std::fprintf(stderr, "l04d: %s\n", st.error().to_string().c_str());
        return Exit{k_exit_config};
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return Exit{k_exit_internal};
    pid_t pid = ::fork();
    if (pid < 0) return Exit{k_exit_internal};
    if (pid > 0) {
        ::close(ready[1]);
        char b = 0;
        if (::read(ready[0], &b, 1) != 1) {
            std::fprintf(stderr, "l04d: failed to start; see %s/l04d.log\n", settings.state_dir().c_str());
            return Exit{k_exit_config};
        }
        std::printf("l04d started (pid %d), socket %s\n", pid, sock.c_str());
        return Exit{k_exit_ok};
    }
    ::close(ready[0]);
    g_ready_fd = ready[1];
    ::setsid();
    const std::string log = settings.state_dir() + "/l04d.log";
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
    }
    return std::nullopt;
}

// Tells a waiting parent (detached start) that we are serving.
void signal_ready() {
    if (g_ready_fd < 0) return;
    const char b = 1;
    (void)!::write(g_ready_fd, &b, 1);
    ::close(g_ready_fd);
    g_ready_fd = -1;
}

// One l04d per runtime directory: the pid file is locked for our lifetime
// (before the socket is touched, so a second daemon cannot take it over).
std::variant<int, Exit> lock_pid_file(const std::string& rt, const std::string& pid_file) {
    const int pid_fd = ::open(pid_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (pid_fd < 0 || ::flock(pid_fd, LOCK_EX | LOCK_NB) != 0) {
        std::string other;
        std::ifstream in(pid_file);
        std::getline(in, other);
        spdlog::error("another l04d is already running for {} (pid {}); stop it with `l04ctl daemon stop`", rt,
                      other.empty() ? "unknown" : other);
        return Exit{k_exit_config};
    }
    return pid_fd;
}

bool is_loopback(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr) >> 24) == 127;
    return ss.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
}

// systemd socket activation: LISTEN_FDS sockets starting at fd 3. True when
// at least one was adopted (then l04d does not bind its own Unix socket).
std::variant<bool, Exit> adopt_activated_sockets(l04::HttpServer& server, const l04::ApiOptions& ao) {
    const char* pid_env = std::getenv("LISTEN_PID");
    if (!pid_env || std::atoi(pid_env) != ::getpid()) return false;
    const char* fds_env = std::getenv("LISTEN_FDS");
    const int n = std::atoi(fds_env ? fds_env : "0");
    bool adopted = false;
    for (int i = 0; i < n; ++i) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(3 + i, reinterpret_cast<sockaddr*>(&ss), &len);
        // The same rule as --listen: beyond loopback, a token or nothing.
        if (ss.ss_family != AF_UNIX && ao.auth_token.empty() && !is_loopback(ss)) {
            spdlog::error("refusing a socket-activated TCP listener that is not on loopback without a bearer "
                          "token; set L04_AUTH_TOKEN (daemon.auth_token)");
            return Exit{k_exit_config};
        }
        (void)server.adopt_fd(3 + i, ss.ss_family != AF_UNIX);
        adopted = true;
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    return adopted;
}

// --listen / daemon.listen: beyond loopback anyone on the network could
// spend the user's keys, so that needs a bearer token.
std::optional<Exit> listen_tcp(l04::HttpServer& server, const l04::ApiOptions& ao) {
    if (ao.listen.empty()) return std::nullopt;
    const auto colon = ao.listen.rfind(':');
    std::string host = colon == std::string::npos ? ao.listen : ao.listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const bool loopback = host.empty() || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
    if (!loopback && ao.auth_token.empty()) {
        spdlog::error("refusing to listen on {} without a bearer token: anyone who can reach it could use your "
                      "provider keys. Set L04_AUTH_TOKEN (daemon.auth_token), or listen on 127.0.0.1",
                      ao.listen);
        return Exit{k_exit_config};
    }
    if (auto st = server.listen_tcp(ao.listen); !st) {
        spdlog::error("{}", st.error().to_string());
        return Exit{k_exit_config};
    }
    spdlog::info("listening on tcp {} (port {}){}", ao.listen, server.tcp_port(),
                 ao.auth_token.empty() ? "" : " with bearer token");
    if (ao.auth_token.empty())
        spdlog::warn("the TCP listener has no bearer token: any local user can send prompts on your keys "
                     "(browsers are kept out by the Host and Origin checks; the admin endpoints need a "
                     "token). Set L04_AUTH_TOKEN to require one");
    return std::nullopt;
}

// The stop signals, blocked in every thread (all start after this); the
// main thread waits for them.
sigset_t block_stop_signals() {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return sigs;
}

// Serves until SIGTERM/SIGINT or the idle timeout, with housekeeping on the
// side: rate-limit leases given back and cache counts written every second, a WAL checkpoint every
// minute, ledger retention and cache expiry at start and hourly.
void serve_until_stopped(l04::Gateway& gw, l04::HttpServer& server, const sigset_t& sigs, std::int64_t idle_ms) {
    using std::chrono::steady_clock;
    auto housekeeping = [&] {
        if (auto n = gw.prune_usage(); n && *n > 0) spdlog::info("pruned {} usage rows past retention", *n);
        if (auto n = gw.prune_cache(); n && *n > 0) spdlog::info("pruned {} expired cache entries", *n);
    };
    // The semantic index is loaded here, not by the first lookup on an
    // event-loop thread (a large one takes a second to load or rebuild).
    gw.warm_cache();
    housekeeping();
    auto next_housekeeping = steady_clock::now() + std::chrono::hours(1);
    auto next_checkpoint = steady_clock::now() + std::chrono::minutes(1);
    while (true) {
        if (steady_clock::now() >= next_checkpoint) {
            if (auto st = gw.checkpoint(); !st) spdlog::debug("WAL checkpoint: {}", st.error().to_string());
            next_checkpoint = steady_clock::now() + std::chrono::minutes(1);
        }
        if (steady_clock::now() >= next_housekeeping) {
            housekeeping();
            next_housekeeping = steady_clock::now() + std::chrono::hours(1);
        }
        // Rate-limit leases go back to the shared buckets, and cache hits
        // counted in memory are written, at least every second (l04d's own
        // requests do both sooner when busy).
        gw.flush_pending();
        timespec ts{1, 0};
        const int sig = sigtimedwait(&sigs, nullptr, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            spdlog::info("{} received: finishing in-flight requests, then exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        if (sig == SIGHUP) {
            spdlog::info("SIGHUP received (configuration is read at start; restart l04d to apply changes)");
            continue;
        }
        if (idle_ms > 0 && server.active_connections() == 0 && server.idle_for().count() >= idle_ms) {
            spdlog::info("idle for {} s: exiting", idle_ms / 1000);
            return;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    // Everything l04 creates (SQLite files and their -wal/-shm, the index,
    // logs, sockets) holds prompts and answers: readable by this user only.
    ::umask(077);
    auto parsed = parse_args(argc, argv);
    if (auto* e = std::get_if<Exit>(&parsed)) return e->code;
    const Args& args = std::get<Args>(parsed);
    auto settings = load_settings(args);
    if (!settings) {
        std::fprintf(stderr, "l04d: %s\n", settings.error().to_string().c_str());
        return k_exit_config;
    }
    const std::string sock = args.socket_path.empty() ? settings->socket_path() : args.socket_path;
    if (!args.foreground)
        if (auto e = detach(*settings, sock)) return e->code;
    l04::setup_logging("l04d", settings->get("log.level"), settings->get("log.format"));
    // A streaming connection holds four descriptors: the client's socket, the
    // upstream socket and the socketpair libcurl keeps per easy handle. Raise
    // the soft limit (often 1,024) so daemon.max_connections can be served.
    const auto max_conns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, settings->get_int("daemon.max_connections")));
    if (const auto fds = l04::raise_fd_limit(); fds < 4 * max_conns + 64)
        spdlog::warn("open-file limit is {}: fewer than daemon.max_connections ({}) streams can run at once "
                     "(each needs 4 descriptors)",
                     fds, max_conns);
    const sigset_t sigs = block_stop_signals();

    auto gw = l04::open_gateway(*settings, /*daemon=*/true);
    if (!gw) {
        spdlog::error("cannot start: {}", gw.error().to_string());
        return k_exit_config;
    }
    const auto slash = sock.rfind('/');
    const std::string rt = slash == std::string::npos ? std::string(".") : sock.substr(0, slash);
    if (auto st = l04::ensure_private_dir(rt); !st) {
        spdlog::error("{}", st.error().to_string());
        return k_exit_config;
    }
    const std::string pid_file = rt + "/l04d.pid";
    auto locked = lock_pid_file(rt, pid_file);
    if (auto* e = std::get_if<Exit>(&locked)) return e->code;
    const int pid_fd = std::get<int>(locked);

    l04::ApiOptions ao;
    ao.auth_token = settings->get("daemon.auth_token");
    ao.socket_path = sock;
    ao.state_dir = std::filesystem::path(settings->state_dir()).lexically_normal().string();
    ao.listen = settings->get("daemon.listen");
    ao.allowed_hosts = l04::split(settings->get("daemon.allowed_hosts"), ',');
    ao.allowed_origins = l04::split(settings->get("daemon.allowed_origins"), ',');
    ao.started_ms = (*gw)->clock().wall_ms();
    ao.on_shutdown = [] { ::kill(::getpid(), SIGTERM); };
    l04::Api api(**gw, ao);
    l04::ServerOptions so;
    so.max_connections = static_cast<std::size_t>(settings->get_int("daemon.max_connections"));
    so.max_tcp_connections = static_cast<std::size_t>(std::max<std::int64_t>(1, settings->get_int("daemon.max_tcp_connections")));
    so.io_threads = static_cast<std::size_t>(std::clamp<std::int64_t>(settings->get_int("daemon.io_threads"), 0, 256));
    so.before_body = [&api](const l04::ServerRequest& r, l04::ResponseWriter& w) { return api.admit(r, w); };
    l04::HttpServer server([&api](const l04::ServerRequest& r, l04::ResponseWriter& w) { api.handle(r, w); }, so);

    auto activated = adopt_activated_sockets(server, ao);
    if (auto* e = std::get_if<Exit>(&activated)) return e->code;
    if (!std::get<bool>(activated))
        if (auto st = server.listen_unix(sock); !st) {
            spdlog::error("{}", st.error().to_string());
            return k_exit_config;
        }
    if (auto e = listen_tcp(server, ao)) return e->code;
    const std::string pid_text = std::to_string(::getpid()) + "\n";
    if (::ftruncate(pid_fd, 0) != 0 || ::pwrite(pid_fd, pid_text.data(), pid_text.size(), 0) < 0)
        spdlog::warn("cannot write {}", pid_file);
    server.start();
    spdlog::info("l04d {} ready on {} (state {}, {} models){}", L04_VERSION, sock, settings->state_dir(),
                 (*gw)->registry().models().size(), args.started_by_client ? ", started on demand" : "");
    spdlog::default_logger()->flush();  // tools wait for this line
    signal_ready();

    serve_until_stopped(**gw, server, sigs, settings->get_duration_ms("daemon.idle_timeout"));
    server.stop(std::chrono::milliseconds(30000));
    ::unlink(pid_file.c_str());
    if (server.active_connections() > 0) {
        // A handler is still running after the grace period: it uses the
        // gateway, so do not destroy it under its feet. Save what matters, exit.
        spdlog::warn("{} connection(s) still busy after 30 s; exiting without waiting for them",
                     server.active_connections());
        (void)(*gw)->flush_ledger();
        (*gw)->flush_pending();
        spdlog::default_logger()->flush();  // not shutdown(): the busy handler may still log
        std::_Exit(k_exit_ok);
    }
    // The gateway is destroyed when main returns (writing the cache's
    // pending counts, giving leases back, saving the index) and may log
    // then: the logger stays up until after it (no spdlog::shutdown here).
    (*gw)->flush_pending();
    spdlog::info("l04d stopped");
    spdlog::default_logger()->flush();
    return k_exit_ok;
}
