// Kernel cases: one op called on one shape, with deterministic inputs, as the benchmark suite
// (bench/cases.ts, bench/run.ts), the peers (bench/tfjs.ts, bench/torch_peer.py) and the autotuner
// (bench/tuner.ts) call it. `opCases` builds the cases of each op family.
import type { Engine } from '../src/gpu/engine.js';
import { DeviceTensor } from '../src/gpu/device-tensor.js';
import { kernels, type KernelFn } from '../src/kernels/registry.js';
import '../src/kernels/index.js';
import { maxPool2dForwardOp, type Pool2dParams } from '../src/kernels/maxpool2d.js';

/** Inputs of one case allocated on an engine, and how to call a variant of the op on them. */
export interface PreparedCase {
  /** Calls the kernel once; returns the tensors it created (the caller disposes them). */
  run(fn: KernelFn): DeviceTensor[];
  /** Tensors the kernel updates in place (compared between variants, not disposed by the caller). */
  inPlace: DeviceTensor[];
  /** Frees the inputs. */
  dispose(): void;
}

export interface InputSpec {
  name: string;
  shape: number[];
  seed: number;
  lo: number;
  hi: number;
}

/** One op called on one shape. */
export interface KernelCase {
  /** Registry op name, e.g. 'conv2d.forward'. */
  op: string;
  /** The shapes, e.g. 'x [32,1,64,64] w [32,1,3,3] s1 p0'. */
  shape: string;
  /** Floating-point operations per call (for GFLOP/s), for compute-bound kernels. */
  flops?: number;
  /** Nominal bytes read and written per call (for GB/s), for memory-bound kernels. */
  bytes?: number;
  /** Sizes the case was built from (used by bench/tfjs.ts to build the same case in TensorFlow.js). */
  params: Record<string, number>;
  /** The generated inputs (regenerate one with caseData(size, seed, lo, hi)), when the case has plain inputs. */
  inputs?: InputSpec[];
  /** Allocates the inputs (deterministic pseudo-random data, see caseData). */
  prepare(engine: Engine): PreparedCase;
}

/**
 * Deterministic pseudo-random values in [lo, hi) (mulberry32 stream seeded by `seed`), so every variant,
 * run and framework sees the same inputs.
 */
