#pragma once
// Admission queue in front of providers: priorities (high, normal, low) with
// aging, a deadline per request, a maximum size and per-provider concurrency.
// acquire() blocks until the request may start, or fails early (E4404 when
// its deadline cannot be met, E4403 when the queue is full).
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/fiber.hpp>
#include <l04/core/types.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace l04 {

struct QueueConfig {
    std::size_t max_size = 1024;
    int default_provider_concurrency = 64;  // queue.provider_concurrency: calls in flight per provider
    std::int64_t aging_ms = 5000;  // a waiting request gains one priority level per aging_ms
};

struct QueueStats {
    std::size_t pending = 0;
    std::size_t active = 0;
    std::map<std::string, std::size_t> pending_by_priority;
    std::uint64_t rejected_full = 0;
    std::uint64_t expired = 0;
};

class RequestQueue;

// Held while a request runs; releases its provider slot when destroyed.
class QueueTicket {
public:
    QueueTicket() = default;
    QueueTicket(RequestQueue* q, std::string provider) : m_q(q), m_provider(std::move(provider)) {}
    QueueTicket(QueueTicket&& o) noexcept : m_q(o.m_q), m_provider(std::move(o.m_provider)) { o.m_q = nullptr; }
    QueueTicket& operator=(QueueTicket&& o) noexcept;
    ~QueueTicket();

private:
    RequestQueue* m_q = nullptr;
    std::string m_provider;
};

class RequestQueue {
public:
    RequestQueue(QueueConfig cfg, Clock& clock) : m_cfg(std::move(cfg)), m_clock(clock) {}
    // Waits for a slot on `provider`; fails early with E4404 when the
    // deadline passes while waiting (or has passed already).
    Result<QueueTicket> acquire(const std::string& provider, Priority prio, Deadline deadline = {});
    QueueStats stats();

private:
    friend class QueueTicket;
    void release(const std::string& provider);
    struct Waiter {
        std::uint64_t seq;
        Priority prio;
        MonotonicTime enqueued;
        std::string provider;
    };
    int limit_for(const std::string& provider) const;
    // Effective rank after aging: lower is served first.
    double rank(const Waiter& w, MonotonicTime now) const;
    bool is_next(std::uint64_t seq, MonotonicTime now) const;

    QueueConfig m_cfg;
    Clock& m_clock;
    std::mutex m_mu;
    Condition m_cv;  // threads and fibers (l04d) wait on it
    std::map<std::uint64_t, Waiter> m_waiting;
    std::map<std::string, int> m_active;
    std::uint64_t m_seq = 0;
    QueueStats m_counters;
};

}  // namespace l04
