#include <l04/log/prompt_log.hpp>
#include <l04/core/strings.hpp>
#include <l04/core/types.hpp>

#include <random>

namespace l04 {

namespace {

// Append-only, like l04.db's.
const std::vector<std::string_view> k_migrations = {
    R"(CREATE TABLE prompts(
         id INTEGER PRIMARY KEY,
         conversation_id TEXT NOT NULL,
         ts_ms INTEGER NOT NULL,
         model TEXT NOT NULL DEFAULT '',
         provider TEXT NOT NULL DEFAULT '',
         system TEXT NOT NULL DEFAULT '',
         prompt TEXT NOT NULL,
         message_json TEXT NOT NULL DEFAULT '',
         response TEXT NOT NULL,
         prompt_tokens INTEGER NOT NULL DEFAULT 0,
         completion_tokens INTEGER NOT NULL DEFAULT 0,
         cost_usd REAL NOT NULL DEFAULT 0,
         cached INTEGER NOT NULL DEFAULT 0,
         request_id TEXT NOT NULL DEFAULT '');
       CREATE INDEX prompts_conversation ON prompts(conversation_id, id);
       CREATE INDEX prompts_ts ON prompts(ts_ms);
       CREATE VIRTUAL TABLE prompts_fts USING fts5(prompt, response, content='prompts', content_rowid='id');
       CREATE TRIGGER prompts_ai AFTER INSERT ON prompts BEGIN
         INSERT INTO prompts_fts(rowid, prompt, response) VALUES (new.id, new.prompt, new.response);
       END;
       CREATE TRIGGER prompts_ad AFTER DELETE ON prompts BEGIN
         INSERT INTO prompts_fts(prompts_fts, rowid, prompt, response) VALUES ('delete', old.id, old.prompt, old.response);
       END;)",
};

// Aliased so that rows are read by name whatever the query joins.
constexpr const char* k_columns =
    "p.id AS id, p.conversation_id AS conversation_id, p.ts_ms AS ts_ms, p.model AS model, p.provider AS provider, "
    "p.system AS system, p.prompt AS prompt, p.message_json AS message_json, p.response AS response, "
    "p.prompt_tokens AS prompt_tokens, p.completion_tokens AS completion_tokens, p.cost_usd AS cost_usd, "
    "p.cached AS cached, p.request_id AS request_id";

LoggedPrompt read_row(const Stmt& s) {
    LoggedPrompt p;
    p.id = s.col_int("id");
    p.conversation_id = s.col_text("conversation_id");
    p.ts_ms = s.col_int("ts_ms");
    p.model = s.col_text("model");
    p.provider = s.col_text("provider");
    p.system = s.col_text("system");
    p.prompt = s.col_text("prompt");
    p.message_json = s.col_text("message_json");
    p.response = s.col_text("response");
    p.prompt_tokens = s.col_int("prompt_tokens");
    p.completion_tokens = s.col_int("completion_tokens");
    p.cost_usd = s.col_double("cost_usd");
    p.cached = s.col_int("cached") != 0;
    p.request_id = s.col_text("request_id");
    return p;
}

Result<std::vector<LoggedPrompt>> collect(Stmt& st) {
    std::vector<LoggedPrompt> out;
    for (;;) {
        L04_TRY_ASSIGN(auto row, st.step());
        if (!row) break;
        out.push_back(read_row(st));
    }
    return out;
}

}  // namespace

std::string fts_literal_query(std::string_view text) {
    std::string q;
    std::string word;
    auto flush = [&] {
        if (word.empty()) return;
        if (!q.empty()) q += ' ';
        q += '"';
        for (char c : word) {
            if (c == '"') q += '"';  // FTS5 string: a quote is doubled
            q += c;
        }
        q += '"';
        word.clear();
    };
    for (char c : text) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') flush();
        else word += c;
    }
    flush();
    return q;
}

std::string PromptLog::new_conversation_id(std::int64_t now_ms) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char b[32];
    std::snprintf(b, sizeof b, "c%012llx%08x", static_cast<unsigned long long>(now_ms) & 0xffffffffffffULL,
                  static_cast<unsigned>(rng() & 0xffffffffu));
    return b;
}

Result<std::unique_ptr<PromptLog>> PromptLog::open(const std::string& state_dir) {
    L04_TRY(ensure_state_dir(state_dir));
    L04_TRY_ASSIGN(auto db, Db::open(state_dir + "/logs.db"));
    L04_TRY(db->migrate(k_migrations));
    return std::unique_ptr<PromptLog>(new PromptLog(std::move(db)));
}

