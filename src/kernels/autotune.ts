// Measured per-adapter kernel variant selection.
//
// `autotune(engine)` times every registered variant of the tunable ops (GEMM, conv, conv-transpose,
// elementwise, pooling, batch-norm) on a representative shape, checks each variant's output against
// the first working variant's, and records the fastest correct one with
// `kernels.setTuned(adapterKey(engine), op, variant)`. The choices are cached per adapter key in a
// JSON file (default ~/.cache/wgsl-nn/variants.json, or $WGSL_NN_TUNE_CACHE), from which
// `loadTuned(engine)` re-applies them without measuring.
//
// The case builders below (`opCases`) are also what bench/ times, so the benchmark suite and the tuner
// agree on how each op is called.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Engine } from '../gpu/engine.js';
import { DeviceTensor } from '../gpu/device-tensor.js';
import { adapterKey, kernels, type KernelFn } from './registry.js';
import './index.js';

// ------------------------------------------------------------------------------------ cases

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
    const pool = { kernel: [k, k], stride: [s, s] };
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
        const fwd = kernels.get('maxPool2d.forward', engine, kernels.variants('maxPool2d.forward')[0]);
        const { y, argmax } = fwd(x, pool) as { y: DeviceTensor; argmax: DeviceTensor };
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
};

/**
 * The shape each tunable op is tuned on: the seed CNN's middle conv layer (32 -> 64 channels on
 * 31x31, batch 32), its dense layer, a DCGAN conv-transpose, and activation-sized elementwise work.
 * `quick` uses batch 8 (and smaller matrices) so a first run finishes in well under a minute on lavapipe.
 */
export function tuningCases(quick = false): Record<string, KernelCase> {
  const b = quick ? 8 : 32;
  const all: KernelCase[] = [
    quick ? opCases.matmul(128, 128, 128) : opCases.matmul(256, 256, 256),
    ...opCases.linear(32, 3200, 128),
    ...opCases.conv2d(b, 32, 64, 31, 31, 3, 1, 0),
    ...opCases.convTranspose2d(b, 128, 64, 8, 8, 4, 2, 1),
    opCases.binary([b, 32, 62, 62], [1, 32, 1, 1], 'add'),
    opCases.scale([b, 32, 62, 62]),
    opCases.scaleByScalar([b, 32, 62, 62]),
    ...opCases.maxPool2d([b, 32, 62, 62], 2, 2),
    ...opCases.batchNorm2d([b, 32, 32, 32]),
  ];
  return Object.fromEntries(all.map((c) => [c.op, c]));
}

/** The ops autotune measures by default. */
export const TUNABLE_OPS: readonly string[] = Object.keys(tuningCases(true));

// ------------------------------------------------------------------------------------ measuring

/** Relative error max|got - ref| / max|ref| (Infinity for a length mismatch or a new non-finite value). */
export function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i];
    const r = ref[i];
    if (!Number.isFinite(g) || !Number.isFinite(r)) {
      if (Object.is(g, r)) continue;
      return Infinity;
    }
    num = Math.max(num, Math.abs(g - r));
    den = Math.max(den, Math.abs(r));
  }
  return num / Math.max(den, 1e-30);
}

/** Largest relative error over matching output lists (Infinity if the lists differ in length). */
export function outputsError(got: ArrayLike<number>[], ref: ArrayLike<number>[]): number {
  if (got.length !== ref.length) return Infinity;
  return got.reduce((m, g, i) => Math.max(m, relativeError(g, ref[i])), 0);
}

/** Runs `variant` of `kernelCase` once on fresh inputs and reads its outputs (created and in-place). */
export async function runOnce(engine: Engine, kernelCase: KernelCase, variant: string): Promise<ArrayLike<number>[]> {
  const fn = kernels.get(kernelCase.op, engine, variant);
  const prep = kernelCase.prepare(engine);
  try {
    const outs = prep.run(fn);
    try {
      const arrays: ArrayLike<number>[] = [];
      for (const t of [...outs, ...prep.inPlace]) arrays.push(await t.toArray());
      return arrays;
    } finally {
      outs.forEach((t) => t.dispose());
    }
  } finally {
    prep.dispose();
    await engine.sync().catch(() => undefined);
  }
}

