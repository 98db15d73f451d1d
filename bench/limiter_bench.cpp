// Rate limiter benchmark: decisions per second and latency percentiles with
// 1 and 16 client processes sharing one SQLite state file.
//
//   limiter_bench [--procs 1,16] [--seconds 3] [--rate 10000] [--lease MS] [--dir DIR]
//
// Every decision is SqliteRateLimiter::reserve() for a request that touches
// six buckets (agent, provider and model; requests and tokens each), all
// admitted (the limits are far away). With --lease 0 each one is a full
// BEGIN IMMEDIATE transaction: 6 bucket reads, 6 upserts, 1 reservation
// insert, COMMIT. With --lease MS (default 200, as rate_limit.lease) the
// processes lease as `--no-daemon` runs do (a bucket decided on within MS),
// and the threads of the l04d rows as l04d does (from the first decision);
// a lease is used for at most MS, so each process still makes a
// transaction at least every MS.
// Modes:
//   closed   each process loops reserve() as fast as it can (saturation).
//   settle   each loop is reserve() + settle() (two transactions; the figure
//            counts requests, i.e. pairs).
//   paced    the processes together aim at --rate decisions/s on a fixed
//            schedule; a process that falls behind measures from the
//            scheduled start (no coordinated omission), one on time from
//            its wake-up.
//   breaker  SqliteCircuitBreaker::allow() + on_success() on a closed
//            circuit in a loop (the per-attempt breaker cost: reads only).
// Output: a Markdown table on stdout.
#include <l04/core/clock.hpp>
#include <l04/limit/sqlite_circuit_breaker.hpp>
#include <l04/limit/sqlite_rate_limiter.hpp>
#include <l04/store/schema.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono;
using l04::LimitRequest;
using l04::RateLimitConfig;
using l04::SqliteRateLimiter;

enum class Mode { closed, settle, paced, breaker };

struct Options {
    std::vector<int> procs{1, 16};
    double seconds = 3.0;
    double rate = 10'000;
    std::int64_t lease_ms = 200;
    std::string dir;
};

std::int64_t now_ns() { return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count(); }