Status PromptLog::record(LoggedPrompt& p, std::int64_t retention_ms) {
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    if (retention_ms > 0) {
        L04_TRY_ASSIGN(auto del, m_db->prepare("DELETE FROM prompts WHERE ts_ms < ?"));
        if (auto st = del.bind(1, p.ts_ms - retention_ms).run(); !st) return st;
    }
    if (p.conversation_id.empty()) p.conversation_id = new_conversation_id(p.ts_ms);
    auto ins = m_db->prepare(
        "INSERT INTO prompts(conversation_id, ts_ms, model, provider, system, prompt, message_json, response, "
        "prompt_tokens, completion_tokens, cost_usd, cached, request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!ins) return fail(ins.error());
    ins->bind(1, p.conversation_id)
        .bind(2, p.ts_ms)
        .bind(3, p.model)
        .bind(4, p.provider)
        .bind(5, p.system)
        .bind(6, p.prompt)
        .bind(7, p.message_json)
        .bind(8, p.response)
        .bind(9, p.prompt_tokens)
        .bind(10, p.completion_tokens)
        .bind(11, p.cost_usd)
        .bind(12, p.cached ? 1 : 0)
        .bind(13, p.request_id);
    if (auto st = ins->run(); !st) return st;
    p.id = m_db->last_insert_rowid();
    return tx.commit();
}

Result<std::vector<LoggedPrompt>> PromptLog::list(const LogQuery& q) {
    std::string sql = std::string("SELECT ") + k_columns + " FROM prompts p";
    const std::string fts = fts_literal_query(q.text);
    if (!fts.empty()) sql += " JOIN prompts_fts f ON f.rowid = p.id AND prompts_fts MATCH ?1";
    sql += " WHERE (?2 = '' OR p.model = ?2) AND (?3 = '' OR p.conversation_id = ?3) AND p.ts_ms >= ?4"
           " ORDER BY p.id DESC LIMIT ?5";
    L04_TRY_ASSIGN(auto st, m_db->prepare(sql));
    if (!fts.empty()) st.bind(1, fts);
    st.bind(2, q.model).bind(3, q.conversation_id).bind(4, q.since_ms).bind(5, static_cast<std::int64_t>(q.limit));
    return collect(st);
}

Result<std::optional<LoggedPrompt>> PromptLog::get(std::int64_t id) {
    L04_TRY_ASSIGN(auto st, m_db->prepare(std::string("SELECT ") + k_columns + " FROM prompts p WHERE p.id = ?"));
    st.bind(1, id);
    L04_TRY_ASSIGN(auto rows, collect(st));
    if (rows.empty()) return std::optional<LoggedPrompt>{};
    return std::optional<LoggedPrompt>{std::move(rows.front())};
}

Result<std::vector<LoggedPrompt>> PromptLog::conversation(const std::string& id) {
    L04_TRY_ASSIGN(auto st, m_db->prepare(std::string("SELECT ") + k_columns + " FROM prompts p WHERE p.conversation_id = ? ORDER BY p.id"));
    st.bind(1, id);
    return collect(st);
}

Result<std::string> PromptLog::latest_conversation() {
    L04_TRY_ASSIGN(auto st, m_db->prepare("SELECT conversation_id FROM prompts ORDER BY id DESC LIMIT 1"));
    L04_TRY_ASSIGN(auto row, st.step());
    return row ? st.col_text(0) : std::string();
}

Result<int> PromptLog::remove(std::int64_t id) {
    L04_TRY_ASSIGN(auto st, m_db->prepare("DELETE FROM prompts WHERE id = ?"));
    L04_TRY(st.bind(1, id).run());
    return m_db->changes();
}

Result<int> PromptLog::remove_older_than(std::int64_t ts_ms) {
    L04_TRY_ASSIGN(auto st, m_db->prepare("DELETE FROM prompts WHERE ts_ms < ?"));
    L04_TRY(st.bind(1, ts_ms).run());
    return m_db->changes();
}

nlohmann::json logged_prompt_json(const LoggedPrompt& p) {
    return {{"id", p.id},
            {"conversation_id", p.conversation_id},
            {"time", iso8601_utc(p.ts_ms)},
            {"model", p.model},
            {"provider", p.provider},
            {"system", p.system},
            {"prompt", p.prompt},
            {"response", p.response},
            {"usage", {{"prompt_tokens", p.prompt_tokens}, {"completion_tokens", p.completion_tokens}}},
            {"cost_usd", p.cost_usd},
            {"cached", p.cached},
            {"request_id", p.request_id}};
}

}  // namespace l04
