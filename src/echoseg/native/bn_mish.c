/* BatchNorm + Mish over bf16 activations in channels-last layout, for echoseg's CPU training.
 *
 * The data is m rows of c channels (an NHWC tensor seen as (N*H*W, C)). Training forward: one
 * pass for the batch mean and variance of each channel, one pass for
 * y = mish(gamma * (x - mean) / sqrt(var + eps) + beta). Backward: one pass that recomputes
 * the Mish derivative from x, writes the gradient of the normalised activations (rounded to
 * bf16, as the unfused bf16 path does) and sums it per channel, one pass for the input gradient.
 * Neither the normalised activations nor the Mish derivative are ever stored.
 *
 * Loops run over blocks of whole rows (BLOCK elements) against per-element copies of the
 * per-channel parameters, so the compiler vectorises one long, simple inner loop whatever c is.
 * Channel sums are accumulated in float per block of rows, then in double, and combined in
 * thread order: the result depends on the thread count but not on scheduling.
 * See bn_mish.py for the Python side and the accuracy checks.
 */
#include <stdlib.h>
#include <omp.h>

#include "simd.h"

#define LINEAR_ABOVE 20.0f /* mish(u) == u to float precision above this; keeps e^2u finite */
#define BLOCK 1024         /* elements per inner loop (whole rows) */
#define FLUSH_BLOCKS 64    /* blocks summed in float before adding to the double sums */

/* mish(u) = u tanh(softplus(u)); with e = e^u and w = e (e + 2), tanh(softplus(u)) = w / (w + 2) */
static inline float mish(float u) {
    float e = exp_approx(min_f(u, LINEAR_ABOVE));
    float w = e * (e + 2.0f);
    return u > LINEAR_ABOVE ? u : u * (w / (w + 2.0f));
}

/* mish'(u) = t + u sigmoid(u) (1 - t^2), t = tanh(softplus(u)) */
static inline float mish_grad(float u) {
    float e = exp_approx(min_f(u, LINEAR_ABOVE));
    float w = e * (e + 2.0f);
    float t = w / (w + 2.0f);
    float d = t + u * (e / (1.0f + e)) * (1.0f - t * t);
    return u > LINEAR_ABOVE ? 1.0f : d;
}

#ifdef LANES
static inline __m512 mish16(__m512 u) {
    __m512 e = exp16(_mm512_min_ps(u, splat(LINEAR_ABOVE)));
    __m512 w = _mm512_mul_ps(e, _mm512_add_ps(e, splat(2.0f)));
    __m512 y = _mm512_mul_ps(u, _mm512_mul_ps(w, recip16(_mm512_add_ps(w, splat(2.0f)))));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, splat(LINEAR_ABOVE), _CMP_GT_OQ), y, u);
}

static inline __m512 mish_grad16(__m512 u) {
    __m512 e = exp16(_mm512_min_ps(u, splat(LINEAR_ABOVE)));
    __m512 e1 = _mm512_add_ps(e, splat(1.0f));
    __m512 w = _mm512_mul_ps(e, _mm512_add_ps(e, splat(2.0f)));
    __m512 w2 = _mm512_add_ps(w, splat(2.0f));
    __m512 r = recip16(_mm512_mul_ps(w2, e1)); /* one reciprocal for t and sigmoid */
    __m512 t = _mm512_mul_ps(_mm512_mul_ps(w, e1), r);
    __m512 sig = _mm512_mul_ps(_mm512_mul_ps(e, w2), r);
    __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(u, sig), _mm512_fnmadd_ps(t, t, splat(1.0f)), t);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, splat(LINEAR_ABOVE), _CMP_GT_OQ), d,
                                splat(1.0f));
}

#endif


static int64_t block_rows(int64_t c) { return c >= BLOCK ? 1 : BLOCK / c; }

/* per_channel (c values) repeated for `rows` rows into out (rows * c values) */
static void tile(const float *per_channel, int64_t c, int64_t rows, float *out) {
    for (int64_t r = 0; r < rows; r++) memcpy(out + r * c, per_channel, (size_t)c * sizeof(float));
}

/* Rows [b*rows, ...) of block b hold this many elements (the last block may be short). */
static inline int64_t block_len(int64_t b, int64_t blocks, int64_t m, int64_t rows, int64_t c) {
    return b == blocks - 1 ? (m - b * rows) * c : rows * c;
}

/* Adds the float block sums fa, fb (n values, c channels repeating) into da, db, zeroes them. */
static void flush(float *fa, float *fb, int64_t n, int64_t c, double *da, double *db) {
    for (int64_t j = 0; j < n; j++) {
        da[j % c] += fa[j];
        db[j % c] += fb[j];
        fa[j] = fb[j] = 0.0f;
    }
}

