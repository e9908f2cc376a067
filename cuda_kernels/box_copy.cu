// Copy a batch of N-dimensional boxes between two strided byte arrays in one launch.
// Task t copies a box of extents[t, :] items: item index (i_0, ..., i_{ndim-1}) is read
// at src + task_src[t] + sum_d i_d * src_strides[t, d] and written at
// dst + task_dst[t] + sum_d i_d * dst_strides[t, d] (byte offsets and strides, signed, so
// slice steps, negative steps and axis permutations are all just strides).
// task_src[t] < 0 reads from `fill` instead, at fill + sum_d i_d * src_strides[t, d]
// (strides 0 repeat one fill item; an item split into words steps through its words).
// This one kernel is the scatter (decoded chunks -> output, transpose fused by permuted
// source strides, dropped axes by extent 1), the gather for writes (value -> chunk
// buffers), a batched transpose, and the fill.
// Grid y walks tasks, grid x the items of a box, innermost dimension fastest, so
// consecutive threads touch consecutive bytes of a C-ordered destination.
// Items of 2, 4, 8 and 16 bytes move with one load and store, which must be aligned to
// the item size: the host (cuzarr/kernels/boxes.py) picks the word size that every
// address and stride allows, widening contiguous runs up to 16 bytes.

struct __align__(16) box_word16 {
    unsigned long long lo, hi;
};

__device__ __forceinline__ void box_move(unsigned char* to, const unsigned char* from,
                                         int itemsize)
{
    switch (itemsize) {
    case 1: *to = *from; break;
    case 2: *(unsigned short*)to = *(const unsigned short*)from; break;
    case 4: *(unsigned int*)to = *(const unsigned int*)from; break;
    case 8: *(unsigned long long*)to = *(const unsigned long long*)from; break;
    case 16: *(box_word16*)to = *(const box_word16*)from; break;
    default:
        for (int k = 0; k < itemsize; ++k) {
            to[k] = from[k];
        }
    }
}

extern "C" __global__ void box_copy(const unsigned char* src, unsigned char* dst,
                                    const long long* task_src, const long long* task_dst,
                                    const long long* extents, const long long* src_strides,
                                    const long long* dst_strides, unsigned long long n_tasks,
                                    int ndim, int itemsize, const unsigned char* fill)
{
    unsigned long long xstride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long t = blockIdx.y; t < n_tasks; t += gridDim.y) {
        const long long* ext = extents + t * ndim;
        const long long* sst = src_strides + t * ndim;
        const long long* dstr = dst_strides + t * ndim;
        const unsigned char* from_base = task_src[t] < 0 ? fill : src + task_src[t];
        unsigned long long total = 1;
        for (int d = 0; d < ndim; ++d) {
            total *= (unsigned long long)ext[d];
        }
        for (unsigned long long flat = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
             flat < total; flat += xstride) {
            unsigned long long rem = flat;
            long long so = 0;
            long long dofs = task_dst[t];
            for (int d = ndim - 1; d >= 0; --d) {
                long long i = (long long)(rem % (unsigned long long)ext[d]);
                rem /= (unsigned long long)ext[d];
                so += i * sst[d];
                dofs += i * dstr[d];
            }
            box_move(dst + dofs, from_base + so, itemsize);
        }
    }
}

// The same copies when the source's contiguous axis is not the destination's: a box of a
// transposed chunk (the transpose codec fused with the scatter, or with the gather of a
// write). The plain kernel would stride through one side; here each thread block moves
// 32 x 32 words through shared memory, reading along axis `axis_p` (source stride =
// itemsize) and writing along axis `axis_q` (destination stride = itemsize): both
// coalesced. Grid y walks tasks; grid x walks the tiles of every task's (axis_p, axis_q)
// planes, for every index of its other axes. Block: 32 x 8 (any shape works).
#define BOX_TILE 32
#define BOX_MAX_ITEM 16

extern "C" __global__ void box_copy_tiled(const unsigned char* src, unsigned char* dst,
                                          const long long* task_src, const long long* task_dst,
                                          const long long* extents,
                                          const long long* src_strides,
                                          const long long* dst_strides,
                                          unsigned long long n_tasks, int ndim, int itemsize,
                                          const unsigned char* fill, int axis_p, int axis_q)
{
    __shared__ __align__(16) unsigned char tile[BOX_TILE][(BOX_TILE + 1) * BOX_MAX_ITEM];
    for (unsigned long long t = blockIdx.y; t < n_tasks; t += gridDim.y) {
        const long long* ext = extents + t * ndim;
        const long long* sst = src_strides + t * ndim;
        const long long* dstr = dst_strides + t * ndim;
        const unsigned char* from_base = task_src[t] < 0 ? fill : src + task_src[t];
        long long np_ = ext[axis_p];
        long long nl = ext[axis_q];
        unsigned long long outer = 1;
        for (int d = 0; d < ndim; ++d) {
            if (d != axis_p && d != axis_q) {
                outer *= (unsigned long long)ext[d];
            }
        }
        unsigned long long tiles_p = (unsigned long long)((np_ + BOX_TILE - 1) / BOX_TILE);
        unsigned long long tiles_l = (unsigned long long)((nl + BOX_TILE - 1) / BOX_TILE);
        unsigned long long work = outer * tiles_p * tiles_l;
        for (unsigned long long w = blockIdx.x; w < work; w += gridDim.x) {
            unsigned long long tile_id = w % (tiles_p * tiles_l);
            unsigned long long rem = w / (tiles_p * tiles_l);
            long long so = 0;
            long long dofs = task_dst[t];
            for (int d = ndim - 1; d >= 0; --d) {
                if (d == axis_p || d == axis_q) {
                    continue;
                }
                long long i = (long long)(rem % (unsigned long long)ext[d]);
                rem /= (unsigned long long)ext[d];
                so += i * sst[d];
                dofs += i * dstr[d];
            }
            long long p0 = (long long)(tile_id / tiles_l) * BOX_TILE;
            long long l0 = (long long)(tile_id % tiles_l) * BOX_TILE;
            // read: consecutive threads walk axis_p, contiguous in the source
            for (int r = threadIdx.y; r < BOX_TILE; r += blockDim.y) {
                for (int c = threadIdx.x; c < BOX_TILE; c += blockDim.x) {
                    long long ip = p0 + c;
                    long long il = l0 + r;
                    if (ip < np_ && il < nl) {
                        box_move(&tile[r][c * itemsize],
                                 from_base + so + ip * sst[axis_p] + il * sst[axis_q], itemsize);
                    }
                }
            }
            __syncthreads();
            // write: consecutive threads walk the last axis, contiguous in the destination
            for (int r = threadIdx.y; r < BOX_TILE; r += blockDim.y) {
                for (int c = threadIdx.x; c < BOX_TILE; c += blockDim.x) {
                    long long il = l0 + c;
                    long long ip = p0 + r;
                    if (ip < np_ && il < nl) {
                        box_move(dst + dofs + ip * dstr[axis_p] + il * dstr[axis_q],
                                 &tile[c][r * itemsize], itemsize);
                    }
                }
            }
            __syncthreads();
        }
    }
}
