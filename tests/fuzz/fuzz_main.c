/* SPDX-License-Identifier: MIT */
/* A main for the fuzz targets when libFuzzer is not there: runs the target
 * once on every file named on the command line (the seed corpus), so the
 * targets build and run in every configuration of the test suite. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int ran = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        static uint8_t buf[1 << 20];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        ran++;
    }
    printf("%d inputs\n%d passed, 0 failed\n", ran, ran);
    return 0;
}
