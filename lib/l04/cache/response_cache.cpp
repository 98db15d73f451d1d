#include <l04/cache/hit_guard.hpp>
#include <l04/cache/response_cache.hpp>
#include <l04/store/schema.hpp>

#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace l04 {

namespace {

constexpr std::size_t k_pending_max = 256;

// Columns read for a hit, in this order.
constexpr const char* k_hit_cols =
    "id, model_id, provider, content, finish_reason, tool_calls, prompt_tokens, completion_tokens, cost_usd, "
    "created_ms, expires_ms, scope, embedder, dims, extra";

constexpr auto put_field = put_length_prefixed;
constexpr auto get_field = get_length_prefixed;

// What a response has beyond its first choice's text and tool calls: the
// logprobs, the message's other keys (audio, annotations) and the other
// choices of an n > 1 request (migration 5).
std::string encode_extra(const InferenceResponse& r) {
    if (r.logprobs.empty() && r.more_choices.empty() && r.message_extra.empty()) return {};
    std::string out = "1:2";  // format version
    put_field(out, r.logprobs);
    put_field(out, r.message_extra);
    put_field(out, std::to_string(r.more_choices.size()));
    for (const auto& c : r.more_choices) {
        put_field(out, c.content);
        put_field(out, c.finish_reason);
        put_field(out, c.logprobs);
        put_field(out, encode_tool_calls(c.tool_calls));
    }
    return out;
}
// False when the blob is damaged: such an entry is never served.
bool decode_extra(std::string_view data, InferenceResponse& r) {
    if (data.empty()) return true;
    std::string version, count;
    if (!get_field(data, version) || version != "2" || !get_field(data, r.logprobs) ||
        !get_field(data, r.message_extra) || !get_field(data, count))
        return false;
    std::size_t n = 0;
    for (char ch : count) {
        if (ch < '0' || ch > '9' || n > 1000) return false;
        n = n * 10 + static_cast<std::size_t>(ch - '0');
    }
    for (std::size_t i = 0; i < n; ++i) {
        InferenceResponse::Choice c;
        std::string calls;
        if (!get_field(data, c.content) || !get_field(data, c.finish_reason) || !get_field(data, c.logprobs) ||
            !get_field(data, calls))
            return false;
        c.tool_calls = decode_tool_calls(calls);
        r.more_choices.push_back(std::move(c));
    }
    return data.empty();
}

// A row selected with k_hit_cols, read by column name.
InferenceResponse response_from(const Stmt& st) {
    InferenceResponse r;
    r.model_id = st.col_text("model_id");
    r.provider = st.col_text("provider");
    r.content = st.col_text("content");
    r.finish_reason = st.col_text("finish_reason");
    r.tool_calls = decode_tool_calls(st.col_blob("tool_calls"));
    r.token_usage.prompt_tokens = st.col_int("prompt_tokens");
    r.token_usage.completion_tokens = st.col_int("completion_tokens");
    r.token_usage.total_tokens = r.token_usage.prompt_tokens + r.token_usage.completion_tokens;
    r.metadata["original_cost_usd"] = std::to_string(st.col_double("cost_usd"));
    r.metadata["cached_at"] = std::to_string(st.col_int("created_ms"));
    if (!decode_extra(st.col_blob("extra"), r)) r.finish_reason = "error";  // damaged: the caller skips it
    r.cache_hit = CacheHit::exact;  // lookup() says which kind
    r.cost_usd = 0;
    return r;
}

std::string encode_vector(const Vector& v) {
    std::string out(v.size() * sizeof(float), '\0');
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

std::optional<Vector> decode_vector(const std::string& blob, std::size_t dims) {
    if (blob.size() != dims * sizeof(float)) return std::nullopt;
    Vector v(dims);
    std::memcpy(v.data(), blob.data(), blob.size());
    return v;
}

std::string sanitize(const std::string& name) {
    std::string out;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '_' || c == '.';
        out.push_back(ok ? c : '_');
    }
    return out;
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::uint64_t digest_tag(const std::string& hex) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 16 && i < hex.size(); ++i) {
        const char c = hex[i];
        const unsigned d = (c >= '0' && c <= '9') ? unsigned(c - '0')
                           : (c >= 'a' && c <= 'f') ? unsigned(c - 'a' + 10)
                           : (c >= 'A' && c <= 'F') ? unsigned(c - 'A' + 10)
                                                    : unsigned(static_cast<unsigned char>(c) & 15u);
        v = (v << 4) | d;
    }
    return v;
}

ResponseCache::ResponseCache(std::unique_ptr<Db> db, CacheConfig cfg, Clock& clock, std::shared_ptr<Embedder> embedder)
    : m_db(std::move(db)), m_cfg(std::move(cfg)), m_clock(clock), m_embedder(std::move(embedder)) {
    const std::string& path = m_db->path();
    m_has_readers = !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0;
    if (m_embedder) {
        m_embedder_name = m_embedder->name();
        m_dims = m_embedder->dimension();
    }
}

