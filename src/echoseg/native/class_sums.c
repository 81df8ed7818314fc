/* Per-class sums of a softmax against integer labels: everything echoseg's Dice and
 * cross-entropy losses need from the full-resolution logits, in one pass (see
 * echoseg/losses/class_sums.py).
 *
 * logits: bf16, `pixels` rows of `c` classes (an NHWC tensor); labels: int64, one per pixel.
 * Forward, with p = softmax over the classes of a pixel and y its label, for each class k:
 *   inter[k] = sum of p_k over pixels with y = k,   psum[k] = sum of p_k,
 *   count[k] = number of pixels with y = k,         ce = sum over pixels of -log p_y
 * (all in sums[4][c], double; ce in sums[3][0]). Returns how many labels lie outside [0, c):
 * those pixels count in psum only.
 * Backward: the gradient of the logits (bf16) from the gradients of inter, psum and ce,
 * recomputing the softmax: dz_j = p_j (g_j - sum_k p_k g_k) + w (p_j - [j = y]) with
 * g_k = grad_psum[k] + [k = y] grad_inter[k] and w = grad_ce.
 *
 * Four classes (the CAMUS labels) run four pixels per AVX-512 vector; other class counts, and
 * CPUs without AVX-512 BF16, run the scalar loop. Sums are kept in float over FLUSH_GROUPS
 * vectors, then in double, and combined in thread order.
 */
#include <stdlib.h>
#include <omp.h>

#include "simd.h"

#define FLUSH_GROUPS 256

/* Softmax of one pixel's c logits into p; returns log(sum_k e^(z_k - max)) and the shifted
   logits z_k - max in shifted. */
static float softmax_pixel(const uint16_t *z, int64_t c, float *p, float *shifted) {
    float m = bf16_to_f32(z[0]), s = 0.0f;
    for (int64_t k = 1; k < c; k++) m = max_f(m, bf16_to_f32(z[k]));
    for (int64_t k = 0; k < c; k++) {
        shifted[k] = bf16_to_f32(z[k]) - m;
        p[k] = exp_approx(shifted[k]);
        s += p[k];
    }
    for (int64_t k = 0; k < c; k++) p[k] /= s;
    return logf(s);
}

static inline int valid_label(int64_t y, int64_t c) { return y >= 0 && y < c; }

/* Scalar forward over pixels [begin, end): adds into sums (4 x c doubles); returns bad labels. */
static int64_t sums_scalar(const uint16_t *logits, const int64_t *labels, int64_t begin,
                           int64_t end, int64_t c, double *sums, float *p, float *shifted) {
    int64_t bad = 0;
    for (int64_t i = begin; i < end; i++) {
        float log_sum = softmax_pixel(logits + i * c, c, p, shifted);
        int64_t y = labels[i];
        for (int64_t k = 0; k < c; k++) sums[c + k] += p[k];
        if (!valid_label(y, c)) { bad++; continue; }
        sums[y] += p[y];
        sums[2 * c + y] += 1.0;
        sums[3 * c] += log_sum - shifted[y];
    }
    return bad;
}

#ifdef LANES
/* Four pixels of four classes per vector: lanes 4i..4i+3 hold pixel i. */
static inline __m512 group4_max(__m512 v) {
    v = _mm512_max_ps(v, _mm512_permute_ps(v, 0xB1)); /* lanes (1,0,3,2) */
    return _mm512_max_ps(v, _mm512_permute_ps(v, 0x4E)); /* lanes (2,3,0,1) */
}

static inline __m512 group4_sum(__m512 v) {
    v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
    return _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
}

/* log(s) for positive normal s: exponent and mantissa in [sqrt(1/2), sqrt(2)), then
   log m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172, five odd terms (~1e-9). */
