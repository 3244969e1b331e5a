// Grad-CAM (Selvaraju et al. 2017) for the seed CNN, with the autograd of src/nn: which parts of an image
// raised the class score.
//
//   1. Run the layers up to the last conv block (by default the ReLU output of the last Conv2d, before its
//      max-pool: 28x28 cells at 128 px input) without a tape, and make that activation A [1,C,h,w] a
//      leaf requiring grad.
//   2. Continue to the logits (eval mode: dropout off; a final Sigmoid is left out) and back-propagate
//      from the chosen class's logit (binary models: the defect logit; multiclass: the predicted class
//      unless one is given). The weights' own gradients are not computed.
//   3. w_c = mean over (y, x) of dlogit/dA_c;  cam = ReLU(sum_c w_c A_c), divided by its maximum
//      (a map with no positive evidence is all zero).
//   4. Upsample to the image's own size, bilinear. 'receptive-field' alignment (default) puts each cell at
//      the centre of its receptive field in the input (cell i of the seed's third block sits on input
//      pixel 4 i + 8.5), then maps the model input back to the image through the resize (fill or cover);
//      outside the outermost cell centres the edge values are held. 'stretch' spreads the cells evenly
//      over the image, the usual Grad-CAM upsampling (cv2.resize of the map), ignoring the border the
//      unpadded convolutions never centre on.
// The CAM is computed on the CPU in float64 from the read-back activation and gradient (C*h*w values).
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { nn } from '../nn/index.js';
import { isGradEnabled, noGrad, type Tensor } from '../nn/tensor.js';
import type { GrayImage8 } from '../data/images.js';
import { blendHeat, writeRgbPng } from '../eval/heat-overlay.js';
import type { DefectClassifier } from './model.js';

export type CamAlignment = 'receptive-field' | 'stretch';

export interface GradCamOptions {
  /** Class whose logit is explained (index into the model's classes). Default: binary 'defect' (1); multiclass the predicted class. */
  classIndex?: number;
  /** Index into model.net.layers of the activation to explain (default gradCamLayer(model)). */
  layer?: number;
}

/** What the backward pass gives: the activation, its gradient, and the forward's outputs. */
export interface GradCamGradients {
  layer: number;
  classIndex: number;
  /** Shape of the activation [1, C, h, w]. */
  shape: [number, number, number, number];
  /** The activation A, C*h*w values (NCHW). */
  activations: Float32Array;
  /** dlogit[classIndex] / dA, same layout. */
  gradients: Float32Array;
  /** The logits [K] (binary: [1], the defect logit) of the same forward pass. */
  logits: Float32Array;
  /** Class probabilities from them ([K]; binary [1]: P(defect)), as DefectClassifier.probabilities computes them. */
  probabilities: Float32Array;
}

/** Input pixel (index coordinates) = scale * cell index + offset, per axis, for a layer's output. */
export interface CellGeometry {
  scale: number;
  offset: number;
}

export interface GradCamResult extends GradCamGradients {
  /** Channel weights w_c. */
  weights: Float64Array;
  /** The normalised map on the activation's grid, h*w values in [0, 1]. */
  cam: Float32Array;
  camWidth: number;
  camHeight: number;
  geometry: CellGeometry;
}

/** A heatmap at an image's size: values in [0, 1], row-major. */
export interface Heatmap {
  width: number;
  height: number;
  data: Float32Array;
  /** The class whose score it explains. */
  class: string;
}

/** The default layer: the last Conv2d's output after its ReLU (the conv itself if no ReLU follows). */
export function gradCamLayer(model: DefectClassifier): number {
  const layers = model.net.layers;
  let conv = -1;
  layers.forEach((l, i) => {
    if (l instanceof nn.Conv2d) conv = i;
  });
  if (conv < 0) throw new WgslNnError('Grad-CAM needs a model with a Conv2d layer');
  return layers[conv + 1] instanceof nn.ReLU ? conv + 1 : conv;
}

const pair = (v: number | [number, number]): number => {
  if (typeof v === 'number') return v;
  if (v[0] !== v[1]) throw new WgslNnError(`Grad-CAM geometry supports square kernels, strides and padding only, got ${v.join('x')}`);
  return v[0];
};

/** Where the cells of layer `layer`'s output sit in the model input (centres of their receptive fields). */
export function cellGeometry(model: DefectClassifier, layer: number): CellGeometry {
  // Walking forward: input = scale * q + offset for the current layer's output coordinate q; a layer with
  // kernel k, stride s, padding p maps its output q to its input s q + (k - 1) / 2 - p.
  let scale = 1;
  let offset = 0;
  for (let i = 0; i <= layer; i++) {
    const l = model.net.layers[i];
    let k: number;
    let s: number;
    let p = 0;
    if (l instanceof nn.Conv2d) {
      k = pair(l.kernelSize);
      s = pair(l.stride);
      p = pair(l.padding);
    } else if (l instanceof nn.MaxPool2d) {
      k = pair(l.kernelSize);
      s = pair(l.stride ?? l.kernelSize);
    } else if (l instanceof nn.ReLU || l instanceof nn.LeakyReLU || l instanceof nn.Dropout || l instanceof nn.Sigmoid || l instanceof nn.Tanh) continue;
    else throw new WgslNnError(`Grad-CAM: layer ${i} (${l.constructor.name}) has no spatial geometry; choose a layer before Flatten`);
    offset += scale * ((k - 1) / 2 - p);
    scale *= s;
  }
  return { scale, offset };
}

