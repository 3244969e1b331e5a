// Classifier features for image-quality metrics: the penultimate-layer activations (the hidden dense
// layer's ReLU output, before dropout and the head) of a trained DefectClassifier, in float64 on the CPU.
//
//   const { model, meta } = loadModelDir('models/neu');
//   const real = await extractFeaturesFromImages(model, images, { fit: meta.preprocessing.resize });
//
// The model runs in eval mode without recording, one GPU batch at a time inside tidy(), so GPU memory
// stays flat however many images go through.
import type { Engine } from '../gpu/engine.js';
import { ShapeError } from '../gpu/errors.js';
import type { DefectClassifier } from '../cnn/model.js';
import { floatToU8, resizeGray8, u8ToFloat, type Fit, type GrayImage } from '../data/images.js';
import { inference } from '../nn/modules.js';
import type { Tensor } from '../nn/tensor.js';

/** n feature vectors of width d, row-major float64: row i is data[i*d .. (i+1)*d). */
export interface FeatureMatrix {
  n: number;
  d: number;
  data: Float64Array;
}

export interface FeatureOptions {
  /** Images per GPU batch (default 64). */
  batchSize?: number;
}

export interface ImageFeatureOptions extends FeatureOptions {
  /**
   * How an image of another size is resized to the model's input size: the model's
   * meta.preprocessing.resize (default 'fill'). Images already at the input size are used as they are.
   */
  fit?: Fit;
}

function checkBatchSize(b: number): number {
  if (!Number.isInteger(b) || b < 1) throw new RangeError(`batchSize must be a positive integer, got ${b}`);
  return b;
}

function engineOf(model: DefectClassifier): Engine {
  return model.parameters()[0].engine;
}

/** Runs model.features on batches made by `batch(start, count)` and gathers the rows in float64. */
async function gatherFeatures(model: DefectClassifier, n: number, batchSize: number, batch: (start: number, count: number) => Tensor): Promise<FeatureMatrix> {
  const engine = engineOf(model);
  const d = model.config.hidden;
  const data = new Float64Array(n * d);
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    const f = inference(model.net, () => engine.tidy(() => model.features(batch(start, count))));
    try {
      const rows = await f.toArray();
      if (rows.length !== count * d) throw new ShapeError(`features: expected ${count}x${d} values, got ${rows.length}`);
      data.set(rows, start * d);
    } finally {
      f.dispose();
    }
  }
  return { n, d, data };
}

/**
 * Penultimate-layer features of preprocessed inputs: `x` is what the classifier takes,
 * [n, 1, S, S] with S = model.config.inputSize, standardised as by model.inputTensor. An input larger
 * than one batch is read back once and run batch by batch.
 */
export async function extractFeatures(model: DefectClassifier, x: Tensor, opts: FeatureOptions = {}): Promise<FeatureMatrix> {
  const batchSize = checkBatchSize(opts.batchSize ?? 64);
  const s = model.config.inputSize;
  const sh = x.shape;
  if (sh.length !== 4 || sh[1] !== 1 || sh[2] !== s || sh[3] !== s)
    throw new ShapeError(`extractFeatures: expected input [n, 1, ${s}, ${s}] (the model's input size), got [${sh.join(', ')}]`);
  const n = sh[0];
  if (n <= batchSize) return gatherFeatures(model, n, n, () => x);
  const host = (await x.toArray()) as Float32Array;
  const area = s * s;
  return gatherFeatures(model, n, batchSize, (start, count) => engineOf(model).tensor(host.subarray(start * area, (start + count) * area), [count, 1, s, s]));
}

/** `img` at size x size: as it is when it already has that size, else resized as decodeImage does (8-bit, lanczos3). */
export async function toModelSize(img: GrayImage, size: number, fit: Fit = 'fill'): Promise<Float32Array> {
  if (img.data.length !== img.width * img.height)
    throw new ShapeError(`image data holds ${img.data.length} values, expected ${img.width}x${img.height} = ${img.width * img.height}`);
  if (img.width === size && img.height === size) return img.data;
  return u8ToFloat(await resizeGray8({ width: img.width, height: img.height, data: floatToU8(img.data) }, size, size, fit));
}

/**
 * Raw grayscale images (pixels in [0, 1]) as the model's input takes them: resized to its input size
 * (see ImageFeatureOptions.fit), checked finite, [n, S*S]. Standardisation is left to model.inputTensor.
 * Compute it once and pass it to featuresOfInput and predictInput when both are wanted.
 */
export async function modelInput(model: DefectClassifier, images: readonly GrayImage[], fit?: Fit): Promise<Float32Array> {
  const s = model.config.inputSize;
  const area = s * s;
  const pixels = new Float32Array(images.length * area);
  for (let i = 0; i < images.length; i++) {
    const p = await toModelSize(images[i], s, fit);
    for (let j = 0; j < area; j++) {
      if (!Number.isFinite(p[j])) throw new RangeError(`image #${i} has a non-finite pixel at index ${j}`);
    }
    pixels.set(p, i * area);
  }
  return pixels;
}

/** Penultimate-layer features of modelInput()'s pixels, standardised by model.inputTensor. */
export async function featuresOfInput(model: DefectClassifier, pixels: Float32Array, opts: FeatureOptions = {}): Promise<FeatureMatrix> {
  const batchSize = checkBatchSize(opts.batchSize ?? 64);
  const area = model.config.inputSize ** 2;
  return gatherFeatures(model, pixels.length / area, batchSize, (start, count) => model.inputTensor(pixels.subarray(start * area, (start + count) * area), count));
}

/** The classifier's probabilities [n, outputs] of modelInput()'s pixels, by its own predict() (test-time flips if it stores them). */
export async function predictInput(model: DefectClassifier, pixels: Float32Array, opts: FeatureOptions = {}): Promise<Float32Array> {
  const batchSize = checkBatchSize(opts.batchSize ?? 64);
  const area = model.config.inputSize ** 2;
  const n = pixels.length / area;
  const k = model.outputs;
  const out = new Float32Array(n * k);
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    out.set(await model.predict(pixels.subarray(start * area, (start + count) * area), count), start * k);
  }
  return out;
}

/**
 * Penultimate-layer features of raw grayscale images (pixels in [0, 1]) with the model's own
 * preprocessing: resized to the input size (see ImageFeatureOptions.fit), then standardised by
 * model.inputTensor (dataset mean/std or per-image, as model.json says).
 */
export async function extractFeaturesFromImages(model: DefectClassifier, images: readonly GrayImage[], opts: ImageFeatureOptions = {}): Promise<FeatureMatrix> {
  return featuresOfInput(model, await modelInput(model, images, opts.fit), opts);
}

/** The classifier's probabilities [n, outputs] for raw grayscale images, preprocessed as by extractFeaturesFromImages. */
export async function predictImages(model: DefectClassifier, images: readonly GrayImage[], opts: ImageFeatureOptions = {}): Promise<Float32Array> {
  return predictInput(model, await modelInput(model, images, opts.fit), opts);
}