export function caseData(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let a = (seed * 0x9e3779b9) >>> 0;
  const span = hi - lo;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + span * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const sh = (s: readonly number[]) => `[${s.join(',')}]`;

/** The DeviceTensors in a kernel's result (a tensor, an object of tensors, or nothing for in-place ops). */
export function resultTensors(result: unknown): DeviceTensor[] {
  if (result instanceof DeviceTensor) return [result];
  if (Array.isArray(result)) return result.filter((t): t is DeviceTensor => t instanceof DeviceTensor);
  if (result && typeof result === 'object')
    return Object.values(result).filter((t): t is DeviceTensor => t instanceof DeviceTensor);
  return [];
}

/**
 * Builds a case whose inputs are `inputs` (name -> shape and value range) and whose call is `call`.
 * Inputs are allocated on prepare() and freed by dispose().
 */
function simpleCase(
  op: string,
  shape: string,
  params: Record<string, number>,
  inputs: Record<string, { shape: number[]; lo?: number; hi?: number }>,
  call: (fn: KernelFn, t: Record<string, DeviceTensor>) => unknown,
  cost: { flops?: number; bytes?: number },
  inPlace: string[] = [],
): KernelCase {
  const specs: InputSpec[] = Object.entries(inputs).map(([name, s], i) => ({ name, shape: s.shape, seed: i + 1, lo: s.lo ?? -1, hi: s.hi ?? 1 }));
  return {
    op,
    shape,
    params,
    inputs: specs,
    ...cost,
    prepare(engine) {
      const t: Record<string, DeviceTensor> = {};
      for (const s of specs) t[s.name] = engine.fromArray(caseData(prod(s.shape), s.seed, s.lo, s.hi), s.shape);
      return {
        run: (fn) => resultTensors(call(fn, t)).filter((r) => !Object.values(t).includes(r)),
        inPlace: inPlace.map((n) => t[n]),
        dispose: () => Object.values(t).forEach((x) => x.dispose()),
      };
    },
  };
}

/** Output size of a convolution along one axis. */
const convOut = (h: number, k: number, s: number, p: number) => Math.floor((h + 2 * p - k) / s) + 1;

/** Builders of the op cases used by autotune and by the benchmark suite. */
export const opCases = {
  /** conv2d forward (with bias and ReLU, as the seed CNN), backwardInput and backwardWeight. */
  conv2d(n: number, c: number, o: number, h: number, w: number, k: number, s = 1, p = 0): KernelCase[] {
    const ho = convOut(h, k, s, p);
    const wo = convOut(w, k, s, p);
    const params = { n, c, o, h, w, k, s, p, ho, wo };
    const flops = 2 * n * o * ho * wo * c * k * k;
    const geo = { stride: [s, s], padding: [p, p] };
    const xS = [n, c, h, w];
    const wS = [o, c, k, k];
    const yS = [n, o, ho, wo];
    const desc = `x ${sh(xS)} w ${sh(wS)} s${s} p${p}`;
    return [
      simpleCase('conv2d.forward', desc, params, { x: { shape: xS }, w: { shape: wS }, b: { shape: [o] } },
        (fn, t) => fn(t.x, t.w, t.b, { ...geo, activation: 'relu' }), { flops }),
      simpleCase('conv2d.backwardInput', desc, params, { dy: { shape: yS }, w: { shape: wS } },
        (fn, t) => fn(t.dy, t.w, xS, geo), { flops }),
      simpleCase('conv2d.backwardWeight', desc, params, { x: { shape: xS }, dy: { shape: yS } },
        (fn, t) => fn(t.x, t.dy, wS, geo), { flops }),
    ];
  },

  /** conv-transpose2d forward (bias, no activation), backwardInput, backwardWeight; w [Cin, Cout, k, k]. */
  convTranspose2d(n: number, ci: number, co: number, h: number, w: number, k: number, s: number, p: number): KernelCase[] {
    const ho = (h - 1) * s - 2 * p + k;
    const wo = (w - 1) * s - 2 * p + k;
    const params = { n, ci, co, h, w, k, s, p, ho, wo };
    const flops = 2 * n * ci * co * h * w * k * k;
    const geo = { stride: [s, s], padding: [p, p] };
    const xS = [n, ci, h, w];
    const wS = [ci, co, k, k];
    const yS = [n, co, ho, wo];
    const desc = `x ${sh(xS)} w ${sh(wS)} -> ${sh(yS)} s${s} p${p}`;
    return [
      simpleCase('convTranspose2d.forward', desc, params, { x: { shape: xS }, w: { shape: wS }, b: { shape: [co] } },
        (fn, t) => fn(t.x, t.w, t.b, geo), { flops }),
      simpleCase('convTranspose2d.backwardInput', desc, params, { dy: { shape: yS }, w: { shape: wS } },
        (fn, t) => fn(t.dy, t.w, xS, geo), { flops }),
      simpleCase('convTranspose2d.backwardWeight', desc, params, { x: { shape: xS }, dy: { shape: yS } },
        (fn, t) => fn(t.x, t.dy, wS, geo), { flops }),
    ];
  },

  /** Dense layer y = relu(x w^T + b), w [out, in], and both gradients. */
  linear(n: number, inF: number, outF: number): KernelCase[] {
    const params = { n, in: inF, out: outF };
    const flops = 2 * n * inF * outF;
    const desc = `x [${n},${inF}] w [${outF},${inF}]`;
    return [
      simpleCase('linear.forward', desc, params, { x: { shape: [n, inF] }, w: { shape: [outF, inF] }, b: { shape: [outF] } },
        (fn, t) => fn(t.x, t.w, t.b, { activation: 'relu' }), { flops }),
      simpleCase('linear.backwardInput', desc, params, { dy: { shape: [n, outF] }, w: { shape: [outF, inF] } },
        (fn, t) => fn(t.dy, t.w), { flops }),
      simpleCase('linear.backwardWeight', desc, params, { x: { shape: [n, inF] }, dy: { shape: [n, outF] } },
        (fn, t) => fn(t.x, t.dy), { flops }),
    ];
  },

  /** C [m,n] = A [m,k] B [k,n]. */
  matmul(m: number, n: number, k: number): KernelCase {
    return simpleCase('matmul', `[${m},${k}] x [${k},${n}]`, { m, n, k }, { a: { shape: [m, k] }, b: { shape: [k, n] } },
      (fn, t) => fn(t.a, t.b), { flops: 2 * m * n * k });
  },

  /** Max-pool forward (y and i32 argmax) and backward (gather into dx). */
  maxPool2d(shape: number[], k: number, s: number): KernelCase[] {
    const [n, c, h, w] = shape;
    const yS = [n, c, convOut(h, k, s, 0), convOut(w, k, s, 0)];
    const pool: Pool2dParams = { kernel: [k, k], stride: [s, s] };
    const desc = `x ${sh(shape)} k${k} s${s}`;
    const params = { n, c, h, w, k, s };
    const backward: KernelCase = {
      op: 'maxPool2d.backward',
      shape: desc,
      params,
      bytes: 4 * (prod(shape) + 2 * prod(yS)), // dx written; dy and argmax read
      prepare(engine) {
        const x = engine.fromArray(caseData(prod(shape), 1), shape);
        const dy = engine.fromArray(caseData(prod(yS), 2), yS);
        // argmax from the first registered forward (the same for every backward variant).
        const fwd = maxPool2dForwardOp.get(engine, maxPool2dForwardOp.variants()[0]);
        const { y, argmax } = fwd(x, pool);
        y.dispose();
        x.dispose();
        return {
          run: (fn) => resultTensors(fn(dy, argmax, shape, pool)),
          inPlace: [],
          dispose: () => {
            dy.dispose();
            argmax.dispose();
          },
        };
      },
    };
    return [
      simpleCase('maxPool2d.forward', desc, params, { x: { shape } }, (fn, t) => fn(t.x, pool), {
        bytes: 4 * (prod(shape) + 2 * prod(yS)), // x read; y and argmax written
      }),
      backward,
    ];
  },

  /** Nearest-neighbour upsampling by s (forward: gather copy; backward: s x s block sums). */
  upsampleNearest2d(shape: number[], s: number): KernelCase[] {
    const [n, c, h, w] = shape;
    const yS = [n, c, h * s, w * s];
    const desc = `x ${sh(shape)} x${s}`;
    const params = { n, c, h, w, s };
    const bytes = 4 * (prod(shape) + prod(yS)); // one read and one write of each element
    return [
      simpleCase('upsampleNearest2d.forward', desc, params, { x: { shape } }, (fn, t) => fn(t.x, s), { bytes }),
      simpleCase('upsampleNearest2d.backward', desc, params, { dy: { shape: yS } }, (fn, t) => fn(t.dy, shape, s), { bytes }),
    ];
  },

  /** Row softmax forward and backward of [rows, cols]. */
  softmax(rows: number, cols: number): KernelCase[] {
    const n = rows * cols;
    const desc = `[${rows},${cols}]`;
    return [
      simpleCase('softmax.forward', desc, { rows, cols }, { x: { shape: [rows, cols], lo: -4, hi: 4 } }, (fn, t) => fn(t.x), {
        bytes: 8 * n,
      }),
      simpleCase('softmax.backward', desc, { rows, cols }, { y: { shape: [rows, cols], lo: 0, hi: 0.01 }, dy: { shape: [rows, cols] } },
        (fn, t) => fn(t.y, t.dy), { bytes: 12 * n }),
    ];
  },

  /**
   * Training-mode batch-norm forward (batch statistics; running statistics updated in place) and
   * backward. Nominal traffic: forward reads x twice (statistics, normalise) and writes y; backward
   * reads x and dy twice (parameter-gradient partials, input gradient) and writes dx.
   */
  batchNorm2d(shape: number[]): KernelCase[] {
    const c = shape[1];
    const n = prod(shape);
    const desc = `x ${sh(shape)}`;
    const params = { n: shape[0], c, h: shape[2], w: shape[3] };
    return [
      simpleCase('batchNorm2d.trainForward', desc, params,
        { x: { shape }, gamma: { shape: [c], lo: 0.5, hi: 1.5 }, beta: { shape: [c] }, rm: { shape: [c] }, rv: { shape: [c], lo: 0.5, hi: 1.5 } },
        (fn, t) => fn(t.x, t.gamma, t.beta, t.rm, t.rv, { momentum: 0.1, eps: 1e-5 }), { bytes: 12 * n }),
      simpleCase('batchNorm2d.backward', desc, params,
        { x: { shape }, dy: { shape }, gamma: { shape: [c], lo: 0.5, hi: 1.5 }, mean: { shape: [c], lo: -0.1, hi: 0.1 }, invStd: { shape: [c], lo: 0.5, hi: 2 } },
        (fn, t) => fn(t.x, t.dy, t.gamma, t.mean, t.invStd), { bytes: 20 * n }),
    ];
  },

  /** Broadcasting elementwise a (op) b. */
  binary(a: number[], b: number[], op: 'add' | 'sub' | 'mul' | 'div' = 'add'): KernelCase {
    return simpleCase('elementwise.binary', `${sh(a)} ${op} ${sh(b)}`, { a: prod(a), b: prod(b) }, { a: { shape: a }, b: { shape: b } },
      (fn, t) => fn(t.a, t.b, op), { bytes: 4 * (2 * prod(a) + prod(b)) });
  },

  /** y = alpha x + beta. */
  scale(shape: number[]): KernelCase {
    return simpleCase('elementwise.scale', sh(shape), { n: prod(shape) }, { x: { shape } }, (fn, t) => fn(t.x, 0.5, 0.25), {
      bytes: 8 * prod(shape),
    });
  },

  /** y = alpha s[0] x with s read on the GPU. */
  scaleByScalar(shape: number[]): KernelCase {
    return simpleCase('elementwise.scaleByScalar', sh(shape), { n: prod(shape) }, { x: { shape }, s: { shape: [1] } },
      (fn, t) => fn(t.x, t.s, 0.5), { bytes: 8 * prod(shape) });
  },

  /** One Adam step (in place) on `n` parameters: reads param, grad, m, v; writes param, m, v. */
  adam(n: number): KernelCase {
    return simpleCase('optim.adam', `${n} parameters`, { n },
      { param: { shape: [n] }, grad: { shape: [n] }, m: { shape: [n], lo: -0.1, hi: 0.1 }, v: { shape: [n], lo: 0, hi: 0.1 } },
      (fn, t) => fn(t.param, t.grad, t.m, t.v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 10 }),
      { bytes: 28 * n }, ['param', 'm', 'v']);
  },

  /** Nearest-neighbour squared distance of n queries to a memory of m vectors, c features each (the anomaly detector's memory search). */
  nearest(n: number, m: number, c: number): KernelCase {
    return simpleCase('nearest.squaredDistance', `q ${sh([n, c])} m ${sh([m, c])}`, { n, m, c }, { q: { shape: [n, c], lo: 0, hi: 1 }, m: { shape: [m, c], lo: 0, hi: 1 } },
      (fn, t) => fn(t.q, t.m), { flops: 2 * n * m * c });
  },
};
