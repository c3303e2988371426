#ifndef SEXTANT_CFUZZDRIVER_H
#define SEXTANT_CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for programs that provide their own `main` (LLVM ≥ 12).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
