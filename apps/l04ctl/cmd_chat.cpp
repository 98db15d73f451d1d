// l04ctl chat: an interactive conversation at the terminal. Line editing and
// history come from libedit (history in the state directory, mode 0600);
// answers stream; Ctrl-C cancels the answer in flight and stays in the
// session; Ctrl-D (or /exit) leaves. Every turn is logged as one
// conversation, so `l04ctl prompt -c` or `chat --cid` can go on with it.
// When stdin is not a terminal, lines are read plainly (scripts, tests).
#include "common.hpp"

#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include <editline/readline.h>

namespace l04ctl {

namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted = true; }

struct ChatArgs {
    std::string model, system, cid;
    std::vector<std::string> options;
};

struct Session {
    std::string model, system, conversation_id;
    std::vector<l04::Message> messages;  // earlier turns, user and assistant
    std::size_t turns = 0;
    std::int64_t prompt_tokens = 0, completion_tokens = 0;
    double cost = 0;
};

// One line of input: libedit on a terminal, getline otherwise. nullopt at
// end of input; "" after Ctrl-C at the prompt.
std::optional<std::string> read_line(bool tty, const char* prompt) {
    if (tty) {
        g_interrupted = false;
        char* l = ::readline(prompt);
        if (!l) {
            if (g_interrupted) {
                std::fputc('\n', stdout);
                return std::string();
            }
            return std::nullopt;
        }
        std::string s(l);
        std::free(l);
        return s;
    }
    std::string s;
    if (!std::getline(std::cin, s)) return std::nullopt;
    return s;
}

// A whole message: a line ending in \ continues; """ opens and closes a block.
std::optional<std::string> read_message(bool tty) {
    auto first = read_line(tty, "> ");
    if (!first) return std::nullopt;
    std::string msg = *first;
    if (l04::trim(msg) == "\"\"\"") {
        msg.clear();
        for (;;) {
            auto l = read_line(tty, ". ");
            if (!l || l04::trim(*l) == "\"\"\"") break;
            msg += (msg.empty() ? "" : "\n") + *l;
        }
        return msg;
    }
    while (!msg.empty() && msg.back() == '\\') {
        msg.back() = '\n';
        auto l = read_line(tty, ". ");
        if (!l) break;
        msg += *l;
    }
    return msg;
}

const char* k_help =
    "/model NAME   use another model from the next turn\n"
    "/system TEXT  set the system prompt (/system alone clears it)\n"
    "/clear        start a new conversation\n"
    "/usage        turns, tokens and cost of this session\n"
    "/save FILE    write the conversation as Markdown\n"
    "/exit         leave (or Ctrl-D); Ctrl-C cancels an answer in flight\n"
    "A line ending in \\ continues on the next; \"\"\" on its own line starts and ends a block.\n";

// Streams one answer to stdout. Returns the final response, or an error;
// cancelled is set when Ctrl-C stopped it.
l04::Result<l04::InferenceResponse> ask(l04::ApiClient& client, const l04::InferenceRequest& req, bool& cancelled) {
    l04::ClientRequest creq{"POST", "/v1/chat/completions", l04::to_wire(l04::chat_request_to_json(req)), {}};
    bool ended_nl = true;
    g_interrupted = false;
    ChatStream stream([&](const std::string& s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
        ended_nl = s.back() == '\n';
        return !g_interrupted.load();
    });
    auto r = client.call(creq, [&](std::string_view piece) { return !g_interrupted && stream.feed(piece); });
    if (!ended_nl) std::fputc('\n', stdout);
    if (g_interrupted) {
        cancelled = true;
        return l04::fail(l04::ErrorCode::internal_error, "cancelled");
    }
    if (!r) return l04::fail(r.error());
    if (r->status != 200) return l04::fail(stream.http_error(r->status));
    if (stream.error) return l04::fail(*stream.error);
    if (!stream.done) return l04::fail(l04::ErrorCode::streaming_error, "the stream ended without its final event");
    return std::move(stream.response);
}

