#pragma once
// IEEE 754 half precision (binary16) for the vectors the HNSW graph keeps in
// memory and in its index file: half the bytes of float (the index is 40%
// smaller; search time hardly changes, the graph walk is latency-bound), at a
// cosine error of at most about 5e-4 for unit vectors. SQLite keeps every
// vector in float; the cache re-checks candidates against those before it
// decides.
//
// Conversions round to nearest even. F16C + AVX2 + FMA kernels are chosen at
// run time when the CPU has them; the portable code gives the same halves.
// half.cpp also implements l04::dot (embedder.hpp), so every SIMD kernel
// shares one dispatch.
#include <cstddef>
#include <cstdint>

namespace l04 {

using Half = std::uint16_t;

Half float_to_half(float f);
float half_to_float(Half h);
// False for infinities and NaNs.
inline bool half_finite(Half h) { return (h & 0x7C00u) != 0x7C00u; }

void to_half(const float* in, Half* out, std::size_t n);
// Dot products with float accumulation.
float dot_half(const Half* a, const Half* b, std::size_t n);
float dot_float_half(const float* a, const Half* b, std::size_t n);
// "f16c+avx2" or "portable".
const char* half_kernel();

}  // namespace l04
