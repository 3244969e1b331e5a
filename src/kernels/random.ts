// Seeded random fills on the GPU (shaders/random.wgsl) from the counter-based Philox-4x32-10 generator
// that dropout uses (shaders/lib/philox.wgsl): element i depends only on (seed, i).
import { f32, type Engine } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { defineOp } from './registry.js';

const WG = 256;

function fill(engine: Engine, shape: readonly number[], seed: number, entry: string, a: number, b: number, op: string): DeviceTensor {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`${op}: seed ${seed} is not an integer in [0, 2^53)`);
  if (!Number.isFinite(a) || !Number.isFinite(b)) throw new RangeError(`${op}: parameters must be finite (got ${a}, ${b})`);
  const t = engine.empty(shape);
  engine.dispatch({
    shader: 'random',
    entry,
    uniforms: [t.size, seed % 2 ** 32 >>> 0, Math.floor(seed / 2 ** 32) >>> 0, f32(a), f32(b)],
    bindings: [t],
    workgroups: engine.grid(Math.ceil(t.size / 4), WG),
    label: `${op} ${JSON.stringify(shape)}`,
  });
  return t;
}

/** Uniform values in [lo, hi) (24-bit resolution). Same seed, same values. */
export function randomUniform(engine: Engine, shape: readonly number[], seed: number, lo = 0, hi = 1): DeviceTensor {
  return fill(engine, shape, seed, 'uniform_fill', lo, hi - lo, 'random.uniform');
}

/** Normal values (Box-Muller); |z| <= 5.77 std since the uniforms have 24 bits. Same seed, same values. */
export function randomNormal(engine: Engine, shape: readonly number[], seed: number, mean = 0, std = 1): DeviceTensor {
  return fill(engine, shape, seed, 'normal_fill', mean, std, 'random.normal');
}

export const randomUniformOp = defineOp<typeof randomUniform>('random.uniform');
randomUniformOp.register('philox', randomUniform, {
  description: 'Philox-4x32-10 of (seed, index), top 24 bits scaled to [lo, hi); 4 elements per invocation',
});
export const randomNormalOp = defineOp<typeof randomNormal>('random.normal');
randomNormalOp.register('philox', randomNormal, {
  description: 'Box-Muller on Philox-4x32-10 word pairs; 4 elements per invocation',
});
