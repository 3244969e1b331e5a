// The Inspector as a long-running service: concurrent callers batched onto the GPU, recovery from a
// lost GPU device, and a clean exit after dispose(). Runs the shipped models/neu on synthetic images.
// Losses are forced at chosen points (engine.device.destroy(), or inside the next readback), never by
// timing; the only timeout is a hang guard on the child process.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { DeviceLostError } from '../src/gpu/errors.js';
import { ImageDecodeError } from '../src/data/images.js';
import { Inspector, InspectionFailedError, type Inspection } from '../src/cnn/inspector.js';
import { NEU_MODEL, ROOT, syntheticPngs } from './inspection-fixtures.js';

let images: Buffer[];
let baseline: Inspection[];

beforeAll(async () => {
  images = await syntheticPngs(12);
  const insp = await Inspector.load(NEU_MODEL);
  baseline = [];
  for (const img of images) baseline.push(await insp.inspect(img)); // one at a time: batches of 1
  insp.dispose();
});

/**
 * Makes the engine's next readback lose the device first: the batch is recorded on the GPU and its
 * callers are waiting, i.e. the loss hits calls in flight.
 */
function loseDeviceAtNextReadback(engine: Engine): void {
  const read = engine.read.bind(engine);
  engine.read = (...args: Parameters<Engine['read']>) => {
    engine.read = read;
    engine.device.destroy();
    return read(...args);
  };
}

/** `callers` concurrent loops, each inspecting `perCaller` images in turn; outcomes in call order. */
async function stream(
  insp: Inspector,
  callers: number,
  perCaller: number,
  onSettled?: (done: number) => void,
): Promise<{ image: number; outcome: PromiseSettledResult<Inspection> }[]> {
  const out: { image: number; outcome: PromiseSettledResult<Inspection> }[] = [];
  let done = 0;
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let k = 0; k < perCaller; k++) {
        const image = (c * perCaller + k) % images.length;
        const outcome = await insp.inspect(images[image]).then(
          (value): PromiseSettledResult<Inspection> => ({ status: 'fulfilled', value }),
          (reason): PromiseSettledResult<Inspection> => ({ status: 'rejected', reason }),
        );
        out.push({ image, outcome });
        onSettled?.(++done);
      }
    }),
  );
  return out;
}

describe('Inspector: concurrent callers', () => {
  it('16 concurrent callers are batched onto the GPU and each gets the answer for its own image', async () => {
    // A long maxWaitMs makes the batches deterministic: a batch starts only when all 16 callers have joined.
    const insp = await Inspector.load(NEU_MODEL, { maxBatch: 16, maxWaitMs: 60_000 });
    const results = await stream(insp, 16, 2);
    for (const { image, outcome } of results) expect(outcome).toEqual({ status: 'fulfilled', value: baseline[image] });
    expect(insp.stats().queue).toMatchObject({ batches: 2, items: 32, largestBatch: 16 });
    insp.dispose();
  });

  it('one bad image fails its own call only', async () => {
    const insp = await Inspector.load(NEU_MODEL); // default maxBatch / maxWaitMs
    const bad = [Buffer.from('not an image at all'), Buffer.alloc(0), images[0].subarray(0, 60)];
    const calls = [...images, ...bad].map((img, i) => insp.inspect(img, `image-${i}`));
    const settled = await Promise.allSettled(calls);
    settled.slice(0, images.length).forEach((s, i) => expect(s).toEqual({ status: 'fulfilled', value: baseline[i] }));
    const errors = settled.slice(images.length).map((s) => (s as PromiseRejectedResult).reason as Error);
    for (const e of errors) expect(e).toBeInstanceOf(ImageDecodeError);
    expect(errors[0].message).toMatch(/not an image.*image-12/);
    expect(errors[1].message).toMatch(/empty file.*image-13/);
    expect(errors[2].message).toMatch(/corrupt PNG.*image-14/);
    expect(insp.stats().queue.items).toBe(images.length); // bad images never reached the GPU
    insp.dispose();
  });

  it('dispose() rejects calls still queued, and later calls, clearly', async () => {
    const insp = await Inspector.load(NEU_MODEL, { maxBatch: 16, maxWaitMs: 60_000 });
    const queued = insp.inspect(images[0]);
    await new Promise<void>((resolve) => {
      const poll = () => (insp.stats().queue.queued === 1 ? resolve() : setImmediate(poll)); // decoded and waiting
      poll();
    });
    insp.dispose();
    await expect(queued).rejects.toThrow(/Inspector used after dispose\(\)/);
    await expect(insp.inspect(images[0])).rejects.toThrow(/Inspector used after dispose\(\)/);
  });
});

