// ResponseCache: exact + semantic lookups over real SQLite in a temp dir,
// with the built-in (deterministic) embedder and a ManualClock.
#include <doctest/doctest.h>

#include <functional>

#include <l04/cache/response_cache.hpp>
#include <l04/store/schema.hpp>
#include <support/test_util.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

using namespace l04;

namespace {

class FailingEmbedder final : public Embedder {
public:
    std::string name() const override { return "failing"; }
    std::size_t dimension() const override { return 384; }
    Result<std::vector<Vector>> embed(const std::vector<std::string>&) override {
        ++calls;
        return fail(ErrorCode::embedding_failed, "ollama embed: connection refused");
    }
    std::atomic<int> calls{0};
};

InferenceRequest req(const std::string& prompt) {
    InferenceRequest r;
    r.model = "mock";
    r.messages.push_back(Message{Role::user, prompt, "", "", {}});
    return r;
}

InferenceResponse answer(const std::string& text) {
    InferenceResponse r;
    r.content = text;
    r.model_id = "mock";
    r.provider = "mock";
    r.token_usage.prompt_tokens = 5;
    r.token_usage.completion_tokens = 7;
    return r;
}

struct Fixture {
    l04::test::TempDir dir;
    ManualClock clock;
    std::unique_ptr<ResponseCache> open(CacheConfig cfg = {}, std::shared_ptr<Embedder> e = nullptr) {
        auto db = open_state_db(dir.str());
        REQUIRE(db);
        if (!e) e = std::make_shared<BuiltinEmbedder>();
        cfg.background_compaction = false;
        return std::make_unique<ResponseCache>(std::move(*db), cfg, clock, std::move(e));
    }
    std::string index_file() const { return dir.str() + "/cache-index/builtin-v2-384.hnsw"; }
};

CacheKey key(const std::string& prompt, const std::string& target = "mock", const std::string& tenant = "") {
    return make_cache_key(req(prompt), target, tenant);
}

}  // namespace

TEST_CASE("semantic cache: exact hit - semantic hit - miss - threshold override") {
    Fixture f;
    auto c = f.open();
    CHECK_FALSE(c->lookup(key("How do I reset my password?")));
    REQUIRE(c->store(key("How do I reset my password?"), answer("Use the reset link.")));

    auto exact = c->lookup(key("How do I reset my password?"));
    REQUIRE(exact);
    CHECK(exact->cache_hit == CacheHit::exact);
    CHECK(exact->similarity == 1.0);
    CHECK(exact->content == "Use the reset link.");
    CHECK(exact->from_cache());

    auto sem = c->lookup(key("please, how do I reset my password"));
    REQUIRE(sem);
    CHECK(sem->cache_hit == CacheHit::semantic);
    CHECK(sem->similarity >= 0.85);
    CHECK(sem->similarity < 1.0);
    CHECK(sem->content == "Use the reset link.");

    CHECK_FALSE(c->lookup(key("please, how do I reset my password"), 0.999));  // per-request threshold
    CHECK(c->lookup(key("please, how do I reset my password"), 0.5));
    CHECK_FALSE(c->lookup(key("Write a poem about the sea")));
    CHECK_FALSE(c->lookup(key("How do I change my password?"), 0.99));

    auto s = c->stats();
    CHECK(s.entries == 1);
    CHECK(s.exact_hits == 1);
    CHECK(s.semantic_hits == 2);
    CHECK(s.misses == 4);
    CHECK(s.hit_rate() == doctest::Approx(3.0 / 7.0));
    CHECK(s.embedder == "builtin-v2");
    CHECK(s.index_loaded);
    CHECK(s.index_size == 1);
    CHECK(s.bytes > 0);
    CHECK(s.oldest_ms == f.clock.wall_ms());
}

TEST_CASE("semantic cache: near misses never hit at the default threshold") {
    Fixture f;
    auto c = f.open();
    REQUIRE(c->store(key("Turn on the lights in the living room"), answer("on")));
    REQUIRE(c->store(key("Book a flight from Paris to London"), answer("P->L")));
    REQUIRE(c->store(key("I want to cancel my subscription"), answer("cancel")));
    CHECK_FALSE(c->lookup(key("Turn off the lights in the living room")));
    CHECK_FALSE(c->lookup(key("Book a flight from London to Paris")));
    CHECK_FALSE(c->lookup(key("I do not want to cancel my subscription")));
}

