// Runs before every test file (vitest `setupFiles`): registers every kernel family through the kernel
// index, so tests that iterate `kernels.variants(op)` see each variant wherever it is registered, not
// only those of the family files the test happens to import.
import '../src/kernels/index.js';
