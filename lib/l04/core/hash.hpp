#pragma once
// SHA-256 (FIPS 180-4), used for cache keys: stable across processes,
// machines and versions, unlike std::hash.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace l04 {

class Sha256 {
public:
    Sha256();
    void update(std::string_view data);
    // Length-prefixed update: "a","bc" and "ab","c" hash differently.
    void update_field(std::string_view data);
    std::array<std::uint8_t, 32> digest();
    std::string hex_digest();

private:
    void block(const std::uint8_t* p);
    std::array<std::uint32_t, 8> m_h;
    std::array<std::uint8_t, 64> m_buf{};
    std::size_t m_buf_len = 0;
    std::uint64_t m_total = 0;
};

std::string sha256_hex(std::string_view data);

// prefix + `hex_digits` (at most 64) lowercase hex digits from the kernel's
// random source (getrandom): ids that must not be guessable from another
// one (a response id is the key to a stored conversation). Aborts when the
// kernel has no randomness to give rather than hand out a guessable id.
std::string random_id(std::string_view prefix, std::size_t hex_digits);

}  // namespace l04
