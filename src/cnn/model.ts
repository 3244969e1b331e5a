// The seed's surface-defect classifier, as a torch.nn.Sequential with the same indices:
//   0 Conv2d(1,32,3)  1 ReLU  2 MaxPool2d(2)
//   3 Conv2d(32,64,3) 4 ReLU  5 MaxPool2d(2)
//   6 Conv2d(64,128,3) 7 ReLU 8 MaxPool2d(2)
//   9 Flatten  10 Linear(F,128)  11 ReLU  12 Dropout(0.5)
//   13 Linear(128,1) 14 Sigmoid      (binary)
//   13 Linear(128,K)                 (multiclass: logits; softmax is applied at inference and folded
//                                     into the cross-entropy in training, as torch's CrossEntropyLoss)
// so model.safetensors loads into that PyTorch model with load_state_dict. With padding 'same' every
// Conv2d has padding=1 (so a defect at the image border is still centred under a 3x3 window).
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { nn } from '../nn/index.js';
import { noGrad, type Tensor } from '../nn/tensor.js';

export type Task = 'binary' | 'multiclass';

export interface ModelConfig {
  task: Task;
  classes: string[];
  inputSize: number;
  /** Channel widths of the three conv blocks (the seed: 32, 64, 128). */
  channels?: [number, number, number];
  hidden?: number;
  dropout?: number;
  /**
   * Input standardisation: the network sees (pixel / 255 - inputMean) / inputStd. Training sets
   * these from the training split; centred inputs shorten the slow start of training from
   * PyTorch's default initialisation.
   */
  inputMean?: number;
  inputStd?: number;
  /**
   * 'dataset' (default): the fixed inputMean/inputStd above. 'image': each image by its own mean and
   * standard deviation, which removes illumination differences between images (subtle defects on
   * unevenly lit parts, e.g. magnetic tiles).
   */
  normalize?: 'dataset' | 'image';
  /**
   * 'valid' (default, the seed): unpadded 3x3 convs, so the outer pixels only ever sit at the edge of
   * a window. 'same': padding 1, which keeps the border in view (edge breaks on magnetic tiles).
   */
  padding?: 'valid' | 'same';
  /**
   * Test-time augmentation: predict() averages the probabilities of the image and its horizontal,
   * vertical and double (180 degree) flips, the flips training augments with. Costs four forwards per
   * image; chosen per model on its validation split (see `wgsl-nn calibrate --test-time-flips`).
   */
  testTimeFlips?: boolean;
}

/** The test-time views: [horizontal flip, vertical flip] for identity, h, v and both (180 degrees). */
const FLIPS: readonly (readonly [boolean, boolean])[] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/**
 * n square images of side s, each mirrored left-right (h) and/or top-bottom (v), written to `out` (a new
 * array by default; the identity view returns `pixels` itself unless `out` is given).
 */
export function flipImages(pixels: Float32Array, n: number, s: number, h: boolean, v: boolean, out?: Float32Array): Float32Array {
  if (!h && !v && !out) return pixels;
  out ??= new Float32Array(pixels.length);
  for (let img = 0; img < n; img++) {
    const base = img * s * s;
    for (let y = 0; y < s; y++) {
      const from = base + (v ? s - 1 - y : y) * s;
      const to = base + y * s;
      for (let x = 0; x < s; x++) out[to + x] = pixels[from + (h ? s - 1 - x : x)];
    }
  }
  return out;
}

/** Spatial size after the three conv(3x3) + pool(2) blocks. */
export function featureSize(inputSize: number, padding: 'valid' | 'same' = 'valid'): number {
  let s = inputSize;
  for (let i = 0; i < 3; i++) s = Math.floor((padding === 'same' ? s : s - 2) / 2);
  return s;
}

/** The mean and std of one image's pixels for per-image standardisation ('image'); a flat image gets std 1e-2, so it stays finite. */
export function imageMeanStd(pixels: ArrayLike<number>): { mean: number; std: number } {
  const n = pixels.length;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    sum += pixels[i];
    sumSq += pixels[i] * pixels[i];
  }
  const mean = sum / n;
  return { mean, std: Math.max(Math.sqrt(Math.max(sumSq / n - mean * mean, 0)), 1e-2) };
}

export class DefectClassifier {
  readonly net: nn.Sequential;
  readonly config: Required<ModelConfig>;

