// Blosc's byte shuffle and unshuffle over a batch of blocks (c-blosc shuffle_generic /
// unshuffle_generic): a block of `length` bytes holds length / typesize whole items;
// shuffling stores byte i of every item together (plane i); the length % typesize
// trailing bytes are copied unchanged. Each block is one entry of the offsets/lengths
// tables, so the leftover (short) last block of a chunk is just another entry.
// Grid: y walks blocks, x walks the bytes of a block (grid-stride in both).

template <bool Unshuffle>
__device__ void byte_shuffle_blocks(const unsigned char* src, unsigned char* dst,
                                    const unsigned long long* offsets,
                                    const unsigned long long* lengths,
                                    unsigned long long n_blocks, int typesize)
{
    unsigned long long xstride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        const unsigned char* in = src + offsets[b];
        unsigned char* out = dst + offsets[b];
        unsigned long long length = lengths[b];
        unsigned long long quot = length / typesize;
        unsigned long long body = quot * typesize;
        for (unsigned long long p = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
             p < length; p += xstride) {
            if (p >= body) {
                out[p] = in[p];
            } else if (Unshuffle) {
                // output byte p is byte (p % typesize) of item (p / typesize)
                out[p] = in[(p % typesize) * quot + p / typesize];
            } else {
                // output byte p is byte (p / quot) of item (p % quot)
                out[p] = in[(p % quot) * typesize + p / quot];
            }
        }
    }
}

extern "C" __global__ void byte_shuffle(const unsigned char* src, unsigned char* dst,
                                        const unsigned long long* offsets,
                                        const unsigned long long* lengths,
                                        unsigned long long n_blocks, int typesize)
{
    byte_shuffle_blocks<false>(src, dst, offsets, lengths, n_blocks, typesize);
}

extern "C" __global__ void byte_unshuffle(const unsigned char* src, unsigned char* dst,
                                          const unsigned long long* offsets,
                                          const unsigned long long* lengths,
                                          unsigned long long n_blocks, int typesize)
{
    byte_shuffle_blocks<true>(src, dst, offsets, lengths, n_blocks, typesize);
}

// Coalesced byte unshuffle: a block is a (typesize x quot) byte matrix, item planes as
// rows; unshuffling transposes it. Each thread block moves a tile of UNSHUFFLE_TILE items:
// it reads the tile's slice of every plane (contiguous runs) into shared memory, then
// writes the tile's items (one contiguous run of UNSHUFFLE_TILE * typesize bytes).
// Block: UNSHUFFLE_TILE threads. Grid: x walks tiles, y walks blocks. typesize <= 16.
#define UNSHUFFLE_TILE 256
#define UNSHUFFLE_MAX_TYPESIZE 16

extern "C" __global__ void byte_unshuffle_tiled(const unsigned char* src, unsigned char* dst,
                                                const unsigned long long* offsets,
                                                const unsigned long long* lengths,
                                                unsigned long long n_blocks, int typesize)
{
    __shared__ unsigned char tile[UNSHUFFLE_MAX_TYPESIZE][UNSHUFFLE_TILE + 1];
    for (unsigned long long b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        const unsigned char* in = src + offsets[b];
        unsigned char* out = dst + offsets[b];
        unsigned long long length = lengths[b];
        unsigned long long quot = length / typesize;
        unsigned long long body = quot * typesize;
        unsigned long long n_tiles = (quot + UNSHUFFLE_TILE - 1) / UNSHUFFLE_TILE;
        for (unsigned long long t = blockIdx.x; t < n_tiles; t += gridDim.x) {
            unsigned long long item0 = t * UNSHUFFLE_TILE;
            for (int plane = 0; plane < typesize; ++plane) {
                unsigned long long e = item0 + threadIdx.x;
                if (threadIdx.x < UNSHUFFLE_TILE && e < quot) {
                    tile[plane][threadIdx.x] = in[plane * quot + e];
                }
            }
            __syncthreads();
            unsigned long long span = (quot - item0 < UNSHUFFLE_TILE ? quot - item0
                                                                     : UNSHUFFLE_TILE)
                                      * typesize;
            for (unsigned long long k = threadIdx.x; k < span; k += blockDim.x) {
                out[item0 * typesize + k] = tile[k % typesize][k / typesize];
            }
            __syncthreads();
        }
        // trailing bytes of the block are stored unshuffled
        if (blockIdx.x == 0) {
            for (unsigned long long p = body + threadIdx.x; p < length; p += blockDim.x) {
                out[p] = in[p];
            }
        }
    }
}

// Coalesced byte shuffle (blosc encode), the mirror of byte_unshuffle_tiled: each thread
// block reads a tile of UNSHUFFLE_TILE items (one contiguous run) into shared memory, then
// writes the tile's slice of every plane (contiguous runs). Block: UNSHUFFLE_TILE threads.
// Grid: x walks tiles, y walks blocks. typesize <= 16.
extern "C" __global__ void byte_shuffle_tiled(const unsigned char* src, unsigned char* dst,
                                              const unsigned long long* offsets,
                                              const unsigned long long* lengths,
                                              unsigned long long n_blocks, int typesize)
{
    __shared__ unsigned char tile[UNSHUFFLE_MAX_TYPESIZE][UNSHUFFLE_TILE + 1];
    for (unsigned long long b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        const unsigned char* in = src + offsets[b];
        unsigned char* out = dst + offsets[b];
        unsigned long long length = lengths[b];
        unsigned long long quot = length / typesize;
        unsigned long long body = quot * typesize;
        unsigned long long n_tiles = (quot + UNSHUFFLE_TILE - 1) / UNSHUFFLE_TILE;
        for (unsigned long long t = blockIdx.x; t < n_tiles; t += gridDim.x) {
            unsigned long long item0 = t * UNSHUFFLE_TILE;
            unsigned long long items = quot - item0 < UNSHUFFLE_TILE ? quot - item0
                                                                     : UNSHUFFLE_TILE;
            for (unsigned long long k = threadIdx.x; k < items * typesize; k += blockDim.x) {
                tile[k % typesize][k / typesize] = in[item0 * typesize + k];
            }
            __syncthreads();
            for (int plane = 0; plane < typesize; ++plane) {
                for (unsigned long long e = threadIdx.x; e < items; e += blockDim.x) {
                    out[plane * quot + item0 + e] = tile[plane][e];
                }
            }
            __syncthreads();
        }
        // trailing bytes of the block are stored unshuffled
        if (blockIdx.x == 0) {
            for (unsigned long long p = body + threadIdx.x; p < length; p += blockDim.x) {
                out[p] = in[p];
            }
        }
    }
}
