#pragma once
// Internal helpers of the SQLite-backed limiter and breaker: a statement
// reset guard and a BEGIN IMMEDIATE transaction run through prepared
// statements (cheaper than Db::exec on the hot path).
#include <l04/store/db.hpp>

namespace l04 {

// Resets a prepared statement when the scope ends (ends its read, clears
// bindings).
class StmtReset {
public:
    explicit StmtReset(Stmt& s) : m_s(s) {}
    ~StmtReset() { m_s.reset(); }
    StmtReset(const StmtReset&) = delete;
    StmtReset& operator=(const StmtReset&) = delete;

private:
    Stmt& m_s;
};

// BEGIN IMMEDIATE on begin(); ROLLBACK on destruction unless commit() ran.
// Fails with E4300 (retryable when the database stayed busy).
class ImmediateTx {
public:
    static Result<ImmediateTx> begin(Stmt& begin, Stmt& commit, Stmt& rollback) {
        StmtReset r(begin);
        if (auto st = begin.run(); !st) return fail(st.error());
        return ImmediateTx(commit, rollback);
    }
    ImmediateTx(ImmediateTx&& o) noexcept : m_commit(o.m_commit), m_rollback(o.m_rollback), m_open(o.m_open) {
        o.m_open = false;
    }
    ImmediateTx& operator=(ImmediateTx&&) = delete;
    ~ImmediateTx() {
        if (!m_open) return;
        StmtReset r(*m_rollback);
        (void)m_rollback->run();
    }
    // Commits; on failure the transaction is rolled back by the destructor.
    Status commit() {
        StmtReset r(*m_commit);
        auto st = m_commit->run();
        if (st) m_open = false;
        return st;
    }

private:
    ImmediateTx(Stmt& commit, Stmt& rollback) : m_commit(&commit), m_rollback(&rollback) {}
    Stmt* m_commit;
    Stmt* m_rollback;
    bool m_open = true;
};

}  // namespace l04
