"""The bridge to the C++ core (:mod:`evozero._core`): programs compiled to instruction
arrays, the native interpreter, training runs and the batched MinAtar games."""