ResponseCache::~ResponseCache() {
    if (auto st = flush_counts(); !st) spdlog::warn("cache: hits and misses lost: {}", st.error().to_string());
    {
        std::lock_guard cl(m_compact_mu);
        if (m_compactor.joinable()) m_compactor.join();
    }
    if (m_index_dirty) {
        if (auto st = save_index(); !st) spdlog::warn("cache index not saved: {}", st.error().to_string());
    }
}

std::string ResponseCache::index_path() const {
    if (!m_embedder || m_cfg.index_dir == "-") return "";
    std::string dir = m_cfg.index_dir;
    if (dir.empty()) {
        const std::string& db = m_db->path();
        if (db.empty() || db == ":memory:" || db.rfind("file:", 0) == 0) return "";
        const auto slash = db.find_last_of('/');
        dir = (slash == std::string::npos ? std::string(".") : db.substr(0, slash)) + "/cache-index";
    }
    return dir + "/" + sanitize(m_embedder_name) + "-" + std::to_string(m_dims) + ".hnsw";
}

Result<Vector> ResponseCache::embed_prompt(const std::string& text) {
    Result<std::vector<Vector>> r = fail(ErrorCode::embedding_failed, "no embedder");
    try {
        r = m_embedder->embed({text});
    } catch (const std::exception& e) {
        r = fail(ErrorCode::embedding_failed, std::string("embedder threw: ") + e.what());
    }
    Error err(ErrorCode::embedding_failed, "");
    if (r && r->size() == 1 && (*r)[0].size() == m_dims) return std::move((*r)[0]);
    if (r)
        err.message = m_embedder_name + " returned a vector of the wrong shape";
    else
        err = r.error();
    err.code = ErrorCode::embedding_failed;
    spdlog::warn("{} (semantic cache skipped for this request; the exact cache still works)", err.to_string());
    std::lock_guard lk(m_mu);
    (void)bump_counter(*m_db, CounterId::cache_embed_failures);
    return fail(std::move(err));
}

void ResponseCache::remember_vector(const std::string& exact, Vector v) {
    std::lock_guard lk(m_mu);
    for (auto it = m_pending.begin(); it != m_pending.end(); ++it)
        if (it->first == exact) {
            m_pending.erase(it);
            break;
        }
    m_pending.emplace_front(exact, std::move(v));
    if (m_pending.size() > k_pending_max) m_pending.pop_back();
}

std::optional<Vector> ResponseCache::take_vector(const std::string& exact) {
    std::lock_guard lk(m_mu);
    for (auto it = m_pending.begin(); it != m_pending.end(); ++it)
        if (it->first == exact) {
            Vector v = std::move(it->second);
            m_pending.erase(it);
            return v;
        }
    return std::nullopt;
}

namespace {
// Pending entries that force a write before count_flush_ms has passed.
constexpr std::size_t k_max_pending_entries = 512;
}  // namespace

void ResponseCache::count_hit_locked(std::int64_t id, std::int64_t created_ms, std::int64_t now, CounterId counter) {
    if (m_cfg.count_flush_ms > 0) {
        (counter == CounterId::cache_semantic_hits ? m_counts.semantic_hits : m_counts.exact_hits) += 1;
        auto& e = m_counts.entries[id];
        // Exact lookups read outside m_mu: a read of an older row (replaced
        // by a store, or deleted and its id reused) can be counted after
        // hits on the newer one. The newer entry keeps its pending hits; the
        // older one's hit counts only globally.
        if (e.hits > 0 && created_ms < e.created_ms) {
            note_pending_locked(now);
            return;
        }
        if (e.hits > 0 && e.created_ms != created_ms) e = {};  // the id was reused: hits on the old entry go
        e.created_ms = created_ms;
        e.hits += 1;
        e.last_used_ms = std::max(e.last_used_ms, now);
        note_pending_locked(now);
        return;
    }
    // The entry's LRU stamp and hit count and the global counter in one
    // transaction (BEGIN IMMEDIATE waits for other processes' writers), so
    // hits are exact when l04d and --no-daemon runs share the cache.
    auto tx = Transaction::begin(*m_db);
    Status st = tx ? Status{} : Status(fail(tx.error()));
    if (st) {
        // Only the entry that was read: its id may have been reused since.
        auto up = m_db->cached(
            "UPDATE cache_entries SET last_used_ms = MAX(last_used_ms, ?), hits = hits + 1 WHERE id = ? AND created_ms = ?");
        if (!up) st = fail(up.error());
        else {
            StmtReset reset(**up);
            (*up)->bind(1, now).bind(2, id).bind(3, created_ms);
            st = (*up)->run();
        }
    }
    if (st) st = bump_counter(*m_db, counter);
    if (st) st = tx->commit();
    if (!st) spdlog::warn("cache: a hit could not be counted: {}", st.error().to_string());
}

void ResponseCache::count_miss_locked(std::int64_t now) {
    if (m_cfg.count_flush_ms > 0) {
        m_counts.misses += 1;
        note_pending_locked(now);
        return;
    }
    (void)bump_counter(*m_db, CounterId::cache_misses);
}

