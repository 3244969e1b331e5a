// wgsl-nn: public API.
export { Engine, f32, i32, formatBytes, type EngineOptions, type AdapterDescription, type DispatchSpec } from './gpu/engine.js';
export { DeviceTensor, type DType } from './gpu/device-tensor.js';
export * from './gpu/errors.js';
export type { MemoryStats } from './gpu/buffer-pool.js';
export { kernels, KernelRegistry } from './kernels/registry.js';
export * from './nn/index.js';
