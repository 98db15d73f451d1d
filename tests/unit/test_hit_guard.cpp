// The semantic hit guard (hit_guard.hpp): what it refuses, what it lets
// through, and the hit decision with threshold, guard and ambiguity margin.
#include <doctest/doctest.h>

#include <l04/cache/hit_guard.hpp>
#include <l04/cache/text_features.hpp>

#include <string>
#include <vector>

using namespace l04;

TEST_CASE("hit guard: numbers - negation - antonyms - swapped entities - word swaps are refused") {
    struct Case {
        const char* a;
        const char* b;
        HitConflict why;
    };
    const std::vector<Case> cases = {
        {"Resize the image to 800 by 600", "Resize the image to 600 by 800", HitConflict::numbers},
        {"Upgrade to Python 3.11", "Upgrade to Python 3.12", HitConflict::numbers},
        {"Explain HTTP/2", "Explain HTTP", HitConflict::numbers},  // a number only one side has
        {"How do I delete my account?", "How do I not delete my account?", HitConflict::negation},
        {"Why does my code compile?", "Why doesn't my code compile?", HitConflict::negation},
        {"Write a function with recursion", "Write a function without recursion", HitConflict::negation},
        {"Turn on the lights", "Turn off the lights", HitConflict::polarity},
        {"Is the store open on Sunday?", "Is the store closed on Sunday?", HitConflict::polarity},  // by stem
        {"Encode this string in base64", "Decode this string in base64", HitConflict::polarity},   // guard-only pair
        {"Disable the firewall", "Enabling the firewall", HitConflict::polarity},
        {"Log in to the dashboard", "Log out of the dashboard", HitConflict::polarity},
        {"Book a flight from Paris to London", "Book a flight from London to Paris", HitConflict::roles},
        {"Convert 5 kilometers to miles", "Convert 5 miles to kilometers", HitConflict::roles},
        {"Is Go faster than Python?", "Is Python faster than Go?", HitConflict::roles},
        {"Did the dog bite the man?", "Did the man bite the dog?", HitConflict::order},
    };
    for (const auto& c : cases) {
        INFO(std::string(c.a), " / ", std::string(c.b));
        CHECK(semantic_conflict(c.b, c.a) == c.why);
        CHECK(semantic_conflict(c.a, c.b) == c.why);  // symmetric
    }
}

TEST_CASE("hit guard: rewordings pass") {
    // The same words in another form: case, punctuation, inflection, the
    // embedder's synonyms, articles, the asker's pronouns, politeness.
    const std::vector<std::pair<const char*, const char*>> same = {
        {"How do I reset my password?", "how do I reset my password"},
        {"It is not available in v2.10.0.", "it isn't available in v2.10.0!"},  // both negated
        {"Send 1,000 dollars to Ben", "Send 1000 dollars to Ben"},
        {"Turn on the lights", "Please turn on the lights"},
        {"Move the file to the archive folder", "Please move the files to the archive folder!"},
        {"How do I utilize the cache?", "How do I use the cache"},  // a known synonym
        {"Translate \"good morning\" into French", "Please translate \"good morning\" into French."},
        {"What is the capital of France?", "what's the capital of France"},
        {"Explain the difference between TCP and UDP", "Please explain the difference between TCP and UDP."},
    };
    for (const auto& entry_ : same) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& a = std::get<0>(entry_);
        const auto& b = std::get<1>(entry_);
        INFO(std::string(a), " / ", std::string(b));
        CHECK(semantic_conflict(b, a) == HitConflict::none);
    }
    CHECK(std::string(to_string(HitConflict::roles)) == "roles");
}

