// cli_bench: `l04ctl prompt` on a cache hit, process start to exit, through
// l04d and with --no-daemon. Runs in a temp state directory with the mock
// provider; prints a table. Usage: build/bin/cli_bench [runs=100]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <vector>
#include <csignal>

namespace {

double run_once(const std::vector<std::string>& args) {
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        int dn = ::open("/dev/null", O_RDWR);
        ::dup2(dn, 0);
        ::dup2(dn, 1);
        ::dup2(dn, 2);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    auto t1 = std::chrono::steady_clock::now();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "cli_bench: l04ctl failed (status %d)\n", status);
        std::exit(1);
    }
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

struct Stats {
    double min, median, p90, p99, mean;
};

Stats measure(const std::vector<std::string>& args, int runs) {
    for (int i = 0; i < 5; ++i) run_once(args);  // warm-up (page cache, daemon)
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) t.push_back(run_once(args));
    std::sort(t.begin(), t.end());
    double sum = 0;
    for (double v : t) sum += v;
    auto pct = [&](double p) { return t[std::min(t.size() - 1, static_cast<std::size_t>(p * static_cast<double>(t.size())))]; };
    return {t.front(), pct(0.5), pct(0.9), pct(0.99), sum / static_cast<double>(t.size())};
}

}  // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? std::atoi(argv[1]) : 100;
    const std::string ctl = std::string(L04_BIN_DIR) + "/l04ctl";
    auto dir = std::filesystem::temp_directory_path() / ("l04-cli-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    ::setenv("L04_STATE_DIR", (dir / "state").c_str(), 1);
    ::setenv("L04_RUNTIME_DIR", (dir / "run").c_str(), 1);
    ::setenv("XDG_CONFIG_HOME", (dir / "cfg").c_str(), 1);
    ::setenv("L04_SHARE_DIR", L04_SOURCE_DIR "/share", 1);
    const std::vector<std::string> hit{ctl, "prompt", "-m", "mock", "--no-stream", "what is a cache hit?"};
    std::vector<std::string> hit_nd = hit;
    hit_nd.insert(hit_nd.begin() + 1, "--no-daemon");
    run_once(hit);  // starts l04d and fills the cache

    std::printf("l04ctl prompt on an exact cache hit, process start to exit, %d runs each (ms)\n\n", runs);
    std::printf("| mode         |   min | median |   p90 |   p99 |  mean |\n");
    std::printf("|--------------|------:|-------:|------:|------:|------:|\n");
    for (auto [name, args] : {std::pair<const char*, std::vector<std::string>>{"via l04d", hit}, {"--no-daemon", hit_nd}}) {
        Stats s = measure(args, runs);
        std::printf("| %-12s | %5.2f | %6.2f | %5.2f | %5.2f | %5.2f |\n", name, s.min, s.median, s.p90, s.p99, s.mean);
    }
    // Stop the daemon we started (by the pid in our own runtime dir).
    std::ifstream pf(dir / "run" / "l04d.pid");
    int pid = 0;
    pf >> pid;
    if (pid > 0) ::kill(pid, SIGTERM);
    for (int i = 0; i < 500 && pid > 0 && ::kill(pid, 0) == 0; ++i) ::usleep(10000);
    std::filesystem::remove_all(dir);
    return 0;
}
