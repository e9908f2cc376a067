// Test-only kernels that depend on shared memory and __syncthreads, to show the host
// harness models them: a block sum (tree reduction), and the same without its barriers.
#define PROBE_THREADS 64

extern "C" __global__ void block_sums(const int* values, int* sums, int n)
{
    __shared__ int partial[PROBE_THREADS];
    int i = blockIdx.x * PROBE_THREADS + threadIdx.x;
    partial[threadIdx.x] = i < n ? values[i] : 0;
    __syncthreads();
    for (int width = PROBE_THREADS / 2; width > 0; width /= 2) {
        if (threadIdx.x < width) {
            partial[threadIdx.x] += partial[threadIdx.x + width];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        sums[blockIdx.x] = partial[0];
    }
}

extern "C" __global__ void block_sums_unsynchronised(const int* values, int* sums, int n)
{
    __shared__ int partial[PROBE_THREADS];
    int i = blockIdx.x * PROBE_THREADS + threadIdx.x;
    partial[threadIdx.x] = i < n ? values[i] : 0;
    for (int width = PROBE_THREADS / 2; width > 0; width /= 2) {
        if (threadIdx.x < width) {
            partial[threadIdx.x] += partial[threadIdx.x + width];
        }
    }
    if (threadIdx.x == 0) {
        sums[blockIdx.x] = partial[0];
    }
}
