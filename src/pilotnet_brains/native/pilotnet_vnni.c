/* PilotNet int8 inference on AVX-512 VNNI (and AMX-INT8 for the convolutions), batch 1, one thread.
 *
 * Activations are uint8 NHWC with zero point 0 (the input frame's own bytes, then ReLU outputs);
 * weights are int8, symmetric, one scale per output channel, packed by the Python side
 * (pilotnet_brains.native.NativeNet). A convolution is computed in place of an im2col: for an output
 * pixel, kernel row r reads the k*C contiguous input bytes of that row (NHWC, VALID padding), four
 * at a time, broadcast against 16 output channels (vpdpbusd: u8 x s8, summed in int32). The last
 * group of a row may read up to three bytes past it; their weights are zero. Requantization:
 * q = saturate_u8(max(0, rint(float(acc + bias) * mult[n]))), ReLU included. Dense layers do the
 * same with the flattened vector. The numpy reference in pilotnet_brains.native.reference computes
 * the identical integers.
 *
 * Built by pilotnet_brains.native.library with -mavx512f -mavx512bw -mavx512vl -mavx512vnni (and
 * -mamx-tile -mamx-int8 for the AMX convolutions below); only called after the Python side has
 * checked the CPU's flags.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define UNROLL _Pragma("GCC unroll 32")

typedef struct {
    int32_t h, w, c;          /* input */
    int32_t k, s, n;          /* kernel, stride, output channels */
    int32_t ho, wo;           /* output */
    int32_t groups;           /* 4-byte groups per kernel row: ceil(k*c/4) */
    int32_t nv;               /* 16-channel vectors: ceil(n/16) */
    const int8_t *w8;         /* [k][groups][nv*16][4] */
    const int32_t *bias;      /* [nv*16] */
    const float *mult;        /* [nv*16] */
    const int8_t *w_amx;      /* AMX tiles: [k][chunks][nv][16 quads][16 channels][4] */
    int32_t chunks;           /* 64-byte chunks per kernel row: ceil(k*c/64) */
} pb_conv;

typedef struct {
    int32_t k, n;             /* input length (multiple of 4, zero-weight padded), outputs */
    int32_t nv;               /* ceil(n/16) */
    const int8_t *w8;         /* [nv][k/4][16][4] */
    const int32_t *bias;      /* [nv*16] */
    const float *mult;        /* [nv*16] */
} pb_dense;

static inline __attribute__((always_inline)) __m128i requant(__m512i acc, const int32_t *bias,
                                                             const float *mult) {
    __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(acc, _mm512_loadu_si512(bias)));
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(f, _mm512_loadu_ps(mult)));
    return _mm512_cvtusepi32_epi8(_mm512_max_epi32(q, _mm512_setzero_si512()));
}

/* The first n (up to 16) lanes of a 16-channel vector. */
static inline __mmask16 first_lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* Requantize 16 accumulators and store the channels of ``left`` that exist (a layer's last vector
 * may hold fewer than 16). */
static inline __attribute__((always_inline)) void store_q(uint8_t *o, __m512i acc, const int32_t *bias,
                                                          const float *mult, int left) {
    _mm_mask_storeu_epi8(o, first_lanes(left), requant(acc, bias, mult));
}

/* P output pixels along x, NV vectors of 16 channels: P*NV accumulators in registers. */
static inline __attribute__((always_inline)) void conv_block(const pb_conv *L, const uint8_t *in,
                                                             uint8_t *out, int y, int x0, int np,
                                                             const int P, const int NV) {
    __m512i acc[16][4];                             /* constant sizes: kept in registers */
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm512_setzero_si512();
    const int px = L->s * L->c;                     /* input bytes between neighbouring pixels */
    for (int r = 0; r < L->k; r++) {
        const uint8_t *row = in + ((size_t)(L->s * y + r) * L->w + (size_t)L->s * x0) * L->c;
        const int8_t *wr = L->w8 + (size_t)r * L->groups * NV * 64;
        for (int g = 0; g < L->groups; g++) {
            __m512i wv[4];
            UNROLL for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_si512(wr + (g * NV + v) * 64);
            UNROLL for (int p = 0; p < P; p++) {
                int32_t a4;
                memcpy(&a4, row + p * px + 4 * g, 4);
                __m512i a = _mm512_set1_epi32(a4);
                UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm512_dpbusd_epi32(acc[p][v], a, wv[v]);
            }
        }
    }
    UNROLL for (int p = 0; p < P; p++) {
        if (p >= np) break;
        uint8_t *o = out + ((size_t)y * L->wo + x0 + p) * L->n;
        UNROLL for (int v = 0; v < NV; v++)
            store_q(o + 16 * v, acc[p][v], L->bias + 16 * v, L->mult + 16 * v, L->n - 16 * v);
    }
}

