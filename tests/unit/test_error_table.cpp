// The error table is the one source of an error code's name, retryability,
// HTTP status, exit status and failover policy; the README's and l04ctl(1)'s
// exit-status tables must say what it says.
#include <l04/core/error.hpp>

#include "support/test_util.hpp"

#include <doctest/doctest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace l04;

namespace {

// Exit status → the exact codes (E4xxx) its documentation row names.
using DocTable = std::map<int, std::set<long>>;

std::set<long> codes_in(const std::string& text) {
    std::set<long> out;
    static const std::regex code(R"(\bE(4\d\d\d)\b)");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), code); it != std::sregex_iterator(); ++it)
        out.insert(std::stol((*it)[1].str()));
    return out;
}

// README: the "### Exit status" section's "| N | meaning |" rows.
DocTable readme_table(const std::string& readme) {
    DocTable t;
    const auto start = readme.find("### Exit status");
    REQUIRE(start != std::string::npos);
    const auto end = readme.find("\n#", start + 4);
    std::istringstream in(readme.substr(start, end - start));
    static const std::regex row(R"(^\|\s*(\d+)\s*\|(.*)\|\s*$)");
    std::string line;
    std::smatch m;
    while (std::getline(in, line))
        if (std::regex_match(line, m, row)) t[std::stoi(m[1].str())] = codes_in(m[2].str());
    return t;
}

// l04ctl(1): ".SH EXIT STATUS", then ".TP", a number line, its text lines.
DocTable man_table(const std::string& man) {
    DocTable t;
    const auto start = man.find(".SH EXIT STATUS");
    REQUIRE(start != std::string::npos);
    const auto end = man.find("\n.SH", start + 4);
    std::istringstream in(man.substr(start, end - start));
    std::string line;
    int current = -1;
    bool expect_number = false;
    while (std::getline(in, line)) {
        if (line == ".TP") {
            expect_number = true;
            continue;
        }
        if (expect_number) {
            expect_number = false;
            if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos) {
                current = std::stoi(line);
                t[current];
                continue;
            }
        }
        if (current >= 0) {
            auto c = codes_in(line);
            t[current].insert(c.begin(), c.end());
        }
    }
    return t;
}

void check_against_table(const DocTable& doc) {
    std::set<int> documented, tabled;
    for (const auto& row : doc) documented.insert(row.first);
    for (const auto& e : exit_status_table()) tabled.insert(e.status);
    CHECK(documented == tabled);
    for (const auto& row : doc) {
        for (long n : row.second) {
            CAPTURE(n);
            const auto code = error_code_from_number(n);
            REQUIRE(code.has_value());
            CHECK(exit_status(*code) == row.first);
        }
    }
}

}  // namespace

TEST_CASE("error table: one row per code - sorted - unique names - known statuses") {
    const auto& t = error_table();
    REQUIRE(t.size() == 36);
    std::set<std::string_view> names;
    std::set<int> exits;
    for (const auto& e : exit_status_table()) exits.insert(e.status);
    for (std::size_t i = 0; i < t.size(); ++i) {
        CAPTURE(t[i].name);
        if (i > 0) CHECK(t[i - 1].code < t[i].code);
        CHECK(names.insert(t[i].name).second);
        CHECK(exits.count(t[i].exit_status) == 1);
        CHECK(t[i].exit_status != 0);
        CHECK(t[i].http_status >= 400);
        CHECK(t[i].http_status < 600);
        CHECK(&error_spec(t[i].code) == &t[i]);
        CHECK(code_name(t[i].code) == t[i].name);
        CHECK(error_code_from_number(static_cast<long>(t[i].code)) == t[i].code);
    }
    CHECK_FALSE(error_code_from_number(4103).has_value());
    CHECK_FALSE(error_code_from_number(-1).has_value());
    CHECK_FALSE(error_code_from_number(70000).has_value());
    CHECK(code_name(static_cast<ErrorCode>(4999)) == "unknown");
    CHECK(exit_status(static_cast<ErrorCode>(4999)) == 1);
}

TEST_CASE("error table: the failover policy - the caller's faults stop - another provider's chance goes on") {
    // Errors the request itself causes: no other model would do better.
    for (auto c : {ErrorCode::invalid_request, ErrorCode::invalid_messages, ErrorCode::invalid_parameter,
                   ErrorCode::provider_bad_request, ErrorCode::model_not_found})
        CHECK_FALSE(fails_over(c, false));
    // One provider's state: the next model may be elsewhere.
    for (auto c : {ErrorCode::provider_not_configured, ErrorCode::auth_failed, ErrorCode::circuit_open,
                   ErrorCode::context_length_exceeded, ErrorCode::provider_model_not_found, ErrorCode::quota_exhausted})
        CHECK(fails_over(c, false));
    // A retryable error moves on whatever its code; a site may mark any
    // error retryable or not.
    CHECK(fails_over(ErrorCode::provider_error, true));
    CHECK_FALSE(fails_over(ErrorCode::provider_error, false));
    CHECK(fails_over(ErrorCode::timeout, default_retryable(ErrorCode::timeout)));
}

TEST_CASE("error table: the README's and l04ctl(1)'s exit-status tables agree with it") {
    const auto readme = readme_table(test::read_file(std::string(L04_SOURCE_DIR) + "/README.md"));
    const auto man = man_table(test::read_file(std::string(L04_SOURCE_DIR) + "/man/l04ctl.1"));
    REQUIRE(readme.size() >= 10);
    REQUIRE(man.size() >= 10);
    check_against_table(readme);
    check_against_table(man);
    // Codes named in both documents are the same codes under the same status.
    long named = 0;
    for (const auto& row : readme) named += static_cast<long>(row.second.size());
    CHECK(named >= 8);
}
