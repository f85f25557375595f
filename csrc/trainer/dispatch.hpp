// Runtime dispatch of the hot loops by CPU features (GCC/clang function
// multi-versioning: one compiled version per instruction set, chosen once when
// the library loads through an ELF ifunc). The build stays portable (no
// -march=native); elsewhere (non-x86, no ifunc) there is one baseline version.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && defined(__ELF__) && defined(__GNUC__)
#define EVOZERO_MULTIVERSIONING 1
// For loops the compiler vectorizes by itself: the same body compiled three
// times. "fma" (which implies AVX) rather than "avx2": these float loops need
// 256-bit vectors and fused multiply-add, which -mavx2 alone does not enable.
#define EVOZERO_TARGET_CLONES __attribute__((target_clones("avx512f", "fma", "default")))
#else
#define EVOZERO_MULTIVERSIONING 0
#define EVOZERO_TARGET_CLONES
#endif