void ResponseCache::note_pending_locked(std::int64_t now) {
    const bool first = m_counts.exact_hits + m_counts.semantic_hits + m_counts.misses == 1;
    if (first) m_counts.since_ms = now;
    // A wall clock stepped back counts as time passed.
    if (now - m_counts.since_ms >= m_cfg.count_flush_ms || now < m_counts.since_ms ||
        m_counts.entries.size() >= k_max_pending_entries)
        (void)flush_counts_locked();
}

Result<bool> ResponseCache::write_counts_locked() {
    if (m_counts.empty()) return true;
    if (!m_db->exec("SAVEPOINT cache_counts")) return false;
    auto write = [&]() -> Status {
        L04_TRY_ASSIGN(Stmt * up, m_db->cached("UPDATE cache_entries SET last_used_ms = MAX(last_used_ms, ?), "
                                                "hits = hits + ? WHERE id = ? AND created_ms = ?"));
        for (const auto& [id, e] : m_counts.entries) {
            StmtReset reset(*up);
            up->bind(1, e.last_used_ms).bind(2, e.hits).bind(3, id).bind(4, e.created_ms);
            // An entry deleted (or replaced) since: no row, nothing to count.
            L04_TRY(up->run());
        }
        if (m_counts.exact_hits) L04_TRY(bump_counter(*m_db, CounterId::cache_exact_hits, m_counts.exact_hits));
        if (m_counts.semantic_hits)
            L04_TRY(bump_counter(*m_db, CounterId::cache_semantic_hits, m_counts.semantic_hits));
        if (m_counts.misses) L04_TRY(bump_counter(*m_db, CounterId::cache_misses, m_counts.misses));
        return {};
    };
    Status st = write();
    if (st) st = m_db->exec("RELEASE cache_counts");
    if (st) return true;
    // SQLite ends the whole transaction by itself on some errors (a full
    // disk, I/O): then nothing of the caller's can go on either.
    if (!m_db->in_transaction()) return fail(st.error());
    (void)m_db->exec("ROLLBACK TO cache_counts");
    (void)m_db->exec("RELEASE cache_counts");
    spdlog::warn("cache: hits and misses not written yet (kept for the next write): {}", st.error().to_string());
    return false;
}

Status ResponseCache::flush_counts_locked() {
    if (m_counts.empty()) return {};
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    L04_TRY_ASSIGN(const bool written, write_counts_locked());
    if (!written) return fail(ErrorCode::cache_error, "cache counts could not be written");
    L04_TRY(tx.commit());
    m_counts = PendingCounts{};
    return {};
}

Status ResponseCache::flush_counts() {
    std::lock_guard lk(m_mu);
    return flush_counts_locked();
}

std::unique_ptr<Db> ResponseCache::take_reader() {
    if (!m_has_readers) return nullptr;
    {
        std::lock_guard lk(m_readers_mu);
        if (!m_readers.empty()) {
            auto db = std::move(m_readers.back());
            m_readers.pop_back();
            return db;
        }
    }
    const auto now = m_clock.now();
    if (now < m_readers_retry_at.load()) return nullptr;
    auto db = Db::open_reader(m_db->path());
    if (!db) {
        // Out of descriptors, or the file went: the writer's connection
        // serves lookups, and a reader is tried again in 10 s.
        m_readers_retry_at = now + std::chrono::seconds(10);
        spdlog::warn("cache: cannot open a reader connection ({}); lookups use the writer's for 10 s",
                     db.error().to_string());
        return nullptr;
    }
    return std::move(*db);
}

void ResponseCache::give_reader(std::unique_ptr<Db> db) {
    std::lock_guard lk(m_readers_mu);
    if (m_readers.size() < 32) m_readers.push_back(std::move(db));  // more at once: closed after use
}

