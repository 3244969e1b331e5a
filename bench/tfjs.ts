// TensorFlow.js's WebGPU backend on the same dawn.node adapter, for a side-by-side with wgsl-nn.
//
// tfjs-backend-webgpu registers itself at import time only if `navigator.gpu` exists, so a
// navigator with a dawn.node GPU instance is installed first (Node 20 has no navigator). tfjs prefers
// NHWC activations and HWIO filters, so its cases use those layouts with the same values (transposed
// from wgsl-nn's NCHW / OIHW inputs); outputs are transposed back and compared with wgsl-nn's.
//
// Waiting for the GPU: wgsl-nn's cases end with `engine.sync()` (submit, then
// queue.onSubmittedWorkDone()); the tfjs cases do the same on tfjs's device (submit its pending
// command encoder, then onSubmittedWorkDone()), so neither side pays for reading a large output back.
// If those backend internals change, `wait` falls back to reading the output (`await t.data()`).
// The end-to-end cases read the loss / the probabilities / the output back on both sides. Their
// warm-up step runs inside WebGPU error scopes on tfjs's device and is followed by a plausibility
// check (outputs not constant), so work tfjs drops without an exception (e.g. a buffer over the
// device's limits) is reported instead of being timed.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as TF from '@tensorflow/tfjs-core';
import { create, globals } from 'webgpu';
import { caseData, type InputSpec } from './kernel-cases.js';
import { SEED_CNN, seedBatch, type BenchKernelCase, type PeerCase } from './cases.js';
import { ganIteration } from './tfjs-gan.js';
import { firstLine } from './timing.js';

type Tf = typeof TF;

export interface TfKernel {
  /** Runs the op once and waits for the GPU. */
  step(): Promise<void>;
  /** The op's output in wgsl-nn's layout (NCHW / OIHW / [Cin,Cout,k,k]), for comparison. */
  output(): Promise<Float32Array>;
  dispose(): void;
}

export interface TfStep {
  step(): Promise<void>;
  /** After a step: a description of implausible results (e.g. all-zero outputs), or undefined. */
  check?(): Promise<string | undefined>;
  dispose(): void;
}

export interface TfjsBench {
  version: string;
  adapter: string;
  /** How tfjs waits for the GPU in kernel cases. */
  waitMethod: string;
  /** The tfjs counterpart of a kernel case (undefined if there is none). */
  kernel(c: BenchKernelCase): TfKernel | undefined;
  /** The tfjs counterpart of an end-to-end case (undefined if there is none). */
  endToEnd(peer: PeerCase): TfStep | undefined;
  /** Runs `fn` inside validation / out-of-memory / internal error scopes on tfjs's device; returns the GPU errors raised. */
  gpuErrors(fn: () => Promise<void>): Promise<string[]>;
}

/** Initialises tfjs on WebGPU; returns the reason instead of throwing when it cannot. */
export async function initTfjs(): Promise<{ ok: true; bench: TfjsBench } | { ok: false; reason: string }> {
  let tf: Tf;
  try {
    Object.assign(globalThis, globals);
    const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
    if (!g.navigator?.gpu) {
      Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]) }, configurable: true, writable: true });
    }
    tf = await loadTf();
  } catch (e) {
    return { ok: false, reason: `cannot load @tensorflow/tfjs-core / tfjs-backend-webgpu: ${firstLine(e)}` };
  }
  try {
    const ok = await tf.setBackend('webgpu');
    await tf.ready();
    if (!ok || tf.getBackend() !== 'webgpu') return { ok: false, reason: `tf.setBackend('webgpu') failed (backend is '${tf.getBackend()}')` };
  } catch (e) {
    return { ok: false, reason: `tfjs WebGPU backend did not initialise: ${firstLine(e)}` };
  }
  return { ok: true, bench: makeBench(tf) };
}

/**
 * tfjs-core's gradients (needed by optimizer.minimize) are registered by
 * `@tensorflow/tfjs-core/dist/register_all_gradients`, which exists only as ES modules with
 * extensionless imports that Node cannot load (the @tensorflow/tfjs umbrella package bundles it). So
 * tfjs-core (ESM build), its gradients and tfjs-backend-webgpu are bundled once with esbuild (tsx's own
 * dependency) into a temporary file, giving a single tfjs instance; without esbuild, the packages'
 * Node builds are loaded and the training step reports that gradients are missing.
 */
