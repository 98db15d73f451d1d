// Semantic cache speed benchmark (not a test). Prints markdown tables.
//  1. VectorIndex at N entries (default 100,000) of 384-d builtin-v2
//     embeddings of synthetic prompts (8-16 words drawn from the vocabulary
//     of the paraphrase fixture): insert throughput, search p50/p99 (k=10,
//     and the cache's scoped search k=8 with every entry in one scope, the
//     worst case), recall@10 against brute force, save/load time, file size,
//     resident memory; then the same searches after reloading with other
//     ef_search values.
//  2. ResponseCache end to end at E entries (default 20,000) in SQLite:
//     store throughput, exact-hit and semantic-hit lookup p50/p99 (including
//     embedding and the SQLite re-check).
// Usage: semantic_speed_bench [N] [E] [--m M] [--efc EF] [--data uniform|zipf]
//   E <= N: the stores reuse the N prompts. --m / --efc: graph degree and
//   build beam (default: VectorIndexOptions). --data: words drawn uniformly
//   from the vocabulary (default, the hardest case) or with the frequencies
//   they have in the paraphrase file (Zipf-like, as in real text).
#include <l04/cache/response_cache.hpp>
#include <l04/cache/vector_index.hpp>
#include <l04/store/schema.hpp>

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace l04;
using Clk = std::chrono::steady_clock;

namespace {

double secs(Clk::time_point a, Clk::time_point b) { return std::chrono::duration<double>(b - a).count(); }

long rss_kb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return 0;
}

struct Pcts {
    double p50, p99, max;
};
Pcts pcts(std::vector<double> us) {
    std::sort(us.begin(), us.end());
    auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))]; };
    return {at(0.50), at(0.99), us.back()};
}

// The distinct whitespace-separated words of the paraphrase file, and how
// often each occurs there.
struct Vocabulary {
    std::vector<std::string> words;
    std::vector<double> counts;
};

