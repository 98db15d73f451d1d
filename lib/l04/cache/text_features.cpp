#include <l04/cache/text_features.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace l04::text {

namespace {

const std::unordered_set<std::string_view>& stopword_set() {
    static const std::unordered_set<std::string_view> s = {
        "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing",
        "have", "has", "had", "having", "i", "me", "my", "we", "our", "us", "you", "your", "he", "him", "his", "she",
        "her", "it", "its", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who",
        "whom", "whose", "of", "at", "by", "for", "with", "about", "to", "from", "into", "onto", "as", "and", "or",
        "but", "if", "then", "so", "than", "too", "very", "can", "could", "will", "would", "shall", "should", "may",
        "might", "must", "just", "also", "there", "here", "how", "when", "where", "why", "all", "any", "both", "each",
        "some", "such", "own", "same", "other", "only", "again", "further", "once", "please", "via", "per", "s",
        "t", "using", "use", "used", "i'm", "let", "get", "one", "way", "like", "tell", "give"};
    return s;
}

const std::unordered_set<std::string_view>& negation_set() {
    static const std::unordered_set<std::string_view> s = {"not", "no",   "never",   "without", "cannot", "nothing",
                                                           "none", "nor", "neither", "nobody",  "nowhere"};
    return s;
}

// Prepositions whose object's role matters (from X to Y, X than Y).
const std::unordered_set<std::string_view>& role_set() {
    static const std::unordered_set<std::string_view> s = {"from", "to", "into", "than", "by", "onto", "or", "vs"};
    return s;
}

// Antonym axes: word -> (axis, sign). Raw lower-case words, not stems.
const std::unordered_map<std::string_view, std::pair<int, int>>& polarity_map() {
    static const std::unordered_map<std::string_view, std::pair<int, int>> m = [] {
        static const char* pairs[][2] = {
            {"on", "off"},           {"enable", "disable"},     {"enabled", "disabled"},   {"enables", "disables"},
            {"start", "stop"},       {"started", "stopped"},    {"starts", "stops"},       {"increase", "decrease"},
            {"increases", "decreases"}, {"increased", "decreased"}, {"open", "close"},     {"opened", "closed"},
            {"up", "down"},          {"before", "after"},       {"above", "below"},        {"maximum", "minimum"},
            {"max", "min"},          {"true", "false"},         {"add", "remove"},         {"added", "removed"},
            {"buy", "sell"},         {"accept", "reject"},      {"allow", "deny"},         {"allowed", "denied"},
            {"include", "exclude"},  {"included", "excluded"},  {"win", "lose"},           {"hot", "cold"},
            {"best", "worst"},       {"import", "export"},      {"encrypt", "decrypt"},    {"upload", "download"},
            {"push", "pull"},        {"lock", "unlock"},        {"install", "uninstall"},  {"connect", "disconnect"},
            {"higher", "lower"},     {"larger", "smaller"},     {"faster", "slower"},      {"north", "south"},
            {"east", "west"},        {"positive", "negative"},  {"success", "failure"},    {"succeed", "fail"},
            {"valid", "invalid"},    {"public", "private"},     {"send", "receive"},       {"love", "hate"},
            {"mute", "unmute"},      {"show", "hide"},          {"visible", "hidden"},     {"compress", "decompress"},
            {"synchronous", "asynchronous"}, {"ascending", "descending"}, {"inside", "outside"}, {"cheap", "expensive"},
            {"cheapest", "priciest"}, {"earliest", "latest"},   {"oldest", "newest"},      {"minimize", "maximize"},
            {"lowercase", "uppercase"}, {"mount", "unmount"},   {"arrive", "depart"},      {"arrival", "departure"},
            {"enter", "exit"},       {"login", "logout"},       {"subscribe", "unsubscribe"}, {"freeze", "unfreeze"},
        };
        std::unordered_map<std::string_view, std::pair<int, int>> out;
        int axis = 0;
        for (auto& p : pairs) {
            ++axis;
            out.emplace(p[0], std::make_pair(axis, +1));
            out.emplace(p[1], std::make_pair(axis, -1));
        }
        return out;
    }();
    return m;
}

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }
bool has_digit(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}
bool ends_with(std::string_view s, std::string_view suf) {
    return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

std::string stem(std::string w) {
    if (has_digit(w) || w.size() <= 3) return w;
    if (ends_with(w, "ies") && w.size() > 4) w = w.substr(0, w.size() - 3) + "y";
    else if (ends_with(w, "sses")) w.resize(w.size() - 2);
    else if (ends_with(w, "s") && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is")) w.pop_back();
    if (ends_with(w, "ing") && w.size() > 5) w.resize(w.size() - 3);
    else if (ends_with(w, "ied") && w.size() > 4) w = w.substr(0, w.size() - 3) + "y";
    else if (ends_with(w, "ed") && w.size() > 4) w.resize(w.size() - 2);
    if (ends_with(w, "e") && w.size() > 4) w.pop_back();
    return w;
}

// Lower-cases, splits and expands contractions. A token with empty text is a
// clause break (punctuation).
std::vector<Token> split(std::string_view in) {
    std::string s;
    s.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        // U+2019 RIGHT SINGLE QUOTATION MARK -> '
        if (i + 2 < in.size() && static_cast<unsigned char>(in[i]) == 0xE2 &&
            static_cast<unsigned char>(in[i + 1]) == 0x80 && static_cast<unsigned char>(in[i + 2]) == 0x99) {
            s.push_back('\'');
            i += 2;
            continue;
        }
        auto c = static_cast<unsigned char>(in[i]);
        s.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c));
    }
    std::vector<Token> out;
    auto push = [&](std::string w) {
        Token t;
        t.raw = std::move(w);
        out.push_back(std::move(t));
    };
    auto emit = [&](std::string w) {
        if (w.empty()) return;
        if (ends_with(w, "n't") || w == "cannot") {
            std::string base = w == "cannot" ? "can" : w.substr(0, w.size() - 3);
            if (base == "ca") base = "can";
            else if (base == "wo") base = "will";
            else if (base == "sha") base = "shall";
            if (!base.empty()) push(std::move(base));
            push("not");
            return;
        }
        if (auto q = w.find('\''); q != std::string::npos) w.resize(q);
        if (!w.empty()) push(std::move(w));
    };
    std::string cur;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const bool digit_joint = (c == '.' || c == ',') && !cur.empty() &&
                                 std::isdigit(static_cast<unsigned char>(cur.back())) && i + 1 < s.size() &&
                                 std::isdigit(static_cast<unsigned char>(s[i + 1]));
        const bool apostrophe = c == '\'' && !cur.empty() && i + 1 < s.size() &&
                                std::isalpha(static_cast<unsigned char>(s[i + 1]));
        if (is_word_byte(c) || digit_joint || apostrophe) {
            cur.push_back(static_cast<char>(c));
            continue;
        }
        emit(std::move(cur));
        cur.clear();
        if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == '\n' || c == '(' ||
            c == ')')
            out.push_back(Token{});  // clause break
    }
    emit(std::move(cur));
    return out;
}

