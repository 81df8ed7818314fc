/* The decoder's low-resolution convolution (see echoseg/models/upconv.py): interleaving the
 * four output phases of a 2x2 convolution at (h+1) x (w+1) into a full-resolution map.
 *
 * All tensors bf16, channels-last. phases: (n, h+1, w+1, 4c), phase k = 2a + b in channels
 * [k c, (k+1) c); full, out: (n, 2h, 2w, c).
 * Forward: out[n, 2i+a, 2j+b, :] = full[n, 2i+a, 2j+b, :] + phases[n, i+a, j+b, k c : (k+1) c]
 * (summed in float, rounded to bf16 as torch's add does). Backward: the gradient of phases,
 * grad[n, 2i+a, 2j+b, :] placed back at [n, i+a, j+b, k c : (k+1) c], zero where a phase's
 * window reads nothing (one row and one column of each). One pass each way, instead of a
 * strided copy plus an add (forward) or a copy plus zeroing (backward).
 */
#include <omp.h>

#include "simd.h"

void echoseg_interleave(int threads, const uint16_t *phases, const uint16_t *full, int64_t n,
                        int64_t h, int64_t w, int64_t c, uint16_t *out) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t row = 0; row < n * 2 * h; row++) {
        int64_t img = row / (2 * h), y = row % (2 * h), i = y / 2, a = y % 2;
        for (int64_t x = 0; x < 2 * w; x++) {
            int64_t j = x / 2, b = x % 2;
            const uint16_t *p = phases + ((img * (h + 1) + i + a) * (w + 1) + j + b) * 4 * c
                                + (2 * a + b) * c;
            const uint16_t *f = full + (row * 2 * w + x) * c;
            uint16_t *o = out + (row * 2 * w + x) * c;
            int64_t k = 0;
#ifdef LANES
            for (; k < vector_end(c); k += LANES)
                store16(o + k, _mm512_add_ps(load16(f + k), load16(p + k)));
#endif
            for (; k < c; k++) o[k] = f32_to_bf16(bf16_to_f32(f[k]) + bf16_to_f32(p[k]));
        }
    }
}

void echoseg_interleave_backward(int threads, const uint16_t *grad, int64_t n, int64_t h,
                                 int64_t w, int64_t c, uint16_t *grad_phases) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t row = 0; row < n * (h + 1); row++) {
        int64_t img = row / (h + 1), p = row % (h + 1);
        for (int64_t q = 0; q <= w; q++) {
            uint16_t *dst = grad_phases + (row * (w + 1) + q) * 4 * c;
            for (int64_t k = 0; k < 4; k++) {
                int64_t a = k / 2, b = k % 2, i = p - a, j = q - b;
                if (i >= 0 && i < h && j >= 0 && j < w)
                    memcpy(dst + k * c, grad + ((img * 2 * h + 2 * i + a) * 2 * w + 2 * j + b) * c,
                           (size_t)c * sizeof(uint16_t));
                else
                    memset(dst + k * c, 0, (size_t)c * sizeof(uint16_t));
            }
        }
    }
}