std::optional<InferenceResponse> ResponseCache::lookup(const CacheKey& key, std::optional<double> threshold,
                                                      CacheRefusal* refusal) {
    const auto now = m_clock.wall_ms();
    {
        struct Found {
            InferenceResponse r;
            std::int64_t id;
            std::int64_t created;
        };
        std::optional<Found> found;
        // The read ends (StmtReset) before the hit is counted: on one
        // connection, an UPDATE inside a read transaction whose snapshot
        // another process has written past fails at once with
        // SQLITE_BUSY_SNAPSHOT (no busy wait), and the hit went uncounted.
        auto read = [&](Db& db) {
            auto st = db.cached(std::string("SELECT ") + k_hit_cols + " FROM cache_entries WHERE key = ?");
            if (!st) {
                spdlog::warn("cache: exact lookup failed: {}", st.error().to_string());
                return;
            }
            Stmt& q = **st;
            StmtReset reset(q);
            q.bind(1, key.exact);
            auto row = q.step();
            if (!row || !*row || q.col_int("expires_ms") <= now) return;
            InferenceResponse r = response_from(q);
            if (r.finish_reason == "error") return;
            found = Found{std::move(r), q.col_int("id"), q.col_int("created_ms")};
        };
        if (auto reader = take_reader()) {
            read(*reader);
            give_reader(std::move(reader));
        } else {
            std::lock_guard lk(m_mu);
            read(*m_db);
        }
        if (found) {
            found->r.cache_hit = CacheHit::exact;
            found->r.similarity = 1.0;
            std::lock_guard lk(m_mu);
            // Pending counts are keyed by id and creation time: an entry
            // evicted (and its id reused) since the read gets no count.
            count_hit_locked(found->id, found->created, now, CounterId::cache_exact_hits);
            return std::move(found->r);
        }
    }
    auto count_miss = [&] {
        std::lock_guard lk(m_mu);
        count_miss_locked(now);
    };
    if (!semantic_on() || key.prompt.empty()) {
        count_miss();
        return std::nullopt;
    }
    auto vec = embed_prompt(key.prompt);
    if (!vec) {
        count_miss();
        return std::nullopt;
    }
    remember_vector(key.exact, *vec);
    auto idx = ensure_index();
    if (!idx) {
        count_miss();
        return std::nullopt;
    }
    sync_new_rows(*idx);
    const double t = threshold.value_or(m_cfg.similarity_threshold);
    const auto cands = idx->search(*vec, std::max<std::size_t>(1, m_cfg.semantic_candidates), digest_tag(key.scope));

    std::lock_guard lk(m_mu);
    std::vector<std::int64_t> gone;
    // Load every live candidate that could be the hit or its rival (within
    // the margin below the threshold), then decide with the hit guard.
    struct Loaded {
        InferenceResponse resp;
        std::int64_t id = 0;
        std::int64_t created_ms = 0;
        std::string prompt;
        std::string answer;
        double similarity = 0;
    };
    std::vector<Loaded> loaded;
    const double margin = m_cfg.semantic_margin;
    for (const auto& c : cands) {
        // The index's similarities are within 5e-4 of the truth (it stores
        // halves); the decision below uses the float vectors.
        if (static_cast<double>(c.similarity) + 1e-3 < t - margin) break;
        auto cached = m_db->cached(std::string("SELECT ") + k_hit_cols + ", prompt, vector FROM cache_entries WHERE id = ?");
        if (!cached) break;
        Stmt& st = **cached;
        StmtReset reset(st);
        st.bind(1, c.label);
        auto row = st.step();
        if (!row) break;
        if (!*row) {
            gone.push_back(c.label);  // deleted by another process
            continue;
        }
        if (st.col_text("scope") != key.scope || st.col_text("embedder") != m_embedder_name ||
            st.col_int("dims") != static_cast<std::int64_t>(m_dims) || st.col_int("expires_ms") <= now)
            continue;
        Loaded l;
        l.resp = response_from(st);
        l.id = c.label;
        l.created_ms = st.col_int("created_ms");
        l.prompt = st.col_text("prompt");
        l.answer = l.resp.content + '\x1f' + st.col_blob("tool_calls") + '\x1f' + st.col_blob("extra");  // the whole answer
        if (l.resp.finish_reason == "error") continue;  // a damaged entry: never served
        const auto stored = decode_vector(st.col_blob("vector"), m_dims);
        if (!stored) continue;  // a damaged vector blob: never served
        l.similarity = std::min(1.0, static_cast<double>(dot(vec->data(), stored->data(), m_dims)));
        loaded.push_back(std::move(l));
    }
    std::stable_sort(loaded.begin(), loaded.end(),
                     [](const Loaded& a, const Loaded& b) { return a.similarity > b.similarity; });
    std::vector<SemanticCandidate> sc;
    sc.reserve(loaded.size());
    for (const auto& l : loaded) sc.push_back(SemanticCandidate{l.similarity, l.prompt, l.answer});
    const auto choice = choose_semantic_hit(key.prompt, sc, t, margin, m_cfg.semantic_guard);
    // A lookup that found a candidate above the threshold and still missed
    // counts once, under the reason that decided it.
    if (choice.index < 0 && choice.ambiguous) {
        spdlog::debug("cache: semantic hit refused as ambiguous (another answer within {:.3f})", margin);
        (void)bump_counter(*m_db, CounterId::cache_ambiguous);
        if (refusal) *refusal = CacheRefusal{"ambiguous", loaded.empty() ? 0.0 : loaded.front().similarity};
    } else if (choice.index < 0 && choice.refused != HitConflict::none) {
        spdlog::debug("cache: semantic candidate refused by the hit guard ({})", to_string(choice.refused));
        (void)bump_counter(*m_db, CounterId::cache_guard_refusals);
        if (refusal) *refusal = CacheRefusal{to_string(choice.refused), loaded.empty() ? 0.0 : loaded.front().similarity};
    }
    std::optional<InferenceResponse> hit;
    if (choice.index >= 0) {
        auto& l = loaded[static_cast<std::size_t>(choice.index)];
        InferenceResponse r = std::move(l.resp);
        r.cache_hit = CacheHit::semantic;
        r.similarity = l.similarity;
        count_hit_locked(l.id, l.created_ms, now, CounterId::cache_semantic_hits);
        hit = std::move(r);
    }
    for (auto id : gone) idx->remove(id);
    if (!gone.empty()) m_index_dirty = true;
    if (!hit) count_miss_locked(now);
    return hit;
}

