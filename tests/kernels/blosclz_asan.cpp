// The blosclz kernel under AddressSanitizer: every stream and every output in a heap
// buffer of exactly its size, so a read or write one byte outside aborts the run. The
// threads of a block run last to first (the harness library runs them first to last), so
// a barrier missing between a lower thread's write and a higher one's read shows here.
// stdin: records of (int64 block threads, int64 stream size, int64 capacity, stream
// bytes); stdout: per record, the int64 status and the capacity output bytes (0xA5 where
// nothing was written).
#define HOST_CUDA_REVERSE_THREADS
#include "host_cuda.h"

#include "blosclz.cu"

#include <cstdio>
#include <cstring>

int main()
{
    long long head[3];
    while (std::fread(head, sizeof(long long), 3, stdin) == 3) {
        const long long threads = head[0], size = head[1], capacity = head[2];
        unsigned char* src = new unsigned char[size > 0 ? size : 1];
        if (size > 0 && std::fread(src, 1, (size_t)size, stdin) != (size_t)size) {
            return 2;
        }
        unsigned char* dst = new unsigned char[capacity > 0 ? capacity : 1];
        std::memset(dst, 0xA5, capacity > 0 ? (size_t)capacity : 1);
        long long zero = 0, status = 7;
        // an empty stream points one past its 1-byte buffer: any read of it is caught
        host_launch(dim3(1), dim3((unsigned int)threads), [&] {
            blosclz_decompress(src + (size > 0 ? 0 : 1), dst, &zero, &size, &zero, &capacity, 1,
                               &status);
        });
        std::fwrite(&status, sizeof(status), 1, stdout);
        std::fwrite(dst, 1, (size_t)capacity, stdout);
        delete[] src;
        delete[] dst;
    }
    return 0;
}
