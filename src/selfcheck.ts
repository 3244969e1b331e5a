// `wgsl-nn selfcheck`: prints the adapter and runs every registered variant of the core kernels once
// against its CPU reference (float64), with the time each took. A quick "does this machine work".
import { Engine } from './gpu/engine.js';
import { kernels } from './kernels/index.js';
import { conv2dForwardOp } from './kernels/conv2d.js';
import { linearForwardOp } from './kernels/dense.js';
import { maxPool2dForwardOp } from './kernels/maxpool2d.js';
import { softmaxForwardOp } from './kernels/softmax.js';
import { conv2dRef } from './kernels/reference/conv2d.js';
import { linearForwardRef } from './kernels/reference/dense.js';
import { maxPool2dRef } from './kernels/reference/maxpool2d.js';
import { softmaxRef } from './kernels/reference/softmax.js';
import { Rng } from './util/rng.js';

interface Check {
  op: string;
  run: (e: Engine, variant: string, rng: Rng) => Promise<{ got: ArrayLike<number>; want: ArrayLike<number> }>;
}

const random = (rng: Rng, n: number) => rng.uniformArray(n, -1, 1);

const checks: Check[] = [
  {
    op: 'conv2d.forward',
    run: async (e, variant, rng) => {
      const xs = [3, 5, 13, 11];
      const ws = [7, 5, 3, 3];
      const x = random(rng, 3 * 5 * 13 * 11);
      const w = random(rng, 7 * 5 * 9);
      const b = random(rng, 7);
      const p = { stride: [2, 1] as [number, number], padding: [1, 1] as [number, number] };
      const y = conv2dForwardOp.get(e, variant)(e.fromArray(x, xs), e.fromArray(w, ws), e.fromArray(b, [7]), { ...p, activation: 'relu' });
      return { got: await y.toArray(), want: conv2dRef(x, xs, w, ws, b, p, 'relu') };
    },
  },
  {
    op: 'linear.forward',
    run: async (e, variant, rng) => {
      const x = random(rng, 5 * 33);
      const w = random(rng, 7 * 33);
      const b = random(rng, 7);
      const y = linearForwardOp.get(e, variant)(e.fromArray(x, [5, 33]), e.fromArray(w, [7, 33]), e.fromArray(b, [7]), { activation: 'sigmoid' });
      return { got: await y.toArray(), want: linearForwardRef(x, w, b, 5, 33, 7, 'sigmoid') };
    },
  },
  {
    op: 'maxPool2d.forward',
    run: async (e, variant, rng) => {
      const shape = [2, 3, 9, 7];
      const x = random(rng, 2 * 3 * 9 * 7);
      const p = { kernel: [3, 3] as [number, number], stride: [2, 2] as [number, number] };
      const { y } = maxPool2dForwardOp.get(e, variant)(e.fromArray(x, shape), p);
      return { got: await y.toArray(), want: maxPool2dRef(x, shape, p).y };
    },
  },
  {
    op: 'softmax.forward',
    run: async (e, variant, rng) => {
      const x = random(rng, 4 * 10).map((v, i) => (i === 3 ? 100 : v));
      const y = softmaxForwardOp.get(e, variant)(e.fromArray(x, [4, 10]));
      return { got: await y.toArray(), want: softmaxRef(x, 10) };
    },
  },
];

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return got.length === want.length ? num / Math.max(den, 1e-30) : Infinity;
}

export async function runSelfCheck(log: (s: string) => void = console.log): Promise<boolean> {
  const engine = await Engine.create({ poisonAllocations: true });
  let ok = true;
  try {
    log(`adapter: ${engine.describe()}`);
    log(`limits: maxStorageBufferBindingSize ${engine.limits.maxStorageBufferBindingSize}, workgroup storage ${engine.limits.maxComputeWorkgroupStorageSize} B, invocations ${engine.limits.maxComputeInvocationsPerWorkgroup}`);
    for (const c of checks) {
      for (const variant of kernels.variants(c.op)) {
        const t0 = performance.now();
        const { got, want } = await c.run(engine, variant, new Rng(7)); // tensors go with engine.destroy()
        const ms = performance.now() - t0;
        const err = relErr(got, want);
        const pass = err <= 1e-4;
        ok &&= pass;
        const chosen = kernels.chosen(c.op, engine) === variant ? ' (default here)' : '';
        log(`${pass ? 'ok  ' : 'FAIL'} ${c.op} [${variant}]${chosen}: relative error ${err.toExponential(2)}, ${ms.toFixed(1)} ms incl. compile`);
      }
    }
    const m = engine.memory();
    log(`memory: ${m.bytesAllocated} bytes allocated in ${m.liveBuffers + m.pooledBuffers} buffers`);
    log(ok ? 'selfcheck passed' : 'selfcheck FAILED');
  } finally {
    engine.destroy();
  }
  return ok;
}
