// Adler-32 (zlib.adler32; the zlib stream trailer) of a batch of buffers, in two launches
// like the CRCs in crc32.cu:
//   adler32_segments: one thread per fixed-size segment, its aligned body read 32 bytes
//                     per step (a = 1 + sum of bytes,
//                     b = sum of the a's, both mod 65521, reduced every ADLER_NMAX bytes
//                     so 32-bit sums cannot overflow, as zlib does);
//   adler32_combine:  one thread per buffer folds its segments' values in order with
//                     zlib's adler32_combine (needs only the later segment's length).
// An empty buffer's Adler-32 is 1.

#define ADLER_BASE 65521u
#define ADLER_NMAX 5552ull

struct __align__(16) adler_word16 {
    unsigned int w[4];
};

__device__ __forceinline__ void adler_word(unsigned int word, unsigned int& a, unsigned int& b)
{
    for (int k = 0; k < 4; ++k) {
        a += (word >> (8 * k)) & 0xffu;
        b += a;
    }
}

extern "C" __global__ void adler32_segments(const unsigned char* data,
                                            const unsigned long long* seg_offsets,
                                            const unsigned long long* seg_lengths,
                                            unsigned long long n_segments,
                                            unsigned int* seg_adler)
{
    unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long s = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         s < n_segments; s += stride) {
        const unsigned char* p = data + seg_offsets[s];
        unsigned long long n = seg_lengths[s];
        unsigned int a = 1;
        unsigned int b = 0;
        while (n != 0) {
            unsigned long long run = n < ADLER_NMAX ? n : ADLER_NMAX;
            n -= run;
            unsigned long long k = 0;
            while (k < run && ((unsigned long long)(p + k) & 15ull) != 0) {
                a += p[k];
                b += a;
                ++k;
            }
            for (; k + 32 <= run; k += 32) {  // two 16-byte loads: whole sectors per step
                adler_word16 lo = *(const adler_word16*)(p + k);
                adler_word16 hi = *(const adler_word16*)(p + k + 16);
                for (int w = 0; w < 4; ++w) {
                    adler_word(lo.w[w], a, b);
                }
                for (int w = 0; w < 4; ++w) {
                    adler_word(hi.w[w], a, b);
                }
            }
            for (; k < run; ++k) {
                a += p[k];
                b += a;
            }
            p += run;
            a %= ADLER_BASE;
            b %= ADLER_BASE;
        }
        seg_adler[s] = (b << 16) | a;
    }
}

// Adler-32 of A||B from adler(A), adler(B) and |B| (zlib's adler32_combine_)
__device__ unsigned int adler32_join(unsigned int first, unsigned int second,
                                     unsigned long long second_length)
{
    unsigned int rem = (unsigned int)(second_length % ADLER_BASE);
    unsigned int sum1 = first & 0xffffu;
    unsigned int sum2 = (unsigned int)(((unsigned long long)rem * sum1) % ADLER_BASE);
    sum1 += (second & 0xffffu) + ADLER_BASE - 1;
    sum2 += ((first >> 16) & 0xffffu) + ((second >> 16) & 0xffffu) + ADLER_BASE - rem;
    if (sum1 >= ADLER_BASE) {
        sum1 -= ADLER_BASE;
    }
    if (sum1 >= ADLER_BASE) {
        sum1 -= ADLER_BASE;
    }
    if (sum2 >= (ADLER_BASE << 1)) {
        sum2 -= (ADLER_BASE << 1);
    }
    if (sum2 >= ADLER_BASE) {
        sum2 -= ADLER_BASE;
    }
    return sum1 | (sum2 << 16);
}

extern "C" __global__ void adler32_combine(const unsigned int* seg_adler,
                                           const unsigned long long* seg_lengths,
                                           const unsigned long long* first_segment,
                                           const unsigned long long* n_segments,
                                           unsigned long long n_buffers, unsigned int* out)
{
    unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long b = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         b < n_buffers; b += stride) {
        unsigned long long first = first_segment[b];
        unsigned long long count = n_segments[b];
        unsigned int adler = 1u;
        for (unsigned long long k = 0; k < count; ++k) {
            unsigned int next = seg_adler[first + k];
            adler = k == 0 ? next : adler32_join(adler, next, seg_lengths[first + k]);
        }
        out[b] = adler;
    }
}