async function loadTf(): Promise<Tf> {
  const root = join(import.meta.dirname, '..');
  const version = (pkg: string) => (JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  let esbuild: typeof import('esbuild') | undefined;
  try {
    esbuild = await import('esbuild');
  } catch {
    esbuild = undefined;
  }
  if (!esbuild) {
    const core = (await import('@tensorflow/tfjs-core')) as unknown as Tf;
    await import('@tensorflow/tfjs-backend-webgpu');
    return core;
  }
  const out = join(tmpdir(), `wgsl-nn-bench-tfjs-${version('@tensorflow/tfjs-core')}-${version('@tensorflow/tfjs-backend-webgpu')}-v1.mjs`);
  if (!existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    await esbuild.build({
      stdin: {
        contents: [
          "export * from '@tensorflow/tfjs-core';",
          "import '@tensorflow/tfjs-core/dist/register_all_gradients';",
          "import '@tensorflow/tfjs-backend-webgpu';",
        ].join('\n'),
        resolveDir: root,
        loader: 'js',
      },
      bundle: true,
      format: 'esm',
      platform: 'node',
      mainFields: ['module', 'main'],
      outfile: tmp,
      // CommonJS dependencies inside the bundle require Node built-ins ('util', ...).
      banner: { js: "import { createRequire as __wgslNnCreateRequire } from 'node:module'; const require = __wgslNnCreateRequire(import.meta.url);" },
      logLevel: 'error',
    });
    renameSync(tmp, out);
  }
  return (await import(pathToFileURL(out).href)) as Tf;
}

interface WebGpuBackendInternals {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
  adapterInfo?: { vendor?: string; architecture?: string };
}

function makeBench(tf: Tf): TfjsBench {
  const backend = tf.backend() as unknown as WebGpuBackendInternals;
  const internals = typeof backend.submitQueue === 'function' && typeof backend.endComputePassEncoder === 'function' && !!backend.device;

  /** Waits until the GPU has finished everything tfjs recorded (see the file comment). */
  async function wait(out: TF.Tensor): Promise<void> {
    if (!internals) {
      await out.data();
      return;
    }
    if (backend.commandEncoder) {
      backend.endComputePassEncoder();
      backend.submitQueue();
    }
    await backend.device.queue.onSubmittedWorkDone();
  }

  const info = backend.adapterInfo ?? {};
  return {
    version: tf.version_core,
    adapter: `${info.vendor ?? '?'} ${info.architecture ?? ''}`.trim(),
    waitMethod: internals ? 'submit + queue.onSubmittedWorkDone() on the tfjs device' : 'await output.data()',
    kernel: (c) => kernelCase(tf, c, wait),
    endToEnd(peer) {
      switch (peer.key) {
        case 'seed-train':
          return trainStep(tf, peer.params.batch, peer.params.size);
        case 'seed-infer':
          return inferStep(tf, peer.params.batch, peer.params.size);
        case 'gan':
          return ganIteration(tf, peer.params);
        case 'linear-readback':
          return linearReadback(tf, peer.params);
        case 'conv-readback':
          return convReadback(tf, peer.params);
        default:
          return undefined;
      }
    },
    async gpuErrors(fn) {
      const device = backend.device;
      if (!device?.pushErrorScope) {
        await fn();
        return [];
      }
      const scopes: GPUErrorFilter[] = ['validation', 'out-of-memory', 'internal'];
      for (const f of scopes) device.pushErrorScope(f);
      let failure: unknown;
      try {
        await fn();
      } catch (e) {
        failure = e;
      }
      const errors: string[] = [];
      for (const f of [...scopes].reverse()) {
        const e = await device.popErrorScope();
        if (e) errors.push(`${f}: ${firstLine(e.message)}`);
      }
      if (failure !== undefined) throw failure;
      return errors;
    },
  };
}

// ------------------------------------------------------------------------------------ layouts

/** [N,C,H,W] -> [N,H,W,C]. */
function nchwToNhwc(a: Float32Array, [n, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((i * h + y) * w + x) * c + ch] = a[((i * c + ch) * h + y) * w + x];
  return out;
}

/** [N,H,W,C] -> [N,C,H,W]. */
function nhwcToNchw(a: Float32Array, [n, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((i * c + ch) * h + y) * w + x] = a[((i * h + y) * w + x) * c + ch];
  return out;
}

/** [A,B,kh,kw] -> [kh,kw,B,A]: OIHW -> HWIO (conv), and [Cin,Cout,k,k] -> [k,k,Cout,Cin] (conv-transpose). */
function abhwToHwba(a: Float32Array, [A, B, kh, kw]: number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < A; i++)
    for (let j = 0; j < B; j++)
      for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) out[((u * kw + v) * B + j) * A + i] = a[((i * B + j) * kh + u) * kw + v];
  return out;
}

