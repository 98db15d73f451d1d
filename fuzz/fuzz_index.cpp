// VectorIndex::load on arbitrary files (seeded with real index files): every
// damaged file is refused; one that loads can be searched and extended.
#include <l04/cache/embedder.hpp>
#include <l04/cache/vector_index.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

// `fuzz_index -write_seeds=DIR`-style helper: with L04_FUZZ_WRITE_SEEDS set
// to a directory, writes small real index files there (empty, 1, 40 and 300
// elements, some deleted) and exits; scripts/fuzz.sh seeds the corpus so.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const char* dir = std::getenv("L04_FUZZ_WRITE_SEEDS");
    if (!dir) return 0;
    for (std::size_t n : {0u, 1u, 40u, 300u}) {
        l04::VectorIndex idx("fuzz", 8);
        std::uint32_t x = 12345;
        for (std::size_t i = 0; i < n; ++i) {
            l04::Vector v(8);
            for (auto& f : v) {
                x = x * 1664525u + 1013904223u;
                f = static_cast<float>(x >> 8) / 16777216.0f - 0.5f;
            }
            (void)idx.add(static_cast<std::int64_t>(i + 1), v, i % 3, i);
        }
        if (n > 10) idx.remove(3);
        (void)idx.save(std::string(dir) + "/seed_" + std::to_string(n) + ".hnsw");
    }
    std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path = "/tmp/l04-fuzz-index-" + std::to_string(::getpid()) + ".hnsw";
    if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
        std::fwrite(data, 1, size, f);
        std::fclose(f);
    }
    constexpr std::size_t dim = 8;
    auto idx = l04::VectorIndex::load(path, "fuzz", dim);
    if (!idx) return 0;
    l04::Vector v(dim, 0.0f);
    v[0] = 1.0f;
    (void)(*idx)->search(v, 5);
    (void)(*idx)->add(1 << 30, v, 1, 2);
    (void)(*idx)->search(v, 5);
    return 0;
}
