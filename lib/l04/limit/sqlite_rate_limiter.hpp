#pragma once
// The rate limiter l04 uses: token buckets persisted in the state database so
// that l04d and every `l04ctl --no-daemon` run share them. One bucket per
// (scope, kind): scope "agent:<id>", "provider:<id>" or "model:<id>", kind
// requests or tokens; capacity = the per-minute limit, refilled continuously
// at limit/60 per second, starting full.
//
// reserve() runs one BEGIN IMMEDIATE transaction: refill every bucket of the
// request by the elapsed wall time, check all, debit all or none. The token
// debit is persisted as a reservation row that settle() later corrects with
// the real usage (refund bounded at capacity, extra charge bounded at
// -capacity, i.e. at most one minute of debt).
//
// Leases (lease_ms > 0): a busy bucket's decisions are made in memory. When
// a transaction admits a request and the bucket keeps at least half its
// capacity, it also debits a lease of what the bucket refills in lease_ms
// (e.g. 200 ms: 0.33% of the per-minute limit) and this process admits the
// next requests from it without touching SQLite (only when every bucket of
// a request has a lease). l04d leases from its first decision; other
// processes (lease_only_when_busy: `--no-daemon` runs) only a bucket they
// decided on less than lease_ms before, so a run that decides once never
// holds one. A lease is never used after lease_ms; it is given back (added
// to the shared level) by the next transaction on its bucket, by flush()
// (l04d calls it every second) and on destruction.
// Every admission is debited in the shared database before it happens, and
// each lease out has a row (limit_leases) until it is given back: it holds
// back its whole amount while it may be used, then less and less at the
// bucket's refill rate (the refill it stood for, paid back as the bucket
// alone would refill). A bucket refills only up to its capacity minus what
// the leases out hold, and a lease given back returns at most up to that.
// So leasing processes together admit no more than the bucket alone would,
// in any window. (A token refund
// settled into a lease can be used before it is given back: at most the
// refund.) The cost is on the other side: other processes can be refused
// capacity that sits unused in a lease, one lease (0.33% of the per-minute
// limit) per leasing process, until it is given back (l04d: within a
// second; a run: at its next decision on that bucket or when it ends; a
// process killed holding one never gives it back: as if used). Near the limit (below half) no lease is taken, so a bucket
// that is being exhausted is decided exactly, as without leases.
#include <l04/core/clock.hpp>
#include <l04/limit/rate_limiter.hpp>
#include <l04/store/db.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

namespace l04 {

// Stable numbers (persisted in limit_buckets.kind).
enum class BucketKind : std::uint8_t { requests = 0, tokens = 1 };
std::string_view bucket_kind_name(BucketKind k);

// Per-minute limits of one scope; 0 = unlimited.
struct Limits {
    std::int64_t requests_per_minute = 0;
    std::int64_t tokens_per_minute = 0;
    bool operator==(const Limits&) const = default;
};

struct RateLimitConfig {
    // false = shadow mode: over-limit requests are counted and admitted with
    // Reservation::shadow_rejected set, and debit nothing (as if rejected).
    bool enforced = true;
    // Every agent without an "agent:<id>" entry gets these.
    Limits agent_default{60, 100'000};
    // "agent:alice", "provider:openai", "model:gpt-4o" → limits. Providers and
    // models without an entry are not limited.
    std::map<std::string, Limits, std::less<>> scopes;
    // A request needing more tokens than a bucket's whole capacity can never
    // fit: refused (E4401, not retryable, no Retry-After) unless this is set,
    // then admitted when the bucket is full, leaving it in debt.
    bool allow_oversized = false;
    // Reservations never settled (crashed process) are forgotten after this;
    // their estimate stays charged.
    std::int64_t reservation_ttl_ms = 3'600'000;
    // How long reserve()/settle() wait for another process's transaction.
    std::int64_t busy_timeout_ms = 5'000;
    // How long a lease of a busy bucket may be used (see above); 0 = none.
    std::int64_t lease_ms = 0;
    // Lease only a bucket this process decided on less than lease_ms before
    // (`--no-daemon` runs); false: from the first decision (l04d).
    bool lease_only_when_busy = false;
};

// Parses the `rate_limit.scopes` setting: entries "scope=rpm[/tpm]" separated
// by ',' or ';', e.g. "provider:openai=500/200000, model:gpt-4o=100/-,
// agent:cron=10". A value of 0 or '-' means unlimited. An omitted tpm is the
// agent default for agent scopes and unlimited otherwise (agent_default is
// used for that). Fails with E4004 naming the bad entry.
Result<std::map<std::string, Limits, std::less<>>> parse_scope_limits(std::string_view spec,
                                                                      const Limits& agent_default);

class SqliteRateLimiter final : public RateLimiter {
public:
    // Uses db (the state database, migrated) for buckets and reservations;
    // installs a short busy wait on it. Fails with E4300 if a statement cannot
    // be prepared (schema missing).
    static Result<std::unique_ptr<SqliteRateLimiter>> create(std::unique_ptr<Db> db, RateLimitConfig cfg,
                                                             Clock& clock);