static inline __m512 log16(__m512 s) {
    __m512 e = _mm512_getexp_ps(s);
    __m512 m = _mm512_getmant_ps(s, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    __mmask16 high = _mm512_cmp_ps_mask(m, splat(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, high, m, splat(0.5f));
    e = _mm512_mask_add_ps(e, high, e, splat(1.0f));
    __m512 t = _mm512_mul_ps(_mm512_sub_ps(m, splat(1.0f)), recip16(_mm512_add_ps(m, splat(1.0f))));
    __m512 t2 = _mm512_mul_ps(t, t);
    __m512 poly = _mm512_fmadd_ps(t2, splat(1.0f / 9.0f), splat(1.0f / 7.0f));
    poly = _mm512_fmadd_ps(poly, t2, splat(1.0f / 5.0f));
    poly = _mm512_fmadd_ps(poly, t2, splat(1.0f / 3.0f));
    poly = _mm512_fmadd_ps(poly, t2, splat(1.0f));
    return _mm512_fmadd_ps(e, splat(0.693147180559945f), _mm512_mul_ps(_mm512_add_ps(t, t), poly));
}

/* Mask of the lanes whose class is the label of their pixel, for labels y[0..3]; adds the
   number of labels outside [0, 4) to *bad. */
static inline __mmask16 label_lanes(const int64_t *y, int64_t *bad) {
    __m256i y4 = _mm256_loadu_si256((const __m256i *)y);
    *bad += __builtin_popcount(_mm256_cmpge_epu64_mask(y4, _mm256_set1_epi64x(4)));
    __m512i spread = _mm512_permutexvar_epi32(
        _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
        _mm512_castsi128_si512(_mm256_cvtepi64_epi32(y4)));
    __m512i classes = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
    return _mm512_cmpeq_epi32_mask(spread, classes);
}

/* softmax of four pixels: p, the shifted logits z - max and log(sum e^(z - max)) per lane */
static inline __m512 softmax4(const uint16_t *z, __m512 *shifted, __m512 *log_sum) {
    __m512 v = load16(z);
    *shifted = _mm512_sub_ps(v, group4_max(v));
    __m512 e = exp16(*shifted);
    __m512 s = group4_sum(e);
    *log_sum = log16(s);
    return _mm512_mul_ps(e, recip16(s));
}

/* Adds the lane sums (lane l: class l % 4) to sums (4 x 4 doubles; ce: all lanes into
   sums[12]) and zeroes them. */
static void flush4(__m512 *inter, __m512 *psum, __m512 *count, __m512 *ce, double *sums) {
    float lanes[4][LANES];
    _mm512_storeu_ps(lanes[0], *inter);
    _mm512_storeu_ps(lanes[1], *psum);
    _mm512_storeu_ps(lanes[2], *count);
    _mm512_storeu_ps(lanes[3], *ce);
    for (int l = 0; l < LANES; l++) {
        for (int q = 0; q < 3; q++) sums[q * 4 + l % 4] += lanes[q][l];
        sums[12] += lanes[3][l];
    }
    *inter = *psum = *count = *ce = splat(0.0f);
}

/* Vector forward over groups [g0, g1) of four pixels: adds into sums (4 x 4 doubles). */
static int64_t sums_vector(const uint16_t *logits, const int64_t *labels, int64_t g0,
                           int64_t g1, double *sums) {
    int64_t bad = 0;
    __m512 inter = splat(0.0f), psum = inter, count = inter, ce = inter;
    for (int64_t g = g0; g < g1; g++) {
        __m512 shifted, log_sum;
        __m512 p = softmax4(logits + g * 16, &shifted, &log_sum);
        __mmask16 mine = label_lanes(labels + g * 4, &bad);
        inter = _mm512_mask_add_ps(inter, mine, inter, p);
        psum = _mm512_add_ps(psum, p);
        count = _mm512_mask_add_ps(count, mine, count, splat(1.0f));
        ce = _mm512_mask_add_ps(ce, mine, ce, _mm512_sub_ps(log_sum, shifted));
        if ((g - g0) % FLUSH_GROUPS == FLUSH_GROUPS - 1 || g == g1 - 1)
            flush4(&inter, &psum, &count, &ce, sums);
    }
    return bad;
}
#endif

/* Scalar backward over pixels [begin, end). */
static void grad_scalar(const uint16_t *logits, const int64_t *labels, int64_t begin,
                        int64_t end, int64_t c, const float *grad_inter, const float *grad_psum,
                        float grad_ce, uint16_t *grad_logits, float *p, float *shifted) {
    for (int64_t i = begin; i < end; i++) {
        softmax_pixel(logits + i * c, c, p, shifted);
        int64_t y = labels[i];
        float dot = 0.0f;
        for (int64_t k = 0; k < c; k++) dot += p[k] * (grad_psum[k] + (k == y ? grad_inter[k] : 0.0f));
        for (int64_t k = 0; k < c; k++) {
            float gk = grad_psum[k] + (k == y ? grad_inter[k] : 0.0f);
            float w = k == y ? grad_ce : 0.0f;
            grad_logits[i * c + k] = f32_to_bf16(p[k] * (gk - dot + grad_ce) - w);
        }
    }
}

#ifdef LANES
/* Vector backward over groups [g0, g1) of four pixels. */
static void grad_vector(const uint16_t *logits, const int64_t *labels, int64_t g0, int64_t g1,
                        const float *grad_inter, const float *grad_psum, float grad_ce,
                        uint16_t *grad_logits) {
    __m512 a = _mm512_broadcast_f32x4(_mm_loadu_ps(grad_inter));
    __m512 b = _mm512_broadcast_f32x4(_mm_loadu_ps(grad_psum));
    __m512 w = splat(grad_ce);
    int64_t bad = 0; /* counted by the forward */
    for (int64_t g = g0; g < g1; g++) {
        __m512 shifted, log_sum;
        __m512 p = softmax4(logits + g * 16, &shifted, &log_sum);
        __mmask16 mine = label_lanes(labels + g * 4, &bad);
        __m512 gk = _mm512_mask_add_ps(b, mine, b, a);
        __m512 dot = group4_sum(_mm512_mul_ps(p, gk));
        __m512 dz = _mm512_mul_ps(p, _mm512_add_ps(_mm512_sub_ps(gk, dot), w));
        store16(grad_logits + g * 16, _mm512_mask_sub_ps(dz, mine, dz, w));
    }
}
#endif

/* ---- Soft targets: per-pixel class weights instead of labels (deep supervision's block
 * counts). weights: float, the logits' layout (pixels x c). With W = sum_k w_k per pixel:
 *   inter[k] = sum p_k w_k,  psum[k] = sum p_k,  count[k] = sum w_k,
 *   ce = sum over pixels and classes of w_k (-log p_k);
 * backward: dz_j = p_j (g_j - sum_k p_k g_k) + grad_ce (p_j W - w_j), g_k = grad_psum[k] +
 * w_k grad_inter[k]. */

static void weighted_sums_scalar(const uint16_t *logits, const float *weights, int64_t begin,
                                 int64_t end, int64_t c, double *sums, float *p, float *shifted) {
    for (int64_t i = begin; i < end; i++) {
        float log_sum = softmax_pixel(logits + i * c, c, p, shifted);
        const float *w = weights + i * c;
        for (int64_t k = 0; k < c; k++) {
            sums[k] += p[k] * w[k];
            sums[c + k] += p[k];
            sums[2 * c + k] += w[k];
            sums[3 * c] += w[k] * (log_sum - shifted[k]);
        }
    }
}

static void weighted_grad_scalar(const uint16_t *logits, const float *weights, int64_t begin,
                                 int64_t end, int64_t c, const float *grad_inter,
                                 const float *grad_psum, float grad_ce, uint16_t *grad_logits,
                                 float *p, float *shifted) {
    for (int64_t i = begin; i < end; i++) {
        softmax_pixel(logits + i * c, c, p, shifted);
        const float *w = weights + i * c;
        float dot = 0.0f, total = 0.0f;
        for (int64_t k = 0; k < c; k++) {
            dot += p[k] * (grad_psum[k] + w[k] * grad_inter[k]);
            total += w[k];
        }
        for (int64_t k = 0; k < c; k++) {
            float gk = grad_psum[k] + w[k] * grad_inter[k];
            grad_logits[i * c + k] = f32_to_bf16(p[k] * (gk - dot) + grad_ce * (p[k] * total - w[k]));
        }
    }
}

#ifdef LANES
static void weighted_sums_vector(const uint16_t *logits, const float *weights, int64_t g0,
                                 int64_t g1, double *sums) {
    __m512 inter = splat(0.0f), psum = inter, count = inter, ce = inter;
    for (int64_t g = g0; g < g1; g++) {
        __m512 shifted, log_sum;
        __m512 p = softmax4(logits + g * 16, &shifted, &log_sum);
        __m512 w = _mm512_loadu_ps(weights + g * 16);
        inter = _mm512_fmadd_ps(p, w, inter);
        psum = _mm512_add_ps(psum, p);
        count = _mm512_add_ps(count, w);
        ce = _mm512_fmadd_ps(w, _mm512_sub_ps(log_sum, shifted), ce);
        if ((g - g0) % FLUSH_GROUPS == FLUSH_GROUPS - 1 || g == g1 - 1)
            flush4(&inter, &psum, &count, &ce, sums);
    }
}

static void weighted_grad_vector(const uint16_t *logits, const float *weights, int64_t g0,
                                 int64_t g1, const float *grad_inter, const float *grad_psum,
                                 float grad_ce, uint16_t *grad_logits) {
    __m512 a = _mm512_broadcast_f32x4(_mm_loadu_ps(grad_inter));
    __m512 b = _mm512_broadcast_f32x4(_mm_loadu_ps(grad_psum));
    __m512 wce = splat(grad_ce);
    for (int64_t g = g0; g < g1; g++) {
        __m512 shifted, log_sum;
        __m512 p = softmax4(logits + g * 16, &shifted, &log_sum);
        __m512 w = _mm512_loadu_ps(weights + g * 16);
        __m512 gk = _mm512_fmadd_ps(w, a, b);
        __m512 dot = group4_sum(_mm512_mul_ps(p, gk));
        __m512 total = group4_sum(w);
        __m512 ce_part = _mm512_mul_ps(wce, _mm512_fmsub_ps(p, total, w));
        store16(grad_logits + g * 16, _mm512_fmadd_ps(p, _mm512_sub_ps(gk, dot), ce_part));
    }
}
#endif

/* ---- Drivers. Exactly one of labels and weights is given. The threads split the pixels; in
 * each share, whole groups of four pixels take the vector path (four classes), the rest the
 * scalar loop. */

static int64_t scalar_sums(const uint16_t *logits, const int64_t *labels, const float *weights,
                           int64_t begin, int64_t end, int64_t c, double *sums, float *p,
                           float *shifted) {
    if (labels) return sums_scalar(logits, labels, begin, end, c, sums, p, shifted);
    weighted_sums_scalar(logits, weights, begin, end, c, sums, p, shifted);
    return 0;
}

/* Forward over pixels [begin, end) into sums (4 x c doubles); returns the bad labels. */
static int64_t share_sums(const uint16_t *logits, const int64_t *labels, const float *weights,
                          int64_t begin, int64_t end, int64_t c, double *sums) {
    float p[64], shifted[64];
    int64_t bad = 0;
#ifdef LANES
    int64_t g0 = (begin + 3) / 4, g1 = end / 4; /* whole groups inside [begin, end) */
    if (c == 4 && g1 > g0) {
        if (labels) bad += sums_vector(logits, labels, g0, g1, sums);
        else weighted_sums_vector(logits, weights, g0, g1, sums);
        bad += scalar_sums(logits, labels, weights, begin, g0 * 4, c, sums, p, shifted);
        begin = g1 * 4;
    }
#endif
    return bad + scalar_sums(logits, labels, weights, begin, end, c, sums, p, shifted);
}

static int64_t forward(int threads, const uint16_t *logits, const int64_t *labels,
                       const float *weights, int64_t pixels, int64_t c, double *sums) {
    double *partial = calloc((size_t)threads * 4 * c, sizeof(double));
    int64_t bad = 0;
    #pragma omp parallel num_threads(threads) reduction(+ : bad)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        bad += share_sums(logits, labels, weights, pixels * t / nt, pixels * (t + 1) / nt, c,
                          partial + (size_t)t * 4 * c);
    }
    sum_partials(partial, threads, 4 * c, sums);
    free(partial);
    return bad;
}