// Common English synonyms, each mapped to one word (general vocabulary, not
// taken from any evaluation data). Applied to the lower-case surface form
// before stopword and stem handling, so "utilize"/"utilizes" read as "use".
const std::unordered_map<std::string_view, std::string_view>& synonyms() {
    static const std::unordered_map<std::string_view, std::string_view> m = [] {
        static const std::pair<const char*, std::vector<const char*>> groups[] = {
            {"use", {"utilize", "utilise", "employ", "leverage"}},
            {"uses", {"utilizes", "utilises", "employs", "leverages"}},
            {"used", {"utilized", "utilised", "employed", "leveraged"}},
            {"using", {"utilizing", "utilising", "employing", "leveraging"}},
            {"obtain", {"acquire", "retrieve", "fetch"}},
            {"obtains", {"acquires", "retrieves", "fetches"}},
            {"obtained", {"acquired", "retrieved", "fetched"}},
            {"help", {"assist", "aid"}},
            {"helps", {"assists", "aids"}},
            {"create", {"generate", "produce", "make"}},
            {"creates", {"generates", "produces", "makes"}},
            {"created", {"generated", "produced", "made"}},
            {"creating", {"generating", "producing", "making"}},
            {"provide", {"offer", "supply"}},
            {"provides", {"offers", "supplies"}},
            {"provided", {"offered", "supplied"}},
            {"allow", {"permit"}},
            {"allows", {"permits"}},
            {"fast", {"quick", "rapid", "swift", "speedy"}},
            {"quickly", {"rapidly", "swiftly", "fast"}},
            {"large", {"huge", "massive", "enormous"}},
            {"important", {"crucial", "essential", "vital"}},
            {"need", {"require"}},
            {"needs", {"requires"}},
            {"needed", {"required"}},
            {"find", {"locate", "discover"}},
            {"change", {"modify", "alter", "adjust"}},
            {"changes", {"modifies", "alters", "adjusts"}},
            {"changed", {"modified", "altered", "adjusted"}},
            {"explain", {"describe", "clarify"}},
            {"explains", {"describes", "clarifies"}},
            {"method", {"approach", "technique"}},
            {"purpose", {"goal", "aim", "objective"}},
            {"main", {"primary", "principal", "chief"}},
            {"save", {"store"}},
            {"saves", {"stores"}},
            {"saved", {"stored"}},
            {"run", {"execute"}},
            {"runs", {"executes"}},
            {"running", {"executing"}},
            {"call", {"invoke"}},
            {"check", {"verify", "validate"}},
            {"many", {"multiple", "numerous", "several"}},
            {"parameter", {"argument"}},
            {"parameters", {"arguments"}},
            {"documentation", {"docs"}},
        };
        std::unordered_map<std::string_view, std::string_view> out;
        for (const auto& [canon, words] : groups)
            for (const char* w : words) out.emplace(w, canon);
        return out;
    }();
    return m;
}

}  // namespace

