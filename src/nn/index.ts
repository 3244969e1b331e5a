// The autograd layer: tensors with a tape (tensor.ts), differentiable ops (functional.ts), modules
// (modules.ts), optimizers (optim.ts) and PyTorch-compatible weights (serialize.ts).
export * from './tensor.js';
export { tidy, keep, type Disposable } from './scope.js';
export * as F from './functional.js';
export * as nn from './modules.js';
export * as optim from './optim.js';
export { manualSeed } from './seed.js';
export { WeightAverage } from './ema.js';
export { save, load, readSafetensors, writeSafetensors, SafetensorsError } from './serialize.js';
