// VectorIndex: search, groups, deletion, compaction, persistence and the
// verification of damaged files, concurrent readers during writes.
#include <doctest/doctest.h>

#include <unistd.h>

#include <l04/cache/embedder.hpp>
#include <l04/cache/vector_index.hpp>
#include <support/test_util.hpp>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>

using namespace l04;

namespace {

Vector random_unit(std::mt19937& rng, std::size_t dim) {
    std::normal_distribution<float> n(0, 1);
    Vector v(dim);
    for (auto& x : v) x = n(rng);
    normalize(v);
    return v;
}

constexpr std::size_t k_dim = 32;
constexpr std::size_t k_header = 136;  // see vector_index.hpp

std::unique_ptr<VectorIndex> filled(std::size_t n, std::vector<Vector>& vecs, std::uint64_t seed = 7,
                                    VectorIndexOptions o = {}) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    auto idx = std::make_unique<VectorIndex>("test-emb", k_dim, o);
    vecs.clear();
    for (std::size_t i = 0; i < n; ++i) {
        vecs.push_back(random_unit(rng, k_dim));
        REQUIRE(idx->add(static_cast<std::int64_t>(i + 1), vecs.back(), i % 3, 1000 + i));
    }
    return idx;
}

// Rewrites the payload checksum and the header checksum after an edit, so
// only the structural checks stand between the bytes and hnswlib.
void reseal(std::string& file) {
    const std::uint64_t payload_sum = index_checksum(file.data() + k_header, file.size() - k_header);
    std::memcpy(file.data() + 120, &payload_sum, 8);
    const std::uint64_t header_sum = index_checksum(file.data(), 128);
    std::memcpy(file.data() + 128, &header_sum, 8);
}

}  // namespace

TEST_CASE("vector index: nearest first - similarity as cosine - remove - re-add") {
    std::vector<Vector> vecs;
    auto idx = filled(500, vecs);
    auto r = idx->search(vecs[42], 5);
    REQUIRE(r.size() == 5);
    CHECK(r[0].label == 43);
    CHECK(r[0].similarity == doctest::Approx(1.0).epsilon(1e-3));  // float query vs its stored halves
    for (std::size_t i = 1; i < r.size(); ++i) CHECK(r[i - 1].similarity >= r[i].similarity);

    CHECK(idx->remove(43));
    CHECK_FALSE(idx->remove(43));
    CHECK_FALSE(idx->contains(43));
    r = idx->search(vecs[42], 5);
    for (const auto& m : r) CHECK(m.label != 43);
    CHECK(idx->stats().live == 499);
    CHECK(idx->stats().deleted == 1);

    REQUIRE(idx->add(43, vecs[42], 0, 1));  // revives the deleted element
    CHECK(idx->search(vecs[42], 1)[0].label == 43);
    CHECK(idx->stats().deleted == 0);

    CHECK_FALSE(idx->add(0, vecs[0], 0, 0));                     // labels are positive
    CHECK_FALSE(idx->add(9999, Vector(k_dim + 1, 1.0f), 0, 0));  // wrong dimension
    CHECK_FALSE(idx->add(9999, Vector(k_dim, 0.0f), 0, 0));      // zero vector
}

TEST_CASE("vector index: group search is exact for small groups and filtered for large ones") {
    for (std::size_t limit : {std::size_t{4096}, std::size_t{8}}) {
        VectorIndexOptions o;
        o.brute_force_limit = limit;
        std::vector<Vector> vecs;
        auto idx = filled(900, vecs, 11, o);
        INFO("brute_force_limit " << limit);
        for (std::size_t q : {0u, 5u, 301u, 899u}) {
            const std::uint64_t g = q % 3;
            auto r = idx->search(vecs[q], 10, g);
            REQUIRE(r.size() == 10);
            CHECK(r[0].label == static_cast<std::int64_t>(q + 1));
            for (const auto& m : r) CHECK((m.label - 1) % 3 == static_cast<std::int64_t>(g));
        }
        CHECK(idx->search(vecs[0], 10, 77).empty());  // unknown group
    }
}

TEST_CASE("vector index: recall@10 against brute force") {
    std::vector<Vector> vecs;
    auto idx = filled(3000, vecs, 3);
    std::mt19937 rng(99);
    double found = 0, total = 0;
    for (int q = 0; q < 100; ++q) {
        const Vector query = random_unit(rng, k_dim);
        auto exact = idx->search_exact(query, 10);
        auto approx = idx->search(query, 10);
        std::set<std::int64_t> e;
        for (const auto& m : exact) e.insert(m.label);
        for (const auto& m : approx) found += e.count(m.label);
        total += static_cast<double>(exact.size());
    }
    CHECK(found / total >= 0.95);
}

