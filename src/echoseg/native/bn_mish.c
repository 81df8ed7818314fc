/* BatchNorm + Mish over bf16 activations in channels-last layout, for echoseg's CPU training.
 *
 * The data is m rows of c channels (an NHWC tensor seen as (N*H*W, C)). Training forward: one
 * pass for the batch mean and variance of each channel, one pass for
 * y = mish(gamma * (x - mean) / sqrt(var + eps) + beta). Backward: one pass that recomputes
 * the Mish derivative from x, writes the gradient of the normalised activations (rounded to
 * bf16, as the unfused bf16 path does) and sums it per channel, one pass for the input gradient.
 * Neither the normalised activations nor the Mish derivative are ever stored. The _pool_
 * variants also max-pool y over 2x2 windows while writing it (uint8 window positions) and take
 * the pooled output's gradient in the first backward pass; they walk the data window by
 * window instead of block by block.
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

/* Per-channel sums over all rows of (x - shift) into sums[0..c) and of (x - shift)^2 into
   sums[c..2c). */
static void channel_sums(const uint16_t *x, int64_t m, int64_t c, int threads,
                         const float *shift, double *sums) {
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
    sum_partials(partial, threads, 2 * c, sums);
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

/* Batch mean and biased variance of each channel of x into mean, var, and the affine map of
   the normalisation: scale = gamma / sqrt(var + eps), shift = beta - mean * scale. */
static void batch_statistics(int threads, const uint16_t *x, int64_t m, int64_t c,
                             const float *gamma, const float *beta, float eps, float *mean,
                             float *var, float *scale, float *shift) {
    float *first = malloc((size_t)c * sizeof(float));
    double *sum = malloc((size_t)2 * c * sizeof(double)), *sq = sum + c;
    for (int64_t j = 0; j < c; j++) first[j] = bf16_to_f32(x[j]); /* sums of x - x[0]: no cancellation */
    channel_sums(x, m, c, threads, first, sum);
    for (int64_t j = 0; j < c; j++) {
        double mu = sum[j] / (double)m, v = sq[j] / (double)m - mu * mu;
        v = v > 0.0 ? v : 0.0;
        mean[j] = (float)(first[j] + mu);
        var[j] = (float)v;
        scale[j] = gamma[j] / sqrtf((float)v + eps);
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    free(first);
    free(sum);
}

/* Training forward: batch mean and biased variance of each channel into mean, var (c floats);
   y = mish(gamma (x - mean) / sqrt(var + eps) + beta). */
void echoseg_bn_mish_forward(int threads, const uint16_t *x, int64_t m, int64_t c,
                             const float *gamma, const float *beta, float eps,
                             float *mean, float *var, uint16_t *y) {
    float *affine = malloc((size_t)2 * c * sizeof(float));
    batch_statistics(threads, x, m, c, gamma, beta, eps, mean, var, affine, affine + c);
    echoseg_affine_mish(threads, x, m, c, affine, affine + c, y);
    free(affine);
}

/* The four pixels under pooled pixel q of an n x h x w image batch (h, w even), as element
   offsets of their first channel: (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1). */
static inline void window(int64_t q, int64_t h, int64_t w, int64_t c, int64_t offsets[4]) {
    int64_t hp = h / 2, wp = w / 2;
    int64_t img = q / (hp * wp), i = q / wp % hp, j = q % wp;
    int64_t top = ((img * h + 2 * i) * w + 2 * j) * c;
    offsets[0] = top;
    offsets[1] = top + c;
    offsets[2] = top + w * c;
    offsets[3] = top + w * c + c;
}

/* Training forward followed by 2x2 max pooling: as echoseg_bn_mish_forward, plus pooled
   (n, h/2, w/2, c) = the maximum of each 2x2 window of y and index (uint8, same shape) = its
   position 0..3 in the window (row-major; the first maximum, or a NaN, as torch does). */
void echoseg_bn_mish_pool_forward(int threads, const uint16_t *x, int64_t n, int64_t h,
                                  int64_t w, int64_t c, const float *gamma, const float *beta,
                                  float eps, float *mean, float *var, uint16_t *y,
                                  uint16_t *pooled, uint8_t *index) {
    float *affine = malloc((size_t)2 * c * sizeof(float)), *scale = affine, *shift = affine + c;
    batch_statistics(threads, x, n * h * w, c, gamma, beta, eps, mean, var, scale, shift);
    int64_t windows = n * (h / 2) * (w / 2);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t q = 0; q < windows; q++) {
        int64_t at[4];
        window(q, h, w, c, at);
        int64_t j = 0;
#ifdef LANES
        for (; j < vector_end(c); j += LANES) {
            __m512 sc = _mm512_loadu_ps(scale + j), sh = _mm512_loadu_ps(shift + j);
            __m512 best = splat(0.0f);
            __m128i where = _mm_setzero_si128();
            for (int k = 0; k < 4; k++) {
                __m512 u = _mm512_fmadd_ps(load16(x + at[k] + j), sc, sh);
                __m512 v = store16_rounded(y + at[k] + j, mish16(u));
                __mmask16 take = k == 0 ? 0xFFFF
                    : _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                best = _mm512_mask_mov_ps(best, take, v);
                where = _mm_mask_mov_epi8(where, take, _mm_set1_epi8((char)k));
            }
            store16(pooled + q * c + j, best);
            _mm_storeu_si128((__m128i *)(index + q * c + j), where);
        }
#endif
        for (; j < c; j++) {
            float best = 0.0f;
            uint8_t where = 0;
            for (int k = 0; k < 4; k++) {
                uint16_t v16 = f32_to_bf16(mish(bf16_to_f32(x[at[k] + j]) * scale[j] + shift[j]));
                float v = bf16_to_f32(v16);
                y[at[k] + j] = v16;
                if (k == 0 || v > best || isnan(v)) { best = v; where = (uint8_t)k; }
            }
            pooled[q * c + j] = f32_to_bf16(best);
            index[q * c + j] = where;
        }
    }
    free(affine);
}

/* Backward pass 1 without pooling: gy = grad * mish'(u) (bf16, into grad_x), and per channel
   sum(gy), sum(gy (x - mean)) into partial[thread][2][c]. */
static void gradient_sums(int threads, const uint16_t *grad, const uint16_t *x, int64_t m,
                          int64_t c, const float *scale, const float *shift, const float *mean,
                          uint16_t *grad_x, double *partial) {
    int64_t rows = block_rows(c), n = rows * c, blocks = (m + rows - 1) / rows;
    float *tiles = malloc((size_t)3 * n * sizeof(float));
    float *sc = tiles, *sh = tiles + n, *mu = tiles + 2 * n;
    tile(scale, c, rows, sc);
    tile(shift, c, rows, sh);
    tile(mean, c, rows, mu);
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
    free(tiles);
}

typedef struct {
    int64_t h, w;                /* the full-resolution image size (even) */
    const uint16_t *grad_pooled; /* dL/dpooled, (n, h/2, w/2, c), or NULL */
    const uint8_t *index;        /* the forward's window positions */
} pooling;

/* Backward pass 1 with pooling: as gradient_sums, where the gradient of y is grad (NULL: 0)
   plus grad_pooled routed to the window position the forward picked. */
static void pooled_gradient_sums(int threads, const uint16_t *grad, const pooling *pool,
                                 const uint16_t *x, int64_t m, int64_t c, const float *scale,
                                 const float *shift, const float *mean, uint16_t *grad_x,
                                 double *partial) {
    int64_t windows = m / 4;
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t q0 = windows * t / nt, q1 = windows * (t + 1) / nt;
        float *fs = calloc((size_t)2 * c, sizeof(float)), *fx = fs + c;
        double *ps = partial + (size_t)t * 2 * c;
        for (int64_t q = q0; q < q1; q++) {
            int64_t at[4];
            window(q, pool->h, pool->w, c, at);
            const uint8_t *where = pool->index + q * c;
            const uint16_t *gp = pool->grad_pooled ? pool->grad_pooled + q * c : NULL;
            int64_t j = 0;
#ifdef LANES
            for (; j < vector_end(c); j += LANES) {
                __m512 sc = _mm512_loadu_ps(scale + j), sh = _mm512_loadu_ps(shift + j);
                __m512 mu = _mm512_loadu_ps(mean + j);
                __m512 gpv = gp ? load16(gp + j) : splat(0.0f);
                __m128i wv = _mm_loadu_si128((const __m128i *)(where + j));
                __m512 s = _mm512_loadu_ps(fs + j), sx = _mm512_loadu_ps(fx + j);
                for (int k = 0; k < 4; k++) {
                    int64_t o = at[k] + j;
                    __m512 g = grad ? load16(grad + o) : splat(0.0f);
                    g = _mm512_mask_add_ps(g, _mm_cmpeq_epi8_mask(wv, _mm_set1_epi8((char)k)), g, gpv);
                    __m512 xv = load16(x + o);
                    __m512 d = mish_grad16(_mm512_fmadd_ps(xv, sc, sh));
                    __m512 gy = store16_rounded(grad_x + o, _mm512_mul_ps(g, d));
                    s = _mm512_add_ps(s, gy);
                    sx = _mm512_fmadd_ps(gy, _mm512_sub_ps(xv, mu), sx);
                }
                _mm512_storeu_ps(fs + j, s);
                _mm512_storeu_ps(fx + j, sx);
            }
#endif
            for (; j < c; j++) {
                for (int k = 0; k < 4; k++) {
                    int64_t o = at[k] + j;
                    float g = grad ? bf16_to_f32(grad[o]) : 0.0f;
                    if (gp && where[j] == k) g += bf16_to_f32(gp[j]);
                    float xv = bf16_to_f32(x[o]);
                    uint16_t gy16 = f32_to_bf16(g * mish_grad(xv * scale[j] + shift[j]));
                    float gy = bf16_to_f32(gy16);
                    grad_x[o] = gy16;
                    fs[j] += gy;
                    fx[j] += gy * (xv - mean[j]);
                }
            }
            if ((q - q0) % (4 * FLUSH_BLOCKS) == 4 * FLUSH_BLOCKS - 1 || q == q1 - 1)
                flush(fs, fx, c, c, ps, ps + c);
        }
        free(fs);
    }
}

