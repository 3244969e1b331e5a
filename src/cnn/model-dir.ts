// The classifier's model directory (the common format is in src/model-dir.ts):
//   model.safetensors  weights with PyTorch's names and layouts (loads into the seed's nn.Sequential)
//   model.json         format 'wgsl-nn-classifier/1', architecture, classes, task, input size,
//                      normalisation, split, training metrics; binary models: the decision threshold
import type { Engine } from '../gpu/engine.js';
import { ModelFormatError, readModelJson, readModelWeights, writeModelDir } from '../model-dir.js';
import type { MetricsReport } from '../eval/metrics.js';
import type { StoredDecision } from './calibration.js';
import { DefectClassifier, type ModelConfig } from './model.js';

export { ModelFormatError } from '../model-dir.js';

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
    /** Generated images mixed into training (`--augment-with`). */
    synthetic?: { ganDir: string; ratio: number; sampling: 'pool' | 'balanced'; perClass: Record<string, number> };
    /** Scarce-data limit: training images per class. */
    limitPerClass?: number;
    /** Transfer learning: the classifier whose matching weights initialised this one (`--init-from`). */
    initFrom?: { model: string; copied: string[] };
    seconds: number;
    imagesPerSecond: number;
    adapter: string;
    history: EpochRecord[];
  };
  /** Binary models: at decision.threshold (0.5 without one), the rule P(defect) >= threshold. */
  metrics?: { validation?: MetricsReport; test?: MetricsReport };
  /**
   * Binary models: the decision threshold, chosen on the validation split for an operating point
   * (src/cnn/calibration.ts). Absent in models made before thresholds: DEFAULT_THRESHOLD applies.
   */
  decision?: StoredDecision;
  createdAt: string;
}

/** The decision threshold of binary models that store none. */
export const DEFAULT_THRESHOLD = 0.5;

/** The threshold a binary model decides with: P(defect) >= it is 'defect'. Null for multiclass models. */
export function decisionThreshold(meta: Pick<ModelMetadata, 'task' | 'decision'>): number | null {
  if (meta.task !== 'binary') return null;
  const t = meta.decision?.threshold;
  if (t === undefined) return DEFAULT_THRESHOLD;
  if (typeof t !== 'number' || !(t >= 0 && t <= 1)) throw new ModelFormatError(`model.json: decision.threshold must be a number in [0, 1], got ${JSON.stringify(t)}`);
  return t;
}

/** Writes model.safetensors then model.json (each atomically; the JSON last, so a reader never sees new JSON with old weights). */
export async function saveModelDir(dir: string, model: DefectClassifier, meta: Omit<ModelMetadata, 'format' | 'architecture' | 'task' | 'classes' | 'inputSize' | 'createdAt'>): Promise<void> {
  const state = await model.net.stateDict();
  const fields: Omit<ModelMetadata, 'format'> = {
    architecture: { name: 'seed-cnn', ...model.config },
    task: model.config.task,
    classes: model.config.classes,
    inputSize: model.config.inputSize,
    createdAt: new Date().toISOString(),
    ...meta,
  };
  writeModelDir(dir, MODEL_FORMAT, { model: state }, fields);
}

export function readModelMetadata(dir: string): ModelMetadata {
  return readModelJson<ModelMetadata>(dir, MODEL_FORMAT);
}

/** Builds the model described by `dir` and loads its weights. */
export function loadModelDir(dir: string, engine?: Engine, inference: InferenceOverrides = {}): { model: DefectClassifier; meta: ModelMetadata } {
  const meta = readModelMetadata(dir);
  const { name: _name, ...config } = meta.architecture;
  const model = new DefectClassifier({ ...config, testTimeFlips: inference.testTimeFlips ?? config.testTimeFlips }, engine);
  model.net.loadStateDict(readModelWeights(dir, 'model'));
  model.eval();
  return { model, meta };
}

/** Inference settings that may differ from the ones stored (calibrate tries them before storing). */
export interface InferenceOverrides {
  testTimeFlips?: boolean;
}

/**
 * Transfer learning: copies into `model` each layer of the classifier in `dir` whose weights all match
 * this model's by name and shape (with the seed's layout, the convolutions of a model with the same
 * channel widths; the dense layers only at the same input size and class count). A layer is copied
 * whole or not at all, so a bias never joins a random weight. Returns the tensor names copied and kept random.
 */
export function initFromModelDir(model: DefectClassifier, dir: string): { copied: string[]; skipped: string[] } {
  const source = readModelWeights(dir, 'model');
  const targets = new Map(model.net.namedParameters());
  const layerOf = (name: string) => name.slice(0, name.lastIndexOf('.'));
  const matches = (name: string) => {
    const entry = source[name];
    const t = targets.get(name);
    return !!entry && !!t && entry.shape.length === t.shape.length && entry.shape.every((d, i) => d === t.shape[i]);
  };
  const layers = new Set([...targets.keys()].map(layerOf));
  const copiedLayers = [...layers].filter((layer) => [...targets.keys()].filter((n) => layerOf(n) === layer).every(matches));
  const copied = [...targets.keys()].filter((n) => copiedLayers.includes(layerOf(n)));
  const skipped = [...targets.keys()].filter((n) => !copied.includes(n));
  if (copied.length === 0) throw new ModelFormatError(`${dir}: no layer's weights match this model's names and shapes, so nothing can be initialised from it`);
  const matching = Object.fromEntries(copied.map((n) => [n, source[n]]));
  model.net.loadStateDict(matching, false);
  return { copied, skipped };
}