RateLimitConfig bench_config(std::int64_t lease_ms, bool daemon) {
    RateLimitConfig cfg;
    cfg.lease_ms = lease_ms;
    cfg.lease_only_when_busy = !daemon;
    cfg.agent_default = {1'000'000'000, 1'000'000'000'000};
    cfg.scopes["provider:openai"] = {1'000'000'000, 1'000'000'000'000};
    cfg.scopes["model:gpt-4o"] = {1'000'000'000, 1'000'000'000'000};
    return cfg;
}

struct ChildResult {
    std::int64_t decisions = 0;
    std::int64_t errors = 0;
    std::vector<std::int64_t> lat_ns;
};

// Runs in a forked child: waits for start_ns (steady clock, shared across
// processes on one machine), runs for the duration, writes results to fd.
[[noreturn]] void child(const Options& o, Mode mode, int index, int nprocs, std::int64_t start_ns, int fd) {
    auto db = l04::open_state_db(o.dir);
    if (!db) {
        std::fprintf(stderr, "open: %s\n", db.error().to_string().c_str());
        ::_exit(2);
    }
    auto db2 = l04::open_state_db(o.dir);
    if (!db2) ::_exit(2);
    auto rl = SqliteRateLimiter::create(std::move(*db), bench_config(o.lease_ms, false), l04::SystemClock::instance());
    if (!rl) ::_exit(2);
    auto cb = l04::SqliteCircuitBreaker::create(std::move(*db2), {}, l04::SystemClock::instance());
    if (!cb) ::_exit(2);
    const LimitRequest req{"agent" + std::to_string(index % 4), "openai", "gpt-4o", 1500};
    // Warm-up: statements, page cache.
    for (int i = 0; i < 50; ++i) {
        auto r = (*rl)->reserve(req);
        if (r) (*rl)->settle(*r, 1000);
    }
    ChildResult res;
    res.lat_ns.reserve(static_cast<std::size_t>(o.seconds * 60'000));
    while (now_ns() < start_ns) std::this_thread::sleep_for(50us);
    const std::int64_t end_ns = start_ns + static_cast<std::int64_t>(o.seconds * 1e9);
    const double interval_ns = mode == Mode::paced ? 1e9 * nprocs / o.rate : 0;
    // Stagger the paced processes evenly over one interval.
    double next = static_cast<double>(start_ns) + interval_ns * index / nprocs;
    while (true) {
        std::int64_t t0 = now_ns();
        if (mode == Mode::paced) {
            const auto due = static_cast<std::int64_t>(next);
            if (due >= end_ns) break;
            // Behind schedule (the previous decision ended after this one was
            // due): latency counts from the scheduled start. Otherwise sleep
            // (no spinning: 16 spinning processes would eat the 2 cores) and
            // count from the wake-up, so timer slack is not billed to the
            // limiter.
            if (t0 < due) {
                std::this_thread::sleep_for(nanoseconds(due - t0));
                t0 = now_ns();
            } else {
                t0 = due;
            }
            next += interval_ns;
        } else if (t0 >= end_ns) {
            break;
        }
        if (mode == Mode::breaker) {
            if (!(*cb)->allow("openai")) ++res.errors;
            (*cb)->on_success("openai");
            res.lat_ns.push_back(now_ns() - t0);
            ++res.decisions;
            continue;
        }
        auto r = (*rl)->reserve(req);
        if (!r) ++res.errors;
        if (mode == Mode::settle && r) {
            if (!(*rl)->settle_checked(*r, 1000)) ++res.errors;
        }
        res.lat_ns.push_back(now_ns() - t0);
        ++res.decisions;
    }
    const std::int64_t head[3] = {res.decisions, res.errors, static_cast<std::int64_t>(res.lat_ns.size())};
    auto write_all = [&](const void* p, std::size_t n) {
        const char* c = static_cast<const char*>(p);
        while (n > 0) {
            auto w = ::write(fd, c, n);
            if (w <= 0) ::_exit(3);
            c += w;
            n -= static_cast<std::size_t>(w);
        }
    };
    write_all(head, sizeof head);
    write_all(res.lat_ns.data(), res.lat_ns.size() * sizeof(std::int64_t));
    ::_exit(0);
}

bool read_all(int fd, void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
        auto r = ::read(fd, c, n);
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

struct Row {
    const char* mode;
    int procs;
    std::int64_t decisions;
    std::int64_t errors;
    double per_s;
    double p50_us, p99_us, p999_us, max_us;
};

Row run(const Options& o, Mode mode, int nprocs) {
    std::filesystem::remove(l04::state_db_path(o.dir));
    std::filesystem::remove(l04::state_db_path(o.dir) + "-wal");
    std::filesystem::remove(l04::state_db_path(o.dir) + "-shm");
    {
        auto db = l04::open_state_db(o.dir);
        if (!db) {
            std::fprintf(stderr, "cannot open %s: %s\n", o.dir.c_str(), db.error().to_string().c_str());
            std::exit(1);
        }
    }
    const std::int64_t start_ns = now_ns() + 300'000'000 + nprocs * 20'000'000LL;
    std::vector<pid_t> kids;
    std::vector<int> fds;
    for (int i = 0; i < nprocs; ++i) {
        int p[2];
        if (::pipe(p) != 0) std::exit(1);
        pid_t pid = ::fork();
        if (pid < 0) std::exit(1);
        if (pid == 0) {
            ::close(p[0]);
            child(o, mode, i, nprocs, start_ns, p[1]);
        }
        ::close(p[1]);
        kids.push_back(pid);
        fds.push_back(p[0]);
    }
    std::int64_t decisions = 0, errors = 0;
    std::vector<std::int64_t> all;
    for (int fd : fds) {
        std::int64_t head[3] = {0, 0, 0};
        if (read_all(fd, head, sizeof head)) {
            decisions += head[0];
            errors += head[1];
            const auto n = static_cast<std::size_t>(head[2]);
            const auto old = all.size();
            all.resize(old + n);
            if (!read_all(fd, all.data() + old, n * sizeof(std::int64_t))) all.resize(old);
        } else {
            ++errors;
        }
        ::close(fd);
    }
    for (auto pid : kids) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++errors;
    }
    std::sort(all.begin(), all.end());
    auto pct = [&](double q) -> double {
        if (all.empty()) return 0;
        auto i = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1));
        return static_cast<double>(all[i]) / 1000.0;
    };
    const char* name = mode == Mode::closed   ? "closed"
                       : mode == Mode::settle ? "reserve+settle"
                       : mode == Mode::paced  ? "paced"
                                              : "breaker allow";
    return Row{name,
               nprocs,
               decisions,
               errors,
               static_cast<double>(decisions) / o.seconds,
               pct(0.50),
               pct(0.99),
               pct(0.999),
               all.empty() ? 0 : static_cast<double>(all.back()) / 1000.0};
}

// The daemon's case: N client connections served by N threads of one l04d,
// all deciding through one SqliteRateLimiter (one connection, one mutex).
// Clients of l04d never contend on SQLite's file lock across processes.
Row run_threads(const Options& o, int nthreads) {
    std::filesystem::remove(l04::state_db_path(o.dir));
    std::filesystem::remove(l04::state_db_path(o.dir) + "-wal");
    std::filesystem::remove(l04::state_db_path(o.dir) + "-shm");
    auto db = l04::open_state_db(o.dir);
    if (!db) std::exit(1);
    auto rl = SqliteRateLimiter::create(std::move(*db), bench_config(o.lease_ms, true), l04::SystemClock::instance());
    if (!rl) std::exit(1);
    std::vector<std::vector<std::int64_t>> lat(static_cast<std::size_t>(nthreads));
    std::atomic<std::int64_t> errors{0};
    const std::int64_t start_ns = now_ns() + 100'000'000;
    const std::int64_t end_ns = start_ns + static_cast<std::int64_t>(o.seconds * 1e9);
    std::vector<std::thread> ts;
    for (int i = 0; i < nthreads; ++i)
        ts.emplace_back([&, i] {
            const LimitRequest req{"agent" + std::to_string(i % 4), "openai", "gpt-4o", 1500};
            auto& mine = lat[static_cast<std::size_t>(i)];
            mine.reserve(static_cast<std::size_t>(o.seconds * 60'000));
            while (now_ns() < start_ns) std::this_thread::sleep_for(50us);
            while (true) {
                const std::int64_t t0 = now_ns();
                if (t0 >= end_ns) break;
                if (!(*rl)->reserve(req)) ++errors;
                mine.push_back(now_ns() - t0);
            }
        });
    for (auto& t : ts) t.join();
    std::vector<std::int64_t> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double q) -> double {
        if (all.empty()) return 0;
        return static_cast<double>(all[static_cast<std::size_t>(q * static_cast<double>(all.size() - 1))]) / 1000.0;
    };
    return Row{"l04d (threads, one process)", nthreads, static_cast<std::int64_t>(all.size()), errors.load(),
               static_cast<double>(all.size()) / o.seconds, pct(0.50), pct(0.99), pct(0.999),
               all.empty() ? 0 : static_cast<double>(all.back()) / 1000.0};
}

std::vector<int> parse_list(const char* s) {
    std::vector<int> out;
    std::string str(s);
    std::size_t pos = 0;
    while (pos <= str.size()) {
        auto comma = str.find(',', pos);
        auto part = str.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (!part.empty()) out.push_back(std::atoi(part.c_str()));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--procs") o.procs = parse_list(next());
        else if (a == "--seconds") o.seconds = std::atof(next());
        else if (a == "--rate") o.rate = std::atof(next());
        else if (a == "--lease") o.lease_ms = std::atoll(next());
        else if (a == "--dir") o.dir = next();
        else {
            std::fprintf(stderr,
                         "usage: limiter_bench [--procs 1,16] [--seconds 3] [--rate 10000] [--lease MS] [--dir DIR]\n");
            return 2;
        }
    }
    bool own_dir = false;
    if (o.dir.empty()) {
        char tmpl[] = "/tmp/l04-limiter-bench-XXXXXX";
        if (!::mkdtemp(tmpl)) return 1;
        o.dir = tmpl;
        own_dir = true;
    }
    std::printf("leases: %lld ms\n\n", static_cast<long long>(o.lease_ms));
    std::printf("| mode | procs | decisions | decisions/s | p50 µs | p99 µs | p99.9 µs | max µs | errors |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (Mode m : {Mode::closed, Mode::settle, Mode::paced, Mode::breaker}) {
        for (int n : o.procs) {
            Row r = run(o, m, n);
            std::printf("| %s | %d | %lld | %.0f | %.1f | %.1f | %.1f | %.1f | %lld |\n", r.mode, r.procs,
                        static_cast<long long>(r.decisions), r.per_s, r.p50_us, r.p99_us, r.p999_us, r.max_us,
                        static_cast<long long>(r.errors));
            std::fflush(stdout);
        }
    }
    for (int n : o.procs) {
        Row r = run_threads(o, n);
        std::printf("| %s | %d | %lld | %.0f | %.1f | %.1f | %.1f | %.1f | %lld |\n", r.mode, r.procs,
                    static_cast<long long>(r.decisions), r.per_s, r.p50_us, r.p99_us, r.p999_us, r.max_us,
                    static_cast<long long>(r.errors));
    }
    if (own_dir) std::filesystem::remove_all(o.dir);
    return 0;
}
