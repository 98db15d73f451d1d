// Usage-ledger benchmark: what the crash journal costs a request.
//
//   ledger_bench [--rows 50000] [--rounds 3] [--dir DIR]
//
// Each run records --rows usage rows through a background Ledger (as the
// gateway does, one record() per finished request) on a fresh state
// directory, then flushes. Runs with the journal (one JSON line appended with
// write(2) per row, the default since issue 11) and without it alternate,
// --rounds times each, so both see the same machine. Reported per row: the
// caller's cost (record(), what a request waits for) at p50/p99, and the
// wall time until every row is committed. Output: a Markdown table.
#include <l04/store/schema.hpp>
#include <l04/usage/ledger.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Run {
    std::vector<double> record_ns;
    double total_ms = 0;
};

Run one(const std::string& dir, bool journal, int rows) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    auto db = l04::open_state_db(dir);
    if (!db) {
        std::fprintf(stderr, "ledger_bench: %s\n", db.error().to_string().c_str());
        std::exit(1);
    }
    l04::LedgerOptions o;
    if (journal) o.journal_dir = dir + "/ledger-journal";
    Run r;
    r.record_ns.reserve(static_cast<std::size_t>(rows));
    const auto t0 = Clock::now();
    {
        l04::Ledger ledger(std::move(*db), o);
        l04::UsageRow row;
        row.agent = "bench";
        row.model = "gpt-4o-mini";
        row.provider = "openai";
        row.usage = {120, 340, 460, false};
        row.cost_usd = 0.000222;
        row.latency_ms = 812.5;
        row.ttft_ms = 230.1;
        for (int i = 0; i < rows; ++i) {
            row.request_id = "req_" + std::to_string(i);
            row.time_ms = 1'700'000'000'000 + i;
            const auto a = Clock::now();
            (void)ledger.record(row);
            r.record_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - a).count());
        }
        if (auto st = ledger.flush(); !st) {
            std::fprintf(stderr, "ledger_bench: %s\n", st.error().to_string().c_str());
            std::exit(1);
        }
    }
    r.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::sort(r.record_ns.begin(), r.record_ns.end());
    return r;
}

double pct(const std::vector<double>& v, double p) {
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1)))];
}

}  // namespace

int main(int argc, char** argv) {
    int rows = 50000, rounds = 3;
    std::string dir = (std::filesystem::temp_directory_path() / "l04-ledger-bench").string();
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--rows")) rows = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    }
    std::printf("| round | journal | record() p50 | record() p99 | all committed | per row |\n");
    std::printf("|---|---|---|---|---|---|\n");
    std::vector<double> p50[2], per_row[2];
    for (int round = 1; round <= rounds; ++round)
        for (bool journal : {false, true}) {
            const Run r = one(dir, journal, rows);
            const double p = pct(r.record_ns, 0.50), q = pct(r.record_ns, 0.99);
            const double each_us = r.total_ms * 1000.0 / rows;
            p50[journal].push_back(p);
            per_row[journal].push_back(each_us);
            std::printf("| %d | %s | %.2f µs | %.2f µs | %.0f ms | %.2f µs |\n", round, journal ? "on" : "off", p / 1000.0,
                        q / 1000.0, r.total_ms, each_us);
        }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::printf("\nmedian of rounds: record() p50 %.2f µs with the journal vs %.2f µs without (%.2fx); "
                "wall time per row %.2f µs vs %.2f µs (%.2fx). %d rows per run.\n",
                median(p50[1]) / 1000.0, median(p50[0]) / 1000.0, median(p50[1]) / std::max(1.0, median(p50[0])),
                median(per_row[1]), median(per_row[0]), median(per_row[1]) / std::max(1e-9, median(per_row[0])), rows);
    std::filesystem::remove_all(dir);
    return 0;
}