Vocabulary vocabulary() {
    std::ifstream in(std::string(L04_FIXTURES_DIR) + "/semantic/paraphrase_pairs.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::unordered_map<std::string, std::size_t> seen;
    Vocabulary v;
    for (const auto& p : nlohmann::json::parse(ss.str()))
        for (const char* f : {"origin", "similar"}) {
            std::istringstream ws(p.at(f).get<std::string>());
            std::string w;
            while (ws >> w) {
                auto [it, fresh] = seen.emplace(w, v.words.size());
                if (fresh) {
                    v.words.push_back(w);
                    v.counts.push_back(0);
                }
                v.counts[it->second] += 1;
            }
        }
    return v;
}

// 8-16 words, drawn uniformly or by corpus frequency.
struct SentenceMaker {
    const Vocabulary& vocab;
    bool zipf;
    std::discrete_distribution<std::size_t> by_count{vocab.counts.begin(), vocab.counts.end()};
    std::string operator()(std::mt19937_64& rng) {
        const int n = 8 + static_cast<int>(rng() % 9);
        std::string s;
        for (int i = 0; i < n; ++i)
            s += (i ? " " : "") + vocab.words[zipf ? by_count(rng) : rng() % vocab.words.size()];
        return s;
    }
};

// Drops one word: a query close to (not equal to) an inserted prompt.
std::string perturb(std::mt19937_64& rng, const std::string& s) {
    std::vector<std::string> w;
    std::istringstream ws(s);
    std::string x;
    while (ws >> x) w.push_back(x);
    w.erase(w.begin() + static_cast<long>(rng() % w.size()));
    std::string out;
    for (std::size_t i = 0; i < w.size(); ++i) out += (i ? " " : "") + w[i];
    return out;
}

struct SearchResult {
    Pcts plain, scoped;
    double recall;
    double servable;  // recall of the true top-10 entries at cosine >= 0.82 (what a hit or its rival can be)
    std::size_t servable_n;
};

SearchResult measure(const VectorIndex& idx, const std::vector<Vector>& queries) {
    std::vector<double> plain, scoped;
    double found = 0, total = 0, close_found = 0, close_total = 0;
    for (const auto& q : queries) {
        auto t0 = Clk::now();
        auto r = idx.search(q, 10);
        auto t1 = Clk::now();
        auto g = idx.search(q, 8, 0);
        auto t2 = Clk::now();
        plain.push_back(secs(t0, t1) * 1e6);
        scoped.push_back(secs(t1, t2) * 1e6);
        auto exact = idx.search_exact(q, 10);
        std::set<std::int64_t> e, got;
        for (const auto& m : exact) e.insert(m.label);
        for (const auto& m : r) {
            found += static_cast<double>(e.count(m.label));
            got.insert(m.label);
        }
        total += static_cast<double>(exact.size());
        for (const auto& m : exact)
            if (m.similarity >= 0.82f) {
                ++close_total;
                close_found += static_cast<double>(got.count(m.label));
            }
        (void)g;
    }
    return {pcts(plain), pcts(scoped), found / total, close_total ? close_found / close_total : 1.0,
            static_cast<std::size_t>(close_total)};
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    VectorIndexOptions opts;
    bool zipf = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--m" && i + 1 < argc) opts.m = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--efc" && i + 1 < argc) opts.ef_construction = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--data" && i + 1 < argc) zipf = std::string(argv[++i]) == "zipf";
        else pos.push_back(a);
    }
    const std::size_t n = pos.size() > 0 ? std::strtoul(pos[0].c_str(), nullptr, 10) : 100000;
    const std::size_t e2e = pos.size() > 1 ? std::strtoul(pos[1].c_str(), nullptr, 10) : 20000;
    const std::size_t nq = 1000;
    if (e2e > n || n == 0) {
        std::fprintf(stderr, "usage: semantic_speed_bench [N] [E] [--m M] [--efc EF] [--data uniform|zipf] with 0 < N "
                             "and E <= N (E stores reuse the N prompts)\n");
        return 2;
    }
    const auto vocab = vocabulary();
    SentenceMaker sentence{vocab, zipf};
    std::mt19937_64 rng(42);
    BuiltinEmbedder emb;
    std::printf("Semantic cache speed: %zu entries, %zu dims (%s), %zu queries, vocabulary %zu words drawn %s, "
                "dot kernels %s (float) and %s (half), M=%zu, ef_construction=%zu.\n\n",
                n, emb.dimension(), emb.name().c_str(), nq, vocab.words.size(),
                zipf ? "by corpus frequency" : "uniformly", dot_kernel(), half_kernel(), opts.m, opts.ef_construction);

    std::vector<std::string> texts(n);
    for (auto& t : texts) t = sentence(rng);
    auto t0 = Clk::now();
    std::vector<Vector> vecs;
    vecs.reserve(n);
    for (const auto& t : texts) vecs.push_back(emb.embed_one(t));
    const double embed_s = secs(t0, Clk::now());

    const long rss0 = rss_kb();
    VectorIndex idx(emb.name(), emb.dimension(), opts);
    t0 = Clk::now();
    for (std::size_t i = 0; i < n; ++i)
        if (!idx.add(static_cast<std::int64_t>(i + 1), vecs[i], 0, i)) return 1;
    const double build_s = secs(t0, Clk::now());
    const long rss1 = rss_kb();

    std::vector<Vector> queries;
    for (std::size_t i = 0; i < nq; ++i) queries.push_back(emb.embed_one(perturb(rng, texts[rng() % n])));
    const auto base = measure(idx, queries);

    const std::string dir = std::filesystem::temp_directory_path() / ("l04-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/index.hnsw";
    t0 = Clk::now();
    if (!idx.save(path)) return 1;
    const double save_s = secs(t0, Clk::now());
    const double file_mb = static_cast<double>(std::filesystem::file_size(path)) / 1048576.0;
    t0 = Clk::now();
    auto loaded = VectorIndex::load(path, emb.name(), emb.dimension());
    const double load_s = secs(t0, Clk::now());
    if (!loaded) return 1;

    std::printf("| measure | value |\n|---|---|\n");
    std::printf("| builtin-v2 embedding | %.1f µs per prompt (%.0f prompts/s) |\n", embed_s / n * 1e6, n / embed_s);
    std::printf("| index insert throughput (M=%zu, ef_construction=%zu) | %.0f inserts/s (%.1f s for %zu) |\n",
                opts.m, opts.ef_construction, n / build_s, build_s, n);
    std::printf("| search k=10, ef=%zu: p50 / p99 / max | %.0f / %.0f / %.0f µs |\n", opts.ef_search, base.plain.p50, base.plain.p99,
                base.plain.max);
    std::printf("| scoped search k=8, all %zu in one scope: p50 / p99 / max | %.0f / %.0f / %.0f µs |\n", n,
                base.scoped.p50, base.scoped.p99, base.scoped.max);
    std::printf("| recall@10 vs brute force (ef=%zu) | %.4f |\n", opts.ef_search, base.recall);
    std::printf("| recall of the true top-10 entries at cosine >= 0.82 (threshold minus margin) | %.4f (%zu entries) |\n",
                base.servable, base.servable_n);
    std::printf("| index save (write, fsync, rename) | %.0f ms, %.1f MiB |\n", save_s * 1e3, file_mb);
    std::printf("| index load (read, checksum, verify graph) | %.0f ms |\n", load_s * 1e3);
    std::printf("| resident memory of the index | %.1f MiB (RSS %.1f -> %.1f MiB) |\n", (rss1 - rss0) / 1024.0,
                rss0 / 1024.0, rss1 / 1024.0);
    loaded->reset();

    std::printf("\n| ef_search | search k=10 p50 | p99 | recall@10 | scoped k=8 p50 | p99 |\n|---|---|---|---|---|---|\n");
    for (std::size_t ef : {16, 32, 64, 96, 128, 256, 512}) {
        VectorIndexOptions o = opts;
        o.ef_search = ef;
        auto li = VectorIndex::load(path, emb.name(), emb.dimension(), o);
        if (!li) return 1;
        const auto r = measure(**li, queries);
        std::printf("| %zu | %.0f µs | %.0f µs | %.4f | %.0f µs | %.0f µs |\n", ef, r.plain.p50, r.plain.p99, r.recall,
                    r.scoped.p50, r.scoped.p99);
    }
    std::filesystem::remove_all(dir);

    // End to end through ResponseCache (SQLite in a temp dir).
    if (e2e == 0) return 0;
    const std::string cdir = std::filesystem::temp_directory_path() / ("l04-bench-cache-" + std::to_string(::getpid()));
    {
        auto db = open_state_db(cdir);
        if (!db) return 1;
        CacheConfig cfg;
        cfg.max_entries = static_cast<std::int64_t>(e2e) * 2;
        cfg.max_bytes = 1ll << 40;
        ManualClock clock;
        ResponseCache cache(std::move(*db), cfg, clock, std::make_shared<BuiltinEmbedder>());
        auto key_of = [](const std::string& p) {
            InferenceRequest r;
            r.model = "mock";
            r.messages.push_back(Message{Role::user, p, "", "", {}});
            return make_cache_key(r, "mock", "");
        };
        InferenceResponse resp;
        resp.content = "cached answer";
        resp.model_id = "mock";
        resp.provider = "mock";
        (void)cache.lookup(key_of("load the index first"));
        t0 = Clk::now();
        for (std::size_t i = 0; i < e2e; ++i)
            if (!cache.store(key_of(texts[i]), resp)) return 1;
        const double store_s = secs(t0, Clk::now());
        std::vector<double> exact, sem;
        int sem_hits = 0;
        for (std::size_t i = 0; i < nq; ++i) {
            const std::string& p = texts[rng() % e2e];
            auto a = Clk::now();
            auto h = cache.lookup(key_of(p));
            auto b = Clk::now();
            auto s = cache.lookup(key_of(p + " please"));
            auto c = Clk::now();
            if (!h) return 1;
            if (s && s->cache_hit == CacheHit::semantic) ++sem_hits;
            exact.push_back(secs(a, b) * 1e6);
            sem.push_back(secs(b, c) * 1e6);
        }
        const auto pe = pcts(exact), ps = pcts(sem);
        std::printf("\nResponseCache end to end, %zu entries in SQLite (WAL), one scope:\n\n", e2e);
        std::printf("| measure | value |\n|---|---|\n");
        std::printf("| store (embed + insert transaction + index add) | %.0f stores/s |\n", e2e / store_s);
        std::printf("| exact hit: p50 / p99 | %.0f / %.0f µs |\n", pe.p50, pe.p99);
        std::printf("| semantic hit (embed + scoped search + SQLite re-check): p50 / p99 | %.0f / %.0f µs (%d of %zu hit) |\n",
                    ps.p50, ps.p99, sem_hits, nq);
        t0 = Clk::now();
        if (!cache.save_index()) return 1;
        std::printf("| save_index | %.0f ms |\n", secs(t0, Clk::now()) * 1e3);
    }
    std::filesystem::remove_all(cdir);
    return 0;
}
