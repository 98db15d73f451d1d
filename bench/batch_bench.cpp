// batch_bench: `l04ctl batch` over N mock prompts with -j J, beside its
// baseline in the same run: the same requests sent straight to l04d's
// /v1/chat/completions by J threads of this process (no batch machinery).
// Two workloads: every prompt new (all cache misses), and half the prompts
// answered before (50% exact cache hits). Runs alternate batch and direct,
// each on its own fresh prompts, so the cache state is the same for both.
// Reports prompts/s, l04ctl's CPU per prompt and peak RSS (from wait4), and
// l04d's CPU per prompt (from /proc). Usage:
//   build/bin/batch_bench [prompts=10000] [jobs=16] [rounds=2]
#include <l04/client/client.hpp>
#include <l04/config/settings.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

std::string g_dir;

std::vector<std::pair<std::string, std::string>> bench_env() {
    return {{"L04_STATE_DIR", g_dir + "/state"},
            {"L04_RUNTIME_DIR", g_dir + "/run"},
            {"XDG_CONFIG_HOME", g_dir + "/cfg"},
            {"HOME", g_dir},
            {"L04_SHARE_DIR", std::string(L04_SOURCE_DIR) + "/share"},
            // Limits far above the load: the limiter runs, but never waits.
            {"L04_RATE_LIMIT_REQUESTS_PER_MINUTE", "100000000"},
            {"L04_RATE_LIMIT_TOKENS_PER_MINUTE", "100000000000"},
            {"L04_LOG_PROMPTS", "false"},
            {"L04_IDLE_TIMEOUT", "600"}};
}

struct Run {
    double wall_s = 0, cpu_s = 0, max_rss_mb = 0;
    int status = 0;
};

Run run_ctl(const std::vector<std::string>& args, const std::string& out_path) {
    Run r;
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        for (const auto& [k, v] : bench_env()) ::setenv(k.c_str(), v.c_str(), 1);
        int dn = ::open("/dev/null", O_RDWR);
        int out = out_path.empty() ? dn : ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(dn, 0);
        ::dup2(out, 1);
        ::dup2(dn, 2);
        std::vector<char*> argv;
        std::string bin = std::string(L04_BIN_DIR) + "/l04ctl";
        argv.push_back(bin.data());
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    int status = 0;
    rusage ru{};
    ::wait4(pid, &status, 0, &ru);
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    r.max_rss_mb = ru.ru_maxrss / 1024.0;
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

double proc_cpu_s(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = s.rfind(')');
    std::istringstream in(s.substr(close + 2));
    std::string tok;
    unsigned long long ut = 0, st = 0;
    for (int i = 3; i <= 15 && in >> tok; ++i) {
        if (i == 14) ut = std::stoull(tok);
        if (i == 15) st = std::stoull(tok);
    }
    return static_cast<double>(ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int daemon_pid() {
    std::ifstream f(g_dir + "/run/l04d.pid");
    int pid = 0;
    f >> pid;
    return pid;
}

std::string body_for(const std::string& prompt) {
    return std::string(R"({"model":"mock","messages":[{"role":"user","content":")") + prompt +
           R"("}],"l04":{"priority":"low"}})";
}

