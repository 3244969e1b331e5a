// The worked example of README.md "Kernels and variants": a new 'linear.forward' variant registered in
// one place. The registration below is the README's code (keep the two in step); the test checks that
// the registry lists it (so dense.test.ts and the benchmarks would pick it up) and that it matches the
// float64 reference on the awkward shapes dense.test.ts uses. Tolerance: relative error 1e-4 (float32
// sums of up to 5000 products of values in [-1, 1)), as in dense.test.ts.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { linearForward, linearForwardOp } from '../src/kernels/dense.js';
import { matmulTiled } from '../src/kernels/matmul.js';
import type { ActivationName } from '../src/kernels/reference/activation.js';
import { linearForwardRef } from '../src/kernels/reference/dense.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

// ---- README example (begin)
// y = act(x w^T + b) as one matmul on the shared-memory tiled GEMM core, reading w [out, in] transposed.
// The descriptor types the function: (x, w, b, opts?) => DeviceTensor, checked by linearForwardOp's check.
linearForwardOp.register('tiled-transB', (x, w, b, opts = {}) => matmulTiled(x, w, { transB: true, bias: b, activation: opts.activation, slope: opts.slope }), {
  description: 'dense forward as matmul(x, w^T) on the tiled GEMM core',
});
// ---- README example (end)

const TOL = 1e-4;
let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const cases: [number, number, number, ActivationName?][] = [
  [1, 1, 1],
  [3, 7, 5, 'relu'],
  [7, 33, 65, 'leakyRelu'],
  [65, 17, 1, 'sigmoid'],
  [2, 5000, 3, 'relu'],
];

describe('README variant example (linear.forward tiled-transB)', () => {
  it("is the code of the README's example", () => {
    const self = readFileSync('test/variant-example.test.ts', 'utf8');
    const begin = '// ---- README example (begin)\n';
    const block = self.slice(self.indexOf(begin) + begin.length, self.indexOf('// ---- README example (end)'));
    expect(block.length).toBeGreaterThan(100);
    expect(readFileSync('README.md', 'utf8')).toContain(block);
  });

  it('is registered beside the built-in variants', () => {
    expect(linearForwardOp.variants()).toContain('tiled-transB');
    expect(linearForwardOp.variants().length).toBeGreaterThan(1);
  });

  for (const [n, inF, outF, act] of cases) {
    it(`matches the reference: x [${n}, ${inF}] -> ${outF}${act ? ` ${act}` : ''}`, async () => {
      const r = rng(n * 1000 + inF * 10 + outF);
      const x = randArray(r, n * inF);
      const w = randArray(r, outF * inF);
      const b = randArray(r, outF);
      const [xt, wt, bt] = [engine.fromArray(x, [n, inF]), engine.fromArray(w, [outF, inF]), engine.fromArray(b, [outF])];
      const y = linearForwardOp.get(engine, 'tiled-transB')(xt, wt, bt, { activation: act, slope: 0.2 });
      expect(y.shape).toEqual([n, outF]);
      expectClose(await y.toArray(), linearForwardRef(x, w, b, n, inF, outF, act ?? 'none', 0.2), TOL, 'y');
      // Forced for every call: the public entry point runs it too.
      const y0 = linearForwardOp.withVariant('tiled-transB', () => linearForward(xt, wt, null));
      expectClose(await y0.toArray(), linearForwardRef(x, w, null, n, inF, outF), TOL, 'y (no bias)');
      // The op's check runs before the variant: bad shapes give the op's ShapeError.
      expect(() => linearForwardOp.get(engine, 'tiled-transB')(xt, engine.zeros([outF, inF + 1]), null)).toThrow(/linear\.forward.*in_features/);
      for (const t of [xt, wt, bt, y, y0]) t.dispose();
    });
  }
});
