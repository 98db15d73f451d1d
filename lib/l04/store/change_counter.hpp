#pragma once
// A counter that every process using one state database sees: a file of
// eight bytes beside the database, mapped shared, bumped atomically after a
// commit that others must notice. A reader that finds the same value as
// when it last read the database knows no such commit has happened since,
// without a query (no read transaction, no file lock). Used by the circuit
// breaker so that a CLOSED provider costs no SQLite read per request.
//
// Protocol: read value() BEFORE reading the database; bump() AFTER the
// commit. A reader can then only ever keep data that is at least as new as
// the value it stored with it.
//
// Without a file (an in-memory database, a file that cannot be created or
// mapped, or one owned by another user) the counter is this process's own,
// and exact for the connections of this process only; callers that need
// other processes' commits should bound how long they trust it.
#include <atomic>
#include <cstdint>
#include <string>

namespace l04 {

class ChangeCounter {
public:
    // db_path: the database file ("" or ":memory:" for none). The counter
    // file is db_path + "-changes", mode 0600.
    explicit ChangeCounter(const std::string& db_path);
    ~ChangeCounter();
    ChangeCounter(const ChangeCounter&) = delete;
    ChangeCounter& operator=(const ChangeCounter&) = delete;

    std::uint64_t value() const;
    void bump();
    // Whether other processes share it (the file is mapped).
    bool shared() const { return m_map != nullptr; }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
    void* m_map = nullptr;
    std::atomic<std::uint64_t> m_local{0};
};

}  // namespace l04
