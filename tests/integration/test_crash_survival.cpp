// Crash survival: l04d killed with SIGKILL under load keeps every answer a
// client received in the usage ledger (the crash journal), exactly once.
#include "support/daemon_env.hpp"

#include <l04/store/schema.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

using l04::test::DaemonEnv;
using nlohmann::json;

TEST_CASE("l04d killed 20 times under 8 clients - every answer received is in the ledger exactly once") {
    DaemonEnv env;
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    std::mutex mu;
    std::set<std::string> answered;  // request ids of answers the clients got
    std::atomic<int> answers{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 8; ++c) {
        clients.emplace_back([&, c] {
            for (int i = 0; !stop; ++i) {
                // Unique prompts: every answer comes from the provider path.
                auto r = env.ctl({"prompt", "-m", "mock", "--json", "--no-stream", "-o", "latency_ms=2",
                                  "crash " + std::to_string(c) + " " + std::to_string(i)},
                                 {}, std::chrono::milliseconds(20000));
                if (r.exit_code != 0) continue;  // in flight when l04d died: no answer, nothing owed
                auto j = json::parse(r.out, nullptr, false);
                if (!j.is_object() || !j.contains("request_id")) continue;
                std::lock_guard lk(mu);
                answered.insert(j["request_id"].get<std::string>());
                ++answers;
            }
        });
    }
    int kills = 0;
    int seen = 0;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(150);
    while (kills < 20 && std::chrono::steady_clock::now() < give_up) {
        // Kill once a few more answers arrived from the current daemon (the
        // clients start a new one by themselves): polled, not timed.
        if (answers < seen + 4) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            continue;
        }
        const int pid = env.daemon_pid();
        if (pid <= 0) continue;
        ::kill(pid, SIGKILL);
        DaemonEnv::wait_gone(pid);
        seen = answers;
        ++kills;
    }
    stop = true;
    for (auto& t : clients) t.join();
    CHECK(kills == 20);
    // A last clean start replays what the last killed daemon left; a clean
    // stop writes the rest.
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    env.stop_daemon();

    auto db = l04::open_state_db(env.state_dir());
    REQUIRE(db);
    auto st = (*db)->prepare("SELECT request_id, COUNT(*) FROM usage WHERE status = 'ok' GROUP BY request_id");
    REQUIRE(st);
    std::set<std::string> in_ledger;
    int twice = 0;
    while (true) {
        auto r = st->step();
        REQUIRE(r);
        if (!*r) break;
        in_ledger.insert(st->col_text(0));
        if (st->col_int(1) > 1) ++twice;
    }
    int missing = 0;
    for (const auto& id : answered)
        if (!in_ledger.count(id)) ++missing;
    INFO("answers received: " << answered.size() << ", ledger rows: " << in_ledger.size());
    CHECK(answered.size() >= 80);
    CHECK(missing == 0);
    CHECK(twice == 0);
    std::error_code ec;
    std::size_t journals = 0;
    for (const auto& e : std::filesystem::directory_iterator(env.state_dir() + "/ledger-journal", ec)) {
        (void)e;
        ++journals;
    }
    CHECK(journals == 0);  // every journal replayed and removed
}
