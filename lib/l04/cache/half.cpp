#include <l04/cache/embedder.hpp>
#include <l04/cache/half.hpp>

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define L04_HALF_X86 1
#endif

namespace l04 {

Half float_to_half(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    const auto sign = static_cast<std::uint32_t>((x >> 16) & 0x8000u);
    const std::uint32_t mant = x & 0x7FFFFFu;
    const auto exp = static_cast<std::int32_t>((x >> 23) & 0xFFu);
    if (exp == 0xFF) return static_cast<Half>(sign | 0x7C00u | (mant ? 0x200u : 0u));  // inf, NaN
    const std::int32_t e = exp - 127 + 15;
    if (e >= 0x1F) return static_cast<Half>(sign | 0x7C00u);  // too large: inf
    if (e <= 0) {                                             // a half subnormal, or zero
        if (e < -10) return static_cast<Half>(sign);
        const std::uint32_t full = mant | 0x800000u;
        const auto shift = static_cast<std::uint32_t>(14 - e);  // 14..24
        std::uint32_t m = full >> shift;
        const std::uint32_t rem = full & ((1u << shift) - 1u);
        const std::uint32_t mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (m & 1u))) ++m;  // may carry into the smallest normal: still right
        return static_cast<Half>(sign | m);
    }
    std::uint32_t h = sign | (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
    const std::uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right (up to inf)
    return static_cast<Half>(h);
}

float half_to_float(Half h) {
    const std::uint32_t sign = (static_cast<std::uint32_t>(h) & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1Fu;
    std::uint32_t mant = h & 0x3FFu;
    std::uint32_t x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else {  // subnormal: normalise
            std::uint32_t e = 0;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                ++e;
            }
            mant &= 0x3FFu;
            x = sign | ((113u - e) << 23) | (mant << 13);
        }
    } else if (exp == 0x1F) {
        x = sign | 0x7F800000u | (mant << 13);
    } else {
        x = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

namespace {

float dot_portable(const float* a, const float* b, std::size_t n) {
    // Four accumulators let the compiler vectorise (SSE2) without -ffast-math.
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

void to_half_portable(const float* in, Half* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

float dot_half_portable(const Half* a, const Half* b, std::size_t n) {
    float s0 = 0, s1 = 0;
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        s0 += half_to_float(a[i]) * half_to_float(b[i]);
        s1 += half_to_float(a[i + 1]) * half_to_float(b[i + 1]);
    }
    for (; i < n; ++i) s0 += half_to_float(a[i]) * half_to_float(b[i]);
    return s0 + s1;
}

float dot_float_half_portable(const float* a, const Half* b, std::size_t n) {
    float s0 = 0, s1 = 0;
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        s0 += a[i] * half_to_float(b[i]);
        s1 += a[i + 1] * half_to_float(b[i + 1]);
    }
    for (; i < n; ++i) s0 += a[i] * half_to_float(b[i]);
    return s0 + s1;
}

#ifdef L04_HALF_X86
__attribute__((target("avx2,fma,f16c"))) float hsum(__m256 s) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 0x55));
    return _mm_cvtss_f32(h);
}

// Eight lanes as floats, from halves or floats; one lane, for the tails.
__attribute__((target("avx2,fma,f16c"))) __m256 load8(const Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__attribute__((target("avx2,fma,f16c"))) __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
float lane(Half h) { return half_to_float(h); }
float lane(float f) { return f; }

__attribute__((target("avx2,fma,f16c"))) void to_half_f16c(const float* in, Half* out, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; ++i) out[i] = float_to_half(in[i]);
}

// Four independent 8-wide FMA accumulators hide the FMA latency.
template <class A, class B>
__attribute__((target("avx2,fma,f16c"))) float dot_f16c(const A* a, const B* b, std::size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load8(a + i), load8(b + i), s0);
        s1 = _mm256_fmadd_ps(load8(a + i + 8), load8(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(load8(a + i + 16), load8(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(load8(a + i + 24), load8(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load8(a + i), load8(b + i), s0);
    float out = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; ++i) out += lane(a[i]) * lane(b[i]);
    return out;
}

float dot_float_f16c(const float* a, const float* b, std::size_t n) { return dot_f16c(a, b, n); }
float dot_half_f16c(const Half* a, const Half* b, std::size_t n) { return dot_f16c(a, b, n); }
float dot_float_half_f16c(const float* a, const Half* b, std::size_t n) { return dot_f16c(a, b, n); }
#endif

struct Kernels {
    float (*dot)(const float*, const float*, std::size_t);
    void (*to_half)(const float*, Half*, std::size_t);
    float (*dot_half)(const Half*, const Half*, std::size_t);
    float (*dot_float_half)(const float*, const Half*, std::size_t);
    const char* name;
};

const Kernels& kernels() {
    static const Kernels k = [] {
#ifdef L04_HALF_X86
        __builtin_cpu_init();
        // F16C from CPUID leaf 1 (ECX bit 29): older clang does not know the
        // "f16c" feature name. AVX2/FMA via the builtin, which also checks
        // that the OS saves the AVX registers.
        unsigned a = 0, b = 0, c = 0, d = 0;
        const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        if (f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            return Kernels{dot_float_f16c, to_half_f16c, dot_half_f16c, dot_float_half_f16c, "f16c+avx2"};
#endif
        return Kernels{dot_portable, to_half_portable, dot_half_portable, dot_float_half_portable, "portable"};
    }();
    return k;
}

}  // namespace

// Declared in embedder.hpp: the float kernel shares this file's dispatch
// (every CPU with AVX2 also has F16C).
float dot(const float* a, const float* b, std::size_t n) { return kernels().dot(a, b, n); }
const char* dot_kernel() { return kernels().dot == dot_portable ? "portable" : "avx2+fma"; }

void to_half(const float* in, Half* out, std::size_t n) { kernels().to_half(in, out, n); }
float dot_half(const Half* a, const Half* b, std::size_t n) { return kernels().dot_half(a, b, n); }
float dot_float_half(const float* a, const Half* b, std::size_t n) { return kernels().dot_float_half(a, b, n); }
const char* half_kernel() { return kernels().name; }

}  // namespace l04