static void scalar_grads(const uint16_t *logits, const int64_t *labels, const float *weights,
                         int64_t begin, int64_t end, int64_t c, const float *grad_inter,
                         const float *grad_psum, float grad_ce, uint16_t *grad_logits, float *p,
                         float *shifted) {
    if (labels)
        grad_scalar(logits, labels, begin, end, c, grad_inter, grad_psum, grad_ce, grad_logits,
                    p, shifted);
    else
        weighted_grad_scalar(logits, weights, begin, end, c, grad_inter, grad_psum, grad_ce,
                             grad_logits, p, shifted);
}

static void backward(int threads, const uint16_t *logits, const int64_t *labels,
                     const float *weights, int64_t pixels, int64_t c, const float *grad_inter,
                     const float *grad_psum, float grad_ce, uint16_t *grad_logits) {
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t begin = pixels * t / nt, end = pixels * (t + 1) / nt;
        float p[64], shifted[64];
#ifdef LANES
        int64_t g0 = (begin + 3) / 4, g1 = end / 4;
        if (c == 4 && g1 > g0) {
            if (labels)
                grad_vector(logits, labels, g0, g1, grad_inter, grad_psum, grad_ce, grad_logits);
            else
                weighted_grad_vector(logits, weights, g0, g1, grad_inter, grad_psum, grad_ce,
                                     grad_logits);
            scalar_grads(logits, labels, weights, begin, g0 * 4, c, grad_inter, grad_psum,
                         grad_ce, grad_logits, p, shifted);
            begin = g1 * 4;
        }
#endif
        scalar_grads(logits, labels, weights, begin, end, c, grad_inter, grad_psum, grad_ce,
                     grad_logits, p, shifted);
    }
}

