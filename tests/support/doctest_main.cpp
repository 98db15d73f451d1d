// The test binaries' main. Besides running doctest, it fails a run whose
// test-case filter matched nothing: CTest runs each case by name, and a name
// that no longer matches (renamed, or cut at a comma by a filter) must not
// pass silently.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

namespace {

unsigned g_cases_run = 0;
bool g_run_ended = false;

struct CountingListener : doctest::IReporter {
    explicit CountingListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats& s) override {
        g_cases_run = s.numTestCasesPassingFilters;
        g_run_ended = true;
    }
    void test_case_start(const doctest::TestCaseData&) override {}
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("l04-counting", 1, CountingListener);

int main(int argc, char** argv) {
    doctest::Context ctx(argc, argv);
    const int res = ctx.run();
    if (ctx.shouldExit()) return res;
    bool filtered = false;
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], "--test-case=", 12) == 0 || std::strncmp(argv[i], "-tc=", 4) == 0) filtered = true;
    if (filtered && g_run_ended && g_cases_run == 0) {
        std::fprintf(stderr, "no test case matched the filter: a test name must not contain ',' or ';'\n");
        return 1;
    }
    return res;
}