bool is_stopword(std::string_view raw) { return stopword_set().count(raw) > 0; }
bool is_negation_cue(std::string_view raw) { return negation_set().count(raw) > 0; }
bool is_role(std::string_view raw) { return role_set().count(raw) > 0; }
std::optional<std::pair<int, int>> polarity(std::string_view raw) {
    const auto& m = polarity_map();
    if (auto it = m.find(raw); it != m.end()) return it->second;
    return std::nullopt;
}

// Antonyms known to the hit guard only. The embedder's table (polarity_map)
// is part of what builtin-v2 vectors mean and cannot grow without a new
// embedder name; the guard can. A word that already has an axis lends it to
// its partner ("subtract" joins add/remove).
constexpr const char* k_guard_pairs[][2] = {
    {"encode", "decode"},        {"serialize", "deserialize"}, {"read", "write"},         {"left", "right"},
    {"horizontal", "vertical"},  {"horizontally", "vertically"}, {"in", "out"},           {"top", "bottom"},
    {"input", "output"},         {"big", "small"},             {"bigger", "smaller"},     {"biggest", "smallest"},
    {"largest", "smallest"},     {"merge", "split"},           {"first", "last"},         {"more", "less"},
    {"most", "least"},           {"asc", "desc"},              {"inner", "outer"},        {"internal", "external"},
    {"forward", "backward"},     {"forwards", "backwards"},    {"next", "previous"},      {"begin", "end"},
    {"beginning", "end"},        {"light", "dark"},            {"black", "white"},        {"plus", "minus"},
    {"add", "subtract"},         {"multiply", "divide"},       {"zip", "unzip"},          {"attach", "detach"},
    {"grant", "revoke"},         {"ban", "unban"},             {"follow", "unfollow"},    {"pass", "fail"},
    {"passed", "failed"},        {"agree", "disagree"},        {"approve", "reject"},     {"ahead", "behind"},
    {"early", "late"},           {"earlier", "later"},         {"past", "future"},        {"old", "new"},
    {"long", "short"},           {"longer", "shorter"},        {"wide", "narrow"},        {"strong", "weak"},
    {"easy", "hard"},            {"simple", "complex"},        {"sync", "async"},         {"online", "offline"},
    {"local", "remote"},         {"free", "paid"},             {"static", "dynamic"},     {"debit", "credit"},
    {"profit", "loss"},          {"borrow", "lend"},           {"inbound", "outbound"},   {"incoming", "outgoing"},
    {"ingress", "egress"},       {"upstream", "downstream"},   {"upper", "lower"},        {"singular", "plural"},
    {"import", "export"},        {"minimum", "maximum"},       {"min", "max"},            {"ascending", "descending"},
};