TEST_CASE("semantic cache: scope isolation (property over random requests)") {
    Fixture f;
    auto c = f.open();
    std::mt19937 rng(2024);
    const std::vector<std::string> prompts = {"Summarise this article about solar power",
                                              "What is the boiling point of water at sea level?",
                                              "Explain recursion to a five year old",
                                              "Translate good morning into German",
                                              "List three uses of baking soda"};
    // Each mutation changes exactly one part of the scope.
    using Mut = std::function<void(InferenceRequest&, std::string&, std::string&)>;
    const std::vector<std::pair<const char*, Mut>> muts = {
        {"target", [](InferenceRequest&, std::string& t, std::string&) { t = "gpt-4o"; }},
        {"system prompt", [](InferenceRequest& r, std::string&, std::string&) { r.system_prompt = "Be terse."; }},
        {"temperature", [](InferenceRequest& r, std::string&, std::string&) { r.temperature = 0.9; }},
        {"top_p", [](InferenceRequest& r, std::string&, std::string&) { r.top_p = 0.5; }},
        {"max_tokens", [](InferenceRequest& r, std::string&, std::string&) { r.max_tokens = 17; }},
        {"tools", [](InferenceRequest& r, std::string&, std::string&) { r.tools.push_back(ToolSpec{"f", "d", "{}"}); }},
        {"response format", [](InferenceRequest& r, std::string&, std::string&) { r.response_format = R"({"type":"json_object"})"; }},
        {"earlier turns", [](InferenceRequest& r, std::string&, std::string&) {
             r.messages.insert(r.messages.begin(), {Message{Role::user, "Hi", "", "", {}},
                                                    Message{Role::assistant, "Hello!", "", "", {}}});
         }},
        {"tenant", [](InferenceRequest&, std::string&, std::string& tenant) { tenant = "agent-b"; }},
        {"options", [](InferenceRequest& r, std::string&, std::string&) { r.options["reply"] = option_from_text("x"); }},
    };
    int checked = 0;
    for (int round = 0; round < 40; ++round) {
        const std::string base_prompt = prompts[rng() % prompts.size()] + " #" + std::to_string(round);
        InferenceRequest base = req(base_prompt);
        if (rng() % 2) base.temperature = 0.2;
        REQUIRE(c->store(make_cache_key(base, "mock", ""), answer("base " + std::to_string(round))));
        // Same scope, a rephrasing: hits.
        InferenceRequest same = base;
        same.messages.back().content = "please " + base_prompt;
        auto hit = c->lookup(make_cache_key(same, "mock", ""));
        REQUIRE(hit);
        CHECK(hit->content == "base " + std::to_string(round));
        // One scope part changed, even the identical prompt: never a hit.
        const auto& picked = muts[rng() % muts.size()];  // no structured binding: clang 14 cannot capture one
        const auto& what = std::get<0>(picked);
        const auto& mut = std::get<1>(picked);
        InferenceRequest other = base;
        std::string target = "mock", tenant;
        mut(other, target, tenant);
        INFO("round " << round << " changed " << what);
        auto miss = c->lookup(make_cache_key(other, target, tenant));
        CHECK_FALSE(miss);
        ++checked;
    }
    CHECK(checked == 40);
}

TEST_CASE("semantic cache: vectors of another embedder are never compared") {
    Fixture f;
    {
        auto c = f.open();
        REQUIRE(c->store(key("How do I reset my password?"), answer("A")));
    }
    BuiltinEmbedderOptions o;
    o.char_weight = 0.5f;  // same dimension, different vectors, different name
    auto other = std::make_shared<BuiltinEmbedder>(o);
    {
        auto c = f.open({}, other);
        CHECK_FALSE(c->lookup(key("please, how do I reset my password")));
        CHECK(c->lookup(key("How do I reset my password?")));  // exact hits do not depend on the embedder
        CHECK(c->stats().index_size == 0);
        REQUIRE(c->store(key("Where is my order?"), answer("B")));
    }
    auto c = f.open();
    auto hit = c->lookup(key("please, how do I reset my password"));
    REQUIRE(hit);
    CHECK(hit->content == "A");
    CHECK_FALSE(c->lookup(key("where is my order")));  // stored under the other embedder
}

