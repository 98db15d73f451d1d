// Half-precision storage of index vectors (half.hpp).
#include <doctest/doctest.h>

#include <l04/cache/half.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace l04;

TEST_CASE("half: every half value survives half -> float -> half") {
    int checked = 0;
    for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
        const auto x = static_cast<Half>(h);
        const float f = half_to_float(x);
        if (std::isnan(f)) continue;  // NaN payloads are not kept exactly
        INFO("half " << h);
        REQUIRE(float_to_half(f) == x);
        ++checked;
    }
    CHECK(checked == 65536 - 2046);  // all but the NaNs
    CHECK(half_to_float(0x3C00) == 1.0f);
    CHECK(half_to_float(0xC000) == -2.0f);
    CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(half_to_float(0x7BFF) == 65504.0f);               // largest finite
}

TEST_CASE("half: floats round to the nearest half - ties to even - overflow to infinity") {
    CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);      // a tie: stays even
    CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // a tie: up to even
    CHECK(float_to_half(1.0f + std::ldexp(1.2f, -11)) == 0x3C01);      // above the tie
    CHECK(float_to_half(1e6f) == 0x7C00);
    CHECK(float_to_half(-1e6f) == 0xFC00);
    CHECK(float_to_half(std::ldexp(1.0f, -30)) == 0x0000);             // below the smallest subnormal
    CHECK(float_to_half(std::ldexp(1.0f, -25) * 1.5f) == 0x0001);      // rounds up to it
    CHECK_FALSE(half_finite(float_to_half(std::numeric_limits<float>::infinity())));
    CHECK_FALSE(half_finite(float_to_half(std::numeric_limits<float>::quiet_NaN())));
    CHECK(half_finite(float_to_half(0.123f)));
}

TEST_CASE("half: the run-time conversion matches the portable one on edge cases") {
    // Eight at a time, so the vector path of to_half sees every one.
    const float edge[] = {std::ldexp(1.0f, -25),                     // half of the smallest subnormal: ties to 0
                          1.5f * std::ldexp(1.0f, -25),              // rounds up to the smallest subnormal
                          std::ldexp(1.0f, -14) * (1 - std::ldexp(1.0f, -12)),  // rounds up to the smallest normal
                          65519.0f,                                  // rounds down to 65504
                          65520.0f,                                  // rounds up to infinity
                          1.0f + std::ldexp(1.0f, -11),              // tie, stays even
                          1.0f + 3 * std::ldexp(1.0f, -11),          // tie, goes up to even
                          -0.0f,
                          std::ldexp(1.0f, -30),                     // flushes to zero
                          -std::ldexp(1.0f, -20),                    // a negative subnormal
                          0.1f, -0.333333f, 1e-3f, 2.5e-5f, -7.0e-6f, 3.0e4f};
    constexpr std::size_t n = sizeof edge / sizeof edge[0];
    static_assert(n % 8 == 0);
    Half out[n];
    to_half(edge, out, n);
    for (std::size_t i = 0; i < n; ++i) {
        INFO("i=" << i << " kernel=" << half_kernel());
        CHECK(out[i] == float_to_half(edge[i]));
    }
    CHECK(out[0] == 0x0000);
    CHECK(out[1] == 0x0001);
    CHECK(out[2] == 0x0400);
    CHECK(out[3] == 0x7BFF);
    CHECK(out[4] == 0x7C00);
    CHECK(out[7] == 0x8000);
}

TEST_CASE("half: the run-time kernels agree with the portable conversion and a double reference") {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 0.08f);  // like components of a 384-d unit vector
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 31u, 32u, 33u, 384u, 385u, 768u}) {
        std::vector<float> a(n), b(n);
        for (auto& x : a) x = nd(rng);
        for (auto& x : b) x = nd(rng);
        std::vector<Half> ha(n), hb(n);
        to_half(a.data(), ha.data(), n);
        to_half(b.data(), hb.data(), n);
        double ref_hh = 0, ref_fh = 0;
        for (std::size_t i = 0; i < n; ++i) {
            INFO("n=" << n << " i=" << i << " kernel=" << half_kernel());
            REQUIRE(ha[i] == float_to_half(a[i]));  // same rounding as the portable code
            ref_hh += double(half_to_float(ha[i])) * half_to_float(hb[i]);
            ref_fh += double(a[i]) * half_to_float(hb[i]);
        }
        INFO("n=" << n << " kernel=" << half_kernel());
        CHECK(std::abs(dot_half(ha.data(), hb.data(), n) - ref_hh) <= 1e-5);
        CHECK(std::abs(dot_float_half(a.data(), hb.data(), n) - ref_fh) <= 1e-5);
    }
    const std::string k = half_kernel();
    CHECK((k == "f16c+avx2" || k == "portable"));
}
