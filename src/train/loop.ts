// The generic epoch loop shared by the trainers (src/cnn/train.ts, src/gan/).
//
// A trainer owns its models, optimizers, data and evaluation; the loop owns everything around them:
//   - epochs from 1 (or from the checkpoint's epoch + 1 on resume), each reseeding the global
//     generator from (seed, epoch) so that a resumed run continues exactly as an uninterrupted one;
//   - the learning-rate schedule of every optimizer, from its own base rate;
//   - the training steps, each in one engine.tidy() scope; a step returns named one-element loss
//     tensors (and other tensors to read back); the loop reads them back `readbackLag` steps late,
//     so the CPU records step i+1 while the GPU runs step i, and stops with TrainingDivergedError
//     on a NaN/Inf loss before anything of that epoch is saved (the last checkpoint stays intact);
//   - model selection by the score `evaluateEpoch` returns (higher is better; ties go to the lower
//     `tiebreak`), `onImproved` (save the best model), early stop after `patience` epochs without
//     improvement, and an atomic checkpoint of every named module and optimizer after each epoch.
//
// A GAN trainer with two optimizers:
//
//   const result = await runTrainingLoop({
//     epochs, seed, lrSchedule: 'constant',
//     modules: { generator: G, discriminator: D },
//     optimizers: { generator: optG, discriminator: optD },
//     batchesPerEpoch: Math.ceil(n / batchSize),
//     batches: (epoch) => iterateBatches(source, labels, indices, { batchSize, seed, epoch }),
//     step: (b) => {
//       optD.zeroGrad(); const lossD = ...; lossD.backward(); optD.step();
//       optG.zeroGrad(); const lossG = ...; lossG.backward(); optG.step();
//       return { losses: { lossD, lossG }, samples: b.size };
//     },
//     evaluateEpoch: async (s) => ({ record: { epoch: s.epoch, ...s.losses, diversity }, score: -fid }),
//     onImproved: () => saveGanDir(out, G, D),
//     checkpoint: { dir: join(out, 'checkpoint'), options: { data, seed, batchSize, ... }, resume },
//     onBatch: (p) => progress.update(p.batch, p.losses, p.samplesPerSecond),
//   });
import { Engine } from '../gpu/engine.js';
import { shapeString } from '../gpu/device-tensor.js';
import { WgslNnError } from '../gpu/errors.js';
import type { Module } from '../nn/modules.js';
import type { Optimizer } from '../nn/optim.js';
import { manualSeed } from '../nn/seed.js';
import type { Tensor } from '../nn/tensor.js';
import { checkpointExists, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { applyLrSchedule, type LrSchedule } from './schedule.js';

/** A loss became NaN or infinite; nothing of the failing epoch was saved. */
export class TrainingDivergedError extends WgslNnError {}

/** What one training step hands to the loop. */
export interface StepOutput {
  /** One-element loss tensors by name: read back, checked finite, averaged over the epoch weighted by `samples`. */
  losses: Record<string, Tensor>;
  /** Other tensors to read back with the losses (e.g. logits for a running accuracy); given to `onValues`. */
  outputs?: Record<string, Tensor>;
  /** Samples in the batch (loss weighting and samples/s); default 1. */
  samples?: number;
  /** Runs with the read-back values, in step order; may return running metrics (e.g. accuracy) for progress and the epoch summary. */
  onValues?: (values: StepValues) => Record<string, number> | void;
}

export interface StepValues {
  losses: Record<string, number>;
  outputs: Record<string, Float32Array | Int32Array>;
}

export interface StepContext {
  epoch: number;
  /** 1-based position of the step in the epoch. */
  batch: number;
}

/** Running values after each step (for a progress bar). */
export interface BatchProgress {
  epoch: number;
  /** Steps done in this epoch. */
  batch: number;
  batches: number;
  /** Running means of the losses over the epoch so far. */
  losses: Record<string, number>;
  /** The metrics last returned by a step's onValues. */
  metrics: Record<string, number>;
  samplesPerSecond: number;
}

/** The training part of an epoch, given to evaluateEpoch. */
export interface EpochSummary {
  epoch: number;
  /** Means over the epoch, weighted by the steps' samples. */
  losses: Record<string, number>;
  /** The metrics last returned by a step's onValues. */
  metrics: Record<string, number>;
  samples: number;
  steps: number;
  /** Time of the training steps (without evaluateEpoch). */
  seconds: number;
  samplesPerSecond: number;
}

/** What the trainer makes of an epoch. */
export interface EpochOutcome<R> {
  /** The epoch's record: kept in the history and the checkpoint, so plain JSON. */
  record: R;
  /** Model selection: higher is better (e.g. validation accuracy). NaN never counts as an improvement. */
  score: number;
  /** Breaks ties of `score`: lower is better (e.g. validation loss). */
  tiebreak?: number;
}

/** The loop's JSON state, saved in each checkpoint. */
export interface LoopState<R> {
  /** Last completed epoch. */
  epoch: number;
  best: { epoch: number; score: number; tiebreak: number | null } | null;
  history: R[];
  /** The trainer's own state (checkpoint.extraState), e.g. a generator's RNG state. */
  extra?: unknown;
}

export interface CheckpointSettings {
  dir: string;
  /** What must match for a resume (data, seed, batch size, architecture, ...); the learning rate may change. */
  options: Record<string, unknown>;
  /** Continue from the checkpoint in `dir` if there is one. */
  resume?: boolean;
  /** The trainer's own JSON state to keep with the checkpoint. */
  extraState?: { save: () => unknown; load: (saved: unknown) => void };
}

export interface TrainingLoopOptions<B, R> {
  epochs: number;
  /** Named modules: put in training mode at each epoch start, and checkpointed. */
  modules: Record<string, Module>;
  /** Named optimizers: scheduled and checkpointed (the step calls their step()). */
  optimizers: Record<string, Optimizer>;
  /** The batches of an epoch (called after the epoch's reseeding). */
  batches: (epoch: number) => AsyncIterable<B> | Iterable<B>;
  batchesPerEpoch: number | ((epoch: number) => number);
  /** One training step; runs inside engine.tidy(): return what must outlive it. */
  step: (batch: B, ctx: StepContext) => StepOutput;
  /** After the epoch's steps: evaluate (e.g. on validation data) and return the record and the score. */
  evaluateEpoch: (summary: EpochSummary) => EpochOutcome<R> | Promise<EpochOutcome<R>>;
  /** A better score than any before: save the best model. Runs before the epoch's checkpoint. */
  onImproved?: (outcome: EpochOutcome<R>, epoch: number) => void | Promise<void>;
  /** Reseeds the global generator with epochSeed(seed, epoch) at each epoch start. */
  seed?: number;
  /** Default 'constant': every epoch sets each optimizer's lr from its base rate. */
  lrSchedule?: LrSchedule;
  /** Base learning rate per optimizer name (default: each optimizer's lr when the loop starts). */
  baseLr?: Record<string, number>;
  /** Stop after this many epochs without a better score (default never). */
  patience?: number;
  checkpoint?: CheckpointSettings;
  /** Steps recorded before the loop waits for the oldest step's values (default 1). */
  readbackLag?: number;
  /** Engine of the steps' tidy() scopes (default the first module's). */
  engine?: Engine;
  /** Advice appended to the divergence error (default 'lower the learning rate, or check the data'). */
  divergedHint?: string;
  /** Name of the score in messages (default 'score'). */
  scoreName?: string;
  onEpochStart?: (epoch: number, batches: number) => void;
  onBatch?: (progress: BatchProgress) => void;
  onEpochEnd?: (record: R, improved: boolean, epoch: number) => void;
  log?: (line: string) => void;
}

export interface TrainingLoopResult<R> {
  /** Every completed epoch's record, including those before a resume. */
  history: R[];
  /** Last completed epoch. */
  epoch: number;
  /** Epoch of the best score (0 if none). */
  bestEpoch: number;
  stoppedEarly: boolean;
  /** The checkpoint's epoch a resumed run started from (0 for a fresh run). */
  resumedFrom: number;
}

/** The global generator's seed for an epoch. */
export function epochSeed(seed: number, epoch: number): number {
  return seed * 1000003 + epoch;
}

function isBetter(o: EpochOutcome<unknown>, best: LoopState<unknown>['best']): boolean {
  if (Number.isNaN(o.score)) return false;
  if (best === null) return true;
  return o.score > best.score || (o.score === best.score && (o.tiebreak ?? 0) < (best.tiebreak ?? 0));
}

export async function runTrainingLoop<B, R>(opts: TrainingLoopOptions<B, R>): Promise<TrainingLoopResult<R>> {
  const log = opts.log ?? (() => {});
  const ckpt = opts.checkpoint;
  const parts = ckpt && { modules: opts.modules, optimizers: opts.optimizers, options: ckpt.options };
  const baseLr = Object.entries(opts.optimizers).map(([name, optimizer]) => ({ optimizer, baseLr: opts.baseLr?.[name] ?? optimizer.lr }));
  const engine = opts.engine ?? Object.values(opts.modules)[0]?.parameters()[0]?.engine ?? Engine.default;

  let state: LoopState<R> = { epoch: 0, best: null, history: [] };
  if (ckpt?.resume && parts && checkpointExists(ckpt.dir)) {
    state = loadCheckpoint<LoopState<R> & Record<string, unknown>>(ckpt.dir, parts);
    ckpt.extraState?.load(state.extra);
    log(`resumed from epoch ${state.epoch} (best ${state.best?.epoch ?? 0})`);
  }
  const resumedFrom = state.epoch;

  let stoppedEarly = false;
  for (let epoch = state.epoch + 1; epoch <= opts.epochs; epoch++) {
    if (opts.seed !== undefined) manualSeed(epochSeed(opts.seed, epoch));
    applyLrSchedule(opts.lrSchedule ?? 'constant', epoch, opts.epochs, baseLr);
    const summary = await trainEpoch(opts, engine, epoch, !!ckpt && state.epoch > 0);
    const outcome = await opts.evaluateEpoch(summary);
    const improved = isBetter(outcome, state.best);
    if (improved) {
      state.best = { epoch, score: outcome.score, tiebreak: outcome.tiebreak ?? null };
      await opts.onImproved?.(outcome, epoch);
    }
    state.history.push(outcome.record);
    state.epoch = epoch;
    if (ckpt && parts) {
      if (ckpt.extraState) state.extra = ckpt.extraState.save();
      await saveCheckpoint(ckpt.dir, parts, state as unknown as Record<string, unknown>);
    }
    opts.onEpochEnd?.(outcome.record, improved, epoch);
    const bestEpoch = state.best?.epoch ?? 0;
    if (opts.patience !== undefined && epoch - bestEpoch >= opts.patience) {
      log(`early stop: no better ${opts.scoreName ?? 'score'} for ${opts.patience} epochs`);
      stoppedEarly = true;
      break;
    }
  }
  return { history: state.history, epoch: state.epoch, bestEpoch: state.best?.epoch ?? 0, stoppedEarly, resumedFrom };
}

interface InFlight {
  batch: number;
  samples: number;
  names: string[];
  outputNames: string[];
  onValues?: StepOutput['onValues'];
  /** Settles once every tensor is read back and disposed; never rejects (errors are carried). */
  read: Promise<{ values: (Float32Array | Int32Array)[] } | { error: unknown }>;
}

/** Starts reading back a step's tensors (the readback is submitted with the step's work) and disposes them once read. */
function readBack(out: StepOutput, batch: number): InFlight {
  const losses = Object.entries(out.losses);
  const outputs = Object.entries(out.outputs ?? {});
  const tensors = [...losses, ...outputs].map(([, t]) => t);
  const dispose = () => tensors.forEach((t) => t.dispose());
  for (const [name, t] of losses)
    if (t.size !== 1) {
      dispose();
      throw new WgslNnError(`training step: loss '${name}' must be a one-element tensor, got ${shapeString(t.shape)}`);
    }
  const read = Promise.all(tensors.map((t) => t.toArray())).then(
    (values) => ({ values }),
    (error: unknown) => ({ error }),
  );
  return {
    batch,
    samples: out.samples ?? 1,
    names: losses.map(([n]) => n),
    outputNames: outputs.map(([n]) => n),
    onValues: out.onValues,
    read: read.finally(dispose),
  };
}

async function trainEpoch<B, R>(opts: TrainingLoopOptions<B, R>, engine: Engine, epoch: number, hasCheckpoint: boolean): Promise<EpochSummary> {
  const batches = typeof opts.batchesPerEpoch === 'function' ? opts.batchesPerEpoch(epoch) : opts.batchesPerEpoch;
  const lag = Math.max(0, opts.readbackLag ?? 1);
  opts.onEpochStart?.(epoch, batches);
  for (const m of Object.values(opts.modules)) m.train();
  const t0 = Date.now();
  const sums: Record<string, number> = {};
  let metrics: Record<string, number> = {};
  let seen = 0;
  let done = 0;
  const inFlight: InFlight[] = [];

  const settle = async (f: InFlight): Promise<void> => {
    const r = await f.read;
    if ('error' in r) throw r.error;
    const losses: Record<string, number> = {};
    f.names.forEach((n, i) => (losses[n] = r.values[i][0]));
    for (const [name, v] of Object.entries(losses))
      if (!Number.isFinite(v))
        throw new TrainingDivergedError(
          `${name} is ${v} at epoch ${epoch}, batch ${f.batch} of ${batches}: training stopped; ` +
            `${hasCheckpoint ? 'the last good checkpoint is intact' : 'no checkpoint was written'} (${opts.divergedHint ?? 'lower the learning rate, or check the data'})`,
        );
    for (const [name, v] of Object.entries(losses)) sums[name] = (sums[name] ?? 0) + v * f.samples;
    seen += f.samples;
    done++;
    if (f.onValues) {
      const outputs: Record<string, Float32Array | Int32Array> = {};
      f.outputNames.forEach((n, i) => (outputs[n] = r.values[f.names.length + i]));
      metrics = f.onValues({ losses, outputs }) ?? metrics;
    }
    const secs = (Date.now() - t0) / 1000;
    const running = Object.fromEntries(Object.entries(sums).map(([n, s]) => [n, s / seen]));
    opts.onBatch?.({ epoch, batch: done, batches, losses: running, metrics, samplesPerSecond: seen / Math.max(secs, 1e-3) });
  };

  try {
    let batch = 0;
    for await (const b of opts.batches(epoch)) {
      const ctx = { epoch, batch: ++batch };
      const out = engine.tidy(() => opts.step(b, ctx));
      inFlight.push(readBack(out, batch));
      while (inFlight.length > lag) await settle(inFlight.shift()!);
    }
    while (inFlight.length) await settle(inFlight.shift()!);
  } finally {
    // On an error (a diverged loss, a failing step), let the readbacks still in flight finish and free their tensors.
    await Promise.all(inFlight.map((f) => f.read));
  }
  const seconds = (Date.now() - t0) / 1000;
  return {
    epoch,
    losses: Object.fromEntries(Object.entries(sums).map(([n, s]) => [n, s / seen])),
    metrics,
    samples: seen,
    steps: done,
    seconds,
    samplesPerSecond: seen / seconds,
  };
}
