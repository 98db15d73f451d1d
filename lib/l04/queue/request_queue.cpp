#include <l04/queue/request_queue.hpp>

#include <chrono>

namespace l04 {

QueueTicket& QueueTicket::operator=(QueueTicket&& o) noexcept {
    if (this != &o) {
        if (m_q) m_q->release(m_provider);
        m_q = o.m_q;
        m_provider = std::move(o.m_provider);
        o.m_q = nullptr;
    }
    return *this;
}

QueueTicket::~QueueTicket() {
    if (m_q) m_q->release(m_provider);
}

int RequestQueue::limit_for(const std::string&) const { return m_cfg.default_provider_concurrency; }

double RequestQueue::rank(const Waiter& w, MonotonicTime now) const {
    const double waited = std::chrono::duration<double, std::milli>(now - w.enqueued).count();
    double aging = m_cfg.aging_ms > 0 ? waited / static_cast<double>(m_cfg.aging_ms) : 0.0;
    return static_cast<double>(static_cast<int>(w.prio)) - aging;
}

bool RequestQueue::is_next(std::uint64_t seq, MonotonicTime now) const {
    const Waiter& me = m_waiting.at(seq);
    auto it = m_active.find(me.provider);
    int active = it == m_active.end() ? 0 : it->second;
    if (active >= limit_for(me.provider)) return false;
    const double my_rank = rank(me, now);
    for (const auto& [s, w] : m_waiting) {
        if (s == seq || w.provider != me.provider) continue;
        double r = rank(w, now);
        if (r < my_rank || (r == my_rank && s < seq)) return false;
    }
    return true;
}

Result<QueueTicket> RequestQueue::acquire(const std::string& provider, Priority prio, Deadline deadline) {
    std::unique_lock lk(m_mu);
    if (deadline.passed(m_clock)) {
        ++m_counters.expired;
        return fail(ErrorCode::deadline_exceeded, "the request's deadline passed before it could start");
    }
    if (m_waiting.size() >= m_cfg.max_size) {
        ++m_counters.rejected_full;
        Error e(ErrorCode::queue_full, "the request queue is full (" + std::to_string(m_cfg.max_size) +
                                           " waiting); try again shortly");
        e.retry_after = std::chrono::milliseconds(1000);
        return fail(std::move(e));
    }
    const std::uint64_t seq = ++m_seq;
    m_waiting.emplace(seq, Waiter{seq, prio, m_clock.now(), provider});
    while (!is_next(seq, m_clock.now())) {
        if (deadline.passed(m_clock)) {
            m_waiting.erase(seq);
            ++m_counters.expired;
            m_cv.notify_all();
            return fail(ErrorCode::deadline_exceeded,
                        "the request's deadline passed while it waited in the queue for " + provider);
        }
        // Woken by every arrival, departure and release. Aging cannot change
        // the order of two waiters already here (both age at the same rate;
        // only a newcomer, which notifies, can rank between them), so the
        // only timer is this waiter's deadline: no polling.
        std::optional<Clock::duration> left;
        if (!deadline.never()) left = deadline.remaining(m_clock);
        m_clock.wait(m_cv, lk, left);
    }
    m_waiting.erase(seq);
    ++m_active[provider];
    m_cv.notify_all();
    return QueueTicket(this, provider);
}

void RequestQueue::release(const std::string& provider) {
    std::lock_guard lk(m_mu);
    if (--m_active[provider] <= 0) m_active.erase(provider);
    m_cv.notify_all();
}

QueueStats RequestQueue::stats() {
    std::lock_guard lk(m_mu);
    QueueStats s = m_counters;
    s.pending = m_waiting.size();
    for (const auto& [p, n] : m_active) s.active += static_cast<std::size_t>(n);
    for (const auto& [seq, w] : m_waiting) ++s.pending_by_priority[std::string(priority_name(w.prio))];
    return s;
}

}  // namespace l04
