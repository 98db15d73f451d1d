#include "support/test_util.hpp"

#include <l04/core/logging.hpp>
#include <l04/gateway.hpp>
#include <l04/store/schema.hpp>
#include <l04/usage/exporter.hpp>
#include <l04/usage/ledger.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace l04;

namespace {

// Records requests; answers with scripted statuses (then 200).
class RecordingTransport final : public Transport {
public:
    std::vector<HttpRequest> requests;
    std::vector<int> statuses;
    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override {
        requests.push_back(req);
        HttpResponseHead h;
        h.status = statuses.empty() ? 200 : statuses.front();
        if (!statuses.empty()) statuses.erase(statuses.begin());
        if (on_head) on_head(h);
        on_data("{}");
        return h;
    }
};

UsageRow row(const std::string& id, std::int64_t t, const std::string& model, double cost, double latency,
             CacheHit cached = CacheHit::none, const std::string& status = "ok") {
    UsageRow r;
    r.request_id = id;
    r.time_ms = t;
    r.agent = "a";
    r.model = model;
    r.provider = "p";
    r.usage = {10, 20, 30, false};
    r.cost_usd = cost;
    r.latency_ms = latency;
    r.cached = cached;
    r.status = status;
    return r;
}

}  // namespace

TEST_CASE("ledger: rows - totals - reports - retention") {
    test::TempDir d;
    auto db = open_state_db(d.str());
    REQUIRE(db);
    Ledger l(std::move(*db));
    const std::int64_t day = 86'400'000;
    REQUIRE(l.record(row("r1", 10 * day, "gpt-4o", 0.01, 100)));
    REQUIRE(l.record(row("r2", 10 * day + 1000, "gpt-4o", 0.03, 300)));
    REQUIRE(l.record(row("r3", 11 * day, "mock", 0, 1, CacheHit::exact)));
    auto err = row("r4", 11 * day, "mock", 0, 5, CacheHit::none, "error");
    err.error_code = 4203;
    REQUIRE(l.record(err));
    auto t = l.totals(0);
    REQUIRE(t);
    CHECK(t->requests == 4);
    CHECK(t->errors == 1);
    CHECK(t->cached == 1);
    CHECK(t->cost_usd == doctest::Approx(0.04));
    auto by_model = l.report(0, "model");
    REQUIRE(by_model);
    REQUIRE(by_model->size() == 2);
    CHECK((*by_model)[0].key == "gpt-4o");
    CHECK((*by_model)[0].p50_latency_ms == doctest::Approx(300));  // nearest rank of {100, 300}
    CHECK((*by_model)[1].errors == 1);
    auto by_day = l.report(0, "day");
    REQUIRE(by_day->size() == 2);
    CHECK((*by_day)[0].key == "1970-01-11");
    auto rows = l.rows_since(11 * day);
    REQUIRE(rows->size() == 2);
    CHECK(rows->at(1).error_code == 4203);
    auto pruned = l.prune(11 * day);
    REQUIRE(pruned);
    CHECK(*pruned == 2);
    CHECK(l.totals(0)->requests == 2);
}

namespace {

std::int64_t count_rows(const std::string& dir) {
    auto db = open_state_db(dir);
    REQUIRE(db);
    auto st = (*db)->prepare("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM usage");
    REQUIRE(st);
    REQUIRE(*st->step());
    CHECK(st->col_int(0) == st->col_int(1));  // never a row twice
    return st->col_int(0);
}

std::size_t journal_files(const std::string& dir) {
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        (void)e;
        ++n;
    }
    return n;
}

// Waits (bounded) for a condition the ledger's writer makes true.
template <class F>
bool eventually(F f) {
    for (int i = 0; i < 20000; ++i) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return f();
}

}  // namespace