    // Admits and debits every bucket of req, or none of them. Over limit:
    // E4401 (retryable) naming the limiting bucket, retry_after = time until
    // every short bucket holds enough (requests larger than a token bucket's
    // capacity are admitted when that bucket is full, leaving it in debt).
    // In shadow mode never rejects. Database trouble (busy past the timeout,
    // I/O): E4300. Thread-safe.
    Result<Reservation> reserve(const LimitRequest& req) override;
    // settle_checked() with errors dropped (the interface's contract).
    void settle(const Reservation& r, std::int64_t actual_tokens) override;
    // Applies estimate - actual_tokens to the token buckets of r's persisted
    // reservation and deletes it. Idempotent: an unknown or already settled id
    // (or id 0: nothing was reserved) is a no-op. Fails with E4300.
    Status settle_checked(const Reservation& r, std::int64_t actual_tokens);
    // Every bucket limited under the current config, refilled to now (not
    // written), sorted by scope then kind; configured scopes not used yet show
    // full. Empty on database error.
    std::vector<BucketState> buckets() override;
    // Gives every lease back (one transaction). Errors are dropped: the
    // lease is then kept, to be given back by the next transaction.
    void flush() override;
    ~SqliteRateLimiter() override;
    // Limits that apply to a scope ("agent:x" falls back to agent_default).
    Limits limits_for(std::string_view scope) const;
    // Deletes reservations older than the TTL (returns how many) and the
    // buckets of idle scopes (refilled to capacity). Runs every 1024
    // reservations by itself.
    Result<std::int64_t> prune_reservations();

    const RateLimitConfig& config() const { return m_cfg; }

private:
    struct Need;
    SqliteRateLimiter(std::unique_ptr<Db> db, RateLimitConfig cfg, Clock& clock);
    Status prepare();
    std::vector<Need> needs_for(const std::string& agent, const std::string& provider, const std::string& model,
                                std::int64_t tokens, bool tokens_only) const;
    // Reads the buckets of needs (one SELECT; missing ones are full) and
    // refills them to now_ms, each up to its capacity minus the leases out
    // on it (table limit_leases, every process's, this one's included), in
    // the order of needs. `leased`, when given, gets those leases' sums.
    Result<std::vector<double>> load_levels(const std::vector<Need>& needs, std::int64_t now_ms,
                                            std::vector<double>* leased = nullptr);
    // Writes a bucket's level as of now_ms (updated_ms never moves back).
    Status store_level(const Need& n, double level, std::int64_t now_ms);
    Result<std::int64_t> prune_reservations_locked(std::int64_t now_ms);
    // Admits req from the leases of every bucket it needs, or returns false
    // (a lease missing, expired or too small: decide in SQLite).
    bool take_from_leases(const std::vector<Need>& needs);
    // Adds the lease of n's bucket (if any) to level, up to the capacity
    // minus the other leases out (`leased`: all of them, as load_levels
    // read), and deletes its row; true when there was one (the level must
    // then be stored, and the lease forgotten on commit).
    Result<bool> add_lease_back(const Need& n, double& level, double leased, std::int64_t now_ms);
    void forget_leases(const std::vector<Need>& needs, const std::vector<bool>& given_back);
    // What the bucket refills in lease_ms, when it keeps at least half its
    // capacity after `level_after`; else 0.
    double lease_size(const Need& n, double level_after) const;

    struct Lease {
        double held = 0;  // debited in the database, not admitted yet (< 0: a charge still to make)
        double capacity = 0, refill_per_s = 0;
        Clock::duration until{};  // monotonic; not used after this
        // Its row in limit_leases (0: none, a refund to give back) with the
        // amount debited and the wall time the row counts until.
        std::int64_t row_id = 0;
        double amount = 0;
        std::int64_t row_until_ms = 0;
    };
    std::map<std::pair<std::string, BucketKind>, Lease> m_leases;
    // lease_only_when_busy: when each bucket was last decided in SQLite
    // (monotonic).
    std::map<std::pair<std::string, BucketKind>, Clock::duration> m_last_decided;
    // Whether every bucket of needs was decided less than lease_ms ago;
    // notes now as their last decision.
    bool busy(const std::vector<Need>& needs);

    std::unique_ptr<Db> m_db;
    RateLimitConfig m_cfg;
    Clock& m_clock;
    std::mutex m_mu;
    std::uint64_t m_reserves = 0;
    std::mt19937_64 m_rng;  // reservation ids: random, never reused
    Stmt m_select_bucket, m_upsert_bucket;
    Stmt m_select_leased, m_insert_lease, m_delete_lease;
    Stmt m_insert_reservation, m_select_reservation, m_delete_reservation;
};

}  // namespace l04