TEST_CASE("semantic cache: embedder failure is counted - request path continues - exact still works") {
    Fixture f;
    auto failing = std::make_shared<FailingEmbedder>();
    auto c = f.open({}, failing);
    CHECK_FALSE(c->lookup(key("How do I reset my password?")));
    REQUIRE(c->store(key("How do I reset my password?"), answer("A")));
    auto hit = c->lookup(key("How do I reset my password?"));
    REQUIRE(hit);
    CHECK(hit->cache_hit == CacheHit::exact);
    CHECK_FALSE(c->lookup(key("please, how do I reset my password")));
    auto s = c->stats();
    CHECK(s.embed_failures == failing->calls.load());
    CHECK(s.embed_failures >= 3);
    CHECK(s.misses == 2);
    CHECK(s.exact_hits == 1);
    auto sr = c->search("password", 3);
    REQUIRE_FALSE(sr);
    CHECK(sr.error().code == ErrorCode::embedding_failed);
}

TEST_CASE("semantic cache: TTL on the manual clock - exact and semantic") {
    Fixture f;
    CacheConfig cfg;
    cfg.ttl_ms = 60'000;
    auto c = f.open(cfg);
    REQUIRE(c->store(key("How do I reset my password?"), answer("A")));
    f.clock.advance(std::chrono::seconds(59));
    CHECK(c->lookup(key("How do I reset my password?")));
    CHECK(c->lookup(key("please, how do I reset my password")));
    f.clock.advance(std::chrono::seconds(2));
    CHECK_FALSE(c->lookup(key("How do I reset my password?")));
    CHECK_FALSE(c->lookup(key("please, how do I reset my password")));
    auto pruned = c->prune();
    REQUIRE(pruned);
    CHECK(*pruned == 1);
    auto s = c->stats();
    CHECK(s.entries == 0);
    CHECK(s.index_size == 0);
    CHECK(s.index_deleted == 1);
}

TEST_CASE("semantic cache: LRU eviction by entries and bytes removes from the index") {
    Fixture f;
    CacheConfig cfg;
    cfg.max_entries = 3;
    auto c = f.open(cfg);
    const char* ps[] = {"Explain photosynthesis", "Recipe for banana bread", "Capital city of Australia",
                        "How tall is Mount Everest"};
    for (int i = 0; i < 3; ++i) {
        REQUIRE(c->store(key(ps[i]), answer(ps[i])));
        f.clock.advance(std::chrono::seconds(1));
    }
    CHECK(c->lookup(key("explain photosynthesis please")));  // touches entry 0 (semantic)
    f.clock.advance(std::chrono::seconds(1));
    REQUIRE(c->store(key(ps[3]), answer(ps[3])));  // evicts the least recently used: entry 1
    CHECK(c->lookup(key(ps[0])));
    CHECK_FALSE(c->lookup(key(ps[1])));
    CHECK_FALSE(c->lookup(key("recipe for banana bread please")));
    auto s = c->stats();
    CHECK(s.entries == 3);
    CHECK(s.evictions == 1);
    CHECK(s.index_size == 3);
    CHECK(s.index_deleted == 1);
    auto found = c->search("banana bread", 4);
    REQUIRE(found);
    for (const auto& h : *found) CHECK(h.prompt != ps[1]);

    CacheConfig small;
    small.max_bytes = 400;  // each entry is prompt + answer + 1536 vector bytes
    Fixture g;
    auto cb = g.open(small);
    REQUIRE(cb->store(key("first prompt"), answer("x")));
    g.clock.advance(std::chrono::seconds(1));
    REQUIRE(cb->store(key("second prompt"), answer("y")));
    CHECK(cb->stats().entries <= 1);
}

TEST_CASE("semantic cache: search and clear keep the index in step") {
    Fixture f;
    auto c = f.open();
    REQUIRE(c->store(key("How do I reset my password?"), answer("A")));
    REQUIRE(c->store(key("How do I reset my password?", "gpt-4o"), answer("B")));
    REQUIRE(c->store(key("Write a haiku about rain"), answer("C")));
    auto r = c->search("reset password", 3);
    REQUIRE(r);
    REQUIRE(r->size() == 3);
    CHECK((*r)[0].prompt == "How do I reset my password?");
    CHECK((*r)[0].similarity >= (*r)[2].similarity);
    CHECK((*r)[2].prompt == "Write a haiku about rain");
    auto n = c->clear("gpt-4o", std::nullopt);
    REQUIRE(n);
    CHECK(*n == 1);
    r = c->search("reset password", 3);
    REQUIRE(r);
    CHECK(r->size() == 2);
    CHECK(c->stats().index_size == 2);
    n = c->clear("", std::nullopt);
    REQUIRE(n);
    CHECK(*n == 2);
    CHECK(c->stats().index_size == 0);
}

