// Transpose a batch of C-ordered chunks with any axis permutation (the transpose codec),
// through 32 x 32 shared-memory tiles so that reads run along the input's last axis and
// writes along the output's last axis: both coalesced.
// Input chunks have shape in_shape (C order, in_strides in items). Input axis d lands at
// out_strides[d] items in the output chunk. axis_a is the input axis that becomes the
// output's last axis, axis_b the input's last axis (they differ; when they do not, a
// box copy is already coalesced on both sides). Every other axis and the chunk index
// are walked by grid y; grid x walks the tiles of the (a, b) plane. Block: 32 x 8.

#define TILE 32
#define TILE_ROWS 8
#define MAX_ITEM 16

extern "C" __global__ void transpose_tiled(const unsigned char* src, unsigned char* dst,
                                           unsigned long long n_chunks, int ndim,
                                           const long long* in_shape,
                                           const long long* in_strides,
                                           const long long* out_strides, int axis_a,
                                           int axis_b, int itemsize)
{
    __shared__ unsigned char tile[TILE][(TILE + 1) * MAX_ITEM];
    long long chunk_items = 1;
    unsigned long long outer_per_chunk = 1;
    for (int d = 0; d < ndim; ++d) {
        chunk_items *= in_shape[d];
        if (d != axis_a && d != axis_b) {
            outer_per_chunk *= (unsigned long long)in_shape[d];
        }
    }
    long long na = in_shape[axis_a];
    long long nb = in_shape[axis_b];
    long long tiles_a = (na + TILE - 1) / TILE;
    long long tiles_b = (nb + TILE - 1) / TILE;
    unsigned long long outer_count = n_chunks * outer_per_chunk;
    for (unsigned long long outer = blockIdx.y; outer < outer_count; outer += gridDim.y) {
        unsigned long long rem = outer;
        long long src_base = 0;
        long long dst_base = 0;
        for (int d = ndim - 1; d >= 0; --d) {
            if (d == axis_a || d == axis_b) {
                continue;
            }
            long long i = (long long)(rem % (unsigned long long)in_shape[d]);
            rem /= (unsigned long long)in_shape[d];
            src_base += i * in_strides[d];
            dst_base += i * out_strides[d];
        }
        src_base += (long long)rem * chunk_items;
        dst_base += (long long)rem * chunk_items;
        for (long long t = blockIdx.x; t < tiles_a * tiles_b; t += gridDim.x) {
            long long a0 = (t / tiles_b) * TILE;
            long long b0 = (t % tiles_b) * TILE;
            for (int r = threadIdx.y; r < TILE; r += blockDim.y) {
                long long ia = a0 + r;
                long long ib = b0 + threadIdx.x;
                if (ia < na && ib < nb) {
                    const unsigned char* from =
                        src + (src_base + ia * in_strides[axis_a] + ib * in_strides[axis_b])
                                  * itemsize;
                    for (int k = 0; k < itemsize; ++k) {
                        tile[r][threadIdx.x * itemsize + k] = from[k];
                    }
                }
            }
            __syncthreads();
            for (int r = threadIdx.y; r < TILE; r += blockDim.y) {
                long long ib = b0 + r;
                long long ia = a0 + threadIdx.x;
                if (ia < na && ib < nb) {
                    unsigned char* to =
                        dst + (dst_base + ia * out_strides[axis_a] + ib * out_strides[axis_b])
                                  * itemsize;
                    for (int k = 0; k < itemsize; ++k) {
                        to[k] = tile[threadIdx.x][r * itemsize + k];
                    }
                }
            }
            __syncthreads();
        }
    }
}