Status ResponseCache::store(const CacheKey& key, const InferenceResponse& resp) {
    std::optional<Vector> vec;
    if (semantic_on() && !key.prompt.empty()) {
        vec = take_vector(key.exact);
        if (!vec) {
            if (auto r = embed_prompt(key.prompt)) vec = std::move(*r);
        }
    }
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    // Pending hits go out with the store: before the upsert (a replaced
    // entry's hits still reach it) and before eviction (their LRU stamps).
    L04_TRY_ASSIGN(const bool counted, write_counts_locked());
    auto st = m_db->prepare(
        "INSERT INTO cache_entries(key, scope, target, model_id, provider, prompt, content, finish_reason, "
        "tool_calls, prompt_tokens, completion_tokens, cost_usd, created_ms, expires_ms, last_used_ms, bytes, "
        "embedder, dims, vector, extra) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(key) DO UPDATE SET model_id=excluded.model_id, provider=excluded.provider, "
        "content=excluded.content, finish_reason=excluded.finish_reason, tool_calls=excluded.tool_calls, "
        "prompt_tokens=excluded.prompt_tokens, completion_tokens=excluded.completion_tokens, "
        "cost_usd=excluded.cost_usd, created_ms=excluded.created_ms, expires_ms=excluded.expires_ms, "
        "last_used_ms=excluded.last_used_ms, bytes=excluded.bytes, embedder=excluded.embedder, "
        "dims=excluded.dims, vector=excluded.vector, extra=excluded.extra RETURNING id");
    if (!st) return fail(st.error());
    const std::string tools = encode_tool_calls(resp.tool_calls);
    const std::string blob = vec ? encode_vector(*vec) : std::string();
    const std::string extra = encode_extra(resp);
    const auto bytes = static_cast<std::int64_t>(resp.content.size() + key.prompt.size() + tools.size() + blob.size() +
                                                 extra.size());
    st->bind(1, key.exact).bind(2, key.scope).bind(3, key.target).bind(4, resp.model_id).bind(5, resp.provider);
    st->bind(6, key.prompt).bind(7, resp.content).bind(8, resp.finish_reason);
    st->bind_blob(9, tools.data(), tools.size());
    st->bind(10, resp.token_usage.prompt_tokens).bind(11, resp.token_usage.completion_tokens);
    st->bind(12, resp.cost_usd).bind(13, now).bind(14, now + m_cfg.ttl_ms).bind(15, now).bind(16, bytes);
    if (vec) {
        st->bind(17, m_embedder_name).bind(18, static_cast<std::int64_t>(m_dims));
        st->bind_blob(19, blob.data(), blob.size());
    } else {
        st->bind_null(17).bind_null(18).bind_null(19);
    }
    st->bind_blob(20, extra.data(), extra.size());
    L04_TRY_ASSIGN(auto row, st->step());
    if (!row) return fail(ErrorCode::cache_error, "cache insert returned no row id");
    const std::int64_t id = st->col_int(0);
    L04_TRY(st->step());
    if (auto r = bump_counter(*m_db, CounterId::cache_stores); !r) return r;
    L04_TRY_ASSIGN(auto removed, evict_locked());
    if (auto c = tx.commit(); !c) return c;
    if (counted) m_counts = PendingCounts{};

    // Mirror into the index (only when loaded: a later load reconciles).
    if (m_index) {
        if (vec) {
            if (auto a = m_index->add(id, *vec, digest_tag(key.scope), digest_tag(key.exact)); !a)
                spdlog::warn("cache index add failed: {}", a.error().to_string());
        } else {
            m_index->remove(id);  // an upsert that lost its vector
        }
        for (auto rid : removed) m_index->remove(rid);
        m_index_dirty = true;
        maybe_compact(m_index);
    }
    return {};
}

Result<std::vector<std::int64_t>> ResponseCache::evict_locked() {
    std::vector<std::int64_t> removed;
    const auto now = m_clock.wall_ms();
    L04_TRY_ASSIGN(auto st, m_db->prepare("DELETE FROM cache_entries WHERE expires_ms <= ? RETURNING id"));
    st.bind(1, now);
    for (;;) {
        L04_TRY_ASSIGN(auto r, st.step());
        if (!r) break;
        removed.push_back(st.col_int(0));
    }
    const auto expired = static_cast<std::int64_t>(removed.size());
    if (expired > 0) (void)bump_counter(*m_db, CounterId::cache_expired, expired);

    // O(1): the triggers of migration 3 keep these totals for every writer.
    std::int64_t count = read_counter(*m_db, CounterId::cache_entry_count);
    std::int64_t bytes = read_counter(*m_db, CounterId::cache_entry_bytes);
    if (count <= m_cfg.max_entries && bytes <= m_cfg.max_bytes) return removed;

    L04_TRY_ASSIGN(auto lru, m_db->prepare("SELECT id, bytes FROM cache_entries ORDER BY last_used_ms ASC, id ASC"));
    std::vector<std::int64_t> victims;
    while (count > m_cfg.max_entries || bytes > m_cfg.max_bytes) {
        L04_TRY_ASSIGN(auto r, lru.step());
        if (!r) break;
        victims.push_back(lru.col_int(0));
        --count;
        bytes -= lru.col_int(1);
    }
    lru.reset();
    L04_TRY_ASSIGN(auto del, m_db->prepare("DELETE FROM cache_entries WHERE id = ?"));
    for (auto id : victims) {
        del.reset();
        del.bind(1, id);
        L04_TRY(del.run());
        removed.push_back(id);
    }
    if (!victims.empty()) (void)bump_counter(*m_db, CounterId::cache_evictions, static_cast<std::int64_t>(victims.size()));
    return removed;
}

