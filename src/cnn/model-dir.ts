// The model format: a directory with
//   model.safetensors  weights with PyTorch's names and layouts (loads into the seed's nn.Sequential)
//   model.json         architecture, classes, task, input size, normalisation, split, training metrics
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '../nn/serialize.js';
import type { MetricsReport } from './metrics.js';
import { DefectClassifier, type ModelConfig } from './model.js';

export const MODEL_FORMAT = 'wgsl-nn-classifier/1';

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  imagesPerSecond: number;
  seconds: number;
}

export interface ModelMetadata {
  format: typeof MODEL_FORMAT;
  architecture: Required<ModelConfig> & { name: 'seed-cnn' };
  task: ModelConfig['task'];
  classes: string[];
  inputSize: number;
  /**
   * How an image becomes the input tensor: grayscale, resized to inputSize x inputSize by `resize`,
   * pixel / 255, then (v - architecture.inputMean) / architecture.inputStd, or with
   * architecture.normalize 'image', (v - mean of the image) / max(std of the image, 0.01).
   */
  preprocessing: { grayscale: true; resize: 'fill' | 'cover'; scale: number; offset: number };
  /** Where training data came from and how it was split (seed, counts, files). */
  split?: unknown;
  training?: {
    command?: string;
    seed: number;
    epochs: number;
    bestEpoch: number;
    batchSize: number;
    lr: number;
    lrSchedule: 'constant' | 'cosine';
    augment: boolean;
    seconds: number;
    imagesPerSecond: number;
    adapter: string;
    history: EpochRecord[];
  };
  metrics?: { validation?: MetricsReport; test?: MetricsReport };
  createdAt: string;
}

export class ModelFormatError extends WgslNnError {}

/** Writes model.safetensors then model.json (each atomically; the JSON last, so a reader never sees new JSON with old weights). */
export async function saveModelDir(dir: string, model: DefectClassifier, meta: Omit<ModelMetadata, 'format' | 'architecture' | 'task' | 'classes' | 'inputSize' | 'createdAt'>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const state = await model.net.stateDict();
  writeSafetensors(join(dir, 'model.safetensors'), state, { format: MODEL_FORMAT });
  const full: ModelMetadata = {
    format: MODEL_FORMAT,
    architecture: { name: 'seed-cnn', ...model.config },
    task: model.config.task,
    classes: model.config.classes,
    inputSize: model.config.inputSize,
    createdAt: new Date().toISOString(),
    ...meta,
  };
  writeFileAtomic(join(dir, 'model.json'), [new TextEncoder().encode(JSON.stringify(full, null, 2) + '\n')]);
}

export function readModelMetadata(dir: string): ModelMetadata {
  const path = join(dir, 'model.json');
  if (!existsSync(dir)) throw new ModelFormatError(`model directory not found: ${dir}`);
  if (!existsSync(path)) throw new ModelFormatError(`not a model directory (no model.json): ${dir}`);
  let meta: ModelMetadata;
  try {
    meta = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelFormatError(`corrupt model.json in ${dir}: ${(e as Error).message}`);
  }
  if (meta.format !== MODEL_FORMAT) throw new ModelFormatError(`${path}: unknown format '${meta.format}' (expected ${MODEL_FORMAT})`);
  return meta;
}

/** Builds the model described by `dir` and loads its weights. */
export function loadModelDir(dir: string, engine?: Engine): { model: DefectClassifier; meta: ModelMetadata } {
  const meta = readModelMetadata(dir);
  const { name: _name, ...config } = meta.architecture;
  const model = new DefectClassifier(config, engine);
  const { tensors } = readSafetensors(join(dir, 'model.safetensors'));
  model.net.loadStateDict(tensors);
  model.eval();
  return { model, meta };
}
