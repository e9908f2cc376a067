// Host emulation of the CUDA execution model, for running cuda_kernels/*.cu on the CPU.
// Kernels are written as grid-stride loops without shared memory, so running every
// (block, thread) of the grid one after another computes exactly what the GPU does.
// A kernel that calls __syncthreads (or uses __shared__) would need a faithful model of
// blocks running in lock-step; until one is needed, using them fails the build here.
#pragma once
#include <cstddef>

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

static dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __syncthreads() static_assert(false, "host harness: __syncthreads is not modelled")
#define __shared__ static_assert(false, "host harness: __shared__ is not modelled");

template <typename Kernel>
void host_launch(dim3 grid, dim3 block, Kernel kernel)
{
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx)
    for (unsigned int tz = 0; tz < block.z; ++tz)
    for (unsigned int ty = 0; ty < block.y; ++ty)
    for (unsigned int tx = 0; tx < block.x; ++tx) {
        blockIdx = dim3(bx, by, bz);
        threadIdx = dim3(tx, ty, tz);
        kernel();
    }
}