TEST_CASE("vector index: compaction drops deleted elements and keeps answers") {
    VectorIndexOptions o;
    o.compact_min_deleted = 10;
    std::vector<Vector> vecs;
    auto idx = filled(1000, vecs, 5, o);
    CHECK_FALSE(idx->needs_compaction());
    for (std::int64_t l = 1; l <= 600; ++l) CHECK(idx->remove(l));
    CHECK(idx->needs_compaction());
    REQUIRE(idx->compact());
    CHECK(idx->stats().deleted == 0);
    CHECK(idx->stats().live == 400);
    CHECK_FALSE(idx->needs_compaction());
    for (std::size_t q : {600u, 777u, 999u}) CHECK(idx->search(vecs[q], 1)[0].label == static_cast<std::int64_t>(q + 1));
    CHECK(idx->search(vecs[10], 1)[0].label != 11);
    // Group bookkeeping survived the rebuild.
    auto r = idx->search(vecs[700], 5, 700 % 3);
    REQUIRE_FALSE(r.empty());
    CHECK(r[0].label == 701);
}

TEST_CASE("vector index: save and load round trip") {
    l04::test::TempDir dir;
    const std::string path = dir.file("i.hnsw");
    std::vector<Vector> vecs;
    auto idx = filled(700, vecs);
    idx->remove(5);
    REQUIRE(idx->save(path));
    auto back = VectorIndex::load(path, "test-emb", k_dim);
    REQUIRE(back);
    CHECK((*back)->stats().live == 699);
    CHECK((*back)->stats().deleted == 1);
    CHECK_FALSE((*back)->contains(5));
    for (std::size_t q : {0u, 100u, 699u}) {
        auto a = idx->search(vecs[q], 10);
        auto b = (*back)->search(vecs[q], 10);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].label == b[i].label);
    }
    auto ent = (*back)->entries();
    CHECK(ent.size() == 699);
    for (const auto& e : ent) CHECK(e.stamp == static_cast<std::uint64_t>(1000 + e.label - 1));
    // It keeps working as a writable index after load.
    REQUIRE((*back)->add(5000, vecs[3], 1, 1));
    CHECK((*back)->search(vecs[3], 2).size() == 2);
    // An empty index round-trips too.
    VectorIndex empty("test-emb", k_dim);
    REQUIRE(empty.save(dir.file("e.hnsw")));
    auto e2 = VectorIndex::load(dir.file("e.hnsw"), "test-emb", k_dim);
    REQUIRE(e2);
    CHECK((*e2)->stats().live == 0);
    REQUIRE((*e2)->add(1, vecs[0], 0, 0));
    CHECK((*e2)->search(vecs[0], 1)[0].label == 1);
}

TEST_CASE("vector index: every kind of damaged or foreign file is refused - never crashes") {
    l04::test::TempDir dir;
    const std::string path = dir.file("i.hnsw");
    std::vector<Vector> vecs;
    auto idx = filled(300, vecs);
    REQUIRE(idx->save(path));
    const std::string good = l04::test::read_file(path);
    REQUIRE(good.size() > k_header + 1000);
    auto refused = [&](const std::string& bytes, const std::string& emb = "test-emb", std::size_t dim = k_dim) {
        l04::test::write_file(path, bytes);
        auto r = VectorIndex::load(path, emb, dim);
        if (r) return false;
        return r.error().code == ErrorCode::cache_index_corrupt;
    };
    CHECK(refused(good.substr(0, good.size() - 1)));       // truncated by one byte
    CHECK(refused(good.substr(0, good.size() / 2)));       // truncated mid-payload
    CHECK(refused(good.substr(0, 100)));                   // truncated header
    CHECK(refused(""));                                    // empty
    CHECK(refused(good + "x"));                            // trailing garbage
    CHECK(refused(good, "other-embedder"));                // another embedder
    CHECK(refused(good, "test-emb", k_dim * 2));           // another dimension
    std::mt19937 rng(1);
    for (int i = 0; i < 200; ++i) {  // single bit flips anywhere
        std::string b = good;
        const std::size_t pos = std::uniform_int_distribution<std::size_t>(0, b.size() - 1)(rng);
        b[pos] = static_cast<char>(b[pos] ^ (1 << (i % 8)));
        INFO("flip at " << pos);
        CHECK(refused(b));
    }
    {  // a neighbour id out of range, checksums recomputed: caught structurally
        std::string b = good;
        const std::uint32_t bad = 1'000'000;
        std::memcpy(b.data() + k_header + 8 + 4, &bad, 4);  // element 0, first level-0 neighbour
        reseal(b);
        CHECK(refused(b));
    }
    {  // a list count beyond maxM0, resealed
        std::string b = good;
        const std::uint16_t cnt = 999;
        std::memcpy(b.data() + k_header + 8, &cnt, 2);
        reseal(b);
        CHECK(refused(b));
    }
    {  // a version-1 file (float vectors, from an older l04), resealed: refused, so the cache rebuilds
        std::string b = good;
        const std::uint32_t v1 = 1;
        std::memcpy(b.data() + 8, &v1, 4);
        reseal(b);
        l04::test::write_file(path, b);
        auto r = VectorIndex::load(path, "test-emb", k_dim);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::cache_index_corrupt);
        CHECK(r.error().message.find("unsupported version 1") != std::string::npos);
    }
    {  // an infinite half in element 0's vector, resealed: caught by the vector check
        std::string b = good;
        const std::size_t size_links0 = 2 * VectorIndexOptions{}.m * 4 + 4;
        const std::uint16_t inf = 0x7C00;
        std::memcpy(b.data() + k_header + 8 + size_links0, &inf, 2);
        reseal(b);
        l04::test::write_file(path, b);
        auto r = VectorIndex::load(path, "test-emb", k_dim);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("non-finite vector") != std::string::npos);
    }
    {  // header claims another dimension (resealed): refused before any read
        std::string b = good;
        const std::uint32_t d = 8;
        std::memcpy(b.data() + 12, &d, 4);
        reseal(b);
        CHECK(refused(b, "test-emb", 8));
    }
    {  // an empty index whose entry point is garbage, resealed: refused (it used to crash the first insert)
        VectorIndex empty("test-emb", k_dim);
        REQUIRE(empty.save(path));
        std::string b = l04::test::read_file(path);
        const std::uint32_t ep = 12345;
        std::memcpy(b.data() + k_header + 4, &ep, 4);
        reseal(b);
        l04::test::write_file(path, b);
        auto r = VectorIndex::load(path, "test-emb", k_dim);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("bad entry point") != std::string::npos);
        // The untouched empty file loads, and takes inserts.
        REQUIRE(empty.save(path));
        auto ok = VectorIndex::load(path, "test-emb", k_dim);
        REQUIRE(ok);
        std::mt19937 r2(3);
        CHECK((*ok)->add(1, random_unit(r2, k_dim), 0, 1));
    }
    std::filesystem::remove(path);
    auto missing = VectorIndex::load(path, "test-emb", k_dim);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ErrorCode::cache_index_corrupt);
    // The untouched file still loads after all that.
    l04::test::write_file(path, good);
    CHECK(VectorIndex::load(path, "test-emb", k_dim));
}