TEST_CASE("hit guard: literals and every other changed word are refused") {
    struct Case {
        const char* a;
        const char* b;
        HitConflict why;
    };
    const std::vector<Case> cases = {
        {"What does /etc/hosts contain?", "What does /etc/hostname contain?", HitConflict::literal},
        {"Explain `x == y` in JavaScript", "Explain `x === y` in JavaScript", HitConflict::literal},
        {"Translate \"good morning\" into French", "Translate \"good night\" into French", HitConflict::literal},
        {"Why is my $HOME empty?", "Why is my $PATH empty?", HitConflict::literal},
        {"What does git push --force do?", "What does git push --dry-run do?", HitConflict::literal},
        {"Rename userId to accountId", "Rename userName to accountId", HitConflict::literal},
        {"Is 2024 a leap year?", "Is 2024 a non-leap year?", HitConflict::literal},  // hyphenated
        {"Is this list sorted?", "Is this list unsorted?", HitConflict::wording},
        {"Write SQL that selects users older than 30", "Write SQL that deletes users older than 30",
         HitConflict::wording},
        {"What is the capital of Austria?", "What is the capital of Australia?", HitConflict::wording},
        {"Say hello in French", "Say hello in German", HitConflict::wording},
        {"Convert 5 km to meters", "Convert 5 miles to meters", HitConflict::wording},
        {"Which is the first element?", "Which is the last element?", HitConflict::polarity},
        {"Is the price greater than the cost?", "Is the price less than the cost?", HitConflict::wording},
        {"What happened in March 1999?", "What happened in May 1999?", HitConflict::wording},
        {"Why did he leave the company?", "Why did she leave the company?", HitConflict::wording},
        {"How do I fix this bug?", "Why do I have this bug?", HitConflict::wording},
        {"Turn off the kitchen lights", "Turn off the kitchen lights tomorrow", HitConflict::wording},
        {"Copy the files from the server", "Copy the files to the server", HitConflict::wording},
        {"Replace tabs with spaces in this file", "Replace spaces with tabs in this file", HitConflict::order},
        {"Does vitamin D help the body absorb calcium?", "Does calcium help the body absorb vitamin D?",
         HitConflict::order},
        {"How many yen is 200 dollars?", "How many dollars is 200 yen?", HitConflict::order},
        // Review findings: stems that collide, other people, auxiliaries,
        // where a negation stands, any reordering, letters in numbers.
        {"What is a plane?", "What is a plan?", HitConflict::wording},
        {"Show me the state of the cluster", "Show me the stats of the cluster", HitConflict::wording},
        {"What is my name?", "What is your name?", HitConflict::wording},
        {"Should we hire you?", "Should you hire us?", HitConflict::wording},
        {"Can dogs eat grapes?", "Do dogs eat grapes?", HitConflict::wording},
        {"Does it rain in Lima?", "Did it rain in Lima?", HitConflict::wording},
        {"Which fruits are not red but are sweet?", "Which fruits are red but are not sweet?", HitConflict::wording},
        {"Is a square a rectangle?", "Is a rectangle a square?", HitConflict::order},
        {"Treat warnings as errors", "Treat errors as warnings", HitConflict::order},
        {"Spain beat Italy and France beat Germany", "Italy beat Spain and Germany beat France", HitConflict::order},
        {"Health effects of CO2 exposure", "Health effects of NO2 exposure", HitConflict::numbers},
        {"Explain AES256", "Explain SHA256", HitConflict::numbers},
        {"The `cache_dir` parameter has `~/.cache` as its default value.",
         "The default value of the `cache_dir` parameter is `~/.cache`.", HitConflict::order},
        {"Is the server not running?", "Isn't the server running?", HitConflict::wording},
    };
    for (const auto& c : cases) {
        INFO(std::string(c.a), " / ", std::string(c.b));
        CHECK(semantic_conflict(c.b, c.a) == c.why);
        CHECK(semantic_conflict(c.a, c.b) == c.why);  // symmetric
    }
    CHECK(std::string(to_string(HitConflict::wording)) == "wording");
    CHECK(std::string(to_string(HitConflict::literal)) == "literal");
}

TEST_CASE("text features: the guard's antonym axes follow stems and extend the embedder's table") {
    const auto open = text::polarity_of("opened");
    const auto closed = text::polarity_of("closing");
    REQUIRE(open);
    REQUIRE(closed);
    CHECK(open->first == closed->first);
    CHECK(open->second == -closed->second);
    CHECK(text::polarity("opened") != std::nullopt);
    CHECK_FALSE(text::polarity("decode"));  // not in the embedder's table
    const auto dec = text::polarity_of("decode");
    const auto enc = text::polarity_of("encoded");
    REQUIRE(dec);
    REQUIRE(enc);
    CHECK(dec->first == enc->first);
    CHECK(dec->second == -enc->second);
    // "subtract" joins the existing add/remove axis instead of a new one.
    const auto add = text::polarity_of("add");
    const auto sub = text::polarity_of("subtract");
    REQUIRE(add);
    REQUIRE(sub);
    CHECK(add->first == sub->first);
    CHECK(add->second == -sub->second);
}

