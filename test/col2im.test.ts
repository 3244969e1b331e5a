// col2im (src/kernels/col2im.ts, shaders/col2im.wgsl) against the float64 reference
// (src/kernels/reference/col2im.ts), and the conv input gradient's column form that uses it.
//
// Tolerance: relative error (max |diff| / max |expected|) <= 1e-5 for col2im (a sum of at most a few
// float32 values); the conv ops' column form is checked against their references in conv2d.test.ts,
// conv-transpose2d.test.ts and activation-gate.test.ts; here, that it is the form that runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DispatchSpec, Engine } from '../src/gpu/engine.js';
import { col2im } from '../src/kernels/col2im.js';
import { columnForm, conv2dBackwardInput } from '../src/kernels/conv2d.js';
import { convTranspose2dForward } from '../src/kernels/conv-transpose2d.js';
import type { ConvGeometry } from '../src/kernels/matmul.js';
import type { Activation } from '../src/kernels/activation.js';
import { col2imRef } from '../src/kernels/reference/col2im.js';
import { convOutSize } from '../src/kernels/reference/conv2d.js';
import { convTranspose2dRef } from '../src/kernels/reference/conv-transpose2d.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const TOL = 1e-5;
/** Geometry of the forward conv x [n, xc, xh, xw] -> y (the columns' pixels). */
function geometry(n: number, xc: number, xh: number, xw: number, k: [number, number], s: [number, number], p: [number, number]): ConvGeometry {
  const [yh, yw] = convOutSize(xh, xw, k[0], k[1], { stride: s, padding: p });
  return { nimg: n, xc, xh, xw, yc: 0, yh, yw, kh: k[0], kw: k[1], sh: s[0], sw: s[1], ph: p[0], pw: p[1] };
}

// DCGAN's k4 s2 p1; an asymmetric kernel, stride and padding; a stride larger than the kernel (pixels no
// column reaches get only the bias); one image of 3 channels with odd sizes.
const cases: { g: ConvGeometry; act: Activation; bias: boolean }[] = [
  { g: geometry(2, 1, 8, 6, [4, 4], [2, 2], [1, 1]), act: 'tanh', bias: true },
  { g: geometry(1, 2, 7, 9, [3, 4], [2, 1], [1, 2]), act: 'none', bias: false },
  { g: geometry(3, 2, 9, 8, [2, 2], [3, 3], [0, 0]), act: 'leakyRelu', bias: true },
  { g: geometry(1, 3, 5, 7, [3, 3], [1, 1], [1, 1]), act: 'sigmoid', bias: true },
];

describe('col2im', () => {
  cases.forEach(({ g, act, bias }, i) => {
    it(`x [${g.nimg}, ${g.xc}, ${g.xh}, ${g.xw}] k${g.kh}x${g.kw} s${g.sh},${g.sw} p${g.ph},${g.pw} ${act}${bias ? ' bias' : ''}`, async () => {
      const r = rng(900 + i);
      const colShape = [g.nimg, g.xc * g.kh * g.kw, g.yh, g.yw];
      const colData = randArray(r, colShape.reduce((a, b) => a * b, 1));
      const biasData = randArray(r, g.xc);
      const cols = engine.fromArray(colData, colShape);
      const b = bias ? engine.fromArray(biasData, [g.xc]) : null;
      // Poisoned: every element must be written.
      const o = engine.fromArray(new Float32Array(g.nimg * g.xc * g.xh * g.xw).fill(NaN), [g.nimg, g.xc, g.xh, g.xw]);
      col2im(cols, o, g, b, { activation: act, slope: 0.2 }, 'col2im test');
      expectClose(await o.toArray(), col2imRef(colData, g, bias ? biasData : null, act, 0.2), TOL, 'out');
      for (const t of [cols, b, o]) t?.dispose();
    });
  });

  it('rejects columns of the wrong shape', () => {
    const g = cases[0].g;
    const cols = engine.empty([g.nimg, 3, g.yh, g.yw]);
    const o = engine.empty([g.nimg, g.xc, g.xh, g.xw]);
    expect(() => col2im(cols, o, g, null, {}, 'bad')).toThrow(/columns \[2,3,4,3\] must be \[2,16,4,3\]/);
    cols.dispose();
    o.dispose();
  });
});

describe('the conv input gradient in column form', () => {
  /** Labels of the dispatches `fn` records. */
  function labels(fn: () => void): string[] {
    const seen: string[] = [];
    const dispatch = engine.dispatch.bind(engine);
    engine.dispatch = (spec: DispatchSpec) => {
      seen.push(spec.label ?? '');
      dispatch(spec);
    };
    try {
      fn();
    } finally {
      engine.dispatch = dispatch;
    }
    return seen;
  }

  it('runs for a 1-channel conv-transpose forward from 16 channels and equals the phase GEMM', async () => {
    const r = rng(950);
    const [xs, ws] = [[2, 16, 5, 4], [16, 1, 4, 4]];
    const xd = randArray(r, 2 * 16 * 5 * 4);
    const wd = randArray(r, 16 * 16);
    const bd = randArray(r, 1);
    const [x, w, b] = [engine.fromArray(xd, xs), engine.fromArray(wd, ws), engine.fromArray(bd, [1])];
    const p = { stride: [2, 2] as [number, number], padding: [1, 1] as [number, number], activation: 'tanh' as const };
    let yCol = x;
    expect(labels(() => (yCol = convTranspose2dForward(x, w, b, p))).some((l) => l.endsWith('(col2im)'))).toBe(true);
    const defaultYPerX = columnForm.yPerX;
    columnForm.yPerX = Infinity;
    let yPhase = x;
    try {
      expect(labels(() => (yPhase = convTranspose2dForward(x, w, b, p))).some((l) => l.includes('col2im'))).toBe(false);
    } finally {
      columnForm.yPerX = defaultYPerX;
    }
    const expected = convTranspose2dRef(xd, xs, wd, ws, bd, p, 'tanh');
    expectClose(await yCol.toArray(), expected, 1e-4, 'column form');
    expectClose(await yPhase.toArray(), expected, 1e-4, 'phase GEMM');
    for (const t of [x, w, b, yCol, yPhase]) t.dispose();
  });

  it('is not used where the input has as many channels as 1/8 of the output or more', () => {
    const dy = engine.fromArray(randArray(rng(951), 2 * 15 * 4 * 4), [2, 15, 4, 4]);
    const w = engine.fromArray(randArray(rng(952), 15 * 2 * 16), [15, 2, 4, 4]);
    const seen = labels(() => conv2dBackwardInput(dy, w, [2, 2, 8, 8], { stride: [2, 2], padding: [1, 1] }).dispose());
    expect(seen.some((l) => l.includes('col2im'))).toBe(false);
    dy.dispose();
    w.dispose();
  });
});
