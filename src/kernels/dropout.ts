// Inverted dropout with a GPU counter-based mask (shaders/dropout.wgsl, RNG in shaders/lib/philox.wgsl).
//
// mask[i] = 1 with probability 1 - p, decided by Philox-4x32-10 of (seed, i) with integer arithmetic
// only: the same seed gives the same mask on any adapter, and the backward pass regenerates the mask
// from the seed instead of keeping it in memory.
import { f32, type Engine } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';
import { forEachSplit } from './batch-split.js';

const WG = 256;

/** Drop threshold on a random u32: kept when the word is >= round(p * 2^32) (so P(keep) = 1 - p up to 2^-32). */
function threshold(p: number): number {
  return Math.min(Math.round(p * 2 ** 32), 2 ** 32 - 1);
}

function checkArgs(op: string, p: number, seed: number): void {
  if (!(p >= 0 && p < 1)) throw new RangeError(`${op}: drop probability p = ${p} is not in [0, 1)`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`${op}: seed ${seed} is not an integer in [0, 2^53)`);
}

/** The Philox key words (low, high 32 bits of the seed). */
function seedWords(seed: number): [number, number] {
  return [seed % 2 ** 32 >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}

function applyMask(a: DeviceTensor, p: number, seed: number, op: string): DeviceTensor {
  checkArgs(op, p, seed);
  if (a.dtype !== 'f32') throw new ShapeError(`${op}: expected an f32 tensor, got ${a.dtype} ${JSON.stringify(a.shape)}`);
  const e = a.engine;
  const out = e.empty(a.shape);
  if (p === 0) {
    e.copy(a, out); // nothing is dropped and the scale is 1
    return out;
  }
  const [lo, hi] = seedWords(seed);
  const label = `${op} ${JSON.stringify(a.shape)} p=${p}`;
  // A tensor over one binding runs in ranges of whole Philox blocks (4 elements), each told its first block.
  const operands = [{ tensor: out, name: 'out', unit: 1, output: true }, { tensor: a, name: 'a', unit: 1 }];
  forEachSplit(e, label, a.size, operands, (r, [outs, as]) => {
    e.dispatch({
      shader: 'dropout',
      entry: 'apply',
      uniforms: [r.count, threshold(p), lo, hi, f32(1 / (1 - p)), r.start / 4],
      bindings: [outs, as],
      workgroups: e.grid(Math.ceil(r.count / 4), WG),
      label,
    });
  }, { granule: 4, unitName: 'element' });
  return out;
}

/** y = x * mask / (1 - p). p in [0, 1); p = 0 is a copy. */
export function dropoutForward(x: DeviceTensor, p: number, seed: number): DeviceTensor {
  return applyMask(x, p, seed, 'dropout.forward');
}

/** dx = dy * mask / (1 - p), with the mask regenerated from the forward's seed. */
export function dropoutBackward(dy: DeviceTensor, p: number, seed: number): DeviceTensor {
  return applyMask(dy, p, seed, 'dropout.backward');
}

/** The 0/1 keep mask that dropoutForward(x, p, seed) uses for a tensor of `shape`. */
export function dropoutMask(engine: Engine, shape: readonly number[], p: number, seed: number): DeviceTensor {
  checkArgs('dropout.mask', p, seed);
  const m = engine.empty(shape);
  const [lo, hi] = seedWords(seed);
  engine.dispatch({
    shader: 'dropout',
    entry: 'mask',
    uniforms: [m.size, threshold(p), lo, hi, f32(1), 0],
    bindings: [m],
    workgroups: engine.grid(Math.ceil(m.size / 4), WG),
    label: `dropout.mask ${JSON.stringify(shape)} p=${p}`,
  });
  return m;
}

export const dropoutForwardOp = defineOp<typeof dropoutForward>('dropout.forward');
dropoutForwardOp.register('philox', dropoutForward, {
  description: 'inverted dropout, mask from Philox-4x32-10 of (seed, index); 4 elements per invocation',
});
export const dropoutBackwardOp = defineOp<typeof dropoutBackward>('dropout.backward');
dropoutBackwardOp.register('philox', dropoutBackward, {
  description: 'regenerates the forward mask from the seed; dx = dy * mask / (1 - p)',
});
