// Test helpers shared by the GEMM-family tests (matmul, dense, conv2d, conv-transpose2d).
import { afterAll, beforeAll } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { hasSubgroups } from '../src/kernels/matmul.js';
import { kernels } from '../src/kernels/registry.js';

/** A poisoned test engine with the 'subgroups' feature when the adapter offers it (the '*-subgroup' variants then run their subgroup kernel). */
export function subgroupTestEngine(): Promise<Engine> {
  return Engine.create({ poisonAllocations: true, subgroups: true });
}

/** A poisoned test engine without subgroups: the '*-subgroup' variants take their fallback path. */
export function plainTestEngine(): Promise<Engine> {
  return Engine.create({ poisonAllocations: true, subgroups: false });
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

/**
 * Creates the plain and the subgroup test engines before a file's tests (handing them to `set`) and
 * destroys them after; returns the engine of a DeviceKind.
 */
export function gemmTestEngines(set: (plain: Engine, subgroups: Engine) => void): (d: DeviceKind) => Engine {
  let plain: Engine;
  let subgroups: Engine;
  beforeAll(async () => {
    plain = await plainTestEngine();
    subgroups = await subgroupTestEngine();
    set(plain, subgroups);
  });
  afterAll(() => {
    plain?.destroy();
    subgroups?.destroy();
  });
  return (d) => (d === 'default' ? plain : subgroups);
}