/**
 * Steps 1-2: the activation of `layer` and the gradient of the chosen class's logit with respect to it,
 * for one image given as inputSize^2 pixels in [0, 1] (the model's own standardisation is applied).
 */
export async function gradCamGradients(model: DefectClassifier, pixels: Float32Array, options: GradCamOptions = {}): Promise<GradCamGradients> {
  const s = model.config.inputSize;
  if (pixels.length !== s * s) throw new WgslNnError(`Grad-CAM takes one ${s}x${s} image (${s * s} pixels), got ${pixels.length} values`);
  if (!isGradEnabled()) throw new WgslNnError('Grad-CAM needs the autograd tape: do not call it inside noGrad()');
  const layers = model.net.layers;
  const layer = options.layer ?? gradCamLayer(model);
  const flatten = layers.findIndex((l) => l instanceof nn.Flatten);
  if (!Number.isInteger(layer) || layer < 0 || (flatten >= 0 && layer >= flatten))
    throw new WgslNnError(`Grad-CAM layer must be a spatial layer index in 0..${flatten - 1}, got ${layer}`);
  const end = layers[layers.length - 1] instanceof nn.Sigmoid ? layers.length - 1 : layers.length;
  const k = model.outputs;
  const engine = model.parameters()[0].engine;
  const params = model.parameters();
  let classIndex = options.classIndex;
  if (classIndex !== undefined && !(Number.isInteger(classIndex) && classIndex >= 0 && classIndex < model.config.classes.length))
    throw new WgslNnError(`Grad-CAM class index must be in 0..${model.config.classes.length - 1}, got ${classIndex}`);
  // The parameters' requiresGrad is switched off while the graph is recorded and back-propagated
  // (backward() reads it), so no weight gradient is computed or left behind. Forward and backward run in
  // one synchronous tidy() scope (the graph's intermediate tensors live until its end): no other code can
  // see the switch, and the Inspector's batches run under noGrad anyway.
  const wasTraining = model.net.training;
  const was = params.map((p) => p.requiresGrad);
  let out: { leaf: Tensor; logits: Tensor; probs: Tensor };
  try {
    model.eval(); // dropout off
    if (classIndex === undefined) classIndex = k === 1 ? 1 : argmax(await predictLogits(model, pixels, end));
    const seedValues = new Float32Array(k);
    // The binary head has one logit, the defect's; explaining 'good' is explaining its negative.
    if (k === 1) seedValues[0] = classIndex === 1 ? 1 : -1;
    else seedValues[classIndex] = 1;
    for (const p of params) p.requiresGrad = false;
    out = engine.tidy(() => {
      const x = model.inputTensor(pixels, 1);
      const a = noGrad(() => model.net.forward(x, layer + 1));
      const leaf = a.detach();
      leaf.requiresGrad = true;
      let h = leaf;
      for (let i = layer + 1; i < end; i++) {
        // Fused as Sequential.forward fuses them, so the scores equal the inspection path's.
        const l = layers[i];
        if ((l instanceof nn.Linear || l instanceof nn.Conv2d) && i + 1 < end && layers[i + 1] instanceof nn.ReLU) {
          h = l.forward(h, 'relu');
          i++;
        } else h = l.forward(h);
      }
      h.backward(engine.tensor(seedValues, [1, k]));
      const probs = noGrad(() => (k === 1 ? F.sigmoid(h) : F.softmax(h, -1)));
      return { leaf, logits: h, probs };
    });
  } finally {
    params.forEach((p, i) => (p.requiresGrad = was[i]));
    model.train(wasTraining);
  }
  const { leaf, logits, probs } = out;
  try {
    if (!leaf.grad) throw new WgslNnError('Grad-CAM: the backward pass produced no gradient for the activation');
    const [activations, gradients, z, p] = (await Promise.all([leaf.toArray(), leaf.grad.toArray(), logits.toArray(), probs.toArray()])) as Float32Array[];
    const [n, c, hh, ww] = leaf.shape;
    return { layer, classIndex, shape: [n, c, hh, ww], activations, gradients, logits: z, probabilities: p };
  } finally {
    leaf.dispose(); // with its .grad
    logits.dispose();
    probs.dispose();
  }
}

/** The logits of one image, without a tape (layers [0, end)). */
async function predictLogits(model: DefectClassifier, pixels: Float32Array, end: number): Promise<Float32Array> {
  const engine = model.parameters()[0].engine;
  const z = noGrad(() => engine.tidy(() => model.net.forward(model.inputTensor(pixels, 1), end)));
  try {
    return (await z.toArray()) as Float32Array;
  } finally {
    z.dispose();
  }
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < v.length; j++) if (v[j] > v[best]) best = j;
  return best;
}