TEST_CASE("vector index: save is atomic (no temp files left - old file intact on failure)") {
    l04::test::TempDir dir;
    std::vector<Vector> vecs;
    auto idx = filled(50, vecs);
    REQUIRE(idx->save(dir.file("i.hnsw")));
    REQUIRE(idx->save(dir.file("i.hnsw")));
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        ++files;
        CHECK(e.path().filename() == "i.hnsw");
    }
    CHECK(files == 1);
    CHECK_FALSE(idx->save(dir.file("no-such-dir/i.hnsw")));
}

TEST_CASE("vector index: temp files of a process that died while saving are removed - a living writer's are kept") {
    l04::test::TempDir dir;
    const std::string path = dir.file("i.hnsw");
    // pid 2^22+1 is above Linux's pid_max default and never alive here.
    const std::string dead = path + ".tmp.4194305.0", alive = path + ".tmp." + std::to_string(::getpid()) + ".3";
    l04::test::write_file(dead, std::string(1000, 'x'));
    l04::test::write_file(alive, std::string(10, 'y'));
    l04::test::write_file(dir.file("other.hnsw.tmp.4194305.0"), "z");  // another index's: not ours to judge
    CHECK(VectorIndex::remove_stale_temp_files(path) == 1);
    CHECK_FALSE(std::filesystem::exists(dead));
    CHECK(std::filesystem::exists(alive));
    CHECK(std::filesystem::exists(dir.file("other.hnsw.tmp.4194305.0")));
}

TEST_CASE("vector index: concurrent searches during inserts - removes and a compaction") {
    VectorIndexOptions o;
    o.initial_capacity = 16;  // force several resizes under load
    o.compact_min_deleted = 50;
    std::vector<Vector> vecs;
    auto idx = filled(200, vecs, 21, o);
    std::mt19937 rng(5);
    std::vector<Vector> more;
    for (int i = 0; i < 1500; ++i) more.push_back(random_unit(rng, k_dim));
    std::atomic<bool> done{false};
    std::atomic<long> searches{0}, bad{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 3; ++t)
        readers.emplace_back([&, t] {
            std::mt19937 r(static_cast<unsigned>(t));
            while (!done) {
                const auto& q = vecs[r() % vecs.size()];
                auto res = idx->search(q, 5, (t == 0) ? std::optional<std::uint64_t>(1) : std::nullopt);
                for (const auto& m : res)
                    if (m.label <= 0 || m.label > 2000 || !(m.similarity <= 1.001f)) ++bad;
                ++searches;
            }
        });
    for (std::size_t i = 0; i < more.size(); ++i) {
        REQUIRE(idx->add(static_cast<std::int64_t>(300 + i), more[i], i % 3, i));
        if (i % 3 == 0) idx->remove(static_cast<std::int64_t>(300 + i / 2));
        if (i == 700) REQUIRE(idx->compact());
    }
    done = true;
    for (auto& t : readers) t.join();
    CHECK(bad == 0);
    CHECK(searches > 0);
    // Everything added and not removed is findable.
    CHECK(idx->search(more[1499], 1)[0].label == 1799);
    CHECK(idx->search(vecs[10], 1)[0].label == 11);
}
