// Reflected CRC-32s of a batch of buffers (init and final xor 0xFFFFFFFF), for two
// polynomials: CRC32C (Castagnoli, 0x82F63B78, as google-crc32c; zarr's crc32c codec)
// and CRC-32 (0xEDB88320, as zlib.crc32; the gzip trailer). Two launches each:
//   *_segments: one thread per fixed-size segment of a buffer (table-driven; the
//               polynomial is in `table`, cuzarr.kernels.reference.crc_table(poly));
//   *_combine:  one thread per buffer folds its segments' CRCs in order with
//               crc(A||B) = (x^(8|B|) * crc(A) mod P) xor crc(B)  (zlib's combine).

#define CRC32C_POLY 0x82F63B78u
#define CRC32_POLY 0xEDB88320u

struct __align__(16) crc_word16 {
    unsigned int w[4];
};

__device__ __forceinline__ unsigned int crc_word(const unsigned int* table, unsigned int crc,
                                                 unsigned int word)
{
    for (int b = 0; b < 4; ++b) {
        crc = table[(crc ^ (word >> (8 * b))) & 0xffu] ^ (crc >> 8);
    }
    return crc;
}

// Each thread walks its own segment. The table is staged in shared memory, and the
// aligned body of a segment is read 32 bytes (two 16-byte loads) per step, so every
// load instruction uses whole 32-byte sectors instead of one byte of each.
__device__ void crc_segments(const unsigned char* data, const unsigned long long* seg_offsets,
                             const unsigned long long* seg_lengths,
                             unsigned long long n_segments, const unsigned int* table,
                             unsigned int* seg_crc)
{
    __shared__ unsigned int s_table[256];
    for (int i = threadIdx.y * blockDim.x + threadIdx.x; i < 256; i += blockDim.x * blockDim.y) {
        s_table[i] = table[i];
    }
    __syncthreads();
    unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long s = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         s < n_segments; s += stride) {
        const unsigned char* p = data + seg_offsets[s];
        unsigned long long n = seg_lengths[s];
        unsigned int crc = 0xFFFFFFFFu;
        unsigned long long k = 0;
        while (k < n && ((unsigned long long)(p + k) & 15ull) != 0) {
            crc = s_table[(crc ^ p[k]) & 0xffu] ^ (crc >> 8);
            ++k;
        }
        for (; k + 32 <= n; k += 32) {
            crc_word16 a = *(const crc_word16*)(p + k);
            crc_word16 b = *(const crc_word16*)(p + k + 16);
            for (int w = 0; w < 4; ++w) {
                crc = crc_word(s_table, crc, a.w[w]);
            }
            for (int w = 0; w < 4; ++w) {
                crc = crc_word(s_table, crc, b.w[w]);
            }
        }
        for (; k < n; ++k) {
            crc = s_table[(crc ^ p[k]) & 0xffu] ^ (crc >> 8);
        }
        seg_crc[s] = crc ^ 0xFFFFFFFFu;
    }
}

// a(x) * b(x) mod P in the reflected representation (bit 31 is x^0)
template <unsigned int Poly>
__device__ unsigned int crc_multmodp(unsigned int a, unsigned int b)
{
    unsigned int m = 1u << 31;
    unsigned int p = 0;
    while (m != 0) {
        if (a & m) {
            p ^= b;
        }
        m >>= 1;
        b = (b & 1u) ? (b >> 1) ^ Poly : b >> 1;
    }
    return p;
}

// x^(8 n) mod P
template <unsigned int Poly>
__device__ unsigned int crc_x8n(unsigned long long n)
{
    unsigned int result = 1u << 31;      // x^0
    unsigned int power = 1u << (31 - 8); // x^8
    while (n != 0) {
        if (n & 1ull) {
            result = crc_multmodp<Poly>(power, result);
        }
        power = crc_multmodp<Poly>(power, power);
        n >>= 1;
    }
    return result;
}

template <unsigned int Poly>
__device__ void crc_combine(const unsigned int* seg_crc, const unsigned long long* seg_lengths,
                            const unsigned long long* first_segment,
                            const unsigned long long* n_segments, unsigned long long n_buffers,
                            unsigned int* out)
{
    unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long b = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         b < n_buffers; b += stride) {
        unsigned long long first = first_segment[b];
        unsigned long long count = n_segments[b];
        unsigned int crc = 0;
        unsigned long long op_length = 0;
        unsigned int op = 0;
        for (unsigned long long k = 0; k < count; ++k) {
            unsigned long long length = seg_lengths[first + k];
            if (k == 0) {
                crc = seg_crc[first];
                continue;
            }
            if (length != op_length) {
                op = crc_x8n<Poly>(length);
                op_length = length;
            }
            crc = crc_multmodp<Poly>(op, crc) ^ seg_crc[first + k];
        }
        out[b] = crc;
    }
}

extern "C" __global__ void crc32c_segments(const unsigned char* data,
                                           const unsigned long long* seg_offsets,
                                           const unsigned long long* seg_lengths,
                                           unsigned long long n_segments,
                                           const unsigned int* table, unsigned int* seg_crc)
{
    crc_segments(data, seg_offsets, seg_lengths, n_segments, table, seg_crc);
}

extern "C" __global__ void crc32c_combine(const unsigned int* seg_crc,
                                          const unsigned long long* seg_lengths,
                                          const unsigned long long* first_segment,
                                          const unsigned long long* n_segments,
                                          unsigned long long n_buffers, unsigned int* out)
{
    crc_combine<CRC32C_POLY>(seg_crc, seg_lengths, first_segment, n_segments, n_buffers, out);
}

extern "C" __global__ void crc32_segments(const unsigned char* data,
                                          const unsigned long long* seg_offsets,
                                          const unsigned long long* seg_lengths,
                                          unsigned long long n_segments,
                                          const unsigned int* table, unsigned int* seg_crc)
{
    crc_segments(data, seg_offsets, seg_lengths, n_segments, table, seg_crc);
}

extern "C" __global__ void crc32_combine(const unsigned int* seg_crc,
                                         const unsigned long long* seg_lengths,
                                         const unsigned long long* first_segment,
                                         const unsigned long long* n_segments,
                                         unsigned long long n_buffers, unsigned int* out)
{
    crc_combine<CRC32_POLY>(seg_crc, seg_lengths, first_segment, n_segments, n_buffers, out);
}