/** Step 3: channel weights (spatial mean of the gradient) and the normalised ReLU(sum_c w_c A_c). */
export function camFromGradients(g: Pick<GradCamGradients, 'shape' | 'activations' | 'gradients'>): { weights: Float64Array; cam: Float32Array } {
  const [, c, h, w] = g.shape;
  const area = h * w;
  const weights = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let i = 0; i < area; i++) sum += g.gradients[ch * area + i];
    weights[ch] = sum / area;
  }
  const raw = new Float64Array(area);
  for (let ch = 0; ch < c; ch++) {
    const wc = weights[ch];
    if (wc === 0) continue;
    for (let i = 0; i < area; i++) raw[i] += wc * g.activations[ch * area + i];
  }
  let max = 0;
  for (let i = 0; i < area; i++) if (raw[i] > max) max = raw[i];
  const cam = new Float32Array(area);
  if (max > 0) for (let i = 0; i < area; i++) cam[i] = raw[i] > 0 ? raw[i] / max : 0;
  return { weights, cam };
}

/** Steps 1-3 for one image (inputSize^2 pixels in [0, 1]). */
export async function gradCam(model: DefectClassifier, pixels: Float32Array, options: GradCamOptions = {}): Promise<GradCamResult> {
  const g = await gradCamGradients(model, pixels, options);
  const { weights, cam } = camFromGradients(g);
  return { ...g, weights, cam, camWidth: g.shape[3], camHeight: g.shape[2], geometry: cellGeometry(model, g.layer) };
}

export interface UpsampleTarget {
  /** The image's own size. */
  width: number;
  height: number;
  /** The model's input side and how the image was resized to it. */
  inputSize: number;
  fit: 'fill' | 'cover';
  alignment?: CamAlignment;
}

/** Step 4: the map at the image's size, bilinear (see the file comment for the two alignments). */
export function upsampleCam(cam: Pick<GradCamResult, 'cam' | 'camWidth' | 'camHeight' | 'geometry'>, target: UpsampleTarget): Float32Array {
  const { width: W, height: H, inputSize: S } = target;
  if (!(Number.isInteger(W) && W > 0 && Number.isInteger(H) && H > 0)) throw new WgslNnError(`heatmap size must be positive integers, got ${W}x${H}`);
  const fw = cam.camWidth;
  const fh = cam.camHeight;
  // Image pixel -> model input pixel (sharp's resize: centres map to centres), per axis.
  let sx = S / W;
  let sy = S / H;
  let ox = 0;
  let oy = 0;
  if (target.fit === 'cover') {
    const s = Math.max(S / W, S / H);
    sx = sy = s;
    ox = (W * s - S) / 2;
    oy = (H * s - S) / 2;
  }
  const stretch = target.alignment === 'stretch';
  const { scale, offset } = cam.geometry;
  const toCell = (pix: number, sc: number, o: number, f: number) => {
    const x = (pix + 0.5) * sc - 0.5 - o; // model input coordinate
    const q = stretch ? ((x + 0.5) * f) / S - 0.5 : (x - offset) / scale;
    return q < 0 ? 0 : q > f - 1 ? f - 1 : q;
  };
  const colX0 = new Int32Array(W);
  const colT = new Float32Array(W);
  for (let X = 0; X < W; X++) {
    const q = toCell(X, sx, ox, fw);
    colX0[X] = Math.min(Math.floor(q), fw - 1);
    colT[X] = q - colX0[X];
  }
  const out = new Float32Array(W * H);
  for (let Y = 0; Y < H; Y++) {
    const q = toCell(Y, sy, oy, fh);
    const y0 = Math.min(Math.floor(q), fh - 1);
    const ty = q - y0;
    const y1 = Math.min(y0 + 1, fh - 1);
    for (let X = 0; X < W; X++) {
      const x0 = colX0[X];
      const x1 = Math.min(x0 + 1, fw - 1);
      const tx = colT[X];
      const top = cam.cam[y0 * fw + x0] * (1 - tx) + cam.cam[y0 * fw + x1] * tx;
      const bottom = cam.cam[y1 * fw + x0] * (1 - tx) + cam.cam[y1 * fw + x1] * tx;
      out[Y * W + X] = top * (1 - ty) + bottom * ty;
    }
  }
  return out;
}

/** RGB bytes of a grayscale image with a [0, 1] heatmap of the same size blended over it (opacity 0.6 v, jet colours). */
export function heatmapOverlayRgb(image: GrayImage8, map: Pick<Heatmap, 'width' | 'height' | 'data'>): Uint8Array {
  return blendHeat(image, map, (v) => ({ t: v, alpha: 0.6 * v }), 'heatmap overlay');
}

/** Writes the image with its heatmap overlaid as an RGB PNG (folders created as needed). */
export async function writeHeatmapPng(file: string, image: GrayImage8, map: Pick<Heatmap, 'width' | 'height' | 'data'>): Promise<void> {
  await writeRgbPng(file, heatmapOverlayRgb(image, map), image.width, image.height);
}