  constructor(config: ModelConfig, engine?: Engine) {
    const c: Required<ModelConfig> = {
      ...config,
      channels: config.channels ?? [32, 64, 128],
      hidden: config.hidden ?? 128,
      dropout: config.dropout ?? 0.5,
      inputMean: config.inputMean ?? 0,
      inputStd: config.inputStd ?? 1,
      normalize: config.normalize ?? 'dataset',
      padding: config.padding ?? 'valid',
      testTimeFlips: config.testTimeFlips ?? false,
    };
    if (c.padding !== 'valid' && c.padding !== 'same') throw new WgslNnError(`padding must be 'valid' or 'same', got ${String(c.padding)}`);
    if (!(c.inputStd > 0)) throw new WgslNnError(`inputStd must be > 0, got ${c.inputStd}`);
    if (c.task === 'binary' && c.classes.length !== 2) throw new WgslNnError(`binary model needs 2 classes, got ${c.classes.length}`);
    if (c.task === 'multiclass' && c.classes.length < 2) throw new WgslNnError(`multiclass model needs >= 2 classes, got ${c.classes.length}`);
    const f = featureSize(c.inputSize, c.padding);
    if (f < 1) throw new WgslNnError(`input size ${c.inputSize} is too small for three conv+pool blocks (minimum ${c.padding === 'same' ? 8 : 22})`);
    this.config = c;
    const o = { engine };
    const conv = { engine, padding: c.padding === 'same' ? 1 : 0 };
    const [c1, c2, c3] = c.channels;
    const head = c.task === 'binary' ? [new nn.Linear(c.hidden, 1, o), new nn.Sigmoid()] : [new nn.Linear(c.hidden, c.classes.length, o)];
    this.net = new nn.Sequential(
      new nn.Conv2d(1, c1, 3, conv), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(c1, c2, 3, conv), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(c2, c3, 3, conv), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Flatten(), new nn.Linear(c3 * f * f, c.hidden, o), new nn.ReLU(), new nn.Dropout(c.dropout),
      ...head,
    );
  }

  /** The input tensor [n,1,S,S] for images given as [0,1] pixels (standardised here). */
  inputTensor(pixels: Float32Array, n: number): Tensor {
    const { inputMean, inputStd, inputSize: s, normalize } = this.config;
    const x = new Float32Array(pixels.length);
    const area = s * s;
    for (let img = 0; img < n; img++) {
      let mean = inputMean;
      let std = inputStd;
      if (normalize === 'image') ({ mean, std } = imageMeanStd(pixels.subarray(img * area, (img + 1) * area)));
      const k = 1 / std;
      for (let i = img * area; i < (img + 1) * area; i++) x[i] = (pixels[i] - mean) * k;
    }
    return this.net.parameters()[0].engine.tensor(x, [n, 1, s, s]);
  }

  /**
   * Pre-sigmoid / pre-softmax scores: [N,1] for binary, [N,K] for multiclass. Runs every layer but a
   * final Sigmoid, so training can use the numerically stable losses on logits.
   */
  logits(x: Tensor): Tensor {
    const layers = this.net.layers;
    const last = layers[layers.length - 1] instanceof nn.Sigmoid ? layers.length - 1 : layers.length;
    return this.net.forward(x, last);
  }

  /**
   * The penultimate-layer activations [N, hidden]: the ReLU output of the hidden dense layer, before
   * dropout and the head. This is the embedding that image-quality metrics (Fréchet distance, KID) compare.
   */
  features(x: Tensor): Tensor {
    const end = this.net.layers.findIndex((l) => l instanceof nn.Dropout);
    return this.net.forward(x, end);
  }

  /** Probabilities per image that predict() returns: 1 (the defect probability) binary, one per class multiclass. */
  get outputs(): number {
    return this.config.task === 'binary' ? 1 : this.config.classes.length;
  }

  /** Class probabilities: [N,K] for multiclass; [N,1] defect probability for binary. */
  probabilities(x: Tensor): Tensor {
    const z = this.logits(x);
    if (this.config.task === 'binary') return F.sigmoid(z);
    return F.softmax(z, -1);
  }

  /**
   * Probabilities for n images given as [0,1] pixels, read back ([n,K] multiclass, [n] binary), without
   * the tape (call it in eval mode); with testTimeFlips, the mean over the image and its three flips.
   * `unflipped`: the images' own probabilities when the caller has them already (Grad-CAM computes them),
   * so only the three flips run.
   */
  async predict(pixels: Float32Array, n: number, unflipped?: Float32Array): Promise<Float32Array> {
    if (!this.config.testTimeFlips && unflipped) return unflipped;
    const s = this.config.inputSize;
    const flips = this.config.testTimeFlips ? FLIPS.slice(unflipped ? 1 : 0) : [FLIPS[0]];
    // Each view written once, straight into the batch of all views.
    const len = pixels.length;
    const x = flips.length === 1 && !unflipped ? pixels : new Float32Array(flips.length * len);
    if (x !== pixels) flips.forEach(([h, v], i) => flipImages(pixels, n, s, h, v, x.subarray(i * len, (i + 1) * len)));
    const engine = this.net.parameters()[0].engine;
    const p = noGrad(() => engine.tidy(() => this.probabilities(this.inputTensor(x, flips.length * n))));
    let all: Float32Array;
    try {
      all = (await p.toArray()) as Float32Array;
    } finally {
      p.dispose();
    }
    if (!this.config.testTimeFlips) return all;
    const views = FLIPS.length;
    const out = new Float32Array(all.length / flips.length);
    if (unflipped) for (let i = 0; i < out.length; i++) out[i] = unflipped[i] / views;
    for (let v = 0; v < flips.length; v++) for (let i = 0; i < out.length; i++) out[i] += all[v * out.length + i] / views;
    return out;
  }

  parameters(): Tensor[] {
    return this.net.parameters();
  }

  train(mode = true): void {
    this.net.train(mode);
  }

  eval(): void {
    this.net.eval();
  }

  dispose(): void {
    this.net.dispose();
  }
}
