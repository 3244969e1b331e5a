// Shared test utilities: engines with poisoned allocations, seeded data, error metrics, finite differences.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import type { GanTrainOptions } from '../src/gan/train.js';
import { Rng } from '../src/util/rng.js';

/** An engine whose new buffers are filled with NaN, so any element a kernel does not write fails. */
export async function testEngine(): Promise<Engine> {
  return Engine.create({ poisonAllocations: true });
}

export function rng(seed: number): Rng {
  return new Rng(seed);
}

/** Random values in [-1, 1) without exact zeros (ReLU kinks and ties are avoided by construction). */
export function randArray(r: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = r.uniform(-1, 1);
    if (Math.abs(v) < 1e-3) v = 0.5;
    a[i] = v * scale;
  }
  return a;
}

/**
 * The relative error used throughout: max_i |got_i - exp_i| / max(max_i |exp_i|, 1e-30)
 * (the metric of shared/reference/README.md). NaN anywhere counts as infinite error.
 */
export function relErr(got: ArrayLike<number>, exp: ArrayLike<number>): number {
  if (got.length !== exp.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < exp.length; i++) {
    const g = got[i];
    if (!Number.isFinite(g) && g !== exp[i]) return Infinity;
    num = Math.max(num, Math.abs(g - exp[i]));
    den = Math.max(den, Math.abs(exp[i]));
  }
  return num / Math.max(den, 1e-30);
}

/**
 * Asserts relErr(got, exp) <= tol, with a message naming the worst element. `atol` adds an absolute
 * allowance (max |got - exp| <= atol + tol * max|exp|) for results that are ill-conditioned in float32.
 */
export function expectClose(got: ArrayLike<number>, exp: ArrayLike<number>, tol: number, what = '', atol = 0): void {
  expect(got.length, `${what}: length`).toBe(exp.length);
  let den = 0;
  for (let i = 0; i < exp.length; i++) den = Math.max(den, Math.abs(exp[i]));
  const err = relErr(got, exp) - atol / Math.max(den, 1e-30);
  if (!(err <= tol)) {
    let worst = 0;
    let wi = 0;
    for (let i = 0; i < exp.length; i++) {
      const d = Number.isFinite(got[i]) ? Math.abs(got[i] - exp[i]) : Infinity;
      if (d > worst || Number.isNaN(d)) {
        worst = d;
        wi = i;
      }
      if (!Number.isFinite(d)) break;
    }
    throw new Error(`${what}: relative error ${err} > ${tol} (element ${wi}: got ${got[wi]}, expected ${exp[wi]})`);
  }
}

/**
 * Central finite differences of a scalar function f at x (float64): df/dx_i ~ (f(x+h e_i) - f(x-h e_i)) / 2h.
 * `indices` limits the check to some coordinates (all by default).
 */
export function numericalGrad(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  h = 1e-6,
  indices?: number[],
): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length).fill(NaN);
  for (const i of indices ?? xs.keys()) {
    const v = xs[i];
    xs[i] = v + h;
    const fp = f(xs);
    xs[i] = v - h;
    const fm = f(xs);
    xs[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Sum of a[i] * b[i] in float64: turns a tensor-valued function into the scalar sum(dy * y). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** The values of `a` at `idx`. */
export function pick(a: ArrayLike<number>, idx: number[]): number[] {
  return idx.map((i) => a[i]);
}

/** What a `wgsl-nn` command run in a child process left: exit code (0 on success), output, and the signal if killed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  signal?: string | null;
}

/** Runs `wgsl-nn <args>` from the sources (through tsx) in a child process; a failing command resolves too. */
export function runCli(args: string[], options: { timeout?: number; maxBuffer?: number } = {}): Promise<CliResult> {
  const root = join(import.meta.dirname, '..');
  return promisify(execFile)(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli.ts'), ...args], {
    cwd: root,
    timeout: options.timeout ?? 300_000,
    maxBuffer: options.maxBuffer ?? 16 << 20,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string, signal: e.signal as string | null }),
  );
}

/**
 * Options of a tiny DCGAN run for tests: 16x16 images, widths 4, latent 8, batch 8, 2 epochs (seconds on
 * lavapipe); `extra` overrides any of them.
 */
export function tinyGanOptions(data: string, out: string, engine: Engine, extra: Partial<GanTrainOptions> = {}): GanTrainOptions {
  return { data, out, arch: 'dcgan', imageSize: 16, ngf: 4, ndf: 4, latentDim: 8, batchSize: 8, epochs: 2, engine, ...extra };
}