/* Training backward, with or without pooling (pool NULL): grad_x (bf16), grad_gamma and
   grad_beta (c floats each) from the gradient(s) of the outputs, x and the forward's mean,
   var. */
static void backward(int threads, const uint16_t *grad, const pooling *pool, const uint16_t *x,
                     int64_t m, int64_t c, const float *gamma, const float *beta, float eps,
                     const float *mean, const float *var, uint16_t *grad_x, float *grad_gamma,
                     float *grad_beta) {
    int64_t rows = block_rows(c), n = rows * c, blocks = (m + rows - 1) / rows;
    float *pc = malloc((size_t)5 * c * sizeof(float));
    float *invstd = pc, *scale = pc + c, *shift = pc + 2 * c, *a = pc + 3 * c, *b2 = pc + 4 * c;
    for (int64_t j = 0; j < c; j++) {
        invstd[j] = 1.0f / sqrtf(var[j] + eps);
        scale[j] = gamma[j] * invstd[j];
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    double *partial = calloc((size_t)threads * 2 * c, sizeof(double));
    if (pool)
        pooled_gradient_sums(threads, grad, pool, x, m, c, scale, shift, mean, grad_x, partial);
    else
        gradient_sums(threads, grad, x, m, c, scale, shift, mean, grad_x, partial);
    double *totals = malloc((size_t)2 * c * sizeof(double));
    sum_partials(partial, threads, 2 * c, totals);
    for (int64_t j = 0; j < c; j++) {
        double sg = totals[j], sgx = totals[c + j];
        grad_beta[j] = (float)sg;
        grad_gamma[j] = (float)(sgx * invstd[j]);
        a[j] = (float)(sg / (double)m);
        b2[j] = (float)(sgx * invstd[j] * invstd[j] / (double)m);
    }
    float *tiles = malloc((size_t)4 * n * sizeof(float));
    float *sc = tiles, *mu = tiles + n, *ta = tiles + 2 * n, *tb = tiles + 3 * n;
    tile(scale, c, rows, sc);
    tile(mean, c, rows, mu);
    tile(a, c, rows, ta);
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
    free(totals);
}

/* Training backward from grad (dL/dy, bf16), x and the forward's mean and var: grad_x (bf16),
   grad_gamma and grad_beta (c floats each). */
void echoseg_bn_mish_backward(int threads, const uint16_t *grad, const uint16_t *x,
                              int64_t m, int64_t c, const float *gamma, const float *beta, float eps,
                              const float *mean, const float *var,
                              uint16_t *grad_x, float *grad_gamma, float *grad_beta) {
    backward(threads, grad, NULL, x, m, c, gamma, beta, eps, mean, var, grad_x, grad_gamma,
             grad_beta);
}

/* Backward of echoseg_bn_mish_pool_forward: grad (dL/dy) and grad_pooled may each be NULL
   (no gradient); index is the forward's. */
void echoseg_bn_mish_pool_backward(int threads, const uint16_t *grad,
                                   const uint16_t *grad_pooled, const uint8_t *index,
                                   const uint16_t *x, int64_t n, int64_t h, int64_t w, int64_t c,
                                   const float *gamma, const float *beta, float eps,
                                   const float *mean, const float *var, uint16_t *grad_x,
                                   float *grad_gamma, float *grad_beta) {
    pooling pool = {h, w, grad_pooled, index};
    backward(threads, grad, &pool, x, n * h * w, c, gamma, beta, eps, mean, var, grad_x,
             grad_gamma, grad_beta);
}