/* Per-channel sums over all rows of (x - shift) and (x - shift)^2 into sum, sq. */
static void channel_sums(const uint16_t *x, int64_t m, int64_t c, int threads,
                         const float *shift, double *sum, double *sq) {
    int64_t rows = block_rows(c), n = rows * c, blocks = (m + rows - 1) / rows;
    double *partial = calloc((size_t)threads * 2 * c, sizeof(double));
    float *sh = malloc((size_t)n * sizeof(float));
    tile(shift, c, rows, sh);
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
        float *fs = calloc((size_t)2 * n, sizeof(float)), *fq = fs + n;
        double *ps = partial + (size_t)t * 2 * c;
        for (int64_t b = b0; b < b1; b++) {
            const uint16_t *xb = x + b * n;
            int64_t len = block_len(b, blocks, m, rows, c);
            int64_t j = 0;
#ifdef LANES
            for (; j < vector_end(len); j += LANES) {
                __m512 v = _mm512_sub_ps(load16(xb + j), _mm512_loadu_ps(sh + j));
                _mm512_storeu_ps(fs + j, _mm512_add_ps(_mm512_loadu_ps(fs + j), v));
                _mm512_storeu_ps(fq + j, _mm512_fmadd_ps(v, v, _mm512_loadu_ps(fq + j)));
            }
#endif
            for (; j < len; j++) {
                float v = bf16_to_f32(xb[j]) - sh[j];
                fs[j] += v;
                fq[j] += v * v;
            }
            if ((b - b0) % FLUSH_BLOCKS == FLUSH_BLOCKS - 1 || b == b1 - 1)
                flush(fs, fq, n, c, ps, ps + c);
        }
        free(fs);
    }
    for (int64_t j = 0; j < c; j++) sum[j] = sq[j] = 0.0;
    for (int t = 0; t < threads; t++)
        for (int64_t j = 0; j < c; j++) {
            sum[j] += partial[(size_t)t * 2 * c + j];
            sq[j] += partial[(size_t)t * 2 * c + c + j];
        }
    free(partial);
    free(sh);
}

/* y = mish(x * scale + shift) with per-channel scale and shift (c values each). */
void echoseg_affine_mish(int threads, const uint16_t *x, int64_t m, int64_t c,
                         const float *scale, const float *shift, uint16_t *y) {
    int64_t rows = block_rows(c), n = rows * c, blocks = (m + rows - 1) / rows;
    float *sc = malloc((size_t)2 * n * sizeof(float)), *sh = sc + n;
    tile(scale, c, rows, sc);
    tile(shift, c, rows, sh);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        const uint16_t *xb = x + b * n;
        uint16_t *yb = y + b * n;
        int64_t len = block_len(b, blocks, m, rows, c);
        int64_t j = 0;
#ifdef LANES
        for (; j < vector_end(len); j += LANES)
            store16(yb + j, mish16(_mm512_fmadd_ps(load16(xb + j), _mm512_loadu_ps(sc + j),
                                                   _mm512_loadu_ps(sh + j))));
#endif
        for (; j < len; j++)
            yb[j] = f32_to_bf16(mish(bf16_to_f32(xb[j]) * sc[j] + sh[j]));
    }
    free(sc);
}

/* Training forward: batch mean and biased variance of each channel into mean, var (c floats);
   y = mish(gamma (x - mean) / sqrt(var + eps) + beta). */
