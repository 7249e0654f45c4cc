#ifndef MECHA_CFUZZERDRIVER_H
#define MECHA_CFUZZERDRIVER_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver, linked in by -sanitize=fuzzer: runs the fuzzing loop with the given
// command line and calls the callback with each input.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
