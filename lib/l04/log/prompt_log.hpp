#pragma once
// The prompt log: what `l04ctl prompt` asked and was answered, grouped into
// conversations, in logs.db in the state directory (mode 0600, WAL). It is
// the user's own history (`l04ctl logs`, `-c/--continue`), kept apart from
// l04.db so that searching it never contends with the daemon's hot tables.
// Full-text search uses SQLite FTS5 over prompt and answer.
#include <l04/core/error.hpp>
#include <l04/store/db.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace l04 {

struct LoggedPrompt {
    std::int64_t id = 0;
    std::string conversation_id;
    std::int64_t ts_ms = 0;
    std::string model;
    std::string provider;
    std::string system;
    std::string prompt;        // the user message's text
    std::string message_json;  // the whole user message as sent (parts, images): replayed by -c
    std::string response;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    double cost_usd = 0;
    bool cached = false;
    std::string request_id;
};

struct LogQuery {
    std::size_t limit = 10;
    std::string text;             // full-text search (words; every word must match)
    std::string model;
    std::string conversation_id;
    std::int64_t since_ms = 0;    // ts >= since_ms
};

class PromptLog {
public:
    // Opens (creating) <state_dir>/logs.db.
    static Result<std::unique_ptr<PromptLog>> open(const std::string& state_dir);
    // Records p (its id and, when empty, conversation id are set); prunes
    // rows older than retention_ms first (0: keep all).
    Status record(LoggedPrompt& p, std::int64_t retention_ms = 0);
    // Newest first, at most q.limit.
    Result<std::vector<LoggedPrompt>> list(const LogQuery& q);
    Result<std::optional<LoggedPrompt>> get(std::int64_t id);
    // A conversation's turns, oldest first.
    Result<std::vector<LoggedPrompt>> conversation(const std::string& id);
    // The conversation of the newest logged prompt ("" when none).
    Result<std::string> latest_conversation();
    Result<int> remove(std::int64_t id);
    Result<int> remove_older_than(std::int64_t ts_ms);
    const std::string& path() const { return m_db->path(); }

    // "c" + 12 hex digits of time and 8 of randomness: sorts by creation.
    static std::string new_conversation_id(std::int64_t now_ms);

private:
    explicit PromptLog(std::unique_ptr<Db> db) : m_db(std::move(db)) {}
    std::unique_ptr<Db> m_db;
};

// An FTS5 query matching every word of text as a literal (quoted) term, so
// user input with quotes, stars or operators is never FTS syntax.
std::string fts_literal_query(std::string_view text);

nlohmann::json logged_prompt_json(const LoggedPrompt& p);

}  // namespace l04
