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