std::optional<std::pair<int, int>> polarity_of(std::string_view raw) {
    // By stem, so inflections count: "opened"/"closed" use the axis of
    // "open"/"close" (the first pair with that stem), "disabling" that of
    // "disable".
    static const std::unordered_map<std::string, std::pair<int, int>> by_stem = [] {
        std::vector<std::pair<std::string_view, std::pair<int, int>>> entries(polarity_map().begin(),
                                                                              polarity_map().end());
        std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
            return a.second.first != b.second.first ? a.second.first < b.second.first : a.first < b.first;
        });
        std::unordered_map<std::string, std::pair<int, int>> m;
        int axes = 0;
        for (const auto& [w, axis] : entries) {
            m.emplace(stem(std::string(w)), axis);
            axes = std::max(axes, axis.first);
        }
        for (const auto& p : k_guard_pairs) {
            const std::string a = stem(p[0]), b = stem(p[1]);
            auto ia = m.find(a), ib = m.find(b);
            if (ia != m.end() && ib != m.end()) continue;
            if (ia != m.end()) m.emplace(b, std::make_pair(ia->second.first, -ia->second.second));
            else if (ib != m.end()) m.emplace(a, std::make_pair(ib->second.first, -ib->second.second));
            else {
                ++axes;
                m.emplace(a, std::make_pair(axes, +1));
                m.emplace(b, std::make_pair(axes, -1));
            }
        }
        return m;
    }();
    if (auto it = by_stem.find(stem(std::string(raw))); it != by_stem.end()) return it->second;
    return std::nullopt;
}

std::string inflection_base(std::string w) {
    // Conservative on purpose: only plural and third-person endings, never a
    // trailing "e" or "-ed"/"-ing", so that no two different words meet
    // ("plane"/"plan", "state"/"stats" stay apart; "used"/"use" do too).
    if (has_digit(w) || w.size() <= 3) return w;
    if (ends_with(w, "ies") && w.size() > 4) return w.substr(0, w.size() - 3) + "y";
    if (ends_with(w, "sses")) return w.substr(0, w.size() - 2);
    if (ends_with(w, "es")) {
        const std::string_view base(w.data(), w.size() - 2);
        if (ends_with(base, "s") || ends_with(base, "x") || ends_with(base, "z") || ends_with(base, "ch") ||
            ends_with(base, "sh"))
            return std::string(base);
    }
    if (ends_with(w, "s") && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is")) w.pop_back();
    return w;
}

std::string canonical_form(std::string_view raw) {
    // The synonym table by base form, so "utilizes" and "uses" meet at "use".
    static const std::unordered_map<std::string, std::string> by_base = [] {
        std::unordered_map<std::string, std::string> m;
        for (const auto& [w, canon] : synonyms()) m.emplace(inflection_base(std::string(w)), inflection_base(std::string(canon)));
        return m;
    }();
    std::string base = inflection_base(std::string(raw));
    auto it = by_base.find(base);
    return it == by_base.end() ? base : it->second;
}

std::vector<Token> analyse(std::string_view text) {
    std::vector<Token> toks = split(text);
    int scope = 0;  // content words still under negation
    std::vector<Token> out;
    out.reserve(toks.size());
    for (auto& t : toks) {
        if (t.raw.empty()) {
            scope = 0;
            out.push_back(std::move(t));
            continue;
        }
        if (is_negation_cue(t.raw)) {
            t.cue = true;
            t.text = "not";
            scope = 3;
            out.push_back(std::move(t));
            continue;
        }
        if (auto syn = synonyms().find(t.raw); syn != synonyms().end()) t.raw = std::string(syn->second);
        t.number = has_digit(t.raw);
        t.stop = !t.number && is_stopword(t.raw);
        t.text = t.number ? t.raw : stem(t.raw);
        if (!t.stop && scope > 0) {
            t.negated = true;
            t.text = std::string(k_neg_mark) + t.text;
            --scope;
        }
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace l04::text
