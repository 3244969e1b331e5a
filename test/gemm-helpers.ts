// Test helpers shared by the GEMM-family tests (matmul, dense, conv2d, conv-transpose2d).
import type { Engine } from '../src/gpu/engine.js';
import { hasSubgroups } from '../src/kernels/matmul.js';
import { kernels } from '../src/kernels/registry.js';
import { testEngine } from './helpers.js';

/**
 * A poisoned test engine whose device has the 'subgroups' feature when the adapter offers it.
 * Engine.create() does not request that feature, so requestDevice is wrapped while the engine is made;
 * the '*-subgroup' variants then run their subgroup kernel (shaders/matmul_subgroups.wgsl) there.
 */
export async function subgroupTestEngine(): Promise<Engine> {
  const proto = (globalThis as unknown as { GPUAdapter: { prototype: GPUAdapter } }).GPUAdapter.prototype;
  const original = proto.requestDevice;
  proto.requestDevice = function (this: GPUAdapter, d?: GPUDeviceDescriptor) {
    const extra: GPUFeatureName[] = this.features.has('subgroups') ? ['subgroups'] : [];
    return original.call(this, { ...d, requiredFeatures: [...(d?.requiredFeatures ?? []), ...extra] });
  };
  try {
    return await testEngine();
  } finally {
    proto.requestDevice = original;
  }
}

export type DeviceKind = 'default' | 'subgroups';

/**
 * (variant, device) pairs to test an op with: every variant on the default test engine, and the
 * subgroup variants again on a device with subgroups (where they run their own kernel).
 */
export function variantRuns(op: string): [string, DeviceKind][] {
  const all = kernels.variants(op);
  return [...all.map((v): [string, DeviceKind] => [v, 'default']), ...all.filter((v) => v.includes('subgroup')).map((v): [string, DeviceKind] => [v, 'subgroups'])];
}

/** Notes in a test name whether the subgroup kernel really ran. */
export function describeDevice(e: Engine): string {
  return hasSubgroups(e) ? 'with subgroups' : 'without subgroups';
}
