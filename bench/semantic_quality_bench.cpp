// Semantic cache quality benchmark (not a test): the built-in embedder on
//  (a) ../shared/fixtures/semantic/paraphrase_pairs.json, GPTCache's method:
//      insert every distinct origin, query every paraphrase, count correct
//      hits (best match has the pair's origin text), wrong hits and misses
//      per threshold;
//  (b) bench/data/near_misses.json: pairs that must never hit. Each pair is
//      checked alone (b queried against a cache holding only a) and against
//      a cache holding every `a` of the set.
// Usage: semantic_quality_bench [--grid]   (--grid: sweep embedder weights)
#include <l04/cache/embedder.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace l04;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        std::exit(2);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Pair {
    std::string a, b, kind;
};

struct Counts {
    int correct = 0, wrong = 0, miss = 0;
    double precision() const { return correct + wrong ? double(correct) / (correct + wrong) : 1.0; }
};

struct Eval {
    std::vector<std::string> wrong_at_85;  // "query => matched origin (cos)"
    std::map<int, Counts> para;         // threshold (x100) -> counts
    std::map<int, int> near_alone;      // threshold -> near misses that would hit
    std::map<int, int> near_all;
    std::vector<std::pair<float, const Pair*>> near_sims;
};

std::vector<int> thresholds() {
    std::vector<int> t;
    for (int x = 80; x <= 99; ++x) t.push_back(x);
    return t;
}

Eval evaluate(BuiltinEmbedder& e, const std::vector<Pair>& para, const std::vector<Pair>& near) {
    Eval ev;
    // (a) paraphrases: distinct origins are the cache.
    std::vector<std::string> origins;
    std::map<std::string, std::size_t> index;
    for (const auto& p : para)
        if (!index.count(p.a)) {
            index[p.a] = origins.size();
            origins.push_back(p.a);
        }
    std::vector<Vector> ov;
    for (const auto& o : origins) ov.push_back(e.embed_one(o));
    for (const auto& p : para) {
        const Vector q = e.embed_one(p.b);
        float best = -2;
        std::size_t arg = 0;
        for (std::size_t i = 0; i < ov.size(); ++i) {
            const float s = dot(q.data(), ov[i].data(), q.size());
            if (s > best) best = s, arg = i;
        }
        const bool right = origins[arg] == p.a;  // by text: repeated origins count as right
        if (!right && best + 1e-6 >= 0.85) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.3f", best);
            ev.wrong_at_85.push_back(std::string(buf) + " | " + p.b + " | " + origins[arg] + " | " + p.a);
        }
        for (int t : thresholds()) {
            auto& c = ev.para[t];
            if (best + 1e-6 < t / 100.0) ++c.miss;
            else if (right) ++c.correct;
            else ++c.wrong;
        }
    }
    // (b) near misses.
    std::vector<Vector> av;
    for (const auto& p : near) av.push_back(e.embed_one(p.a));
    for (std::size_t i = 0; i < near.size(); ++i) {
        const Vector q = e.embed_one(near[i].b);
        const float alone = dot(q.data(), av[i].data(), q.size());
        float best = -2;
        for (const auto& v : av) best = std::max(best, dot(q.data(), v.data(), q.size()));
        ev.near_sims.emplace_back(alone, &near[i]);
        for (int t : thresholds()) {
            if (alone + 1e-6 >= t / 100.0) ++ev.near_alone[t];
            if (best + 1e-6 >= t / 100.0) ++ev.near_all[t];
        }
    }
    return ev;
}

}  // namespace

int main(int argc, char** argv) {
    const bool grid = argc > 1 && std::strcmp(argv[1], "--grid") == 0;
    const bool show_wrong = argc > 1 && std::strcmp(argv[1], "--wrong") == 0;
    std::vector<Pair> para, near;
    for (const auto& p : nlohmann::json::parse(slurp(std::string(L04_FIXTURES_DIR) + "/semantic/paraphrase_pairs.json")))
        para.push_back(Pair{p.at("origin").get<std::string>(), p.at("similar").get<std::string>(), ""});
    const auto near_doc = nlohmann::json::parse(slurp(std::string(L04_BENCH_DATA_DIR) + "/near_misses.json"));
    for (const auto& p : near_doc.at("pairs"))
        near.push_back(Pair{p.at("a").get<std::string>(), p.at("b").get<std::string>(), p.at("kind").get<std::string>()});

    if (grid) {
        std::printf("| unigram | bigram | char | polarity | number | negation | correct@0.85 | wrong@0.85 | precision@0.85 | "
                    "near hits@0.85 (alone/all) | correct@0.80 | wrong@0.80 |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (float bw : {0.4f, 0.6f, 0.8f, 1.0f})
            for (float cw : {0.3f, 0.6f, 0.9f})
                for (float nb : {1.5f, 2.0f}) {
                    BuiltinEmbedderOptions o;
                    o.bigram_weight = bw;
                    o.char_weight = cw;
                    o.number_boost = nb;
                    BuiltinEmbedder e(o);
                    auto ev = evaluate(e, para, near);
                    const auto& c = ev.para[85];
                    std::printf("| %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %d | %.3f | %d/%d | %d | %d |\n",
                                o.unigram_weight, bw, cw, o.polarity_boost, nb, o.negation_boost, c.correct, c.wrong,
                                c.precision(), ev.near_alone[85], ev.near_all[85], ev.para[80].correct, ev.para[80].wrong);
                }
        return 0;
    }

    BuiltinEmbedder e;
    auto ev = evaluate(e, para, near);
    if (show_wrong) {
        std::printf("| cosine | query | matched origin | its own origin |\n|---|---|---|---|\n");
        for (const auto& w : ev.wrong_at_85) std::printf("| %s |\n", w.c_str());
        return 0;
    }
    std::printf("Embedder: %s, %zu dims. Paraphrase pairs: %zu. Near-miss pairs: %zu.\n\n", e.name().c_str(),
                e.dimension(), para.size(), near.size());
    std::printf("| threshold | correct hits | wrong hits | misses | hit precision | near-miss hits (pair alone) | near-miss hits (all in cache) |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (int t : thresholds()) {
        const auto& c = ev.para[t];
        std::printf("| 0.%02d | %d | %d | %d | %.3f | %d | %d |\n", t, c.correct, c.wrong, c.miss, c.precision(),
                    ev.near_alone[t], ev.near_all[t]);
    }
    std::sort(ev.near_sims.begin(), ev.near_sims.end(), [](auto& x, auto& y) { return x.first > y.first; });
    std::printf("\nClosest near misses (cosine of the pair):\n\n| cosine | kind | a | b |\n|---|---|---|---|\n");
    for (std::size_t i = 0; i < std::min<std::size_t>(8, ev.near_sims.size()); ++i) {
        const auto& [s, p] = ev.near_sims[i];
        std::printf("| %.3f | %s | %s | %s |\n", s, p->kind.c_str(), p->a.c_str(), p->b.c_str());
    }
    std::map<std::string, std::pair<int, double>> by_kind;
    for (const auto& [s, p] : ev.near_sims) {
        by_kind[p->kind].first++;
        by_kind[p->kind].second = std::max(by_kind[p->kind].second, double(s));
    }
    std::printf("\n| near-miss kind | pairs | highest cosine |\n|---|---|---|\n");
    for (const auto& [k, v] : by_kind) std::printf("| %s | %d | %.3f |\n", k.c_str(), v.first, v.second);
    return 0;
}
