// Blosc's bit shuffle and unshuffle over a batch of blocks (bitshuffle's trans_bit_elem,
// as c-blosc calls it): in a block of n items of `typesize` bytes, bit k of byte j of
// item e lives at bit (e % 8) of byte (e / 8) of bit-row (j * 8 + k), each bit-row being
// n / 8 bytes. Which items take part depends on the frame's format version: version 2
// (c-blosc 1.x) shuffles a block only when n is a multiple of 8 and stores it as is
// otherwise; later versions shuffle the first n - n % 8 items and copy the rest.
// One thread per output byte; grid y walks blocks, grid x the bytes of a block.

__device__ unsigned long long bitshuffle_items(unsigned long long n, int version)
{
    if (version <= 2) {
        return (n % 8 == 0) ? n : 0;
    }
    return n - n % 8;
}

template <bool Unshuffle>
__device__ void bit_shuffle_blocks(const unsigned char* src, unsigned char* dst,
                                   const unsigned long long* offsets,
                                   const unsigned long long* lengths,
                                   unsigned long long n_blocks, int typesize, int version)
{
    unsigned long long xstride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        const unsigned char* in = src + offsets[b];
        unsigned char* out = dst + offsets[b];
        unsigned long long length = lengths[b];
        unsigned long long n = bitshuffle_items(length / typesize, version);
        unsigned long long row_bytes = n / 8;
        unsigned long long body = n * typesize;
        for (unsigned long long p = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
             p < length; p += xstride) {
            if (p >= body) {
                out[p] = in[p];
                continue;
            }
            unsigned int value = 0;
            if (Unshuffle) {
                // output byte p is byte j of item e: gather its 8 bits from 8 bit-rows
                unsigned long long e = p / typesize;
                unsigned long long j = p % typesize;
                for (unsigned int k = 0; k < 8; ++k) {
                    value |= ((in[(j * 8 + k) * row_bytes + e / 8] >> (e % 8)) & 1u) << k;
                }
            } else {
                // output byte p of bit-row j * 8 + k holds bit k of byte j of 8 items
                unsigned long long row = p / row_bytes;
                unsigned long long e0 = (p % row_bytes) * 8;
                unsigned long long j = row / 8;
                unsigned int k = (unsigned int)(row % 8);
                for (unsigned int m = 0; m < 8; ++m) {
                    value |= ((in[(e0 + m) * typesize + j] >> k) & 1u) << m;
                }
            }
            out[p] = (unsigned char)value;
        }
    }
}

extern "C" __global__ void bit_shuffle(const unsigned char* src, unsigned char* dst,
                                       const unsigned long long* offsets,
                                       const unsigned long long* lengths,
                                       unsigned long long n_blocks, int typesize, int version)
{
    bit_shuffle_blocks<false>(src, dst, offsets, lengths, n_blocks, typesize, version);
}

extern "C" __global__ void bit_unshuffle(const unsigned char* src, unsigned char* dst,
                                         const unsigned long long* offsets,
                                         const unsigned long long* lengths,
                                         unsigned long long n_blocks, int typesize, int version)
{
    bit_shuffle_blocks<true>(src, dst, offsets, lengths, n_blocks, typesize, version);
}

// Coalesced bit unshuffle: a thread block moves BITSHUFFLE_TILE items. It reads the
// tile's 32-byte slice of each of the 8 * typesize bit-rows (contiguous) into shared
// memory, then writes the tile's items as one contiguous run, each output byte gathering
// its 8 bits from 8 rows of the tile. Block: BITSHUFFLE_TILE threads; typesize <= 16.
#define BITSHUFFLE_TILE 256
#define BITSHUFFLE_ROWS (8 * 16)

