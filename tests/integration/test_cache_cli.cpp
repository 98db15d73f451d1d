// The semantic cache through the real binaries: l04ctl against the l04d it
// starts, with the built-in embedder (the default) and the mock provider.
#include "support/daemon_env.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using l04::test::DaemonEnv;
using nlohmann::json;

namespace {

// builtin-v2 scores these rewordings of k_origin above the default 0.85,
// and the hit guard lets them through (politeness and articles only);
// k_other shares no words with them.
const char* const k_origin = "How do I reset my password on this laptop?";
const char* const k_reworded = "Please, how do I reset my password on this laptop?";
const char* const k_reworded2 = "How do I reset the password on this laptop, please?";
const char* const k_other = "What is the capital of France?";

json prompt_json(const DaemonEnv& env, const std::string& text) {
    auto r = env.ctl({"prompt", "-m", "mock", "--json", text});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

json stats_json(const DaemonEnv& env) {
    auto r = env.ctl({"cache", "stats", "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

}  // namespace

TEST_CASE("cache cli: semantic hit - streamed replay - search - stats and clear --model") {
    DaemonEnv env;
    const json first = prompt_json(env, k_origin);
    CHECK(first["cached"] == false);
    CHECK(first["cache_hit"] == "none");
    const std::string content = first["content"];
    REQUIRE(!content.empty());

    // A reworded prompt: a semantic hit with its similarity, the cached answer.
    const json hit = prompt_json(env, k_reworded);
    CHECK(hit["cached"] == true);
    CHECK(hit["cache_hit"] == "semantic");
    CHECK(hit["similarity"].get<double>() >= 0.85);
    CHECK(hit["similarity"].get<double>() < 1.0);
    CHECK(hit["content"] == content);
    CHECK(hit["cost_usd"].get<double>() == 0.0);

    // The same kind of hit replayed as a stream (the default output).
    auto streamed = env.ctl({"prompt", "-m", "mock", "-v", k_reworded2});
    INFO(streamed.err);
    REQUIRE(streamed.exit_code == 0);
    CHECK(streamed.out == content + "\n");
    CHECK(streamed.err.find("cache: semantic (0.") != std::string::npos);

    const json other = prompt_json(env, k_other);
    CHECK(other["cached"] == false);

    // cache search: nearest entries in any scope, most similar first.
    auto search = env.ctl({"cache", "search", "--json", "-k", "5", "reset", "my", "password"});
    INFO(search.err);
    REQUIRE(search.exit_code == 0);
    const json sj = json::parse(search.out);
    CHECK(sj["query"] == "reset my password");
    CHECK(sj["embedder"] == "builtin-v2");
    CHECK(sj["threshold"].get<double>() == doctest::Approx(0.85));
    REQUIRE(sj["results"].size() == 2);  // only two entries exist
    CHECK(sj["results"][0]["prompt"] == k_origin);
    CHECK(sj["results"][0]["model"] == "mock");
    CHECK(sj["results"][0]["hits"] == 2);
    CHECK(sj["results"][0]["expired"] == false);
    CHECK(sj["results"][1]["prompt"] == k_other);
    CHECK(sj["results"][0]["similarity"].get<double>() > sj["results"][1]["similarity"].get<double>());

    auto exact_text = env.ctl({"cache", "search", "-k", "1", k_reworded});
    REQUIRE(exact_text.exit_code == 0);
    CHECK(exact_text.out.find("SIMILARITY") == 0);
    CHECK(exact_text.out.find(k_origin) != std::string::npos);
    CHECK(exact_text.out.find(k_other) == std::string::npos);  // -k 1
    CHECK(exact_text.out.find(" yes ") != std::string::npos);  // above the threshold
    CHECK(exact_text.err.find("threshold 0.85") != std::string::npos);

    CHECK(env.ctl({"cache", "search", "-k", "0", "x"}).exit_code == 2);

    // Stats: 2 misses (origin, other), 2 semantic hits, no exact hit.
    json s = stats_json(env);
    CHECK(s["entries"] == 2);
    CHECK(s["exact_hits"] == 0);
    CHECK(s["semantic_hits"] == 2);
    CHECK(s["misses"] == 2);
    CHECK(s["hit_rate"].get<double>() == doctest::Approx(0.5));
    CHECK(s["index_size"] == 2);
    CHECK(s["semantic"] == true);
    CHECK(s["embedder"] == "builtin-v2");
    auto text = env.ctl({"cache", "stats"});
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find("hits:           2 (exact 0, semantic 2)") != std::string::npos);
    CHECK(text.out.find("semantic:       on, threshold 0.85") != std::string::npos);
    CHECK(text.out.find("embedder:       builtin-v2 (index 2, deleted 0") != std::string::npos);

    // clear --model mock: both entries gone from SQLite and from the index.
    auto clear = env.ctl({"cache", "clear", "--model", "mock"});
    INFO(clear.err);
    REQUIRE(clear.exit_code == 0);
    CHECK(clear.out == "deleted 2 entries\n");
    s = stats_json(env);
    CHECK(s["entries"] == 0);
    CHECK(s["index_size"] == 0);
    CHECK(s["bytes"] == 0);
    const json after = prompt_json(env, k_reworded);
    CHECK(after["cached"] == false);
    auto empty = env.ctl({"cache", "search", "--json", k_origin});
    REQUIRE(empty.exit_code == 0);
    const json ej = json::parse(empty.out);
    REQUIRE(ej["results"].size() == 1);
    CHECK(ej["results"][0]["prompt"] == k_reworded);  // the only entry now

    // A near miss whose vectors clear the threshold (same words, entities
    // swapped): the hit guard refuses it, and stats count the refusal.
    const json paris = prompt_json(env, "Book a flight from Paris to London");
    CHECK(paris["cached"] == false);
    auto near = env.ctl({"cache", "search", "--json", "-k", "1", "Book a flight from London to Paris"});
    REQUIRE(near.exit_code == 0);
    const json nj = json::parse(near.out);
    CHECK(nj["results"][0]["similarity"].get<double>() >= 0.85);
    CHECK(nj["results"][0]["above_threshold"] == true);
    CHECK(nj["results"][0]["guard"] == "roles");
    auto near_text = env.ctl({"cache", "search", "-k", "1", "Book a flight from London to Paris"});
    CHECK(near_text.out.find(" no,guard:roles ") != std::string::npos);
    auto london_run = env.ctl({"prompt", "-m", "mock", "--json", "-v", "Book a flight from London to Paris"});
    INFO(london_run.err);
    REQUIRE(london_run.exit_code == 0);
    const json london = json::parse(london_run.out);
    CHECK(london["cached"] == false);
    CHECK(london["content"] != paris["content"]);
    // Why the close cached prompt was not served: in --json and on the -v line.
    CHECK(london["metadata"]["cache_refused"] == "roles");
    CHECK(london["metadata"]["cache_refused_similarity"].get<std::string>().rfind("0.", 0) == 0);
    CHECK(london_run.err.find("cache: miss (a cached prompt at 0.") != std::string::npos);
    CHECK(london_run.err.find("refused by the guard: roles)") != std::string::npos);
    s = stats_json(env);
    CHECK(s["guard_refusals"] == 1);
    CHECK(s["ambiguous"] == 0);
    CHECK(s["semantic_guard"] == true);
    CHECK(s["semantic_margin"].get<double>() == doctest::Approx(0.03));
    text = env.ctl({"cache", "stats"});
    CHECK(text.out.find("semantic:       on, threshold 0.85, guard on, margin 0.03") != std::string::npos);
    CHECK(text.out.find("refused:        1 by the guard, 0 as ambiguous") != std::string::npos);
}

TEST_CASE("cache cli: the semantic cache survives a daemon restart") {
    DaemonEnv env;
    const json first = prompt_json(env, k_origin);
    REQUIRE(first["cached"] == false);
    const int pid1 = env.daemon_pid();
    REQUIRE(pid1 > 0);
    // Load the index in this daemon, so stopping it has an index to save.
    CHECK(prompt_json(env, k_other)["cached"] == false);

    auto stop = env.ctl({"daemon", "stop"});
    INFO(stop.err);
    REQUIRE(stop.exit_code == 0);
    CHECK(env.ctl({"daemon", "status"}).exit_code == 8);
    // `daemon stop` returns once the process is gone, so its index is on disk.
    CHECK(DaemonEnv::wait_gone(pid1, std::chrono::milliseconds(0)));
    CHECK(std::filesystem::exists(std::filesystem::path(env.state_dir()) / "cache-index" / "builtin-v2-384.hnsw"));

    // A new prompt starts a new l04d; the reworded question hits the old entry.
    const json hit = prompt_json(env, k_reworded);
    CHECK(env.daemon_pid() != pid1);
    CHECK(hit["cached"] == true);
    CHECK(hit["cache_hit"] == "semantic");
    CHECK(hit["similarity"].get<double>() >= 0.85);
    CHECK(hit["content"] == first["content"]);
    const json s = stats_json(env);
    CHECK(s["entries"] == 2);
    CHECK(s["semantic_hits"] == 1);
    CHECK(s["misses"] == 2);
    CHECK(s["index_size"] == 2);
}

TEST_CASE("cache cli: search says so when the semantic cache is off") {
    DaemonEnv env;
    env.env()["L04_CACHE_SEMANTIC"] = "false";
    auto r = env.ctl({"cache", "search", "anything"});
    CHECK(r.exit_code == 9);
    CHECK(r.err.find("semantic cache is off") != std::string::npos);
    auto s = env.ctl({"cache", "stats"});
    REQUIRE(s.exit_code == 0);
    CHECK(s.out.find("semantic:       off") != std::string::npos);
}