int run_chat(Context& ctx, ChatArgs& a) {
    if (int rc = ctx.load()) return rc;
    const bool tty = ::isatty(0);
    Session s;
    s.model = a.model;
    s.system = a.system;
    if (!a.cid.empty()) {
        auto log = l04::PromptLog::open(ctx.settings.state_dir());
        if (!log) return report(log.error());
        auto turns = (*log)->conversation(a.cid);
        if (!turns) return report(turns.error());
        if (turns->empty())
            return report(l04::Error(l04::ErrorCode::invalid_request, "no conversation '" + a.cid + "' in the prompt log"));
        auto earlier = history_messages(*turns);
        if (!earlier) return report(earlier.error());
        s.messages = std::move(*earlier);
        s.conversation_id = a.cid;
        if (s.model.empty()) s.model = turns->back().model;
        if (s.system.empty()) s.system = turns->back().system;
    }
    std::map<std::string, l04::OptionValue> options;
    if (auto st = add_option_flags(a.options, options); !st) return report(st.error());
    auto client = ctx.client(true);
    if (!client) return report(client.error());
    if (auto* sock = dynamic_cast<l04::SocketClient*>(client->get())) sock->set_cancel_flag(&g_interrupted);

    // Ctrl-C interrupts reads (no SA_RESTART) and sets the flag; it never kills the session.
    struct sigaction sa{};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);

    std::string history_file;
    if (tty) {
        ::using_history();
        ::stifle_history(1000);
        history_file = ctx.settings.state_dir() + "/chat_history";
        ::read_history(history_file.c_str());
        std::printf("l04ctl chat%s%s: /help for commands, Ctrl-D to leave\n", s.model.empty() ? "" : " with ",
                    s.model.c_str());
    }
    for (;;) {
        auto line = read_message(tty);
        if (!line) break;
        const std::string text(l04::trim(*line));
        if (text.empty()) continue;
        if (tty) {
            ::add_history(text.c_str());
            ::write_history(history_file.c_str());
        }
        if (text[0] == '/') {
            const auto sp = text.find(' ');
            const std::string cmd = text.substr(0, sp);
            const std::string arg = sp == std::string::npos ? "" : std::string(l04::trim(std::string_view(text).substr(sp)));
            if (cmd == "/exit" || cmd == "/quit") break;
            if (cmd == "/help") {
                std::fputs(k_help, stdout);
            } else if (cmd == "/model") {
                if (arg.empty()) std::printf("model: %s\n", s.model.empty() ? "(routed)" : s.model.c_str());
                else s.model = arg, std::printf("model: %s\n", arg.c_str());
            } else if (cmd == "/system") {
                s.system = arg;
                std::printf("%s\n", arg.empty() ? "system prompt cleared" : "system prompt set");
            } else if (cmd == "/clear") {
                s.messages.clear();
                s.conversation_id.clear();
                std::printf("new conversation\n");
            } else if (cmd == "/usage") {
                std::printf("%zu turn(s), %lld+%lld tokens, $%.6f\n", s.turns, static_cast<long long>(s.prompt_tokens),
                            static_cast<long long>(s.completion_tokens), s.cost);
            } else if (cmd == "/save") {
                if (arg.empty()) {
                    std::printf("usage: /save FILE\n");
                    continue;
                }
                std::FILE* f = std::fopen(arg.c_str(), "w");
                if (!f) {
                    std::printf("cannot write %s\n", arg.c_str());
                    continue;
                }
                if (!s.system.empty()) std::fprintf(f, "## System\n\n%s\n\n", s.system.c_str());
                for (const auto& m : s.messages)
                    std::fprintf(f, "## %s\n\n%s\n\n", m.role == l04::Role::user ? "User" : "Assistant", m.content.c_str());
                std::fclose(f);
                std::printf("saved to %s%s%s\n", arg.c_str(), s.conversation_id.empty() ? "" : " (conversation ",
                            s.conversation_id.empty() ? "" : (s.conversation_id + ")").c_str());
            } else {
                std::printf("unknown command %s (/help lists them)\n", cmd.c_str());
            }
            continue;
        }
        l04::InferenceRequest req;
        req.model = s.model;
        req.system_prompt = s.system;
        req.messages = s.messages;
        l04::Message m;
        m.role = l04::Role::user;
        m.content = text;
        req.messages.push_back(std::move(m));
        req.stream = true;
        req.options = options;
        req.agent_did = ctx.settings.get("agent");
        fit_context(ctx, **client, req, req.messages.size() - 1);
        bool cancelled = false;
        auto r = ask(**client, req, cancelled);
        if (cancelled) {
            std::printf("(cancelled)\n");
            continue;
        }
        if (!r) {
            report(r.error());
            continue;
        }
        ++s.turns;
        s.prompt_tokens += r->token_usage.prompt_tokens;
        s.completion_tokens += r->token_usage.completion_tokens;
        s.cost += r->cost_usd;
        if (s.model.empty()) s.model = r->model_id;  // a routed conversation stays on its model
        nlohmann::json ids;
        log_prompt(ctx, req, s.conversation_id, *r, &ids);
        if (ids.contains("conversation_id")) s.conversation_id = ids["conversation_id"];
        s.messages = req.messages;
        l04::Message reply;
        reply.role = l04::Role::assistant;
        reply.content = r->content;
        s.messages.push_back(std::move(reply));
    }
    if (tty) std::fputc('\n', stdout);
    if (!s.conversation_id.empty() && !ctx.globals.quiet)
        std::fprintf(stderr, "l04ctl: conversation %s (continue with `l04ctl chat --cid %s` or `l04ctl prompt -c`)\n",
                     s.conversation_id.c_str(), s.conversation_id.c_str());
    return k_ok;
}

}  // namespace

void add_chat(CLI::App& app, Context& ctx) {
    auto a = std::make_shared<ChatArgs>();
    auto* c = app.add_subcommand("chat", "An interactive conversation (line editing, history, streaming)");
    c->footer(k_help);
    c->add_option("-m,--model", a->model, "Model id or alias; default: routed, then kept");
    c->add_option("-s,--system", a->system, "System prompt");
    c->add_option("--cid", a->cid, "Go on with this logged conversation (see `l04ctl logs`)");
    c->add_option("-o,--option", a->options, "Provider option key=value (repeatable), as for prompt")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->callback([&ctx, a] { g_exit = run_chat(ctx, *a); });
}

}  // namespace l04ctl
