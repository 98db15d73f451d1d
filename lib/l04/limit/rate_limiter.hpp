#pragma once
// Rate limiting: token buckets (requests/min and tokens/min) scoped per
// agent, provider and model. reserve() checks and debits every bucket of a
// request at once (all-or-nothing); settle() corrects the token debit with
// the real usage once the response ends.
#include <l04/core/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace l04 {

struct LimitRequest {
    std::string agent;
    std::string provider;
    std::string model;
    std::int64_t estimated_tokens = 0;  // prompt estimate + max_tokens (or a default guess)
    // The part that is certain (prompt estimate + an explicit max_tokens);
    // only this can make a request too large to ever fit. -1: the estimate.
    std::int64_t required_tokens = -1;
};

// What reserve() took, to be settled later.
struct Reservation {
    std::int64_t id = 0;
    LimitRequest request;
    bool shadow_rejected = false;  // would have been rejected (shadow mode)
    // Admitted from this process's lease (SqliteRateLimiter, l04d): settled
    // in memory, no database row.
    bool local = false;
};

struct BucketState {
    std::string scope;  // "agent:alice", "provider:openai", "model:gpt-4o"
    std::string kind;   // "requests" or "tokens"
    double level = 0;
    double capacity = 0;
    double refill_per_s = 0;
};

class RateLimiter {
public:
    virtual ~RateLimiter() = default;
    // Admits or rejects (E4401 with retry_after). Never blocks.
    virtual Result<Reservation> reserve(const LimitRequest& req) = 0;
    // Refunds or charges the difference between estimate and actual tokens.
    virtual void settle(const Reservation& r, std::int64_t actual_tokens) = 0;
    virtual std::vector<BucketState> buckets() = 0;
    // Gives back what this process holds in memory (leases) to the state
    // other processes share. No-op where nothing is held.
    virtual void flush() {}
};

// Admits everything (rate_limit.enabled = false).
class UnlimitedRateLimiter final : public RateLimiter {
public:
    Result<Reservation> reserve(const LimitRequest& req) override {
        Reservation r;
        r.request = req;
        return r;
    }
    void settle(const Reservation&, std::int64_t) override {}
    std::vector<BucketState> buckets() override { return {}; }
};

}  // namespace l04
