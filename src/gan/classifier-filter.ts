// Rejection sampling of a class-conditional generator by a trained classifier: a generated image of
// class c is kept only when the classifier also calls it c, with probability >= minConfidence.
//
// Why: a conditional generator's weak classes produce many samples that look like another class or
// like nothing; training on them teaches wrong labels. Filtering keeps the label-consistent ones.
// It is not a measure of the generator alone: the classifier's own knowledge of the real images
// enters through the filter, so a train-on-synthetic score with a filter must be reported as such.
import { WgslNnError } from '../gpu/errors.js';
import type { DefectClassifier } from '../cnn/model.js';
import { loadModelDir } from '../cnn/model-dir.js';
import type { Engine } from '../gpu/engine.js';
import type { ImageGenerator } from './mixture.js';
import { argmaxRows } from '../eval/metrics.js';
import { predictImages } from './features.js';
import type { SampleFilter } from './samples.js';

export interface ClassifierFilterOptions {
  /** The classifier's class names, in its output order (model.json `classes`). */
  classifierClasses: readonly string[];
  /** The generator's class names: classIndex k of the filter means ganClasses[k]. */
  ganClasses: readonly string[];
  /** Side of the generated images (square). */
  imageSize: number;
  /** Keep an image when P(its class) >= minConfidence and that class is the classifier's top one (default 0.5). */
  minConfidence?: number;
}

/** A SampleFilter keeping the generated images the classifier assigns to their intended class. */
export function classifierFilter(model: DefectClassifier, opts: ClassifierFilterOptions): SampleFilter {
  const minConfidence = opts.minConfidence ?? 0.5;
  if (!(minConfidence >= 0 && minConfidence < 1)) throw new RangeError(`minConfidence must be in [0, 1), got ${minConfidence}`);
  if (model.config.task !== 'multiclass') throw new WgslNnError('a sample filter needs a multiclass classifier (one output per class)');
  const target = opts.ganClasses.map((c) => {
    const i = opts.classifierClasses.indexOf(c);
    if (i < 0) throw new WgslNnError(`sample filter: the classifier has no class '${c}' (its classes: ${opts.classifierClasses.join(', ')})`);
    return i;
  });
  const S = opts.imageSize;
  const K = opts.classifierClasses.length;
  return async (images, count, classIndex) => {
    if (images.length !== count * S * S) throw new WgslNnError(`sample filter: ${images.length} values are not ${count} images of ${S}x${S}`);
    const gray = Array.from({ length: count }, (_, i) => ({ width: S, height: S, data: images.subarray(i * S * S, (i + 1) * S * S) }));
    return assignedTo(await predictImages(model, gray), K, target[classIndex], minConfidence);
  };
}

/**
 * classifierFilter for `generator`'s classes and image size, from a classifier model directory (loaded
 * on `engine`); `dispose()` frees the classifier.
 */
export function loadClassifierFilter(dir: string, generator: ImageGenerator, minConfidence: number | undefined, engine: Engine): { filter: SampleFilter; dispose: () => void } {
  const { model, meta } = loadModelDir(dir, engine);
  try {
    const filter = classifierFilter(model, { classifierClasses: meta.classes, ganClasses: generator.config.classes, imageSize: generator.config.imageSize, minConfidence });
    return { filter, dispose: () => model.dispose() };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * Per row of probabilities [n, K]: whether class `target` is the top class (first of ties) with
 * probability >= minConfidence.
 */
export function assignedTo(probs: Float32Array, K: number, target: number, minConfidence = 0): boolean[] {
  return Array.from(argmaxRows(probs, K), (best, i) => best === target && probs[i * K + target] >= minConfidence);
}