/**
 * Median milliseconds per call of `variant` (after one warm-up call that compiles its pipelines).
 * Each repetition issues enough calls to take roughly `targetMs`, then waits for the GPU.
 */
export async function timeVariant(
  engine: Engine,
  kernelCase: KernelCase,
  variant: string,
  options: { reps?: number; targetMs?: number } = {},
): Promise<number> {
  const reps = options.reps ?? 5;
  const targetMs = options.targetMs ?? 25;
  const fn = kernels.get(kernelCase.op, engine, variant);
  const prep = kernelCase.prepare(engine);
  try {
    const call = () => prep.run(fn).forEach((t) => t.dispose());
    call();
    await engine.sync();
    let t0 = performance.now();
    call();
    await engine.sync();
    const once = performance.now() - t0;
    const calls = Math.max(1, Math.min(32, Math.round(targetMs / Math.max(once, 1e-3))));
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      t0 = performance.now();
      for (let i = 0; i < calls; i++) call();
      await engine.sync();
      times.push((performance.now() - t0) / calls);
    }
    return median(times);
  } finally {
    prep.dispose();
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ------------------------------------------------------------------------------------ autotune and cache

/** Largest relative error (against the first working variant) for which a variant may be chosen. */
export const TUNE_TOLERANCE = 1e-3;

/**
 * The registry's default variant (preferred for the adapter kind, else the first registered) is kept
 * unless another variant is faster by more than this fraction, so timing noise between equivalent
 * variants does not flip the choice from run to run.
 */
export const TUNE_MARGIN = 0.05;

/** The variant the registry would pick without measurements (preferred for the adapter kind, else the first). */
export function defaultVariant(op: string, engine: Engine): string {
  const kind = engine.info.software ? 'software' : 'hardware';
  return kernels.describe(op).find((v) => v.preferredOn.includes(kind))?.name ?? kernels.variants(op)[0];
}

export interface AutotuneOptions {
  /** Ops to tune (default: TUNABLE_OPS). Ops with one variant are recorded without timing. */
  ops?: string[];
  /** Cache file (default: $WGSL_NN_TUNE_CACHE or ~/.cache/wgsl-nn/variants.json). */
  cacheFile?: string;
  /** Smaller shapes and fewer repetitions. */
  quick?: boolean;
  /** Extra or replacement cases by op name (e.g. for an op that has no built-in tuning case). */
  cases?: Record<string, KernelCase>;
  /** Called with each measurement (for progress output). */
  onResult?: (r: VariantTiming) => void;
}

export interface VariantTiming {
  op: string;
  variant: string;
  /** Median ms per call; null when the variant failed or was rejected. */
  ms: number | null;
  /** Relative error against the reference variant's output. */
  relErr: number | null;
  /** Why the variant cannot be chosen, if it cannot. */
  rejected?: string;
}

interface CacheEntry {
  adapter: string;
  updated: string;
  choices: Record<string, string>;
  timings: Record<string, Record<string, number | null>>;
  shapes: Record<string, string>;
}

interface CacheFile {
  version: 1;
  adapters: Record<string, CacheEntry>;
}

/** The cache file in use: the argument, else $WGSL_NN_TUNE_CACHE, else ~/.cache/wgsl-nn/variants.json. */
export function defaultCacheFile(): string {
  return process.env.WGSL_NN_TUNE_CACHE || join(homedir(), '.cache', 'wgsl-nn', 'variants.json');
}

function readCache(file: string): CacheFile {
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (data && data.version === 1 && data.adapters && typeof data.adapters === 'object') return data;
  } catch {
    /* missing or unreadable: start afresh */
  }
  return { version: 1, adapters: {} };
}

function writeCache(file: string, data: CacheFile): void {
  mkdirSync(dirname(file), { recursive: true });
  // Written to a temporary file and renamed, so a concurrent reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(tmp, file);
}

/**
 * Times every variant of each op on its tuning case and records the fastest whose output agrees with
 * the first working variant's (relative error <= TUNE_TOLERANCE) with kernels.setTuned (the default
 * variant is kept when it is within TUNE_MARGIN of the fastest). Variants that throw, report a GPU
 * error or disagree are never chosen; if the first variant itself is wrong, the variants that agree
 * with it are chosen among (there is no CPU reference here: the kernel tests check each variant). Merges the choices into the cache file under
 * this adapter's key and returns them (op -> variant) for the ops measured now.
 */