TEST_CASE("choose_semantic_hit: threshold - guard skips to the next candidate - ambiguity margin") {
    const std::string q = "Turn off the kitchen lights";
    SUBCASE("below the threshold is a miss") {
        std::vector<SemanticCandidate> c = {{0.80, "Please turn off the kitchen lights", "A"}};
        auto r = choose_semantic_hit(q, c, 0.85, 0.03, true);
        CHECK(r.index == -1);
        CHECK(r.refused == HitConflict::none);
        CHECK_FALSE(r.ambiguous);
        CHECK(choose_semantic_hit(q, c, 0.80, 0.03, true).index == 0);  // at the threshold: a hit
    }
    SUBCASE("a refused best candidate gives way to the next one above the threshold") {
        std::vector<SemanticCandidate> c = {{0.95, "Turn on the kitchen lights", "on"},
                                            {0.88, "Please turn off the kitchen lights", "off"}};
        auto r = choose_semantic_hit(q, c, 0.85, 0.03, true);
        CHECK(r.index == 1);
        CHECK(r.refused == HitConflict::polarity);
        auto unguarded = choose_semantic_hit(q, c, 0.85, 0.03, false);
        CHECK(unguarded.index == 0);
        CHECK(unguarded.refused == HitConflict::none);
    }
    SUBCASE("a refused candidate and nothing else is a miss") {
        std::vector<SemanticCandidate> c = {{0.97, "Turn on the kitchen lights", "on"}};
        auto r = choose_semantic_hit(q, c, 0.85, 0.03, true);
        CHECK(r.index == -1);
        CHECK(r.refused == HitConflict::polarity);
    }
    SUBCASE("two different answers within the margin are ambiguous") {
        std::vector<SemanticCandidate> c = {{0.91, "Turn off the kitchen lights, thanks!", "A"},
                                            {0.89, "Please turn off the kitchen lights", "B"}};
        auto r = choose_semantic_hit(q, c, 0.85, 0.03, true);
        CHECK(r.index == -1);
        CHECK(r.ambiguous);
        CHECK(choose_semantic_hit(q, c, 0.85, 0.01, true).index == 0);  // outside a smaller margin
        CHECK(choose_semantic_hit(q, c, 0.85, 0.0, true).index == 0);   // margin off
    }
    SUBCASE("margin 0 turns the check off, ties included") {
        std::vector<SemanticCandidate> c = {{0.90, "Turn off the kitchen lights, thanks!", "A"},
                                            {0.90, "Please turn off the kitchen lights", "B"}};
        CHECK(choose_semantic_hit(q, c, 0.85, 0.0, true).index == 0);
        CHECK(choose_semantic_hit(q, c, 0.85, 0.03, true).ambiguous);
    }
    SUBCASE("a rival below the threshold but within the margin still counts") {
        std::vector<SemanticCandidate> c = {{0.86, "Turn off the kitchen lights, thanks!", "A"},
                                            {0.84, "Please turn off the kitchen lights", "B"}};
        CHECK(choose_semantic_hit(q, c, 0.85, 0.03, true).ambiguous);
    }
    SUBCASE("equal answers never compete, and a refused rival is no rival") {
        std::vector<SemanticCandidate> same = {{0.91, "Turn off the kitchen lights, thanks!", "A"},
                                               {0.90, "Please turn off the kitchen lights", "A"}};
        CHECK(choose_semantic_hit(q, same, 0.85, 0.03, true).index == 0);
        std::vector<SemanticCandidate> refused_rival = {{0.91, "Turn off the kitchen lights, thanks!", "A"},
                                                        {0.90, "Turn on the kitchen lights", "B"}};
        CHECK(choose_semantic_hit(q, refused_rival, 0.85, 0.03, true).index == 0);
    }
    SUBCASE("the same text re-embedded reaches a threshold of 1.0 and is never ambiguous") {
        std::vector<SemanticCandidate> c = {{0.9999995, q, "A"}, {0.99, "Turn off the kitchen lights!", "B"}};
        CHECK(choose_semantic_hit(q, c, 1.0, 0.03, true).index == 0);
        CHECK(choose_semantic_hit(q, c, 0.85, 0.03, true).index == 0);
    }
}