void echoseg_bn_mish_forward(int threads, const uint16_t *x, int64_t m, int64_t c,
                             const float *gamma, const float *beta, float eps,
                             float *mean, float *var, uint16_t *y) {
    float *first = malloc((size_t)3 * c * sizeof(float)), *scale = first + c, *shift = scale + c;
    double *sum = malloc((size_t)2 * c * sizeof(double)), *sq = sum + c;
    for (int64_t j = 0; j < c; j++) first[j] = bf16_to_f32(x[j]); /* sums of x - x[0]: no cancellation */
    channel_sums(x, m, c, threads, first, sum, sq);
    for (int64_t j = 0; j < c; j++) {
        double mu = sum[j] / (double)m, v = sq[j] / (double)m - mu * mu;
        v = v > 0.0 ? v : 0.0;
        mean[j] = (float)(first[j] + mu);
        var[j] = (float)v;
        scale[j] = gamma[j] / sqrtf((float)v + eps);
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    echoseg_affine_mish(threads, x, m, c, scale, shift, y);
    free(first);
    free(sum);
}

/* Training backward from grad (dL/dy, bf16), x and the forward's mean and var: grad_x (bf16),
   grad_gamma and grad_beta (c floats each). */
void echoseg_bn_mish_backward(int threads, const uint16_t *grad, const uint16_t *x,
                              int64_t m, int64_t c, const float *gamma, const float *beta, float eps,
                              const float *mean, const float *var,
                              uint16_t *grad_x, float *grad_gamma, float *grad_beta) {
    int64_t rows = block_rows(c), n = rows * c, blocks = (m + rows - 1) / rows;
    float *pc = malloc((size_t)5 * c * sizeof(float));
    float *invstd = pc, *scale = pc + c, *shift = pc + 2 * c, *a = pc + 3 * c, *b2 = pc + 4 * c;
    for (int64_t j = 0; j < c; j++) {
        invstd[j] = 1.0f / sqrtf(var[j] + eps);
        scale[j] = gamma[j] * invstd[j];
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    float *tiles = malloc((size_t)4 * n * sizeof(float));
    float *sc = tiles, *sh = tiles + n, *mu = tiles + 2 * n, *ta = tiles + 3 * n;
    tile(scale, c, rows, sc);
    tile(shift, c, rows, sh);
    tile(mean, c, rows, mu);
    double *partial = calloc((size_t)threads * 2 * c, sizeof(double));
    /* pass 1: gy = grad * mish'(u) (bf16, into grad_x), and per channel sum(gy), sum(gy (x - mean)) */
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
        float *fs = calloc((size_t)2 * n, sizeof(float)), *fx = fs + n;
        double *ps = partial + (size_t)t * 2 * c;
        for (int64_t b = b0; b < b1; b++) {
            const uint16_t *xb = x + b * n, *gb = grad + b * n;
            uint16_t *ob = grad_x + b * n;
            int64_t len = block_len(b, blocks, m, rows, c);
            int64_t j = 0;
#ifdef LANES
            for (; j < vector_end(len); j += LANES) {
                __m512 xv = load16(xb + j);
                __m512 u = _mm512_fmadd_ps(xv, _mm512_loadu_ps(sc + j), _mm512_loadu_ps(sh + j));
                __m512 gy = store16_rounded(ob + j, _mm512_mul_ps(load16(gb + j), mish_grad16(u)));
                _mm512_storeu_ps(fs + j, _mm512_add_ps(_mm512_loadu_ps(fs + j), gy));
                _mm512_storeu_ps(fx + j, _mm512_fmadd_ps(gy, _mm512_sub_ps(xv, _mm512_loadu_ps(mu + j)),
                                                         _mm512_loadu_ps(fx + j)));
            }
#endif
            for (; j < len; j++) {
                float xv = bf16_to_f32(xb[j]);
                uint16_t gy16 = f32_to_bf16(bf16_to_f32(gb[j]) * mish_grad(xv * sc[j] + sh[j]));
                float gy = bf16_to_f32(gy16);
                ob[j] = gy16;
                fs[j] += gy;
                fx[j] += gy * (xv - mu[j]);
            }
            if ((b - b0) % FLUSH_BLOCKS == FLUSH_BLOCKS - 1 || b == b1 - 1)
                flush(fs, fx, n, c, ps, ps + c);
        }
        free(fs);
    }
    for (int64_t j = 0; j < c; j++) {
        double sg = 0.0, sgx = 0.0;
        for (int t = 0; t < threads; t++) {
            sg += partial[(size_t)t * 2 * c + j];
            sgx += partial[(size_t)t * 2 * c + c + j];
        }
        grad_beta[j] = (float)sg;
        grad_gamma[j] = (float)(sgx * invstd[j]);
        a[j] = (float)(sg / (double)m);
        b2[j] = (float)(sgx * invstd[j] * invstd[j] / (double)m);
    }
    tile(a, c, rows, ta);
    float *tb = sh; /* the shift tile is not needed any more */
    tile(b2, c, rows, tb);
    /* pass 2: grad_x = gamma invstd (gy - mean(gy) - (x - mean) invstd^2 mean(gy (x - mean))) */
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        const uint16_t *xb = x + b * n;
        uint16_t *ob = grad_x + b * n;
        int64_t len = block_len(b, blocks, m, rows, c);
        int64_t j = 0;
#ifdef LANES
        for (; j < vector_end(len); j += LANES) {
            __m512 centred = _mm512_sub_ps(load16(xb + j), _mm512_loadu_ps(mu + j));
            __m512 g = _mm512_sub_ps(load16(ob + j), _mm512_loadu_ps(ta + j));
            g = _mm512_fnmadd_ps(centred, _mm512_loadu_ps(tb + j), g);
            store16(ob + j, _mm512_mul_ps(_mm512_loadu_ps(sc + j), g));
        }
#endif
        for (; j < len; j++)
            ob[j] = f32_to_bf16(sc[j] * (bf16_to_f32(ob[j]) - ta[j] - (bf16_to_f32(xb[j]) - mu[j]) * tb[j]));
    }
    free(pc);
    free(tiles);
    free(partial);
}