void ResponseCache::forget(const std::vector<std::int64_t>& ids) {
    if (!m_index || ids.empty()) return;
    for (auto id : ids) m_index->remove(id);
    m_index_dirty = true;
}

void ResponseCache::maybe_compact(const std::shared_ptr<VectorIndex>& idx) {
    if (!idx->needs_compaction()) return;
    if (!m_cfg.background_compaction) {
        if (auto st = idx->compact(); !st) spdlog::warn("cache index compaction failed: {}", st.error().to_string());
        m_index_dirty = true;
        return;
    }
    if (m_compact_running.exchange(true)) return;
    std::lock_guard cl(m_compact_mu);
    if (m_compactor.joinable()) m_compactor.join();  // finished: m_compact_running was false
    m_compactor = std::thread([this, idx] {
        if (auto st = idx->compact(); !st) spdlog::warn("cache index compaction failed: {}", st.error().to_string());
        m_index_dirty = true;
        m_compact_running = false;
    });
}

std::shared_ptr<VectorIndex> ResponseCache::ensure_index() {
    {
        std::lock_guard lk(m_mu);
        if (m_index) return m_index;
    }
    if (!semantic_on()) return nullptr;
    std::lock_guard il(m_index_mu);
    std::lock_guard lk(m_mu);
    if (m_index) return m_index;
    const std::string path = index_path();
    std::shared_ptr<VectorIndex> idx;
    bool changed = false;
    if (!path.empty()) {
        if (auto n = VectorIndex::remove_stale_temp_files(path); n > 0)
            spdlog::info("removed {} temporary index file(s) left by a process that died while saving", n);
        auto loaded = VectorIndex::load(path, m_embedder_name, m_dims, m_cfg.index);
        if (loaded) {
            bool rebuilt = false;
            std::shared_ptr<VectorIndex> sp(std::move(*loaded));
            if (auto st = reconcile_locked(*sp, rebuilt); st) {
                idx = std::move(sp);
                changed = rebuilt;
            } else {
                spdlog::warn("{}; rebuilding the cache index from the database", st.error().to_string());
            }
        } else if (file_exists(path)) {
            spdlog::warn("{}; rebuilding the cache index from the database", loaded.error().to_string());
        }
    }
    if (!idx) {
        auto r = rebuild_index_locked();
        if (!r) {
            spdlog::warn("cache index rebuild failed: {} (semantic lookups skipped)", r.error().to_string());
            return nullptr;
        }
        idx = std::move(*r);
        changed = true;
    }
    if (auto dv = m_db->prepare("PRAGMA data_version"); dv) {
        if (auto row = dv->step(); row && *row) m_data_version = dv->col_int(0);
    }
    m_index = idx;
    m_index_dirty = changed;
    return m_index;
}

Result<std::shared_ptr<VectorIndex>> ResponseCache::rebuild_index_locked() {
    std::shared_ptr<VectorIndex> idx;
    try {
        idx = std::make_shared<VectorIndex>(m_embedder_name, m_dims, m_cfg.index);
    } catch (const std::exception& e) {
        return fail(ErrorCode::cache_error, std::string("cannot create index: ") + e.what());
    }
    auto st = m_db->prepare(
        "SELECT id, key, scope, vector FROM cache_entries WHERE embedder = ? AND dims = ? AND vector IS NOT NULL "
        "ORDER BY id");
    if (!st) return fail(st.error());
    st->bind(1, m_embedder_name).bind(2, static_cast<std::int64_t>(m_dims));
    std::int64_t max_id = 0;
    for (;;) {
        L04_TRY_ASSIGN(auto r, st->step());
        if (!r) break;
        const auto id = st->col_int(0);
        max_id = std::max(max_id, id);
        auto v = decode_vector(st->col_blob(3), m_dims);
        if (!v) continue;  // malformed row: exact hits only
        (void)idx->add(id, *v, digest_tag(st->col_text(2)), digest_tag(st->col_text(1)));
    }
    m_max_synced = max_id;
    return idx;
}

