// C entry points that launch each kernel of cuda_kernels/ on the host emulation, with the
// grid and block the test chooses; every launcher takes (grid_x, grid_y, block_x, block_y,
// ...) (so odd grids, strides and tails are exercised).
#include "host_cuda.h"

#include "byteswap.cu"
#include "shuffle.cu"
#include "bitshuffle.cu"
#include "crc32.cu"
#include "adler32.cu"
#include "box_copy.cu"
#include "transpose.cu"
#include "blosclz.cu"
#include "barrier_probe.cu"

extern "C" {

void host_byteswap(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                   unsigned char* data, unsigned long long n_items, int itemsize)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] { byteswap(data, n_items, itemsize); });
}

void host_byte_shuffle(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                       const unsigned char* src, unsigned char* dst,
                       const unsigned long long* offsets, const unsigned long long* lengths,
                       unsigned long long n_blocks, int typesize)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y),
                [&] { byte_shuffle(src, dst, offsets, lengths, n_blocks, typesize); });
}

void host_byte_unshuffle(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                         const unsigned char* src, unsigned char* dst,
                         const unsigned long long* offsets, const unsigned long long* lengths,
                         unsigned long long n_blocks, int typesize)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y),
                [&] { byte_unshuffle(src, dst, offsets, lengths, n_blocks, typesize); });
}

void host_bit_shuffle(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                      const unsigned char* src, unsigned char* dst,
                      const unsigned long long* offsets, const unsigned long long* lengths,
                      unsigned long long n_blocks, int typesize, int version)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y),
                [&] { bit_shuffle(src, dst, offsets, lengths, n_blocks, typesize, version); });
}

void host_byte_shuffle_tiled(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                             const unsigned char* src, unsigned char* dst,
                             const unsigned long long* offsets, const unsigned long long* lengths,
                             unsigned long long n_blocks, int typesize)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y),
                [&] { byte_shuffle_tiled(src, dst, offsets, lengths, n_blocks, typesize); });
}

void host_bit_shuffle_tiled(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                            const unsigned char* src, unsigned char* dst,
                            const unsigned long long* offsets, const unsigned long long* lengths,
                            unsigned long long n_blocks, int typesize, int version)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y),
                [&] { bit_shuffle_tiled(src, dst, offsets, lengths, n_blocks, typesize, version); });
}

void host_bit_unshuffle(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                        const unsigned char* src, unsigned char* dst,
                        const unsigned long long* offsets, const unsigned long long* lengths,
                        unsigned long long n_blocks, int typesize, int version)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y),
                [&] { bit_unshuffle(src, dst, offsets, lengths, n_blocks, typesize, version); });
}

void host_crc32c_segments(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                          const unsigned char* data,
                          const unsigned long long* seg_offsets,
                          const unsigned long long* seg_lengths, unsigned long long n_segments,
                          const unsigned int* table, unsigned int* seg_crc)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        crc32c_segments(data, seg_offsets, seg_lengths, n_segments, table, seg_crc);
    });
}

void host_crc32c_combine(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                         const unsigned int* seg_crc,
                         const unsigned long long* seg_lengths,
                         const unsigned long long* first_segment,
                         const unsigned long long* n_segments, unsigned long long n_buffers,
                         unsigned int* out)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        crc32c_combine(seg_crc, seg_lengths, first_segment, n_segments, n_buffers, out);
    });
}

void host_crc32_segments(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                         const unsigned char* data,
                         const unsigned long long* seg_offsets,
                         const unsigned long long* seg_lengths, unsigned long long n_segments,
                         const unsigned int* table, unsigned int* seg_crc)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        crc32_segments(data, seg_offsets, seg_lengths, n_segments, table, seg_crc);
    });
}

void host_crc32_combine(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                        const unsigned int* seg_crc,
                        const unsigned long long* seg_lengths,
                        const unsigned long long* first_segment,
                        const unsigned long long* n_segments, unsigned long long n_buffers,
                        unsigned int* out)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        crc32_combine(seg_crc, seg_lengths, first_segment, n_segments, n_buffers, out);
    });
}