TEST_CASE("ledger journal: a process killed with rows unwritten loses none and repeats none") {
    // Each round a child process records rows (some committed by a flush,
    // some only journaled) and is killed with SIGKILL; the next Ledger to
    // open the state directory writes exactly the missing ones.
    test::TempDir d;
    const std::string jdir = d.file("ledger-journal");
    std::int64_t expected = 0;
    std::int64_t replayed_total = 0;
    for (int round = 0; round < 8; ++round) {
        const int committed = round % 3 == 0 ? 0 : round * 7;
        const int journaled = 1 + round * 13;
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            auto db = open_state_db(d.str());
            if (!db) ::_exit(2);
            LedgerOptions o;
            o.journal_dir = jdir;
            auto* l = new Ledger(std::move(*db), o);  // never destroyed: the process is killed
            for (int i = 0; i < committed; ++i) (void)l->record(row("c" + std::to_string(round) + "-" + std::to_string(i), 1, "m", 0.01, 1));
            if (!l->flush()) ::_exit(3);
            for (int i = 0; i < journaled; ++i) (void)l->record(row("j" + std::to_string(round) + "-" + std::to_string(i), 1, "m", 0.01, 1));
            ::kill(::getpid(), SIGKILL);
            ::_exit(4);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFSIGNALED(status));
        expected += committed + journaled;
        {
            auto db = open_state_db(d.str());
            REQUIRE(db);
            LedgerOptions o;
            o.journal_dir = jdir;
            Ledger l(std::move(*db), o);
            // The killed child's own writer may have written some of its
            // rows before the kill (how many depends on speed: under ASan it
            // often wrote most); the replay writes the rest, never more.
            CHECK(l.replayed() <= committed + journaled);
            replayed_total += l.replayed();
            auto t = l.totals(0);
            REQUIRE(t);
            CHECK(t->requests == expected);
            CHECK(journal_files(jdir) == 1);  // only this Ledger's own journal
        }
        CHECK(count_rows(d.str()) == expected);
        CHECK(journal_files(jdir) == 0);  // a clean stop removes its journal
    }
    // The replay path ran (round 0's one row is killed microseconds after
    // it was recorded, well inside the writer's 25 ms batching window).
    CHECK(replayed_total > 0);
}

TEST_CASE("ledger journal: a live process's journal is never replayed by another") {
    test::TempDir d;
    const std::string jdir = d.file("ledger-journal");
    auto db1 = open_state_db(d.str());
    REQUIRE(db1);
    LedgerOptions o;
    o.journal_dir = jdir;
    Ledger a(std::move(*db1), o);
    REQUIRE(a.record(row("a1", 1, "m", 0, 1)));
    auto db2 = open_state_db(d.str());
    REQUIRE(db2);
    Ledger b(std::move(*db2), o);
    CHECK(b.replayed() == 0);
    CHECK(journal_files(jdir) == 2);
    REQUIRE(a.flush());
    CHECK(count_rows(d.str()) == 1);
}

TEST_CASE("ledger: a database that cannot be written (full) - rows kept - writer recovers by itself - none lost at stop") {
    test::TempDir d;
    const std::string jdir = d.file("ledger-journal");
    auto db = open_state_db(d.str());
    REQUIRE(db);
    Db* raw = db->get();
    // SQLITE_FULL without filling a disk: cap the file at its current size.
    auto pages = raw->prepare("PRAGMA page_count");
    REQUIRE(pages);
    REQUIRE(*pages->step());
    const auto page_count = pages->col_int(0);
    pages = Stmt();
    REQUIRE(raw->exec("PRAGMA max_page_count = " + std::to_string(page_count)));
    LedgerOptions o;
    o.journal_dir = jdir;
    o.min_backoff = std::chrono::milliseconds(1);
    o.max_backoff = std::chrono::milliseconds(4);
    {
        Ledger l(std::move(*db), o);
        UsageRow big = row("x", 1, "m", 0.5, 1);
        big.metadata["pad"] = std::string(5000, 'p');  // larger than a page: never fits
        for (int i = 0; i < 200; ++i) {
            big.request_id = "full-" + std::to_string(i);
            CHECK(l.record(big));  // the journal still takes them
        }
        auto t = l.totals(0);  // a read flushes first: the failure is reported
        CHECK_FALSE(t);
        CHECK(l.pending() == 200);
        // Space returns: the writer finds out by itself, with no new record().
        REQUIRE(raw->exec("PRAGMA max_page_count = 1000000"));
        CHECK(eventually([&] { return l.pending() == 0; }));
        CHECK(l.totals(0)->requests == 200);
        // Full again, then a stop: the rows stay in the journal.
        REQUIRE(raw->exec("PRAGMA max_page_count = " + std::to_string(page_count)));
        for (int i = 0; i < 50; ++i) {
            big.request_id = "stop-" + std::to_string(i);
            CHECK(l.record(big));
        }
    }
    CHECK(journal_files(jdir) == 1);
    auto db2 = open_state_db(d.str());
    REQUIRE(db2);
    Ledger l2(std::move(*db2), o);
    CHECK(l2.replayed() == 50);
    CHECK(l2.totals(0)->requests == 250);
}