Status ResponseCache::reconcile_locked(VectorIndex& idx, bool& changed) {
    changed = false;
    struct Want {
        std::uint64_t stamp, group;
    };
    std::unordered_map<std::int64_t, Want> want;
    auto st = m_db->prepare(
        "SELECT id, key, scope FROM cache_entries WHERE embedder = ? AND dims = ? AND vector IS NOT NULL");
    if (!st) return fail(st.error());
    st->bind(1, m_embedder_name).bind(2, static_cast<std::int64_t>(m_dims));
    std::int64_t max_id = 0;
    for (;;) {
        L04_TRY_ASSIGN(auto r, st->step());
        if (!r) break;
        const auto id = st->col_int(0);
        want[id] = Want{digest_tag(st->col_text(1)), digest_tag(st->col_text(2))};
        max_id = std::max(max_id, id);
    }
    std::vector<std::int64_t> drop, add;
    std::unordered_map<std::int64_t, bool> have;
    for (const auto& e : idx.entries()) {
        auto it = want.find(e.label);
        if (it == want.end() || it->second.stamp != e.stamp || it->second.group != e.group) drop.push_back(e.label);
        else have[e.label] = true;
    }
    for (const auto& [id, w] : want)
        if (!have.count(id)) add.push_back(id);
    const std::size_t limit = std::max<std::size_t>(1000, want.size() / 10);
    if (drop.size() + add.size() > limit)
        return fail(ErrorCode::cache_index_corrupt,
                    "index file is stale (" + std::to_string(drop.size() + add.size()) + " entries differ)");
    for (auto id : drop) idx.remove(id);
    if (!add.empty()) {
        L04_TRY_ASSIGN(auto get, m_db->prepare("SELECT key, scope, vector FROM cache_entries WHERE id = ?"));
        for (auto id : add) {
            get.reset();
            get.bind(1, id);
            L04_TRY_ASSIGN(auto r, get.step());
            if (!r) continue;
            auto v = decode_vector(get.col_blob(2), m_dims);
            if (!v) continue;
            if (auto a = idx.add(id, *v, digest_tag(get.col_text(1)), digest_tag(get.col_text(0))); !a) return a;
        }
    }
    if (!drop.empty() || !add.empty())
        spdlog::info("cache index reconciled with the database: {} removed, {} added", drop.size(), add.size());
    changed = !drop.empty() || !add.empty();
    m_max_synced = max_id;
    return {};
}

void ResponseCache::sync_new_rows(VectorIndex& idx) {
    std::lock_guard lk(m_mu);
    auto dv = m_db->prepare("PRAGMA data_version");
    if (!dv) return;
    auto row = dv->step();
    if (!row || !*row) return;
    const auto version = dv->col_int(0);
    if (version == m_data_version) return;
    m_data_version = version;
    auto st = m_db->prepare(
        "SELECT id, key, scope, vector FROM cache_entries WHERE id > ? AND embedder = ? AND dims = ? "
        "AND vector IS NOT NULL ORDER BY id");
    if (!st) return;
    st->bind(1, m_max_synced).bind(2, m_embedder_name).bind(3, static_cast<std::int64_t>(m_dims));
    for (;;) {
        auto r = st->step();
        if (!r || !*r) break;
        const auto id = st->col_int(0);
        m_max_synced = std::max(m_max_synced, id);
        if (idx.contains(id)) continue;
        auto v = decode_vector(st->col_blob(3), m_dims);
        if (!v) continue;
        if (idx.add(id, *v, digest_tag(st->col_text(2)), digest_tag(st->col_text(1)))) m_index_dirty = true;
    }
}

CacheStats ResponseCache::stats() {
    std::lock_guard lk(m_mu);
    CacheStats s;
    s.enabled = m_cfg.enabled;
    const auto now = m_clock.wall_ms();
    // Live entries = the running totals minus the expired rows not yet
    // pruned (found through the expires_ms index, so O(expired)).
    s.entries = read_counter(*m_db, CounterId::cache_entry_count);
    s.bytes = read_counter(*m_db, CounterId::cache_entry_bytes);
    if (auto ex = m_db->prepare("SELECT COUNT(*), COALESCE(SUM(bytes),0) FROM cache_entries WHERE expires_ms <= ?")) {
        ex->bind(1, now);
        if (auto r = ex->step(); r && *r) {
            s.entries -= ex->col_int(0);
            s.bytes -= ex->col_int(1);
        }
    }
    if (s.entries > 0) {
        // Walks the created_ms index from either end, skipping expired rows.
        for (const char* order : {"ASC", "DESC"}) {
            auto st = m_db->prepare(std::string("SELECT created_ms FROM cache_entries INDEXED BY cache_entries_created "
                                                "WHERE expires_ms > ? ORDER BY created_ms ") +
                                    order + " LIMIT 1");
            if (!st) break;
            st->bind(1, now);
            if (auto r = st->step(); r && *r) (order[0] == 'A' ? s.oldest_ms : s.newest_ms) = st->col_int(0);
        }
    }
    // Written counts plus this process's pending ones.
    s.exact_hits = read_counter(*m_db, CounterId::cache_exact_hits) + m_counts.exact_hits;
    s.semantic_hits = read_counter(*m_db, CounterId::cache_semantic_hits) + m_counts.semantic_hits;
    s.misses = read_counter(*m_db, CounterId::cache_misses) + m_counts.misses;
    s.evictions = read_counter(*m_db, CounterId::cache_evictions);
    s.expired = read_counter(*m_db, CounterId::cache_expired);
    s.stores = read_counter(*m_db, CounterId::cache_stores);
    s.embed_failures = read_counter(*m_db, CounterId::cache_embed_failures);
    s.guard_refusals = read_counter(*m_db, CounterId::cache_guard_refusals);
    s.ambiguous = read_counter(*m_db, CounterId::cache_ambiguous);
    s.similarity_threshold = m_cfg.similarity_threshold;
    s.semantic_guard = m_cfg.semantic_guard;
    s.semantic_margin = m_cfg.semantic_margin;
    if (semantic_on()) {
        s.embedder = m_embedder_name;
        if (m_index) {
            const auto is = m_index->stats();
            s.index_loaded = true;
            s.index_size = static_cast<std::int64_t>(is.live);
            s.index_deleted = static_cast<std::int64_t>(is.deleted);
        } else if (auto c = m_db->prepare("SELECT COUNT(*) FROM cache_entries WHERE embedder = ? AND dims = ? AND "
                                          "vector IS NOT NULL")) {
            c->bind(1, m_embedder_name).bind(2, static_cast<std::int64_t>(m_dims));
            if (auto r = c->step(); r && *r) s.index_size = c->col_int(0);
        }
    }
    return s;
}