/** Inverse of abhwToHwba: [kh,kw,B,A] -> [A,B,kh,kw]. */
function hwbaToAbhw(a: Float32Array, [A, B, kh, kw]: number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < A; i++)
    for (let j = 0; j < B; j++)
      for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) out[((i * B + j) * kh + u) * kw + v] = a[((u * kw + v) * B + j) * A + i];
  return out;
}

function inputData(c: BenchKernelCase, name: string): { data: Float32Array; shape: number[] } {
  const s = c.inputs?.find((i: InputSpec) => i.name === name);
  if (!s) throw new Error(`bench/tfjs: case ${c.op} has no input '${name}'`);
  return { data: caseData(s.shape.reduce((a, b) => a * b, 1), s.seed, s.lo, s.hi), shape: s.shape };
}

// ------------------------------------------------------------------------------------ kernel cases

function kernelCase(tf: Tf, c: BenchKernelCase, wait: (t: TF.Tensor) => Promise<void>): TfKernel | undefined {
  if (!c.tfjs) return undefined;
  const p = c.params;
  const held: TF.Tensor[] = [];
  const hold = <T extends TF.Tensor>(t: T): T => {
    held.push(t);
    return t;
  };
  const nhwc = (name: string) => {
    const { data, shape } = inputData(c, name);
    return hold(tf.tensor4d(nchwToNhwc(data, shape), [shape[0], shape[2], shape[3], shape[1]]));
  };
  const filter = (name: string) => {
    const { data, shape } = inputData(c, name);
    return hold(tf.tensor4d(abhwToHwba(data, shape), [shape[2], shape[3], shape[1], shape[0]]));
  };
  const plain = (name: string) => {
    const { data, shape } = inputData(c, name);
    return hold(tf.tensor(data, shape));
  };
  let call: () => TF.Tensor;
  let toOurs: (a: Float32Array) => Float32Array;
  const [family] = c.op.split('.');
  if (c.op === 'matmul') {
    const a = plain('a');
    const b = plain('b');
    call = () => tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D);
    toOurs = (x) => x;
  } else if (family === 'conv2d') {
    const { n, c: ci, o, h, w, k, s, p: pad, ho, wo } = p;
    if (c.op === 'conv2d.forward') {
      const x = nhwc('x');
      const f = filter('w');
      const b = plain('b');
      call = () => tf.fused.conv2d({ x: x as TF.Tensor4D, filter: f as TF.Tensor4D, strides: s, pad, bias: b, activation: 'relu' });
      toOurs = (y) => nhwcToNchw(y, [n, o, ho, wo]);
    } else if (c.op === 'conv2d.backwardInput') {
      const dy = nhwc('dy');
      const f = filter('w');
      call = () => tf.conv2dTranspose(dy as TF.Tensor4D, f as TF.Tensor4D, [n, h, w, ci], s, pad);
      toOurs = (dx) => nhwcToNchw(dx, [n, ci, h, w]);
    } else {
      const x = nhwc('x');
      const dy = nhwc('dy');
      call = () =>
        tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: [s, s], pad, dataFormat: 'NHWC', filterShape: [k, k, ci, o] } as never) as TF.Tensor;
      toOurs = (dw) => hwbaToAbhw(dw, [o, ci, k, k]);
    }
  } else if (family === 'convTranspose2d') {
    const { n, ci, co, h, w, k, s, p: pad, ho, wo } = p;
    if (c.op === 'convTranspose2d.forward') {
      const x = nhwc('x');
      const f = filter('w'); // [Cin,Cout,k,k] -> [k,k,Cout,Cin], tf.conv2dTranspose's [h, w, outDepth, inDepth]
      const b = plain('b');
      call = () => tf.add(tf.conv2dTranspose(x as TF.Tensor4D, f as TF.Tensor4D, [n, ho, wo, co], s, pad), b);
      toOurs = (y) => nhwcToNchw(y, [n, co, ho, wo]);
    } else if (c.op === 'convTranspose2d.backwardInput') {
      const dy = nhwc('dy');
      const f = filter('w');
      call = () => tf.conv2d(dy as TF.Tensor4D, f as TF.Tensor4D, s, pad);
      toOurs = (dx) => nhwcToNchw(dx, [n, ci, h, w]);
    } else {
      const x = nhwc('x');
      const dy = nhwc('dy');
      // dw of y = convT(x, w) is the filter gradient of the conv from y back to x.
      call = () =>
        tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: dy, dy: x }, { strides: [s, s], pad, dataFormat: 'NHWC', filterShape: [k, k, co, ci] } as never) as TF.Tensor;
      toOurs = (dw) => hwbaToAbhw(dw, [ci, co, k, k]);
    }
  } else {
    held.forEach((t) => t.dispose());
    return undefined;
  }
  return {
    async step() {
      // tidy() frees the intermediates (e.g. the bias add's input); the output is freed after waiting.
      const out = tf.tidy(call);
      await wait(out);
      out.dispose();
    },
    async output() {
      const out = tf.tidy(call);
      const data = (await out.data()) as Float32Array;
      out.dispose();
      return toOurs(data);
    },
    dispose() {
      held.forEach((t) => t.dispose());
    },
  };
}

