// Batched blosclz decompression: every compressed split stream of a batch of Blosc1 chunks
// in one launch. Stream s reads src[src_offsets[s] : + src_sizes[s]] and writes at most
// dst_capacity[s] bytes at dst + dst_offsets[s]; status[s] gets the decoded size, or a
// negative error code (BLOSCLZ_TRUNCATED, BLOSCLZ_OVERFLOW, BLOSCLZ_BAD_DISTANCE). Blosc
// accepts a stream only when its decoded size equals the capacity (neblock).
//
// The format is c-blosc 1.21's blosclz_decompress (blosc/blosclz.c), rule for rule, so any
// input, however corrupt, decodes here exactly as c-blosc decodes it or fails as it fails:
//  - the first byte is a literal run: (byte & 31) + 1 bytes follow;
//  - then each control byte `ctrl`: ctrl < 32 is a literal run of ctrl + 1 bytes;
//    otherwise a match of (ctrl >> 5) + 2 bytes, where length code 7 is extended by
//    bytes that are added while they are 255; then a byte `code` gives the distance
//    ((ctrl & 31) << 8) + code + 1 (1..8192); code 255 with (ctrl & 31) == 31 instead
//    escapes to a 16-bit big-endian far distance + 8192 (MAX_DISTANCE 8191 + 1);
//  - a match needs two bytes after its length bytes (c-blosc checks ip + 1 < ip_limit),
//    a far one two more; a match whose tokens end the stream is dropped (c-blosc breaks
//    before copying it); a match may not reach before the stream's first output byte.
// Matches copy forward byte by byte (overlapping copies repeat the last `distance` bytes).
//
// One thread block per stream, its threads (a warp: launch with 32) walking the tokens
// together: every thread parses the same bytes (one broadcast load per token, no
// divergence), then the threads copy the token's bytes side by side, a literal run
// (at most 32 bytes) in one step. One thread per stream would leave a batch of a few
// thousand streams on a few thousand threads (a small fraction of one GPU) copying byte
// by byte with uncoalesced accesses; a warp per stream keeps thousands of warps busy and
// coalesces the copies. Match byte i is dst[op - distance + i % distance], read from
// bytes written by earlier tokens only, so a token needs no barrier inside it, only one
// before a match that reads bytes written since the last one (__syncthreads, which the
// host harness models; with one warp per block it costs little). Blocks walk the streams
// grid-stride. Every read and write is bounds-checked against the stream's tables.

#define BLOSCLZ_TRUNCATED (-1LL)
#define BLOSCLZ_OVERFLOW (-2LL)
#define BLOSCLZ_BAD_DISTANCE (-3LL)
#define BLOSCLZ_MAX_DISTANCE 8191LL

extern "C" __global__ void blosclz_decompress(const unsigned char* __restrict__ src,
                                              unsigned char* __restrict__ dst,
                                              const long long* src_offsets,
                                              const long long* src_sizes,
                                              const long long* dst_offsets,
                                              const long long* dst_capacity,
                                              unsigned long long n_streams, long long* status)
{
    const long long lane = threadIdx.x;
    const long long width = blockDim.x;
    for (unsigned long long s = blockIdx.x; s < n_streams; s += gridDim.x) {
        const unsigned char* in = src + src_offsets[s];
        unsigned char* out = dst + dst_offsets[s];
        const long long n = src_sizes[s];
        const long long cap = dst_capacity[s];
        long long ip = 0;
        long long op = 0;
        long long result = 0;
        long long synced = 0;  // output bytes [0, synced) are visible to every thread
        if (n > 0) {
            unsigned int ctrl = in[ip++] & 31u;
            for (;;) {
                if (ctrl >= 32u) {
                    long long len = (long long)(ctrl >> 5) - 1;
                    const long long ofs = (long long)(ctrl & 31u) << 8;
                    unsigned int code;
                    if (len == 7 - 1) {
                        do {
                            if (ip + 1 >= n) {
                                result = BLOSCLZ_TRUNCATED;
                                break;
                            }
                            code = in[ip++];
                            len += code;
                            if (len > cap) {  // c-blosc fails the size check later
                                result = BLOSCLZ_OVERFLOW;
                                break;
                            }
                        } while (code == 255u);
                        if (result < 0) {
                            break;
                        }
                    } else if (ip + 1 >= n) {
                        result = BLOSCLZ_TRUNCATED;
                        break;
                    }
                    code = in[ip++];
                    len += 3;
                    long long distance = ofs + code + 1;
                    if (code == 255u && ofs == (31LL << 8)) {
                        if (ip + 1 >= n) {
                            result = BLOSCLZ_TRUNCATED;
                            break;
                        }
                        distance = (((long long)in[ip] << 8) | in[ip + 1])
                                   + BLOSCLZ_MAX_DISTANCE + 1;
                        ip += 2;
                    }
                    if (op + len > cap) {
                        result = BLOSCLZ_OVERFLOW;
                        break;
                    }
                    if (distance > op) {
                        result = BLOSCLZ_BAD_DISTANCE;
                        break;
                    }
                    if (ip >= n) {
                        break;  // c-blosc drops a match that ends the stream
                    }
                    ctrl = in[ip++];
                    // it reads [op - distance, + min(len, distance)): wait for the threads
                    // only if some of those bytes were written since the last barrier
                    if (op - distance + (len < distance ? len : distance) > synced) {
                        __syncthreads();
                        synced = op;
                    }
                    // byte i repeats byte i % distance of the `distance` bytes before op;
                    // each thread keeps its i % distance up to date (32-bit: distance <=
                    // 73727) instead of dividing per byte
                    const unsigned char* from = out + op - distance;
                    const unsigned int period = (unsigned int)distance;
                    unsigned int r = (unsigned int)lane % period;
                    const unsigned int step = (unsigned int)width % period;
                    for (long long i = lane; i < len; i += width) {
                        out[op + i] = from[r];
                        r += step;
                        if (r >= period) {
                            r -= period;
                        }
                    }
                    op += len;
                } else {
                    const long long len = (long long)ctrl + 1;
                    if (op + len > cap) {
                        result = BLOSCLZ_OVERFLOW;
                        break;
                    }
                    if (ip + len > n) {
                        result = BLOSCLZ_TRUNCATED;
                        break;
                    }
                    for (long long i = lane; i < len; i += width) {
                        out[op + i] = in[ip + i];
                    }
                    op += len;
                    ip += len;
                    if (ip >= n) {
                        break;
                    }
                    ctrl = in[ip++];
                }
            }
            if (result == 0) {
                result = op;
            }
        }
        if (lane == 0) {
            status[s] = result;
        }
    }
}