TEST_CASE("semantic cache: restart loads the saved index and hits semantically") {
    Fixture f;
    {
        auto c = f.open();
        for (int i = 0; i < 50; ++i)
            REQUIRE(c->store(key("Question number " + std::to_string(i) + " about tax forms"), answer(std::to_string(i))));
        CHECK(c->lookup(key("question number 7 about tax forms please")));  // loads the index
    }
    REQUIRE(std::filesystem::exists(f.index_file()));
    auto c = f.open();
    auto hit = c->lookup(key("question number 42 about tax forms please"));
    REQUIRE(hit);
    CHECK(hit->cache_hit == CacheHit::semantic);
    CHECK(hit->content == "42");
    CHECK(c->stats().index_size == 50);
}

TEST_CASE("semantic cache: damaged index files are rebuilt from SQLite") {
    Fixture f;
    {
        auto c = f.open();
        for (int i = 0; i < 40; ++i)
            REQUIRE(c->store(key("Tell me a fact about planet " + std::to_string(i)), answer(std::to_string(i))));
        REQUIRE(c->compact_index());  // loads the index and marks it changed
    }
    const std::string good = l04::test::read_file(f.index_file());
    REQUIRE(good.size() > 1000);
    std::vector<std::pair<std::string, std::string>> cases = {
        {"truncated", good.substr(0, good.size() - 7)},
        {"bit-flipped payload", [&] {
             std::string b = good;
             b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 0x10);
             return b;
         }()},
        {"garbage", std::string(good.size(), 'x')},
        {"empty", ""},
    };
    // Another embedder's and another dimension's files, renamed into place.
    {
        VectorIndex other("someone-else", 384);
        Vector v(384, 0.0f);
        v[0] = 1;
        REQUIRE(other.add(1, v, 0, 0));
        REQUIRE(other.save(f.dir.file("other.hnsw")));
        cases.emplace_back("other embedder", l04::test::read_file(f.dir.file("other.hnsw")));
        VectorIndex wrongdim("builtin-v2", 16);
        Vector w(16, 0.0f);
        w[1] = 1;
        REQUIRE(wrongdim.add(1, w, 0, 0));
        REQUIRE(wrongdim.save(f.dir.file("dim.hnsw")));
        cases.emplace_back("wrong dimension", l04::test::read_file(f.dir.file("dim.hnsw")));
    }
    cases.emplace_back("missing", std::string("\0", 1));
    for (const auto& entry_ : cases) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& what = std::get<0>(entry_);
        const auto& bytes = std::get<1>(entry_);
        INFO(what);
        if (what == "missing")
            std::filesystem::remove(f.index_file());
        else
            l04::test::write_file(f.index_file(), bytes);
        {
            auto c = f.open();
            auto hit = c->lookup(key("tell me a fact about planet 17 please"));
            REQUIRE(hit);
            CHECK(hit->content == "17");
            CHECK(c->stats().index_size == 40);
        }
        // The rebuilt index was written back and now verifies.
        auto ok = VectorIndex::load(f.index_file(), "builtin-v2", 384);
        REQUIRE(ok);
        CHECK((*ok)->stats().live == 40);
    }
}

TEST_CASE("semantic cache: a stale index (rows written by another process) is reconciled") {
    Fixture f;
    {
        auto c = f.open();
        for (int i = 0; i < 10; ++i)
            REQUIRE(c->store(key("Old question " + std::to_string(i) + " on gardening"), answer("old" + std::to_string(i))));
        CHECK(c->lookup(key("old question 1 on gardening please")));  // loads the index
        REQUIRE(c->save_index());
        REQUIRE(std::filesystem::exists(f.index_file()));
    }
    {
        // A --no-daemon run: never loads the index (exact only), stores and deletes.
        auto c = f.open();
        REQUIRE(c->store(key("New question about sourdough starters"), answer("new")));
        REQUIRE(c->clear("", 0));  // deletes nothing: created_ms < now fails for all
        CHECK_FALSE(c->stats().index_loaded);
    }
    {
        auto db = open_state_db(f.dir.str());
        REQUIRE(db);
        REQUIRE((*db)->exec("DELETE FROM cache_entries WHERE content = 'old3'"));
    }
    auto c = f.open();
    auto hit = c->lookup(key("new question about sourdough starter please"));
    REQUIRE(hit);
    CHECK(hit->content == "new");
    CHECK_FALSE(c->lookup(key("Old question 3 on gardening please"), 0.97));
    CHECK(c->stats().index_size == 10);
}