// ------------------------------------------------------------------------------------ the seed CNN in tfjs

/**
 * The seed CNN written with tf ops in NHWC: [conv3x3 + bias + ReLU (tf.fused.conv2d), max-pool 2] x 3,
 * flatten, dense + ReLU, dropout 0.5 (training), dense -> logits; PyTorch's default uniform init bounds.
 */
function seedModel(tf: Tf, batch: number, size: number) {
  const [c1, c2, c3] = SEED_CNN.channels;
  let f = size;
  for (let i = 0; i < 3; i++) f = Math.floor((f - 2) / 2);
  const feat = c3 * f * f;
  let seed = 100;
  const param = (shape: number[], fanIn: number) => {
    const bound = 1 / Math.sqrt(fanIn);
    return tf.variable(tf.tensor(caseData(shape.reduce((a, b) => a * b, 1), seed++, -bound, bound), shape));
  };
  const convs = [
    [1, c1],
    [c1, c2],
    [c2, c3],
  ].map(([ci, co]) => ({ w: param([3, 3, ci, co], ci * 9), b: param([co], ci * 9) }));
  const fc1 = { w: param([feat, SEED_CNN.hidden], feat), b: param([SEED_CNN.hidden], feat) };
  const fc2 = { w: param([SEED_CNN.hidden, SEED_CNN.classes], SEED_CNN.hidden), b: param([SEED_CNN.classes], SEED_CNN.hidden) };
  const vars = [...convs.flatMap((c) => [c.w, c.b]), fc1.w, fc1.b, fc2.w, fc2.b];
  const forward = (x: TF.Tensor4D, training: boolean): TF.Tensor2D => {
    let h: TF.Tensor4D = x;
    for (const c of convs) {
      h = tf.fused.conv2d({ x: h, filter: c.w as TF.Tensor4D, strides: 1, pad: 'valid', bias: c.b, activation: 'relu' });
      h = tf.maxPool(h, 2, 2, 'valid');
    }
    let z = tf.fused.matMul({ a: tf.reshape(h, [h.shape[0], feat]) as TF.Tensor2D, b: fc1.w as TF.Tensor2D, bias: fc1.b, activation: 'relu' });
    if (training) z = tf.dropout(z, 0.5) as TF.Tensor2D;
    return tf.fused.matMul({ a: z, b: fc2.w as TF.Tensor2D, bias: fc2.b }) as TF.Tensor2D;
  };
  const { pixels, labels } = seedBatch(batch, size);
  const x = tf.tensor4d(pixels, [batch, size, size, 1]); // C = 1: NCHW = NHWC
  const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), SEED_CNN.classes);
  /** Dropped GPU work leaves zeros: the first conv layer's output and the logits must not be constant. */
  const check = async (): Promise<string | undefined> => {
    const spread = (t: TF.Tensor) => tf.sub(tf.max(t), tf.min(t));
    const s = tf.tidy(() => {
      const h = tf.fused.conv2d({ x, filter: convs[0].w as TF.Tensor4D, strides: 1, pad: 'valid', bias: convs[0].b, activation: 'relu' });
      return tf.stack([spread(h), spread(forward(x, false))]);
    });
    const [conv1, logits] = await s.data();
    s.dispose();
    if (!(conv1 > 0)) return `first conv layer output is constant (max - min = ${conv1})`;
    if (!(logits > 0)) return `logits are constant (max - min = ${logits})`;
    return undefined;
  };
  return {
    vars,
    forward,
    x,
    onehot,
    check,
    dispose() {
      vars.forEach((v) => v.dispose());
      x.dispose();
      onehot.dispose();
    },
  };
}