#define CONV_KERNEL(NAME, P, NV)                                                       \
    static void NAME(const pb_conv *L, const uint8_t *in, uint8_t *out) {              \
        for (int y = 0; y < L->ho; y++)                                                \
            for (int x0 = 0; x0 < L->wo; x0 += P) {                                    \
                int np = L->wo - x0 < P ? L->wo - x0 : P;                              \
                conv_block(L, in, out, y, x0, np, P, NV);                              \
            }                                                                          \
    }

CONV_KERNEL(conv_nv1, 16, 1)
CONV_KERNEL(conv_nv2, 14, 2)
CONV_KERNEL(conv_nv3, 8, 3)
CONV_KERNEL(conv_nv4, 6, 4)

/* Reads past the last pixel of a block (at most P pixels + 3 bytes): buffers carry PB_SLACK bytes. */
int pb_slack(void) { return 4096; }

typedef void (*conv_fn)(const pb_conv *, const uint8_t *, uint8_t *);
static const conv_fn VNNI_CONVS[] = {conv_nv1, conv_nv2, conv_nv3, conv_nv4};

/* Dense: V vectors of 16 outputs at a time, the input's 4-byte groups broadcast. */
static inline __attribute__((always_inline)) void dense_block(const pb_dense *L, const uint8_t *x,
                                                              int v0, __m512i *acc, const int V) {
    const int groups = L->k / 4;
    UNROLL for (int v = 0; v < V; v++) acc[v] = _mm512_setzero_si512();
    const int8_t *w = L->w8 + (size_t)v0 * groups * 64;
    for (int g = 0; g < groups; g++) {
        int32_t a4;
        memcpy(&a4, x + 4 * g, 4);
        __m512i a = _mm512_set1_epi32(a4);
        UNROLL for (int v = 0; v < V; v++)
            acc[v] = _mm512_dpbusd_epi32(acc[v], a, _mm512_loadu_si512(w + ((size_t)v * groups + g) * 64));
    }
}

/* out_u8 != NULL: requantized uint8 with ReLU; else out_f32 = float(acc + bias) * mult (no ReLU). */
int pb_dense_run(const pb_dense *L, const uint8_t *x, uint8_t *out_u8, float *out_f32) {
    __m512i acc[8];
    int v0 = 0;
    while (v0 < L->nv) {
        int V = L->nv - v0 >= 8 ? 8 : 1;
        if (V == 8) dense_block(L, x, v0, acc, 8);
        else dense_block(L, x, v0, acc, 1);
        for (int v = 0; v < V; v++) {
            const int ch = 16 * (v0 + v);
            if (out_u8) {
                store_q(out_u8 + ch, acc[v], L->bias + ch, L->mult + ch, L->n - ch);
            } else {
                __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[v], _mm512_loadu_si512(L->bias + ch)));
                _mm512_mask_storeu_ps(out_f32 + ch, first_lanes(L->n - ch), _mm512_mul_ps(f, _mm512_loadu_ps(L->mult + ch)));
            }
        }
        v0 += V;
    }
    return 0;
}

/* float32 [0, 1] -> uint8 rint(x * 255), clamped (n values). */
void pb_quantize_input(const float *x, uint8_t *q, int n) {
    const __m512 k = _mm512_set1_ps(255.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), k));
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, _mm512_setzero_si512())));
    }
    if (i < n) {
        const __mmask16 m = first_lanes(n - i);
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), k));
        _mm_mask_storeu_epi8(q + i, m, _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, _mm512_setzero_si512())));
    }
}

/* ---- AMX-INT8 convolutions (Sapphire Rapids and later) -------------------------------------------
 * 16 output pixels along x are the 16 rows of the A tile, loaded straight from the NHWC input with a
 * row stride of s*c bytes: row p holds 64 bytes of input row r from pixel p's window on (the window
 * is k*c bytes; the bytes past it meet zero weights). B holds 16 quads x 16 channels x 4 bytes of
 * the weights; one C tile of int32 per 16 output channels. Then the same requantization. */

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* Ask Linux for the AMX tile state (once per process); 0 when granted. */
int pb_amx_enable(void) { return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 0 : -1; }

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} pb_tilecfg;

static void amx_configure(void) {
    pb_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
}

#define AMX_STEP(NV, T, BT)                                                                       \
    if (NV > T) { _tile_loadd(BT, b + T * 1024, 64); _tile_dpbusd(T, 4, BT); }