/* Forward: see the top of the file. sums is 4 x c doubles; c <= 64. */
int64_t echoseg_class_sums(int threads, const uint16_t *logits, const int64_t *labels,
                           int64_t pixels, int64_t c, double *sums) {
    return forward(threads, logits, labels, NULL, pixels, c, sums);
}

/* Backward: see the top of the file. grad_inter, grad_psum: c floats each; c <= 64. */
void echoseg_class_sums_backward(int threads, const uint16_t *logits, const int64_t *labels,
                                 int64_t pixels, int64_t c, const float *grad_inter,
                                 const float *grad_psum, float grad_ce, uint16_t *grad_logits) {
    backward(threads, logits, labels, NULL, pixels, c, grad_inter, grad_psum, grad_ce,
             grad_logits);
}

/* Forward with soft targets: sums as echoseg_class_sums (4 x c doubles); c <= 64. */
void echoseg_weighted_class_sums(int threads, const uint16_t *logits, const float *weights,
                                 int64_t pixels, int64_t c, double *sums) {
    forward(threads, logits, NULL, weights, pixels, c, sums);
}

/* Backward with soft targets; c <= 64. */
void echoseg_weighted_class_sums_backward(int threads, const uint16_t *logits,
                                          const float *weights, int64_t pixels, int64_t c,
                                          const float *grad_inter, const float *grad_psum,
                                          float grad_ce, uint16_t *grad_logits) {
    backward(threads, logits, NULL, weights, pixels, c, grad_inter, grad_psum, grad_ce,
             grad_logits);
}

/* How many pixels of each class every f x f block of the labels (n x h x w, int64) holds:
   counts (n, h/f, w/f, c) as floats. Returns the number of labels outside [0, c). */
int64_t echoseg_block_counts(int threads, const int64_t *labels, int64_t n, int64_t h,
                             int64_t w, int64_t c, int64_t f, float *counts) {
    int64_t hb = h / f, wb = w / f, bad = 0;
    #pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : bad)
    for (int64_t row = 0; row < n * hb; row++) {
        int64_t img = row / hb, i = row % hb;
        for (int64_t j = 0; j < wb; j++) {
            float *out = counts + (row * wb + j) * c;
            for (int64_t k = 0; k < c; k++) out[k] = 0.0f;
            for (int64_t di = 0; di < f; di++) {
                const int64_t *src = labels + (img * h + i * f + di) * w + j * f;
                for (int64_t dj = 0; dj < f; dj++) {
                    if (valid_label(src[dj], c)) out[src[dj]] += 1.0f;
                    else bad++;
                }
            }
        }
    }
    return bad;
}