function trainStep(tf: Tf, batch: number, size: number): TfStep {
  const m = seedModel(tf, batch, size);
  const opt = tf.train.adam(1e-3);
  return {
    async step() {
      const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(m.onehot, m.forward(m.x, true)) as TF.Scalar, true, m.vars);
      const v = (await loss!.data())[0];
      loss!.dispose();
      if (!Number.isFinite(v)) throw new Error(`tfjs loss is ${v}`);
    },
    check: m.check,
    dispose() {
      opt.dispose();
      m.dispose();
    },
  };
}

function inferStep(tf: Tf, batch: number, size: number): TfStep {
  const m = seedModel(tf, batch, size);
  return {
    async step() {
      const p = tf.tidy(() => tf.softmax(m.forward(m.x, false)));
      await p.data();
      p.dispose();
    },
    check: m.check,
    dispose: () => m.dispose(),
  };
}

// ------------------------------------------------------------------------------------ headline single ops

/** y = x wᵀ ([m,k] x [n,k]ᵀ, as F.linear), read back; the same inputs as wgsl-nn's case. */
function linearReadback(tf: Tf, p: { m: number; n: number; k: number }): TfStep {
  const x = tf.tensor2d(caseData(p.m * p.k, 1), [p.m, p.k]);
  const w = tf.tensor2d(caseData(p.n * p.k, 2), [p.n, p.k]);
  return {
    async step() {
      const y = tf.matMul(x, w, false, true);
      await y.data();
      y.dispose();
    },
    check: () => spreadCheck(tf, () => tf.matMul(x, w, false, true), 'GEMM output'),
    dispose() {
      x.dispose();
      w.dispose();
    },
  };
}

/** conv2d + bias (no padding, stride 1) in NHWC / HWIO, read back. */
function convReadback(tf: Tf, p: { n: number; c: number; o: number; h: number; w: number; k: number }): TfStep {
  const x = tf.tensor4d(nchwToNhwc(caseData(p.n * p.c * p.h * p.w, 1, 0, 1), [p.n, p.c, p.h, p.w]), [p.n, p.h, p.w, p.c]);
  const f = tf.tensor4d(abhwToHwba(caseData(p.o * p.c * p.k * p.k, 2), [p.o, p.c, p.k, p.k]), [p.k, p.k, p.c, p.o]);
  const b = tf.tensor1d(caseData(p.o, 3));
  const call = () => tf.fused.conv2d({ x, filter: f, strides: 1, pad: 'valid', bias: b });
  return {
    async step() {
      const y = call();
      await y.data();
      y.dispose();
    },
    check: () => spreadCheck(tf, call, 'conv output'),
    dispose() {
      [x, f, b].forEach((t) => t.dispose());
    },
  };
}

async function spreadCheck(tf: Tf, call: () => TF.Tensor, what: string): Promise<string | undefined> {
  const s = tf.tidy(() => {
    const y = call();
    return tf.sub(tf.max(y), tf.min(y));
  });
  const v = (await s.data())[0];
  s.dispose();
  return v > 0 && Number.isFinite(v) ? undefined : `${what} is constant (max - min = ${v})`;
}
