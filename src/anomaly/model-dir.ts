// The anomaly detector's model directory (the common format is in src/model-dir.ts):
//   generator.safetensors      the DCGAN generator (torch names; src/gan/models.ts)
//   discriminator.safetensors  the DCGAN discriminator (its body gives the feature residual)
//   encoder.safetensors        the encoder (encoder.ts)
//   memory.safetensors         optional: the feature memory (feature-memory.ts: backbone convolutions and
//                              the memory vectors 'bank'); memory-2, memory-3, ...: more memories, one
//                              per further backbone
//   model.json                 format 'wgsl-nn-anomaly/1': patch configuration, GAN architecture,
//                              scoring calibration, the decision threshold and how it was chosen,
//                              the split of the good images, training history
import { join } from 'node:path';
import { type GrayImage8, loadGray8 } from '../data/images.js';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { Discriminator, Generator, resolveGanConfig, type ResolvedGanConfig } from '../gan/models.js';
import { readModelJson, readModelWeights, writeModelDir } from '../model-dir.js';
import type { StateDict } from '../nn/modules.js';
import { resolveAnomalyConfig, type ResolvedAnomalyConfig } from './config.js';
import { Encoder } from './encoder.js';
import { FeatureMemory, type FeatureMemoryConfig } from './feature-memory.js';
import type { AnomalyNetworks, Scoring } from './scorer.js';

export const ANOMALY_FORMAT = 'wgsl-nn-anomaly/1';

export interface AnomalyThreshold {
  /** A score above this value is a defect. */
  value: number;
  /** The false-alarm rate it was chosen for on the validation good images. */
  falseAlarmRate: number;
  /** Number of validation good images it was chosen on. */
  validationImages: number;
}

export interface AnomalyMetadata {
  format: typeof ANOMALY_FORMAT;
  config: ResolvedAnomalyConfig;
  gan: ResolvedGanConfig;
  scoring: Scoring;
  threshold: AnomalyThreshold;
  preprocessing: string;
  /** Where the good images came from and how they were split (files per split, 'folder/file'). */
  data?: {
    root: string;
    goodFolders: string[];
    splitSeed: number;
    testFraction: number;
    valFraction: number;
    files: { train: string[]; val: string[]; test: string[] };
  };
  training?: Record<string, unknown>;
  /** The feature memories (memory.safetensors, memory-2.safetensors, ...), and the training files their vectors were drawn from. */
  memories?: MemoryRecord[];
  /** Written before a model could have several memories: read as `memories: [memory]`. */
  memory?: MemoryRecord;
  /**
   * Set by `anomaly calibrate` (the scoring and threshold were redone after training): the last one. droppedMemories: the memories it built or had that the chosen mix weighed 0,
   * not kept; `index` is each one's position in the selection's mixes (0-based). The calibration before it, if
   * any, as `previous` (and so on back).
   */
  recalibration?: Recalibration;
  createdAt: string;
}

export interface Recalibration {
  command?: string;
  at: string;
  droppedMemories?: (FeatureMemoryConfig & { index: number })[];
  previous?: Recalibration;
}

export type MemoryRecord = FeatureMemoryConfig & { images: string[] };

/** The weights file of the k-th memory: 'memory', then 'memory-2', 'memory-3', ... */
export const memoryWeightsName = (k: number) => (k === 0 ? 'memory' : `memory-${k + 1}`);

export const PREPROCESSING =
  'grayscale; resized by config.scale (lanczos3); per image p = 0.5 + (v - median) / (2 * contrast * (P84 - P16) / 2), clamped to [0, 1]; ' +
  'patches of patchSize on a grid with stride; networks see 2p - 1';

export async function saveAnomalyDir(dir: string, nets: AnomalyNetworks, meta: Omit<AnomalyMetadata, 'format' | 'gan' | 'preprocessing' | 'createdAt'>): Promise<void> {
  const [generator, discriminator, encoder] = await Promise.all([nets.generator.stateDict(), nets.discriminator.stateDict(), nets.encoder.stateDict()]);
  const memories = nets.memories ?? [];
  if (memories.length !== (meta.memories?.length ?? 0)) throw new WgslNnError('saveAnomalyDir: the feature memories and their metadata must be given together');
  const weights: Record<string, StateDict> = { generator, discriminator, encoder };
  for (const [k, m] of memories.entries()) weights[memoryWeightsName(k)] = await m.stateDict();
  writeModelDir(dir, ANOMALY_FORMAT, weights, {
    ...meta,
    gan: nets.generator.config,
    preprocessing: PREPROCESSING,
    createdAt: new Date().toISOString(),
  });
}

/** model.json, with the single-memory fields of older models read as lists (`memories`, `scoring.memoryMeans`). */
export function readAnomalyMetadata(dir: string): AnomalyMetadata {
  const { memory, ...meta } = readModelJson<AnomalyMetadata>(dir, ANOMALY_FORMAT);
  const { memoryMean, ...scoring } = meta.scoring as Scoring & { memoryMean?: number };
  return {
    ...meta,
    ...(memory && !meta.memories ? { memories: [memory] } : {}),
    scoring: memoryMean !== undefined && !scoring.memoryMeans ? { ...scoring, memoryMeans: [memoryMean] } : scoring,
  };
}

/** Builds the three networks of a model directory and loads their weights (in eval mode). */
export function loadAnomalyDir(dir: string, engine?: Engine): { nets: AnomalyNetworks; meta: AnomalyMetadata; config: ResolvedAnomalyConfig } {
  const meta = readAnomalyMetadata(dir);
  const config = resolveAnomalyConfig(meta.config);
  const gan = resolveGanConfig(meta.gan);
  const generator = new Generator(gan, engine);
  const discriminator = new Discriminator(gan, engine);
  const encoder = new Encoder(config.patchSize, config.latentDim, config.nef, engine);
  const nets: AnomalyNetworks = { generator, discriminator, encoder };
  try {
    generator.loadStateDict(readModelWeights(dir, 'generator'));
    discriminator.loadStateDict(readModelWeights(dir, 'discriminator'));
    encoder.loadStateDict(readModelWeights(dir, 'encoder'));
    for (const [k, record] of (meta.memories ?? []).entries()) {
      const { images: _images, ...memoryConfig } = record;
      const memory = new FeatureMemory(memoryConfig, generator.parameters()[0].engine);
      (nets.memories ??= []).push(memory);
      memory.loadStateDict(readModelWeights(dir, memoryWeightsName(k)));
    }
  } catch (e) {
    disposeNetworks(nets);
    throw e;
  }
  for (const m of [generator, discriminator, encoder, ...(nets.memories ?? [])]) m.eval();
  return { nets, meta, config };
}

/**
 * A loader of the good images a model records ('folder/file' under `data`, default the recorded dataset root)
 * and its validation images, loaded; a model that records none is an error naming `dir` and ending in `purpose`.
 */
export async function loadRecordedValidation(
  dir: string,
  meta: AnomalyMetadata,
  data: string | undefined,
  purpose: string,
): Promise<{ load: (rel: string) => Promise<GrayImage8>; validation: GrayImage8[] }> {
  const root = data ?? meta.data?.root;
  const files = meta.data?.files.val;
  if (!root || !files?.length) throw new WgslNnError(`${dir} does not record its validation images: ${purpose}`);
  const load = (rel: string) => loadGray8(join(root, ...rel.split('/')));
  return { load, validation: await Promise.all(files.map(load)) };
}

export function disposeNetworks(nets: AnomalyNetworks): void {
  nets.generator.dispose();
  nets.discriminator.dispose();
  nets.encoder.dispose();
  nets.memories?.forEach((m) => m.dispose());
}
