#include "support/test_util.hpp"

#include <l04/core/logging.hpp>
#include <l04/gateway.hpp>
#include <l04/store/schema.hpp>
#include <l04/usage/exporter.hpp>
#include <l04/usage/ledger.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

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
