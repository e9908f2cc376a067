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
        bool is_fill = task_src[t] < 0;
        const unsigned char* from_base = is_fill ? fill : src + task_src[t];
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
            const unsigned char* from = from_base + so;
            unsigned char* to = dst + dofs;
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
    }
}
