// A sample's dense-layer output must not depend on the batch it is computed in: the Inspector batches
// concurrent callers, and an image's score (and so its decision at the threshold) must be the same
// whether it was inspected alone or with 31 others. The tolerance is zero: bit-identical rows.
//
// Each GEMM core sums k in order; only the K split (split-K partial sums) could change with the batch
// size, so linear.forward marks x's rows as the batch (GemmProblem.batchDim) and the split is chosen
// from the layer's shape and the adapter alone (batchInvariantSplits in src/kernels/matmul.ts).
import { describe, expect, it } from 'vitest';
import { DefectClassifier } from '../src/cnn/model.js';
import type { Engine } from '../src/gpu/engine.js';
import { linearForward, linearForwardOp } from '../src/kernels/dense.js';
import { linearForwardRef } from '../src/kernels/reference/dense.js';
import { noGrad } from '../src/nn/tensor.js';
import { describeDevice, variantRuns, gemmTestEngines, type DeviceKind } from './gemm-helpers.js';
import { randArray, relErr, rng } from './helpers.js';

let engine: Engine;
let sgEngine: Engine;
const engineFor = gemmTestEngines((plain, subgroups) => ([engine, sgEngine] = [plain, subgroups]));

const BATCHES = [1, 2, 3, 5, 16, 17, 33, 100];
// [in, out]: a long reduction with few outputs (split K), a vec4-friendly square layer, an input width
// that is not a multiple of 4 (no vec4 reads), a single output (the binary head).
const LAYERS: [number, number][] = [
  [1200, 10],
  [256, 200],
  [37, 24],
  [512, 1],
];

/** The first `rows` rows of y = x w^T + b for x = the first rows of a fixed 100-row input. */
async function rowsOf(e: Engine, variant: string | undefined, x: Float32Array, w: Float32Array, b: Float32Array, inF: number, outF: number, rows: number) {
  const xt = e.fromArray(x.subarray(0, rows * inF), [rows, inF]);
  const wt = e.fromArray(w, [outF, inF]);
  const bt = e.fromArray(b, [outF]);
  const run = () => linearForward(xt, wt, bt);
  const y = variant ? linearForwardOp.withVariant(variant, run) : run();
  const out = (await y.toArray()) as Float32Array;
  for (const t of [xt, wt, bt, y]) t.dispose();
  return out;
}

describe('linear.forward: a row does not depend on the batch size', () => {
  const runs: [string | undefined, DeviceKind][] = [[undefined, 'default'], [undefined, 'subgroups'], ...variantRuns('linear.forward')];
  for (const [variant, device] of runs)
    for (const [inF, outF] of LAYERS)
      it(`${variant ?? 'default choice'} (${device}), in ${inF}, out ${outF}`, async () => {
        const e = engineFor(device);
        const r = rng(inF * 7 + outF);
        const x = randArray(r, 100 * inF);
        const w = randArray(r, outF * inF, 0.1);
        const b = randArray(r, outF);
        const all = await rowsOf(e, variant, x, w, b, inF, outF, 100);
        // Values are right (against the float64 reference; float32 sums of <= 1200 products: 1e-4).
        expect(relErr(all, linearForwardRef(x, w, b, 100, inF, outF))).toBeLessThan(1e-4);
        for (const n of BATCHES) {
          const part = await rowsOf(e, variant, x, w, b, inF, outF, n);
          let same = true;
          for (let i = 0; i < part.length; i++) if (!Object.is(part[i], all[i])) same = false;
          expect(same, `batch ${n} vs 100 rows, ${describeDevice(e)}`).toBe(true);
        }
      });
});

describe('a classifier: an image scores the same alone and in a batch', () => {
  it.each(['default', 'subgroups'] as DeviceKind[])('seed CNN, 64x64 (%s)', async (device) => {
    const e = engineFor(device);
    const model = new DefectClassifier({ task: 'multiclass', classes: ['a', 'b', 'c'], inputSize: 64 }, e);
    model.eval();
    const px = randArray(rng(5), 33 * 64 * 64, 0.5).map((v) => v + 0.5);
    const logits = async (n: number) => {
      const x = model.inputTensor(px.subarray(0, n * 64 * 64), n);
      const y = noGrad(() => e.tidy(() => model.logits(x)));
      const a = (await y.toArray()) as Float32Array;
      x.dispose();
      y.dispose();
      return a;
    };
    const all = await logits(33);
    for (const n of [1, 2, 7, 32]) {
      const part = await logits(n);
      expect(Array.from(part), `batch ${n}`).toEqual(Array.from(all.subarray(0, part.length)));
    }
    model.dispose();
  });
});