TEST_CASE("semantic cache: warm_index loads the index before any lookup - and is a no-op when it is loaded") {
    Fixture f;
    {
        auto c = f.open();
        for (int i = 0; i < 5; ++i)
            REQUIRE(c->store(key("Warm question " + std::to_string(i) + " about tides"), answer("w" + std::to_string(i))));
    }
    auto c = f.open();
    CHECK_FALSE(c->stats().index_loaded);
    c->warm_index();
    CHECK(c->stats().index_loaded);
    CHECK(c->stats().index_size == 5);
    c->warm_index();
    CHECK(c->stats().index_size == 5);
    auto hit = c->lookup(key("warm question 2 about tides please"));
    REQUIRE(hit);
    CHECK(hit->content == "w2");
}

TEST_CASE("semantic cache: rows added by another connection are picked up while open") {
    Fixture f;
    auto a = f.open();
    REQUIRE(a->store(key("Seed entry about databases"), answer("seed")));
    CHECK(a->lookup(key("seed entry about databases please")));  // index loaded in a
    auto b = f.open();
    REQUIRE(b->store(key("How do I rotate my API keys?"), answer("rotate")));
    auto hit = a->lookup(key("how do i rotate my api keys please"));
    REQUIRE(hit);
    CHECK(hit->content == "rotate");
    // And rows deleted by the other connection are never served.
    REQUIRE(b->clear("", std::nullopt));
    CHECK_FALSE(a->lookup(key("how do i rotate my api keys please")));
}

TEST_CASE("semantic cache: concurrent lookups during inserts") {
    Fixture f;
    auto c = f.open();
    for (int i = 0; i < 20; ++i)
        REQUIRE(c->store(key("Warm entry " + std::to_string(i) + " on astronomy"), answer("w" + std::to_string(i))));
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0}, hits{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 3; ++t)
        readers.emplace_back([&, t] {
            int i = t;
            while (!done) {
                const int n = i++ % 20;
                auto h = c->lookup(key("warm entry " + std::to_string(n) + " on astronomy please"));
                if (h) {
                    ++hits;
                    if (h->content != "w" + std::to_string(n)) ++wrong;
                }
            }
        });
    for (int i = 0; i < 150; ++i)
        REQUIRE(c->store(key("Inserted entry " + std::to_string(i) + " on chemistry"), answer("i" + std::to_string(i))));
    done = true;
    for (auto& t : readers) t.join();
    CHECK(wrong == 0);
    CHECK(hits > 0);
    auto h = c->lookup(key("inserted entry 149 on chemistry please"));
    REQUIRE(h);
    CHECK(h->content == "i149");
    CHECK(c->stats().index_size == 170);
}

TEST_CASE("semantic cache: SIGKILL while inserting leaves a consistent cache") {
    Fixture f;
    {
        auto c = f.open();
        REQUIRE(c->store(key("Entry before the crash"), answer("before")));
        CHECK(c->lookup(key("entry before the crash please")));
    }
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Child: insert (and save the index now and then) until killed.
        auto db = open_state_db(f.dir.str());
        if (!db) ::_exit(3);
        CacheConfig cfg;
        cfg.background_compaction = false;
        ResponseCache c(std::move(*db), cfg, f.clock, std::make_shared<BuiltinEmbedder>());
        (void)c.lookup(key("warm up the index"));
        for (int i = 0;; ++i) {
            (void)c.store(key("Crash test entry " + std::to_string(i) + " about rivers"), answer("c" + std::to_string(i)));
            if (i % 25 == 0) (void)c.save_index();
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));

    {
        auto db = open_state_db(f.dir.str());
        REQUIRE(db);
        auto st = (*db)->prepare("PRAGMA integrity_check");
        REQUIRE(st);
        REQUIRE(st->step());
        CHECK(st->col_text(0) == "ok");
    }
    auto c = f.open();
    auto before = c->lookup(key("entry before the crash please"));
    REQUIRE(before);
    CHECK(before->content == "before");
    const auto s = c->stats();
    INFO("entries after the crash: " << s.entries);
    CHECK(s.entries >= 2);
    CHECK(s.index_size == s.entries);  // every committed row with a vector is indexed
    // Every committed row is found semantically by its own prompt.
    auto db = open_state_db(f.dir.str());
    REQUIRE(db);
    auto rows = (*db)->prepare("SELECT prompt, content FROM cache_entries");
    REQUIRE(rows);
    int checked = 0;
    for (;;) {
        auto r = rows->step();
        REQUIRE(r);
        if (!*r) break;
        auto h = c->lookup(key(rows->col_text(0) + " please"));
        REQUIRE(h);
        CHECK(h->content == rows->col_text(1));
        ++checked;
    }
    CHECK(checked == s.entries);
}