export async function autotune(engine: Engine, options: AutotuneOptions = {}): Promise<Record<string, string>> {
  const cases = { ...tuningCases(options.quick), ...options.cases };
  const ops = options.ops ?? [...TUNABLE_OPS];
  const key = adapterKey(engine);
  const chosen: Record<string, string> = {};
  const timings: Record<string, Record<string, number | null>> = {};
  const report = (r: VariantTiming) => {
    (timings[r.op] ??= {})[r.variant] = r.ms;
    options.onResult?.(r);
  };
  for (const op of ops) {
    const variants = kernels.variants(op); // throws for an unknown op
    const kc = cases[op];
    if (!kc) throw new Error(`wgsl-nn autotune: no tuning case for op '${op}' (pass one in options.cases)`);
    if (kc.op !== op) throw new Error(`wgsl-nn autotune: the case given for '${op}' is for '${kc.op}'`);
    let ref: ArrayLike<number>[] | undefined;
    let best: { variant: string; ms: number } | undefined;
    let fallback: { variant: string; ms: number } | undefined; // the default variant's timing
    for (const variant of variants) {
      let out: ArrayLike<number>[];
      try {
        out = await runOnce(engine, kc, variant);
      } catch (e) {
        report({ op, variant, ms: null, relErr: null, rejected: `failed: ${firstLine(e)}` });
        continue;
      }
      const err = ref ? outputsError(out, ref) : 0;
      ref ??= out;
      if (!(err <= TUNE_TOLERANCE)) {
        report({ op, variant, ms: null, relErr: err, rejected: `disagrees with the reference variant (relative error ${err.toExponential(2)})` });
        continue;
      }
      if (variants.length === 1) {
        report({ op, variant, ms: null, relErr: 0 });
        best = { variant, ms: 0 };
        continue;
      }
      let ms: number;
      try {
        ms = await timeVariant(engine, kc, variant, options.quick ? { reps: 3, targetMs: 10 } : { reps: 5, targetMs: 25 });
      } catch (e) {
        report({ op, variant, ms: null, relErr: err, rejected: `failed: ${firstLine(e)}` });
        continue;
      }
      report({ op, variant, ms, relErr: err });
      if (!best || ms < best.ms) best = { variant, ms };
      if (variant === defaultVariant(op, engine)) fallback = { variant, ms };
    }
    engine.trim();
    if (best && fallback && fallback.ms <= best.ms * (1 + TUNE_MARGIN)) best = fallback;
    if (best) {
      kernels.setTuned(key, op, best.variant);
      chosen[op] = best.variant;
    }
  }

  const file = options.cacheFile ?? defaultCacheFile();
  const cache = readCache(file);
  const prev = cache.adapters[key];
  const shapes: Record<string, string> = { ...prev?.shapes };
  for (const op of Object.keys(chosen)) shapes[op] = `${cases[op].shape}${options.quick ? ' (quick)' : ''}`;
  cache.adapters[key] = {
    adapter: engine.describe(),
    updated: new Date().toISOString(),
    choices: { ...prev?.choices, ...chosen },
    timings: { ...prev?.timings, ...timings },
    shapes,
  };
  writeCache(file, cache);
  return chosen;
}

/**
 * Applies the choices cached for this engine's adapter (kernels.setTuned) without measuring. Entries
 * for ops or variants that are no longer registered are skipped. Returns what was applied.
 */
export function loadTuned(engine: Engine, cacheFile?: string): Record<string, string> {
  const entry = readCache(cacheFile ?? defaultCacheFile()).adapters[adapterKey(engine)];
  const applied: Record<string, string> = {};
  if (!entry?.choices) return applied;
  const key = adapterKey(engine);
  for (const [op, variant] of Object.entries(entry.choices)) {
    let known = false;
    try {
      known = kernels.variants(op).includes(variant);
    } catch {
      known = false;
    }
    if (!known) continue;
    kernels.setTuned(key, op, variant);
    applied[op] = variant;
  }
  return applied;
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
