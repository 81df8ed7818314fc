/* Shared by echoseg's C kernels: bf16 <-> float, e^x, their AVX-512 versions, and the sum of
   per-thread partial sums. */
#ifndef ECHOSEG_SIMD_H
#define ECHOSEG_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t as_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
/* comparisons instead of fminf/fmaxf: those keep NaN rules that stop vectorisation */
static inline float min_f(float a, float b) { return a < b ? a : b; }
static inline float max_f(float a, float b) { return a > b ? a : b; }

/* out[j] = the sum over threads t of partial[t * width + j], added in thread order (so the
   result does not depend on scheduling), for j < width. */
static inline void sum_partials(const double *partial, int threads, int64_t width, double *out) {
    for (int64_t j = 0; j < width; j++) out[j] = 0.0;
    for (int t = 0; t < threads; t++)
        for (int64_t j = 0; j < width; j++) out[j] += partial[(size_t)t * width + j];
}

static inline float bf16_to_f32(uint16_t h) { return as_float((uint32_t)h << 16); }

static inline uint16_t f32_to_bf16(float f) { /* round to nearest even, NaN stays NaN */
    uint32_t u = as_bits(f);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
}

/* e^x for x clamped to [-87, 88]: 2^k * e^r with |r| <= ln2/2, degree-6 polynomial (Cephes
   coefficients), ~2 ulp in float. */
static inline float exp_approx(float x) {
    x = min_f(max_f(x, -87.0f), 88.0f);
    float k = rintf(x * 1.44269504088896341f);
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + (r + 1.0f);
    return p * as_float((uint32_t)((int32_t)k + 127) << 23);
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* AVX-512 versions, 16 lanes: the compiler cannot derive these from the scalar code (bf16
   rounding in one instruction where the CPU has AVX512_BF16, reciprocal estimates, 2^k
   scaling). LANES is defined only here. */
#include <immintrin.h>
#define LANES 16

/* v rounded to bf16 (nearest even; NaN stays a quiet NaN), as 16 uint16 lanes */
static inline __m256i bf16_round16(__m512 v) {
#ifdef __AVX512BF16__
    return (__m256i)_mm512_cvtneps_pbh(v);
#else /* Skylake-X to Ice Lake: the same rounding with integer operations */
    __m512i u = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
    __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    rounded = _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), quiet);
    return _mm512_cvtepi32_epi16(rounded);
#endif
}

static inline __m512 load16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline void store16(uint16_t *p, __m512 v) {
    _mm256_storeu_si256((__m256i *)p, bf16_round16(v));
}

/* stores v rounded to bf16 at p and returns the rounded value */
static inline __m512 store16_rounded(uint16_t *p, __m512 v) {
    __m256i h = bf16_round16(v);
    _mm256_storeu_si256((__m256i *)p, h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __m512 splat(float f) { return _mm512_set1_ps(f); }

static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, splat(-87.0f)), splat(88.0f));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, splat(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, splat(0.693359375f), x);
    r = _mm512_fmadd_ps(k, splat(2.12194440e-4f), r);
    __m512 p = _mm512_fmadd_ps(splat(1.9875691500e-4f), r, splat(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, splat(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, splat(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, splat(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, splat(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, splat(1.0f)));
    return _mm512_scalef_ps(p, k);
}

static inline __m512 recip16(__m512 d) { /* 1/d: 14-bit estimate, one Newton step */
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, splat(2.0f)));
}

static inline int64_t vector_end(int64_t len) { return len - len % LANES; }
#else
static inline int64_t vector_end(int64_t len) { (void)len; return 0; }
#endif

/* Lanes of the vector path this library was built with; 0: scalar only. The scalar loops only
   serve the vector path's tails: on their own they are slower than PyTorch's operators, so
   Python does not use a library without vectors. */
int echoseg_vector_lanes(void) {
#ifdef LANES
    return LANES;
#else
    return 0;
#endif
}

#endif