// The baseline: the same requests, straight to l04d, jobs threads.
Run run_direct(const std::vector<std::string>& prompts, int jobs) {
    Run r;
    std::atomic<std::size_t> next{0};
    std::atomic<int> failed{0};
    auto t0 = std::chrono::steady_clock::now();
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    std::vector<std::thread> ts;
    for (int t = 0; t < jobs; ++t)
        ts.emplace_back([&] {
            l04::SocketClient c(g_dir + "/run/l04d.sock");
            for (std::size_t i; (i = next.fetch_add(1)) < prompts.size();) {
                auto res = c.call({"POST", "/v1/chat/completions", body_for(prompts[i]), {}});
                if (!res || res->status != 200) ++failed;
            }
        });
    for (auto& t : ts) t.join();
    ::getrusage(RUSAGE_SELF, &after);
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
    r.cpu_s = secs(after.ru_utime) - secs(before.ru_utime) + secs(after.ru_stime) - secs(before.ru_stime);
    r.status = failed.load();
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t n = argc > 1 ? std::stoul(argv[1]) : 10000;
    const int jobs = argc > 2 ? std::stoi(argv[2]) : 16;
    const int rounds = argc > 3 ? std::stoi(argv[3]) : 2;
    char tmpl[] = "/tmp/l04-batch-bench-XXXXXX";
    g_dir = ::mkdtemp(tmpl);
    if (run_ctl({"daemon", "start"}, {}).status != 0) {
        std::fprintf(stderr, "batch_bench: l04d did not start\n");
        return 1;
    }
    const int dpid = daemon_pid();
    int serial = 0;
    auto fresh = [&](std::size_t count) {
        std::vector<std::string> v;
        for (std::size_t i = 0; i < count; ++i) v.push_back("bench prompt " + std::to_string(serial++) + " about batches");
        return v;
    };
    auto write_input = [&](const std::vector<std::string>& prompts) {
        const std::string path = g_dir + "/in.jsonl";
        std::ofstream f(path);
        for (const auto& p : prompts) f << "{\"prompt\":\"" << p << "\",\"model\":\"mock\"}\n";
        return path;
    };
    // Warm-up and the set the "50% hits" runs draw their repeats from.
    std::vector<std::string> seen = fresh(n * static_cast<std::size_t>(rounds));
    run_direct(seen, jobs);
    std::size_t seen_at = 0;

    struct Row {
        std::string name;
        double rate = 0, ctl_cpu_us = 0, d_cpu_us = 0, rss = 0;
        int runs = 0;
        bool ok = true;
    };
    std::vector<Row> rows{{"batch, all misses"}, {"direct, all misses"}, {"batch, 50% hits"}, {"direct, 50% hits"}};
    for (int round = 0; round < rounds; ++round) {
        for (int w = 0; w < 2; ++w) {
            for (int mode = 0; mode < 2; ++mode) {  // batch, then its direct baseline
                std::vector<std::string> prompts = fresh(w == 0 ? n : n / 2);
                if (w == 1) {
                    for (std::size_t i = 0; i < n - n / 2; ++i) prompts.push_back(seen[seen_at++ % seen.size()]);
                }
                const double d0 = proc_cpu_s(dpid);
                Run r;
                if (mode == 0) {
                    const std::string in = write_input(prompts);
                    // -o: the resumable mode, one fdatasync per result.
                    std::filesystem::remove(g_dir + "/out.jsonl");
                    r = run_ctl({"batch", in, "-o", g_dir + "/out.jsonl", "-j", std::to_string(jobs), "-q"}, {});
                } else {
                    r = run_direct(prompts, jobs);
                }
                const double d1 = proc_cpu_s(dpid);
                Row& row = rows[static_cast<std::size_t>(w * 2 + mode)];
                row.ok = row.ok && r.status == 0;
                row.rate += static_cast<double>(prompts.size()) / r.wall_s;
                row.ctl_cpu_us += r.cpu_s * 1e6 / static_cast<double>(prompts.size());
                row.d_cpu_us += (d1 - d0) * 1e6 / static_cast<double>(prompts.size());
                row.rss = std::max(row.rss, r.max_rss_mb);
                ++row.runs;
            }
        }
    }
    std::printf("batch_bench: %zu mock prompts a run, -j %d, %d round(s), interleaved (means)\n\n", n, jobs, rounds);
    std::printf("%-20s %12s %18s %16s %14s %10s\n", "run", "prompts/s", "client CPU us/req", "l04d CPU us/req",
                "client RSS MB", "all ok");
    for (auto& r : rows) {
        std::printf("%-20s %12.0f %18.1f %16.1f %14.1f %10s\n", r.name.c_str(), r.rate / r.runs, r.ctl_cpu_us / r.runs,
                    r.d_cpu_us / r.runs, r.rss, r.ok ? "yes" : "NO");
    }
    std::printf("\nratios (batch / direct): prompts/s %.2f (misses), %.2f (50%% hits); "
                "l04d CPU %.2f, %.2f\n",
                rows[0].rate / rows[1].rate, rows[2].rate / rows[3].rate, rows[0].d_cpu_us / rows[1].d_cpu_us,
                rows[2].d_cpu_us / rows[3].d_cpu_us);
    std::printf("(direct: the client RSS column is not measured; its CPU is this process's threads)\n");
    run_ctl({"daemon", "stop"}, {});
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
    return 0;
}
