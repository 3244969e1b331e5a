// The PyTorch (CPU) column of the suite: finds a Python with torch, runs bench/torch_peer.py once
// with every selected case as one JSON job, and returns its timings. Without such a Python the column
// is skipped with the reason (never a failure of the suite).
//
// The Python process runs before wgsl-nn and tfjs start timing, so the two never share the CPU cores
// (lavapipe's rasterizer threads and torch's intra-op threads would otherwise compete).
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { InputSpec } from './kernel-cases.js';
import type { BenchKernelCase, PeerCase } from './cases.js';
import type { SamplingLimits } from './timing.js';

/** Ops bench/torch_peer.py implements (the GEMM and convolution families). */
export const TORCH_KERNEL_OPS = new Set([
  'matmul',
  'nearest.squaredDistance',
  'linear.forward',
  'linear.backwardInput',
  'linear.backwardWeight',
  'conv2d.forward',
  'conv2d.backwardInput',
  'conv2d.backwardWeight',
  'convTranspose2d.forward',
  'convTranspose2d.backwardInput',
  'convTranspose2d.backwardWeight',
]);

/** Values sampled from each kernel output (evenly spaced) for the rel-err check against wgsl-nn. */
export const TORCH_SAMPLE_COUNT = 256;

export interface TorchJob {
  kernels: { id: string; op: string; params: Record<string, number>; inputs: InputSpec[] }[];
  endToEnd: ({ id: string } & PeerCase)[];
}

export interface TorchInfo {
  torch: string;
  python: string;
  executable: string;
  threads: number;
  interopThreads: number;
  blas: string;
  mkldnn: boolean;
  /** The thread variables the process ran with (OMP_NUM_THREADS, OMP_WAIT_POLICY, ...). */
  env: Record<string, string>;
}

export interface TorchTiming {
  medianMs?: number;
  meanMs?: number;
  samples?: number;
  /** Kernel cases: the output's size and evenly spaced values of it. */
  size?: number;
  sample?: number[];
  /** End-to-end cases: whether the step's read-back value was finite. */
  finite?: boolean;
  /** 'timed once (slow)' when only one step was timed. */
  note?: string;
  error?: string;
}

export type TorchRun =
  | { ok: true; info: TorchInfo; kernels: Record<string, TorchTiming>; endToEnd: Record<string, TorchTiming>; wallSeconds: number }
  | { ok: false; reason: string };

/**
 * The first Python that imports torch and numpy: `explicit` (--python), $WGSL_NN_BENCH_PYTHON,
 * `python3` on the PATH, then /usr/bin/python3 (Debian's python3-torch installs there, which a pyenv
 * or venv `python3` earlier on the PATH does not see).
 */
export function findTorchPython(explicit?: string): { python: string; reason?: undefined } | { python?: undefined; reason: string } {
  const candidates = [...new Set([explicit, process.env.WGSL_NN_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p))];
  const reasons: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch, numpy'], { encoding: 'utf8', timeout: 120_000 });
    if (r.error) reasons.push(`${python}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`);
    else if (r.status !== 0) reasons.push(`${python}: ${lastLine(r.stderr) || `exit ${r.status}`}`);
    else return { python };
    if (explicit && python === explicit) break; // an explicit choice is not second-guessed
  }
  return { reason: `no Python with torch and numpy (${reasons.join('; ')}); install e.g. Debian's python3-torch` };
}

/**
 * The thread environment of the Python process: `threads` for OpenMP (torch's intra-op pool), OpenBLAS
 * and MKL, and OMP_WAIT_POLICY=PASSIVE unless the caller set a policy. With libgomp's default active
 * waiting, torch's idle OpenMP threads spin while OpenBLAS's own threads run a GEMM (and against any
 * other load) on a 2-core machine: with other load running, the seed dense GAN iteration measured
 * 340 ms instead of 12 ms.
 */
export function torchThreadEnv(threads: number): Record<string, string> {
  const n = String(threads);
  return { OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' };
}

/**
 * Runs the job in one Python process with `threads` intra-op threads (torch.set_num_threads and the
 * variables of torchThreadEnv), forwarding its progress lines to `log`.
 */
export function runTorch(
  python: string,
  job: TorchJob,
  limits: SamplingLimits & { slowStepMs: number },
  threads: number,
  log: (line: string) => void,
): Promise<TorchRun> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(python, [join(import.meta.dirname, 'torch_peer.py')], {
      env: { ...process.env, ...torchThreadEnv(threads) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    const stderrTail: string[] = [];
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (stdout += d));
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 20) stderrTail.shift();
      log(line);
    });
    child.on('error', (e) => resolve({ ok: false, reason: `cannot run ${python}: ${e.message}` }));
    child.on('close', (code, signal) => {
      const last = lastLine(stdout);
      try {
        const r = JSON.parse(last) as { ok: boolean; reason?: string; info: TorchInfo; kernels: Record<string, TorchTiming>; endToEnd: Record<string, TorchTiming> };
        if (!r.ok) return resolve({ ok: false, reason: r.reason ?? 'torch peer failed' });
        resolve({ ok: true, info: r.info, kernels: r.kernels, endToEnd: r.endToEnd, wallSeconds: (Date.now() - t0) / 1000 });
      } catch {
        resolve({ ok: false, reason: `torch peer exited (${signal ?? `code ${code}`}) without results: ${stderrTail.slice(-3).join(' | ') || 'no output'}` });
      }
    });
    child.stdin.on('error', () => undefined); // an early exit is reported by 'close'
    const { slowStepMs, ...sampling } = limits;
    child.stdin.end(JSON.stringify({ threads, limits: sampling, slowStepMs, sampleCount: TORCH_SAMPLE_COUNT, ...job }));
  });
}

/** The kernel-case part of a job entry (ops without a torch counterpart are left out). */
export function torchKernelEntry(id: string, c: BenchKernelCase): TorchJob['kernels'][number] | undefined {
  if (!TORCH_KERNEL_OPS.has(c.op) || !c.inputs) return undefined;
  return { id, op: c.op, params: c.params, inputs: c.inputs };
}

/**
 * Relative error of torch's sampled output against wgsl-nn's reference output: max|t - r| / max|r|
 * over the sampled positions (the same evenly spaced indices torch_peer.py picks).
 */
export function sampledRelErr(t: TorchTiming, ref: ArrayLike<number>): number | undefined {
  if (!t.sample || t.size === undefined) return undefined;
  if (t.size !== ref.length) return Infinity;
  const count = t.sample.length;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < count; i++) {
    const j = t.size > 1 ? Math.floor((i * (t.size - 1)) / Math.max(count - 1, 1)) : 0;
    maxDiff = Math.max(maxDiff, Math.abs(t.sample[i] - ref[j]));
    maxRef = Math.max(maxRef, Math.abs(ref[j]));
  }
  return maxRef > 0 ? maxDiff / maxRef : maxDiff;
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}