Result<std::vector<CacheSearchHit>> ResponseCache::search(const std::string& text, std::size_t k) {
    if (!semantic_on()) return fail(ErrorCode::cache_error, "semantic cache is off (cache.semantic / cache.embedder)");
    L04_TRY_ASSIGN(auto vec, embed_prompt(text));
    auto idx = ensure_index();
    if (!idx) return fail(ErrorCode::cache_error, "the cache index could not be built (see the log)");
    sync_new_rows(*idx);
    const auto matches = idx->search(vec, k);
    std::vector<CacheSearchHit> out;
    std::vector<std::int64_t> gone;
    std::lock_guard lk(m_mu);
    (void)flush_counts_locked();  // each entry's hits, as shown
    auto st = m_db->prepare(
        "SELECT prompt, target, model_id, scope, created_ms, expires_ms, hits FROM cache_entries WHERE id = ?");
    if (!st) return fail(st.error());
    for (const auto& m : matches) {
        st->reset();
        st->bind(1, m.label);
        L04_TRY_ASSIGN(auto r, st->step());
        if (!r) {
            gone.push_back(m.label);
            continue;
        }
        CacheSearchHit h;
        h.id = m.label;
        h.similarity = m.similarity;
        h.prompt = st->col_text("prompt");
        h.target = st->col_text("target");
        h.model_id = st->col_text("model_id");
        h.scope = st->col_text("scope");
        h.created_ms = st->col_int("created_ms");
        h.expires_ms = st->col_int("expires_ms");
        h.hits = st->col_int("hits");
        h.guard = m_cfg.semantic_guard ? semantic_conflict(text, h.prompt) : HitConflict::none;
        out.push_back(std::move(h));
    }
    forget(gone);
    return out;
}

Result<std::int64_t> ResponseCache::clear(const std::string& model, std::optional<std::int64_t> older_than_ms) {
    std::lock_guard lk(m_mu);
    (void)flush_counts_locked();
    std::string sql = "DELETE FROM cache_entries WHERE 1=1";
    if (!model.empty()) sql += " AND (model_id = ?1 OR target = ?1)";
    if (older_than_ms) sql += " AND created_ms < ?2";
    sql += " RETURNING id";
    L04_TRY_ASSIGN(auto st, m_db->prepare(sql));
    if (!model.empty()) st.bind(1, model);
    if (older_than_ms) st.bind(2, m_clock.wall_ms() - *older_than_ms);
    std::vector<std::int64_t> ids;
    for (;;) {
        L04_TRY_ASSIGN(auto r, st.step());
        if (!r) break;
        ids.push_back(st.col_int(0));
    }
    forget(ids);
    return static_cast<std::int64_t>(ids.size());
}

Result<std::int64_t> ResponseCache::prune() {
    std::lock_guard lk(m_mu);
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    L04_TRY_ASSIGN(const bool counted, write_counts_locked());  // LRU stamps before eviction
    L04_TRY_ASSIGN(auto r, evict_locked());
    L04_TRY(tx.commit());
    if (counted) m_counts = PendingCounts{};
    forget(r);
    return static_cast<std::int64_t>(r.size());
}

Status ResponseCache::save_index() {
    std::shared_ptr<VectorIndex> idx;
    {
        std::lock_guard lk(m_mu);
        idx = m_index;
    }
    const std::string path = index_path();
    if (!idx || path.empty()) return {};
    const auto slash = path.find_last_of('/');
    if (slash != std::string::npos) {
        if (auto st = ensure_dir(path.substr(0, slash)); !st) return st;
    }
    const bool was_dirty = m_index_dirty.exchange(false);
    auto st = idx->save(path);
    if (!st && was_dirty) m_index_dirty = true;
    return st;
}

Status ResponseCache::compact_index() {
    auto idx = ensure_index();
    if (!idx) return fail(ErrorCode::cache_error, "semantic cache is off or its index is unavailable");
    auto st = idx->compact();
    m_index_dirty = true;
    return st;
}

}  // namespace l04