#define AMX_KERNEL(NAME, NV)                                                                    \
    static void NAME(const pb_conv *L, const uint8_t *in, uint8_t *out) {                       \
        int32_t cbuf[16 * 16 * NV] __attribute__((aligned(64)));                                \
        const int px = L->s * L->c;                                                             \
        for (int y = 0; y < L->ho; y++)                                                         \
            for (int x0 = 0; x0 < L->wo; x0 += 16) {                                            \
                const int np = L->wo - x0 < 16 ? L->wo - x0 : 16;                               \
                _tile_zero(0);                                                                  \
                if (NV > 1) _tile_zero(1);                                                      \
                if (NV > 2) _tile_zero(2);                                                      \
                if (NV > 3) _tile_zero(3);                                                      \
                for (int r = 0; r < L->k; r++) {                                                \
                    const uint8_t *row = in + ((size_t)(L->s * y + r) * L->w + (size_t)L->s * x0) * L->c; \
                    for (int ch = 0; ch < L->chunks; ch++) {                                    \
                        const int8_t *b = L->w_amx + (size_t)((r * L->chunks + ch) * NV) * 1024; \
                        _tile_loadd(4, row + 64 * ch, px);                                      \
                        AMX_STEP(NV, 0, 5) AMX_STEP(NV, 1, 6) AMX_STEP(NV, 2, 7) AMX_STEP(NV, 3, 5)           \
                    }                                                                           \
                }                                                                               \
                _tile_stored(0, cbuf, NV * 64);                                                 \
                if (NV > 1) _tile_stored(1, cbuf + 16, NV * 64);                                \
                if (NV > 2) _tile_stored(2, cbuf + 32, NV * 64);                                \
                if (NV > 3) _tile_stored(3, cbuf + 48, NV * 64);                                \
                for (int p = 0; p < np; p++) {                                                  \
                    uint8_t *o = out + ((size_t)y * L->wo + x0 + p) * L->n;                     \
                    UNROLL for (int v = 0; v < NV; v++)                                         \
                        store_q(o + 16 * v, _mm512_load_si512(cbuf + (p * NV + v) * 16),       \
                                L->bias + 16 * v, L->mult + 16 * v, L->n - 16 * v);             \
                }                                                                               \
            }                                                                                   \
    }

AMX_KERNEL(amx_nv1, 1)
AMX_KERNEL(amx_nv2, 2)
AMX_KERNEL(amx_nv3, 3)
AMX_KERNEL(amx_nv4, 4)

static const conv_fn AMX_CONVS[] = {amx_nv1, amx_nv2, amx_nv3, amx_nv4};

/* One convolution, on AMX tiles or VNNI, by its number of 16-channel vectors; -1: more than 64 channels. */
static int conv_run(const pb_conv *L, const uint8_t *in, uint8_t *out, int amx) {
    if (L->nv < 1 || L->nv > 4) return -1;
    (amx ? AMX_CONVS : VNNI_CONVS)[L->nv - 1](L, in, out);
    return 0;
}


static inline long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The whole network: nconv convolutions, then ndense dense layers (the last one float out). With
 * amx set (pb_amx_enable() granted, every layer's w_amx packed), the convolutions run on AMX tiles.
 * x == NULL: bufs[0] already holds the frame's bytes. ns != NULL: the time of each step in ns (input quantization, each layer: 1 + nconv + ndense). */
int pb_forward(const float *x, int n_in, const pb_conv *convs, int nconv, const pb_dense *dense,
               int ndense, uint8_t *const *bufs, float *out, int amx, long long *ns) {
    long long t = ns ? now_ns() : 0;
#define LAP(i) if (ns) { const long long t1 = now_ns(); ns[i] = t1 - t; t = t1; }
    if (x) pb_quantize_input(x, bufs[0], n_in);      /* NULL: the caller wrote the bytes there */
    LAP(0)
    if (amx) amx_configure();      /* per call: the calling thread may change between calls */
    for (int i = 0; i < nconv; i++) {
        if (conv_run(&convs[i], bufs[i], bufs[i + 1], amx)) {
            if (amx) _tile_release();
            return -1;
        }
        LAP(1 + i)
    }
    if (amx) _tile_release();
    for (int j = 0; j < ndense; j++) {
        const uint8_t *xin = bufs[nconv + j];
        if (j == ndense - 1) pb_dense_run(&dense[j], xin, NULL, out);
        else pb_dense_run(&dense[j], xin, bufs[nconv + j + 1], NULL);
        LAP(1 + nconv + j)
    }
#undef LAP
    return 0;
}