void host_adler32_segments(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                           const unsigned char* data,
                           const unsigned long long* seg_offsets,
                           const unsigned long long* seg_lengths, unsigned long long n_segments,
                           unsigned int* seg_adler)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        adler32_segments(data, seg_offsets, seg_lengths, n_segments, seg_adler);
    });
}

void host_adler32_combine(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                          const unsigned int* seg_adler,
                          const unsigned long long* seg_lengths,
                          const unsigned long long* first_segment,
                          const unsigned long long* n_segments, unsigned long long n_buffers,
                          unsigned int* out)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        adler32_combine(seg_adler, seg_lengths, first_segment, n_segments, n_buffers, out);
    });
}

void host_box_copy(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                   const unsigned char* src, unsigned char* dst, const long long* task_src,
                   const long long* task_dst, const long long* extents,
                   const long long* src_strides, const long long* dst_strides,
                   unsigned long long n_tasks, int ndim, int itemsize, const unsigned char* fill)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        box_copy(src, dst, task_src, task_dst, extents, src_strides, dst_strides, n_tasks, ndim,
                 itemsize, fill);
    });
}

void host_box_copy_tiled(unsigned int grid_x, unsigned int grid_y, unsigned int block_x,
                         unsigned int block_y, const unsigned char* src, unsigned char* dst,
                         const long long* task_src, const long long* task_dst,
                         const long long* extents, const long long* src_strides,
                         const long long* dst_strides, unsigned long long n_tasks, int ndim,
                         int itemsize, const unsigned char* fill, int axis_p, int axis_q)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        box_copy_tiled(src, dst, task_src, task_dst, extents, src_strides, dst_strides, n_tasks,
                       ndim, itemsize, fill, axis_p, axis_q);
    });
}

void host_block_sums(unsigned int grid_x, unsigned int grid_y, unsigned int block_x, unsigned int block_y,
                     const int* values, int* sums, int n, int synchronised)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        if (synchronised) {
            block_sums(values, sums, n);
        } else {
            block_sums_unsynchronised(values, sums, n);
        }
    });
}

void host_transpose_tiled(unsigned int grid_x, unsigned int grid_y, unsigned int block_x,
                          unsigned int block_y, const unsigned char* src, unsigned char* dst,
                          unsigned long long n_chunks, int ndim, const long long* in_shape,
                          const long long* in_strides, const long long* out_strides, int axis_a,
                          int axis_b, int itemsize)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        transpose_tiled(src, dst, n_chunks, ndim, in_shape, in_strides, out_strides, axis_a,
                        axis_b, itemsize);
    });
}

void host_byte_unshuffle_tiled(unsigned int grid_x, unsigned int grid_y, unsigned int block_x,
                               unsigned int block_y, const unsigned char* src, unsigned char* dst,
                               const unsigned long long* offsets,
                               const unsigned long long* lengths, unsigned long long n_blocks,
                               int typesize)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        byte_unshuffle_tiled(src, dst, offsets, lengths, n_blocks, typesize);
    });
}

void host_bit_unshuffle_tiled(unsigned int grid_x, unsigned int grid_y, unsigned int block_x,
                              unsigned int block_y, const unsigned char* src, unsigned char* dst,
                              const unsigned long long* offsets,
                              const unsigned long long* lengths, unsigned long long n_blocks,
                              int typesize, int version)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        bit_unshuffle_tiled(src, dst, offsets, lengths, n_blocks, typesize, version);
    });
}

void host_blosclz_decompress(unsigned int grid_x, unsigned int grid_y, unsigned int block_x,
                             unsigned int block_y, const unsigned char* src, unsigned char* dst,
                             const long long* src_offsets, const long long* src_sizes,
                             const long long* dst_offsets, const long long* dst_capacity,
                             unsigned long long n_streams, long long* status)
{
    host_launch(dim3(grid_x, grid_y), dim3(block_x, block_y), [&] {
        blosclz_decompress(src, dst, src_offsets, src_sizes, dst_offsets, dst_capacity,
                           n_streams, status);
    });
}

}
