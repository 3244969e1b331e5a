// Timing helpers shared by the bench/ scripts (the suite, the GEMM probe): medians, benchmark.js
// sampling of asynchronous steps, batch timing, and the Node main thread's CPU time.
//
// (bench/tuner.ts, the autotuner, uses median and firstLine from here too.)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import Benchmark from 'benchmark';
import type { Engine } from '../src/gpu/engine.js';

export interface Timing {
  medianMs: number;
  meanMs: number;
  /** Relative margin of error of the mean, percent (from benchmark.js; 0 for a single call). */
  rme: number;
  samples: number;
}

/** How long to sample one measured item. */
export interface SamplingLimits {
  /** Seconds of sampling after the warm-up (benchmark.js `maxTime`). */
  maxTime: number;
  /** Minimum number of samples. */
  minSamples: number;
  /** A call whose warm estimate exceeds this (ms) needs only `longCallSamples` samples. */
  longCallMs: number;
  longCallSamples: number;
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Times `step` (which must resolve when the GPU is done) with benchmark.js: deferred samples, the
 * median of the per-call sample times is reported. `estimateMs` (one warm call) lowers the minimum
 * sample count for long calls.
 */
export function measure(name: string, step: () => Promise<void>, limits: SamplingLimits, estimateMs = 0): Promise<Timing> {
  const minSamples = estimateMs > limits.longCallMs ? Math.min(limits.minSamples, limits.longCallSamples) : limits.minSamples;
  return new Promise((resolve, reject) => {
    let failure: unknown;
    const bench: Benchmark = new Benchmark(name, {
      defer: true,
      delay: 0,
      initCount: 1,
      maxTime: limits.maxTime,
      minSamples: Math.max(1, minSamples),
      fn(deferred: Benchmark.Deferred) {
        step().then(
          () => deferred.resolve(),
          (e) => {
            failure = e;
            bench.abort();
            deferred.resolve();
          },
        );
      },
    });
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      if (failure !== undefined || bench.error) return reject(failure ?? bench.error);
      const sample = bench.stats.sample.map((s) => s * 1000);
      if (!sample.length) return reject(new Error('no samples'));
      resolve({ medianMs: median(sample), meanMs: bench.stats.mean * 1000, rme: bench.stats.rme, samples: sample.length });
    };
    bench.on('complete', done);
    bench.on('abort', done);
    bench.on('error', done);
    bench.run({ async: true });
  });
}

/** A single call's time as a Timing (for items too slow to sample). */
export const timedOnce = (ms: number): Timing => ({ medianMs: ms, meanMs: ms, rme: 0, samples: 1 });

/**
 * Milliseconds per call of `call` issued `calls` times back to back before one `sync`, by the wall
 * clock and by the process's CPU time (all threads: lavapipe's rasterizer threads run in this process).
 */
export async function timeBatch(call: () => void, sync: () => Promise<void>, calls: number): Promise<{ wall: number; cpu: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) call();
  await sync();
  const cpu = process.cpuUsage(cpu0);
  return { wall: (performance.now() - t0) / calls, cpu: (cpu.user + cpu.system) / 1000 / calls };
}

let clockTicks: number | undefined;

/** Kernel clock ticks per second (the unit of /proc/<pid>/task/<tid>/stat times). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * CPU milliseconds (user + system) the Node main thread has used so far, from
 * /proc/self/task/<pid>/stat (the main thread's tid is the process id); undefined off Linux.
 * Only this thread: lavapipe's and dawn's worker threads are other tasks of the process.
 */
export function mainThreadCpuMs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return ((utime + stime) * 1000) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/**
 * Runs `fn` and returns its result with the main thread's CPU use over its wall time, as a percentage
 * of one core (undefined where /proc is unavailable). Resolution: one clock tick (10 ms), so the
 * measured span should last seconds.
 */
export async function withMainThreadCpu<T>(fn: () => Promise<T>): Promise<{ result: T; mainThreadCpuPercent?: number; wallMs: number }> {
  const cpu0 = mainThreadCpuMs();
  const t0 = performance.now();
  const result = await fn();
  const wallMs = performance.now() - t0;
  const cpu1 = mainThreadCpuMs();
  const mainThreadCpuPercent = cpu0 !== undefined && cpu1 !== undefined && wallMs > 0 ? (100 * (cpu1 - cpu0)) / wallMs : undefined;
  return { result, mainThreadCpuPercent, wallMs };
}

/** First line of an error's message. */
export function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

/** The adapter's name in results file names (bench/results/<slug>.*): vendor, device ('lavapipe' for llvmpipe), backend. */
export function adapterSlug(engine: Engine): string {
  const i = engine.info;
  const name = /llvmpipe|lavapipe/i.test(`${i.description} ${i.device}`) ? 'lavapipe' : i.device || i.description || i.architecture;
  return [i.vendor, name, i.backend]
    .filter(Boolean)
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60) || 'unknown-adapter';
}
