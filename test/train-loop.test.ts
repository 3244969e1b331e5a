// The shared training loop (src/train/) on a tiny two-model, two-optimizer, two-loss setup (the shape
// of a GAN step): named losses and running metrics, model selection with ties and early stop, the
// NaN stop leaving the checkpoint intact, resume == uninterrupted run (bit for bit), the options
// check and detection of a corrupted checkpoint; schedules, the progress bar and history curves.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import * as F from '../src/nn/functional.js';
import { Linear } from '../src/nn/modules.js';
import { Adam, SGD } from '../src/nn/optim.js';
import { globalRng, manualSeed } from '../src/nn/seed.js';
import { checkpointPartPath, CheckpointError, CheckpointMismatchError, loadCheckpoint } from '../src/train/checkpoint.js';
import { runTrainingLoop, TrainingDivergedError, type BatchProgress, type TrainingLoopOptions } from '../src/train/loop.js';
import { TrainingProgress } from '../src/train/progress.js';
import { scheduledLr } from '../src/train/schedule.js';
import { historySeries } from '../src/eval/plots.js';
import { testEngine } from './helpers.js';

const IN = 4;
const N = 6;
const BATCHES = 3;

let engine: Engine;
let dir: string;
beforeAll(async () => {
  engine = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-loop-'));
});
afterAll(() => {
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

interface Record_ {
  epoch: number;
  lossA: number;
  lossB: number;
  share: number;
}
interface Batch {
  x: Float32Array;
  labels: Int32Array;
}

/** Models and optimizers of one run: a classifier (Adam) and a scorer (SGD with momentum), as a GAN has D and G. */
function setup(initSeed: number, lr = 0.05) {
  manualSeed(initSeed);
  const a = new Linear(IN, 3, { engine });
  const b = new Linear(IN, 1, { engine });
  return { a, b, optA: new Adam(a.parameters(), { lr }), optB: new SGD(b.parameters(), { lr, momentum: 0.9 }) };
}
type Run = ReturnType<typeof setup>;

/** Batches drawn from the global generator (reseeded per epoch by the loop), as data augmentation or GAN noise would be. */
function* batches(): Generator<Batch> {
  const r = globalRng();
  for (let i = 0; i < BATCHES; i++)
    yield { x: Float32Array.from({ length: N * IN }, () => r.uniform(-1, 1)), labels: Int32Array.from({ length: N }, () => r.int(3)) };
}

function loopOptions(run: Run, out: string, more: Partial<TrainingLoopOptions<Batch, Record_>> = {}): TrainingLoopOptions<Batch, Record_> {
  let share = 0;
  let counted = 0;
  return {
    epochs: 3,
    seed: 11,
    modules: { a: run.a, b: run.b },
    optimizers: { a: run.optA, b: run.optB },
    batchesPerEpoch: BATCHES,
    batches,
    onEpochStart: () => (share = counted = 0),
    step: (batch) => {
      const x = engine.tensor(batch.x, [N, IN]);
      run.optA.zeroGrad();
      const logits = run.a.forward(x);
      const lossA = F.crossEntropy(logits, engine.tensor(batch.labels, [N]));
      lossA.backward();
      run.optA.step();
      // Step-time randomness from the global generator too.
      const noise = globalRng().normalArray(N * IN, 0.1);
      const xb = engine.tensor(batch.x.map((v, i) => v + noise[i]), [N, IN]);
      run.optB.zeroGrad();
      const lossB = F.binaryCrossEntropyWithLogits(run.b.forward(xb), engine.tensor(Float32Array.from(batch.labels, (l) => (l === 0 ? 1 : 0)), [N, 1]));
      lossB.backward();
      run.optB.step();
      return {
        losses: { lossA, lossB },
        outputs: { logits },
        samples: N,
        onValues: ({ outputs }) => {
          const z = outputs.logits;
          for (let i = 0; i < N; i++) if (z[i * 3] > z[i * 3 + 1] && z[i * 3] > z[i * 3 + 2]) share++;
          counted += N;
          return { share: share / counted };
        },
      };
    },
    evaluateEpoch: (s) => ({ record: { epoch: s.epoch, lossA: s.losses.lossA, lossB: s.losses.lossB, share: s.metrics.share }, score: -s.losses.lossA }),
    checkpoint: { dir: join(out, 'checkpoint'), options: { seed: 11, batchSize: N, widths: [3, 1] } },
    ...more,
  };
}

const read = (path: string) => readFileSync(path);
/** The checkpoint's files by part name ('a.safetensors', ...; on disk each name carries a hash), and state.json. */
const checkpointFiles = (out: string): Record<string, Buffer> => {
  const ck = join(out, 'checkpoint');
  const state = JSON.parse(read(join(ck, 'state.json')).toString()) as { checkpoint: { files: Record<string, { file: string }> } };
  const parts = Object.entries(state.checkpoint.files).map(([part, r]) => [part, r.file] as const);
  // Nothing else stays in the directory: the previous save's files and temporaries are removed.
  expect(readdirSync(ck).sort()).toEqual([...parts.map(([, f]) => f), 'state.json'].sort());
  return Object.fromEntries([...parts.map(([part, f]) => [part, read(join(ck, f))] as const), ['state.json', read(join(ck, 'state.json'))] as const].sort(([a], [b]) => (a < b ? -1 : 1)));
};

describe('runTrainingLoop', () => {
  it('runs several named losses and optimizers, reports running values, checkpoints every module and optimizer', async () => {
    const out = join(dir, 'basic');
    const run = setup(1);
    const progress: BatchProgress[] = [];
    const starts: number[][] = [];
    const result = await runTrainingLoop(
      loopOptions(run, out, {
        onBatch: (p) => progress.push(p),
        onEpochStart: (epoch, batches) => starts.push([epoch, batches]),
        readbackLag: 2,
      }),
    );
    expect(starts).toEqual([
      [1, BATCHES],
      [2, BATCHES],
      [3, BATCHES],
    ]);
    expect(progress).toHaveLength(3 * BATCHES);
    expect(progress.map((p) => p.batch)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3]);
    for (const p of progress) {
      expect(Object.keys(p.losses).sort()).toEqual(['lossA', 'lossB']);
      expect(p.losses.lossA).toBeGreaterThan(0);
      expect(p.losses.lossB).toBeGreaterThan(0);
      expect(p.samplesPerSecond).toBeGreaterThan(0);
    }
    // The epoch means are the last running means (samples-weighted), and the records keep them.
    expect(result.history.map((h) => h.lossA)).toEqual([progress[2], progress[5], progress[8]].map((p) => p.losses.lossA));
    expect(result.history.map((h) => h.share)).toEqual([progress[2], progress[5], progress[8]].map((p) => p.metrics.share));
    expect(result).toMatchObject({ epoch: 3, stoppedEarly: false, resumedFrom: 0 });
    expect(Object.keys(checkpointFiles(out))).toEqual(['a.optim.safetensors', 'a.safetensors', 'b.optim.safetensors', 'b.safetensors', 'state.json']);
    const state = JSON.parse(read(join(out, 'checkpoint', 'state.json')).toString());
    expect(state.epoch).toBe(3);
    expect(state.history).toEqual(result.history);
    expect(state.checkpoint.optimizers.a).toMatchObject({ type: 'Adam', hyper: { step: 3 * BATCHES } });
    expect(state.checkpoint.optimizers.b).toMatchObject({ type: 'SGD', hyper: { momentum: 0.9 } });
    for (const o of [run.optA, run.optB]) o.dispose();
  });

  it('keeps the best epoch by score, ties to the lower tiebreak, and stops after `patience` epochs without improvement', async () => {
    const run = setup(2);
    const scores: [number, number][] = [
      [1, 0.5],
      [2, 0.5],
      [2, 0.4], // tie, lower tiebreak: better
      [2, 0.45], // tie, higher tiebreak: not better
      [NaN, 0], // NaN: never better
      [3, 0], // not reached: patience 2 stops after epoch 5
    ];
    const improved: number[] = [];
    const flags: boolean[] = [];
    const logs: string[] = [];
    const result = await runTrainingLoop(
      loopOptions(run, join(dir, 'best'), {
        epochs: 6,
        patience: 2,
        evaluateEpoch: (s) => ({ record: { epoch: s.epoch, lossA: 0, lossB: 0, share: 0 }, score: scores[s.epoch - 1][0], tiebreak: scores[s.epoch - 1][1] }),
        onImproved: (_o, epoch) => void improved.push(epoch),
        onEpochEnd: (_r, better) => flags.push(better),
        log: (l) => logs.push(l),
      }),
    );
    expect(improved).toEqual([1, 2, 3]);
    expect(flags).toEqual([true, true, true, false, false]);
    expect(result).toMatchObject({ epoch: 5, bestEpoch: 3, stoppedEarly: true });
    expect(logs).toContain('early stop: no better score for 2 epochs');
    for (const o of [run.optA, run.optB]) o.dispose();
  });

  it('sets every optimizer’s learning rate by the schedule from its own base rate', async () => {
    const run = setup(3);
    const lrs: number[][] = [];
    await runTrainingLoop(
      loopOptions(run, join(dir, 'schedule'), {
        epochs: 4,
        lrSchedule: 'cosine',
        baseLr: { a: 0.1, b: 0.02 },
        onEpochStart: () => lrs.push([run.optA.lr, run.optB.lr]),
      }),
    );
    expect(lrs).toEqual([1, 2, 3, 4].map((e) => [scheduledLr('cosine', 0.1, e, 4), scheduledLr('cosine', 0.02, e, 4)]));
    expect(lrs[0]).toEqual([0.1, 0.02]);
    expect(lrs[2][0]).toBeCloseTo(0.05, 12);
    expect(scheduledLr('constant', 0.3, 5, 9)).toBe(0.3);
    for (const o of [run.optA, run.optB]) o.dispose();
  });

  it('a resumed run ends bit-identical to an uninterrupted one (weights, optimizer state, history)', async () => {
    const full = join(dir, 'full');
    const split = join(dir, 'split');
    const a = setup(4);
    const uninterrupted = await runTrainingLoop(loopOptions(a, full, { epochs: 4 }));
    const b = setup(4);
    await runTrainingLoop(loopOptions(b, split, { epochs: 2 }));
    // A fresh process: other initial weights and learning rate; everything comes from the checkpoint.
    const c = setup(99, 0.5);
    const logs: string[] = [];
    const resumed = await runTrainingLoop(loopOptions(c, split, { epochs: 4, baseLr: { a: 0.05, b: 0.05 }, checkpoint: { ...loopOptions(c, split).checkpoint!, resume: true }, log: (l) => logs.push(l) }));
    expect(logs[0]).toMatch(/resumed from epoch 2/);
    expect(resumed.resumedFrom).toBe(2);
    expect(resumed.history).toEqual(uninterrupted.history);
    expect(checkpointFiles(split)).toEqual(checkpointFiles(full));
    for (const r of [a, b, c]) for (const o of [r.optA, r.optB]) o.dispose();
  });

  it('a NaN loss stops with TrainingDivergedError before the epoch is saved; the checkpoint stays intact', async () => {
    const out = join(dir, 'nan');
    const run = setup(5);
    await runTrainingLoop(loopOptions(run, out, { epochs: 1 }));
    const before = checkpointFiles(out);
    const improvedIn: number[] = [];
    const base = loopOptions(run, out, {});
    for (const lag of [0, 1, 3]) {
      const liveBefore = engine.memory().liveBuffers;
      const err = await runTrainingLoop(
        loopOptions(run, out, {
          epochs: 3,
          readbackLag: lag,
          checkpoint: { ...base.checkpoint!, resume: true },
          onImproved: (_o, e) => void improvedIn.push(e),
          step: (batch, ctx) => {
            const o = base.step(batch, ctx);
            // lossB of batch 2 of epoch 2 is NaN (as an exploding loss would be).
            return ctx.epoch === 2 && ctx.batch === 2 ? { ...o, losses: { ...o.losses, lossB: engine.tensor([NaN], [1]) } } : o;
          },
        }),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TrainingDivergedError);
      expect((err as Error).message).toMatch(/lossB is NaN at epoch 2, batch 2 of 3: training stopped; the last good checkpoint is intact/);
      expect(checkpointFiles(out)).toEqual(before);
      // The steps' tensors still in flight were read back and freed.
      expect(engine.memory().liveBuffers).toBe(liveBefore);
    }
    expect(improvedIn).toEqual([]);
    for (const o of [run.optA, run.optB]) o.dispose();
  });

  it('refuses to resume with other options, naming them, and loads nothing', async () => {
    const out = join(dir, 'options');
    const run = setup(6);
    await runTrainingLoop(loopOptions(run, out, { epochs: 1 }));
    const fresh = setup(7);
    const weights = await fresh.a.stateDict();
    const base = loopOptions(fresh, out);
    const err = await runTrainingLoop({ ...base, checkpoint: { ...base.checkpoint!, resume: true, options: { seed: 11, batchSize: 12, widths: [3, 1], extra: true } } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    expect((err as CheckpointMismatchError).differences).toEqual(['batchSize', 'extra']);
    expect((err as Error).message).toMatch(/batchSize: 6 in the checkpoint, 12 now; extra: unset in the checkpoint, true now/);
    expect(await fresh.a.stateDict()).toEqual(weights);
    // Key order does not matter.
    expect(() => loadCheckpoint(join(out, 'checkpoint'), { modules: { a: fresh.a, b: fresh.b }, optimizers: { a: fresh.optA, b: fresh.optB }, options: { widths: [3, 1], batchSize: N, seed: 11 } })).not.toThrow();
    for (const r of [run, fresh]) for (const o of [r.optA, r.optB]) o.dispose();
  });

  it('detects a corrupted, truncated or missing checkpoint file and a corrupt state.json before loading anything', async () => {
    const out = join(dir, 'corrupt');
    const run = setup(8);
    await runTrainingLoop(loopOptions(run, out, { epochs: 1 }));
    const ck = join(out, 'checkpoint');
    const fresh = setup(9);
    const parts = { modules: { a: fresh.a, b: fresh.b }, optimizers: { a: fresh.optA, b: fresh.optB }, options: { seed: 11, batchSize: N, widths: [3, 1] } };
    const weights = await fresh.a.stateDict();
    const good = checkpointFiles(out);

    const flipped = Buffer.from(good['b.optim.safetensors']);
    flipped[flipped.length - 3] ^= 0x40; // one bit of a momentum value: the file still parses
    const bOptim = checkpointPartPath(ck, 'b.optim.safetensors');
    const bWeights = checkpointPartPath(ck, 'b.safetensors');
    writeFileSync(bOptim, flipped);
    expect(() => loadCheckpoint(ck, parts)).toThrow(CheckpointError);
    expect(() => loadCheckpoint(ck, parts)).toThrow(/b\.optim\.[0-9a-f]{16}\.safetensors does not match state\.json .*incomplete or corrupt/);
    writeFileSync(bOptim, good['b.optim.safetensors']);

    writeFileSync(bWeights, good['b.safetensors'].subarray(0, 40));
    expect(() => loadCheckpoint(ck, parts)).toThrow(/b\.[0-9a-f]{16}\.safetensors does not match state\.json \(40 bytes/);
    rmSync(bWeights);
    expect(() => loadCheckpoint(ck, parts)).toThrow(/b\.[0-9a-f]{16}\.safetensors is missing/);
    writeFileSync(bWeights, good['b.safetensors']);

    writeFileSync(join(ck, 'state.json'), good['state.json'].subarray(0, 50));
    expect(() => loadCheckpoint(ck, parts)).toThrow(/corrupt checkpoint .*state\.json/);
    expect(await fresh.a.stateDict()).toEqual(weights);

    writeFileSync(join(ck, 'state.json'), good['state.json']);
    expect(loadCheckpoint<{ epoch: number }>(ck, parts).epoch).toBe(1);
    expect(() => loadCheckpoint(ck, { ...parts, modules: { a: fresh.a } })).toThrow(/other parts than this run: unexpected b\.safetensors/);
    for (const r of [run, fresh]) for (const o of [r.optA, r.optB]) o.dispose();
  });
});

describe('progress bar and curves', () => {
  it('shows any set of named values and the rate', () => {
    let text = '';
    const stream = Object.assign(
      new Writable({
        write(chunk, _enc, done) {
          text += String(chunk);
          done();
        },
      }),
      { isTTY: true, columns: 200 },
    );
    const bar = new TrainingProgress({ epochs: 7, fields: [{ key: 'lossD' }, { key: 'lossG', label: 'G', digits: 2 }], unit: 'img', enabled: true, stream });
    bar.start(2, 10);
    bar.update(4, { lossD: 0.123456, lossG: 1.5 }, 321.04);
    bar.stop();
    expect(text).toMatch(/epoch 2\/7 \|.*\| 0\/10 batches \| lossD - \| G - \| - img\/s/);
    expect(text).toMatch(/4\/10 batches \| lossD 0\.1235 \| G 1\.50 \| 321\.0 img\/s/);
  });

  it('historySeries picks named series from per-epoch records', () => {
    const history = [
      { lossD: 0.7, lossG: 2, diversity: 0.1 },
      { lossD: 0.6, lossG: 1.5, diversity: 0.2 },
    ];
    expect(historySeries(history, { lossD: 'lossD', lossG: 'lossG', 'diversity x10': (r) => r.diversity * 10 })).toEqual([
      { name: 'lossD', values: [0.7, 0.6] },
      { name: 'lossG', values: [2, 1.5] },
      { name: 'diversity x10', values: [1, 2] },
    ]);
  });
});