extern "C" __global__ void bit_unshuffle_tiled(const unsigned char* src, unsigned char* dst,
                                               const unsigned long long* offsets,
                                               const unsigned long long* lengths,
                                               unsigned long long n_blocks, int typesize,
                                               int version)
{
    __shared__ unsigned char tile[BITSHUFFLE_ROWS][BITSHUFFLE_TILE / 8 + 1];
    const int row_slice = BITSHUFFLE_TILE / 8;
    for (unsigned long long b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        const unsigned char* in = src + offsets[b];
        unsigned char* out = dst + offsets[b];
        unsigned long long length = lengths[b];
        unsigned long long n = bitshuffle_items(length / typesize, version);
        unsigned long long row_bytes = n / 8;
        unsigned long long body = n * typesize;
        int rows = 8 * typesize;
        unsigned long long n_tiles = (n + BITSHUFFLE_TILE - 1) / BITSHUFFLE_TILE;
        for (unsigned long long t = blockIdx.x; t < n_tiles; t += gridDim.x) {
            unsigned long long item0 = t * BITSHUFFLE_TILE;
            for (int k = threadIdx.x; k < rows * row_slice; k += blockDim.x) {
                int r = k / row_slice;
                int c = k % row_slice;
                unsigned long long byte = item0 / 8 + c;
                if (byte < row_bytes) {
                    tile[r][c] = in[r * row_bytes + byte];
                }
            }
            __syncthreads();
            unsigned long long items = n - item0 < BITSHUFFLE_TILE ? n - item0 : BITSHUFFLE_TILE;
            for (unsigned long long k = threadIdx.x; k < items * typesize; k += blockDim.x) {
                unsigned long long e = k / typesize;
                unsigned long long j = k % typesize;
                unsigned int value = 0;
                for (unsigned int bit = 0; bit < 8; ++bit) {
                    value |= ((tile[j * 8 + bit][e / 8] >> (e % 8)) & 1u) << bit;
                }
                out[item0 * typesize + k] = (unsigned char)value;
            }
            __syncthreads();
        }
        if (blockIdx.x == 0) {
            for (unsigned long long p = body + threadIdx.x; p < length; p += blockDim.x) {
                out[p] = in[p];
            }
        }
    }
}

// Coalesced bit shuffle (blosc encode), the mirror of bit_unshuffle_tiled: a thread block
// reads a tile of BITSHUFFLE_TILE items (one contiguous run) into shared memory, then
// writes the tile's 32-byte slice of each of the 8 * typesize bit-rows, each output byte
// gathering bit k of byte j from 8 items of the tile. Block: BITSHUFFLE_TILE threads;
// typesize <= 16.
extern "C" __global__ void bit_shuffle_tiled(const unsigned char* src, unsigned char* dst,
                                             const unsigned long long* offsets,
                                             const unsigned long long* lengths,
                                             unsigned long long n_blocks, int typesize,
                                             int version)
{
    __shared__ unsigned char tile[BITSHUFFLE_TILE][16 + 1];
    const int row_slice = BITSHUFFLE_TILE / 8;
    for (unsigned long long b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        const unsigned char* in = src + offsets[b];
        unsigned char* out = dst + offsets[b];
        unsigned long long length = lengths[b];
        unsigned long long n = bitshuffle_items(length / typesize, version);
        unsigned long long row_bytes = n / 8;
        unsigned long long body = n * typesize;
        int rows = 8 * typesize;
        unsigned long long n_tiles = (n + BITSHUFFLE_TILE - 1) / BITSHUFFLE_TILE;
        for (unsigned long long t = blockIdx.x; t < n_tiles; t += gridDim.x) {
            unsigned long long item0 = t * BITSHUFFLE_TILE;
            unsigned long long items = n - item0 < BITSHUFFLE_TILE ? n - item0 : BITSHUFFLE_TILE;
            for (unsigned long long k = threadIdx.x; k < items * typesize; k += blockDim.x) {
                tile[k / typesize][k % typesize] = in[item0 * typesize + k];
            }
            __syncthreads();
            // items is a multiple of 8: each row gets items / 8 whole bytes from this tile
            int slice = (int)(items / 8);
            for (int k = threadIdx.x; k < rows * row_slice; k += blockDim.x) {
                int r = k / row_slice;
                int c = k % row_slice;
                if (c < slice) {
                    int j = r / 8;
                    int bit = r % 8;
                    unsigned int value = 0;
                    for (int m = 0; m < 8; ++m) {
                        value |= ((tile[c * 8 + m][j] >> bit) & 1u) << m;
                    }
                    out[r * row_bytes + item0 / 8 + c] = (unsigned char)value;
                }
            }
            __syncthreads();
        }
        if (blockIdx.x == 0) {
            for (unsigned long long p = body + threadIdx.x; p < length; p += blockDim.x) {
                out[p] = in[p];
            }
        }
    }
}
