// Reverse the bytes of every item of a flat buffer in place (the bytes codec when the
// stored byte order differs from the array's). itemsize: 2, 4, 8 or 16.
// One thread per item in a grid-stride loop; items are read and written whole where
// the width allows, so accesses stay coalesced.

extern "C" __global__ void byteswap(unsigned char* data, unsigned long long n_items,
                                    int itemsize)
{
    unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         i < n_items; i += stride) {
        unsigned char* item = data + i * itemsize;
        if (itemsize == 2) {
            unsigned short v = *(unsigned short*)item;
            *(unsigned short*)item = (unsigned short)((v >> 8) | (v << 8));
        } else if (itemsize == 4) {
            unsigned int v = *(unsigned int*)item;
            *(unsigned int*)item = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u)
                                   | (v << 24);
        } else {
            for (int k = 0; k < itemsize / 2; ++k) {
                unsigned char t = item[k];
                item[k] = item[itemsize - 1 - k];
                item[itemsize - 1 - k] = t;
            }
        }
    }
}