TEST_CASE("semantic cache: the hit guard refuses near misses whatever the threshold") {
    Fixture f;
    auto c = f.open();
    REQUIRE(c->store(key("Turn on the kitchen lights"), answer("Kitchen lights are on.")));
    REQUIRE(c->store(key("Book a flight from Paris to London"), answer("Booked CDG-LHR.")));
    // Far below any sensible threshold the vectors would match; the guard says no.
    CHECK_FALSE(c->lookup(key("Turn off the kitchen lights"), 0.3));
    CHECK_FALSE(c->lookup(key("Book a flight from London to Paris"), 0.3));
    auto ok = c->lookup(key("Please turn on the kitchen lights"), 0.5);
    REQUIRE(ok);
    CHECK(ok->content == "Kitchen lights are on.");
    auto s = c->stats();
    CHECK(s.guard_refusals == 2);
    CHECK(s.semantic_hits == 1);
    CHECK(s.misses == 2);

    // With the guard off (cache.semantic_guard = false) the vectors decide.
    CacheConfig off;
    off.semantic_guard = false;
    auto c2 = f.open(off);
    auto wrong = c2->lookup(key("Turn off the kitchen lights"), 0.3);
    REQUIRE(wrong);
    CHECK(wrong->content == "Kitchen lights are on.");
}

TEST_CASE("semantic cache: two cached answers almost equally close are ambiguous") {
    Fixture f;
    auto c = f.open();
    // Both pass the guard (politeness only) and have different answers;
    // builtin-v2 puts both within 0.03 of each other above the threshold.
    REQUIRE(c->store(key("Please reset my password."), answer("Laptop: Settings > Reset.")));
    REQUIRE(c->store(key("Reset my password, please."), answer("Desktop: Control panel.")));
    const auto q = key("reset my password");
    CHECK_FALSE(c->lookup(q));
    CHECK(c->stats().ambiguous == 1);
    // Without the margin the nearer one wins.
    CacheConfig no_margin;
    no_margin.semantic_margin = 0;
    auto c2 = f.open(no_margin);
    auto hit = c2->lookup(q);
    REQUIRE(hit);
    CHECK(hit->content == "Desktop: Control panel.");  // the nearer of the two with builtin-v2
}

TEST_CASE("semantic cache: a refused candidate gives way to the next one - counted once per missed lookup") {
    Fixture f;
    auto c = f.open();
    // With builtin-v2 the prompt with a code span has the query's words
    // (similarity 1, refused as a literal) and the reworded one is next.
    REQUIRE(c->store(key("Book a flight from `London` to Paris"), answer("CDG-LHR")));
    REQUIRE(c->store(key("Please book a flight from London to Paris"), answer("LHR-CDG")));
    const auto q = key("Book a flight from London to Paris");
    auto near = c->search("Book a flight from London to Paris", 2);
    REQUIRE(near);
    REQUIRE(near->size() == 2);
    REQUIRE((*near)[0].prompt == "Book a flight from `London` to Paris");
    REQUIRE((*near)[1].similarity >= 0.8);
    auto hit = c->lookup(q, 0.8);
    REQUIRE(hit);
    CHECK(hit->content == "LHR-CDG");
    CHECK(c->stats().guard_refusals == 0);  // refused one candidate, but the lookup did not miss
    // Without the second entry the same lookup misses, and that is counted.
    REQUIRE(c->clear("", std::nullopt));
    REQUIRE(c->store(key("Book a flight from `London` to Paris"), answer("CDG-LHR")));
    CHECK_FALSE(c->lookup(q, 0.8));
    const auto s = c->stats();
    CHECK(s.guard_refusals == 1);
    CHECK(s.ambiguous == 0);
}