TEST_CASE("usage exporter: batches rows as JSON with the bearer key - retries 5xx - never blocks enqueue") {
    auto t = std::make_shared<RecordingTransport>();
    t->statuses = {503, 200};
    ManualClock clock;
    ExporterConfig cfg;
    cfg.url = "http://127.0.0.1:9/usage";
    cfg.api_key = "l01-key";
    cfg.batch_size = 2;
    UsageExporter ex(cfg, t, clock, false);
    for (int i = 0; i < 3; ++i) ex.enqueue(row("r" + std::to_string(i), 1000, "m", 0.5, 1));
    CHECK(t->requests.empty());  // enqueue never sends
    CHECK(ex.flush());
    REQUIRE(t->requests.size() == 3);  // 503 + retry of batch 1, then batch 2
    CHECK(t->requests[0].body == t->requests[1].body);
    auto j = nlohmann::json::parse(t->requests[0].body);
    CHECK(j["records"].size() == 2);
    CHECK(j["records"][0]["request_id"] == "r0");
    CHECK(j["records"][0]["cost_usd"] == 0.5);
    bool auth = false;
    for (const auto& [k, v] : t->requests[0].headers) auth |= (k == "Authorization" && v == "Bearer l01-key");
    CHECK(auth);
    CHECK(clock.now() >= std::chrono::milliseconds(250));  // one backoff, on the injected clock
    auto s = ex.stats();
    CHECK(s.sent == 3);
    CHECK(s.queued == 0);

    // A permanent 4xx drops the batch (counted) instead of retrying forever.
    t->statuses = {400};
    ex.enqueue(row("bad", 1, "m", 0, 1));
    CHECK_FALSE(ex.flush());
    CHECK(ex.stats().dropped == 1);
}

TEST_CASE("gateway: every finished request reaches the exporter - retention prunes the ledger") {
    test::TempDir d;
    ManualClock clock;
    auto t = std::make_shared<RecordingTransport>();
    ExporterConfig cfg;
    cfg.url = "http://127.0.0.1:9/usage";
    auto ex = std::make_shared<UsageExporter>(cfg, t, clock, false);
    auto reg = Registry::load({test::models_toml_path()});
    GatewayOptions o;
    o.registry = std::move(*reg);
    o.clock = &clock;
    o.state_dir = d.str();
    o.exporter = ex;
    auto gw = Gateway::create(std::move(o));
    REQUIRE(gw);
    InferenceRequest r;
    r.model = "mock";
    r.messages.push_back({Role::user, "export me", {}, {}, {}});
    r.metadata = {{"job", "nightly"}, {"run", "7"}};
    REQUIRE((*gw)->execute(r));
    r.metadata.clear();
    r.model = "nope";
    CHECK_FALSE((*gw)->execute(r));
    CHECK(ex->stats().queued == 2);
    REQUIRE(ex->flush());
    auto j = nlohmann::json::parse(t->requests.at(0).body);
    CHECK(j["records"][1]["error_code"] == "E4001");
    // The request's metadata travels with its row: in the ledger and exported.
    CHECK(j["records"][0]["metadata"] == nlohmann::json{{"job", "nightly"}, {"run", "7"}});
    CHECK_FALSE(j["records"][1].contains("metadata"));
    auto rows = (*gw)->ledger().rows_since(0);
    REQUIRE(rows);
    REQUIRE(rows->size() == 2);
    CHECK((*rows)[0].metadata == std::map<std::string, std::string>{{"job", "nightly"}, {"run", "7"}});

    clock.advance(std::chrono::hours(24 * 91));  // past the default 90-day retention
    auto pruned = (*gw)->prune_usage();
    REQUIRE(pruned);
    CHECK(*pruned == 2);
}

TEST_CASE("json log lines escape the message") {
    CHECK(json_escape("a\"b\\c\nd\x01") == "a\\\"b\\\\c\\nd\\u0001");
}