describe('Inspector: GPU device loss', () => {
  it('recovers mid-stream: every call succeeds with the same answer or fails clearly; calls after recovery succeed', async () => {
    const insp = await Inspector.load(NEU_MODEL, { maxBatch: 8 });
    const engines = [insp.engine];
    let lostAt = -1;
    const results = await stream(insp, 16, 4, (done) => {
      if (done === 10) loseDeviceAtNextReadback(insp.engine); // loss while a batch is on the GPU
      if (done === 40 && lostAt < 0) {
        lostAt = done;
        engines.push(insp.engine);
        insp.engine.device.destroy(); // loss between batches, as a driver reset would do
      }
    });
    expect(results).toHaveLength(64);
    let failed = 0;
    for (const { image, outcome } of results) {
      if (outcome.status === 'fulfilled') expect(outcome.value).toEqual(baseline[image]);
      else {
        failed++;
        expect(outcome.reason).toBeInstanceOf(InspectionFailedError);
        expect((outcome.reason as Error).message).toMatch(/GPU device was lost/);
      }
    }
    // Retries succeed here (the device comes back), so nothing should have failed.
    expect(failed).toBe(0);
    expect(insp.stats().deviceRecoveries).toBe(2);
    expect(insp.stats().failedRecoveries).toBe(0);
    expect(engines[1]).not.toBe(engines[0]);
    expect(insp.engine).not.toBe(engines[1]);
    expect(engines[0].isLost && engines[1].isLost).toBe(true);
    expect(engines[0].isDestroyed && engines[1].isDestroyed).toBe(true); // the lost engines were released
    const after = await Promise.all(images.map((img) => insp.inspect(img)));
    expect(after).toEqual(baseline);
    insp.dispose();
    expect(insp.engine.isDestroyed).toBe(true);
  });

  it('fails the calls in flight clearly when the retry cannot run, then recovers once it can', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-insp-'));
    try {
      cpSync(join(NEU_MODEL, 'model.json'), join(dir, 'model.json'));
      cpSync(join(NEU_MODEL, 'model.safetensors'), join(dir, 'model.safetensors'));
      const insp = await Inspector.load(dir);
      expect(await insp.inspect(images[1])).toEqual(baseline[1]);
      renameSync(join(dir, 'model.safetensors'), join(dir, 'hidden.safetensors')); // recovery cannot reload the weights
      loseDeviceAtNextReadback(insp.engine);
      const inFlight = await Promise.allSettled(images.slice(0, 4).map((img) => insp.inspect(img)));
      for (const s of inFlight) {
        expect(s.status).toBe('rejected');
        const e = (s as PromiseRejectedResult).reason as Error;
        expect(e).toBeInstanceOf(InspectionFailedError);
        expect(e.message).toMatch(/GPU device was lost .* retry on a new device failed: could not recover from the loss of the GPU device/);
        expect(e.message).toMatch(/model\.safetensors/);
      }
      expect(insp.stats().failedRecoveries).toBeGreaterThanOrEqual(1);
      renameSync(join(dir, 'hidden.safetensors'), join(dir, 'model.safetensors'));
      const after = await Promise.all(images.map((img) => insp.inspect(img)));
      expect(after).toEqual(baseline);
      expect(insp.stats().deviceRecoveries).toBe(1);
      insp.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an engine given by the caller is not replaced: its calls fail with DeviceLostError', async () => {
    const engine = await Engine.create();
    const insp = await Inspector.load(NEU_MODEL, { engine });
    expect(await insp.inspect(images[2])).toEqual(baseline[2]);
    engine.device.destroy();
    await expect(insp.inspect(images[2])).rejects.toBeInstanceOf(DeviceLostError);
    expect(insp.engine).toBe(engine);
    insp.dispose();
    engine.destroy();
  });

  it('the engine reports the loss to onLost listeners and through isLost, but not after destroy()', async () => {
    const a = await Engine.create();
    const b = await Engine.create();
    const seen: string[] = [];
    const lostA = new Promise<void>((resolve) => a.onLost((e) => (seen.push(`a: ${e.message}`), resolve())));
    b.onLost(() => seen.push('b'));
    a.device.destroy();
    await lostA;
    expect(a.isLost).toBe(true);
    expect(seen).toEqual([expect.stringMatching(/^a: GPU device lost \(destroyed\)/)]);
    const late = await new Promise<Error>((resolve) => a.onLost(resolve)); // registered after the loss: called at once
    expect(late).toBeInstanceOf(DeviceLostError);
    b.destroy();
    await b.device.lost;
    expect(b.isLost).toBe(false);
    expect(seen).toHaveLength(1);
    a.destroy();
  });
});

describe('Inspector: clean shutdown', () => {
  const child = (args: string[]) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
      // The timeout is only a hang guard: a process that does not exit by itself is killed and the test fails on `signal`.
      execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'inspector-exit.ts'), ...args], { cwd: ROOT, timeout: 90_000 }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
      });
    });

  it('a process that loads, inspects and disposes exits by itself with code 0', async () => {
    const r = await child([]);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(out.labels).toEqual(baseline.slice(0, 4).map((x) => x.label));
  });

  it('it still exits by itself after recovering from a device loss', async () => {
    const r = await child(['--lose-device']);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).deviceRecoveries).toBe(1);
  });
});
