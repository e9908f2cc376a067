// Host emulation of the CUDA execution model, for running cuda_kernels/*.cu on the CPU.
//
// Each block of the grid runs on its own, block after block. Inside a block every thread
// is a fiber (ucontext) with its own stack; a thread runs until it reaches __syncthreads()
// or returns, then the next thread runs. When every thread of the block has reached the
// barrier, all of them resume: exactly CUDA's barrier semantics, so a kernel that reads
// shared memory another thread writes before a barrier gets the right data here, and a
// kernel that forgets the barrier gets visibly wrong data (threads run one at a time).
// __shared__ variables are `static`: one instance shared by the fibers of the running
// block (CUDA leaves shared memory undefined at block start; kernels must initialise it).
// Threads that leave the kernel while others wait at a barrier are reported (undefined
// behaviour on a GPU). Dynamic (extern) shared memory is not modelled.
// Threads run first to last in each round, so a read of what a higher-numbered thread
// wrote without a barrier shows; compiled with HOST_CUDA_REVERSE_THREADS they run last to
// first, so a read of what a lower-numbered thread wrote shows too.
#pragma once
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <ucontext.h>
#include <vector>

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

static dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace host_cuda {

struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    dim3 thread;
    bool done = false;
};

static ucontext_t scheduler;
static Fiber* current = nullptr;
static std::function<void()>* body = nullptr;

static void trampoline()
{
    (*body)();
    current->done = true;
    swapcontext(&current->context, &scheduler);
}

inline void syncthreads()
{
    swapcontext(&current->context, &scheduler);
}

}  // namespace host_cuda

#define __global__
#define __device__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define __syncthreads() host_cuda::syncthreads()

template <typename Kernel>
void host_launch(dim3 grid, dim3 block, Kernel kernel)
{
    gridDim = grid;
    blockDim = block;
    std::function<void()> run = kernel;
    host_cuda::body = &run;
    const size_t threads = (size_t)block.x * block.y * block.z;
    std::vector<host_cuda::Fiber> fibers(threads);
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
        blockIdx = dim3(bx, by, bz);
        size_t k = 0;
        for (unsigned int tz = 0; tz < block.z; ++tz)
        for (unsigned int ty = 0; ty < block.y; ++ty)
        for (unsigned int tx = 0; tx < block.x; ++tx, ++k) {
            host_cuda::Fiber& f = fibers[k];
            f.thread = dim3(tx, ty, tz);
            f.done = false;
            f.stack.resize(64 * 1024);
            getcontext(&f.context);
            f.context.uc_stack.ss_sp = f.stack.data();
            f.context.uc_stack.ss_size = f.stack.size();
            f.context.uc_link = nullptr;
            makecontext(&f.context, host_cuda::trampoline, 0);
        }
        size_t finished = 0;
        while (finished < threads) {
            size_t at_barrier = 0;
            for (size_t j = 0; j < threads; ++j) {
#ifdef HOST_CUDA_REVERSE_THREADS
                host_cuda::Fiber& f = fibers[threads - 1 - j];
#else
                host_cuda::Fiber& f = fibers[j];
#endif
                if (f.done) {
                    continue;
                }
                threadIdx = f.thread;
                host_cuda::current = &f;
                swapcontext(&host_cuda::scheduler, &f.context);
                if (f.done) {
                    ++finished;
                } else {
                    ++at_barrier;
                }
            }
            if (at_barrier != 0 && finished != 0) {
                std::fprintf(stderr, "host harness: block (%u,%u,%u): %zu threads wait at "
                             "__syncthreads while %zu have returned\n", bx, by, bz, at_barrier,
                             finished);
                std::abort();
            }
        }
    }
}
