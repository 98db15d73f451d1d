// The prompt log (lib/l04/log): recording, conversations, search, retention.
#include <l04/log/prompt_log.hpp>

#include "support/test_util.hpp"

#include <doctest/doctest.h>

using namespace l04;

namespace {
LoggedPrompt entry(std::int64_t ts, std::string prompt, std::string conversation = {}) {
    LoggedPrompt p;
    p.ts_ms = ts;
    p.prompt = std::move(prompt);
    p.response = "answer to " + p.prompt;
    p.model = "mock";
    p.conversation_id = std::move(conversation);
    return p;
}
}  // namespace

TEST_CASE("prompt log - conversations - newest first - full-text search with literal words") {
    test::TempDir dir;
    auto log = PromptLog::open(dir.str());
    REQUIRE(log);
    CHECK((*log)->latest_conversation().value().empty());
    auto a = entry(1000, "how do cats purr");
    REQUIRE((*log)->record(a));
    CHECK(a.id == 1);
    CHECK(a.conversation_id.size() == 21);
    auto b = entry(2000, "and dogs?", a.conversation_id);
    REQUIRE((*log)->record(b));
    auto c = entry(3000, "unrelated \"quoted\" AND text*");
    REQUIRE((*log)->record(c));
    CHECK(c.conversation_id != a.conversation_id);
    CHECK((*log)->latest_conversation().value() == c.conversation_id);

    auto turns = (*log)->conversation(a.conversation_id);
    REQUIRE(turns);
    REQUIRE(turns->size() == 2);
    CHECK((*turns)[0].prompt == "how do cats purr");
    CHECK((*turns)[1].prompt == "and dogs?");

    LogQuery q;
    auto all = (*log)->list(q);
    REQUIRE(all);
    REQUIRE(all->size() == 3);
    CHECK(all->front().id == 3);
    q.text = "cats";
    CHECK((*log)->list(q)->size() == 1);
    q.text = "answer dogs";  // every word, in prompt or answer
    CHECK((*log)->list(q)->size() == 1);
    for (const char* odd : {"\"quoted\"", "AND", "text*", "(", "NEAR(", "\"", "*"}) {
        q.text = odd;
        INFO(odd);
        CHECK((*log)->list(q));  // never an FTS syntax error
    }
    q.text = "\"quoted\"";
    CHECK((*log)->list(q)->size() == 1);
    q = LogQuery{};
    q.since_ms = 2000;
    CHECK((*log)->list(q)->size() == 2);
    q.since_ms = 0;
    q.limit = 1;
    CHECK((*log)->list(q)->size() == 1);

    CHECK((*log)->remove(2).value() == 1);
    CHECK((*log)->remove(2).value() == 0);
    CHECK_FALSE((*log)->get(2).value().has_value());
    q = LogQuery{};
    q.text = "dogs";
    CHECK((*log)->list(q)->empty());  // gone from the index as well

    // Retention: recording prunes what is older.
    auto d = entry(100000, "late");
    REQUIRE((*log)->record(d, 50000));
    CHECK((*log)->list(LogQuery{})->size() == 1);
    CHECK((*log)->remove_older_than(200000).value() == 1);
}

TEST_CASE("fts_literal_query quotes every word") {
    CHECK(fts_literal_query("") == "");
    CHECK(fts_literal_query("  a  b ") == "\"a\" \"b\"");
    CHECK(fts_literal_query("say \"hi\"") == "\"say\" \"\"\"hi\"\"\"");
}
