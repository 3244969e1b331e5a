// Inspector: the embedding API. Load a model once, inspect images for months.
//
//   const insp = await Inspector.load('models/neu');
//   const { label, score, scores } = await insp.inspect('part.png');   // or a Buffer
//   insp.dispose();
//
// Every call decodes with the model's own preprocessing (grayscale, resize, [0,1], standardise) and runs in one
// tidy() scope, so GPU memory stays flat however many images go through.
import { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { noGrad } from '../nn/tensor.js';
import { loadTuned } from '../kernels/autotune.js';
import { decodeImage } from '../data/images.js';
import type { DefectClassifier } from './model.js';
import { loadModelDir, type ModelMetadata } from './model-dir.js';

export interface Inspection {
  /** The predicted class. */
  label: string;
  /** Probability of the predicted class. */
  score: number;
  /** Probability per class (binary: { good, defect }). */
  scores: Record<string, number>;
}

export interface InspectorOptions {
  /** Engine to run on; by default one is created (and destroyed with the inspector). */
  engine?: Engine;
  /** Images per GPU batch in inspectBatch (default 32). */
  batchSize?: number;
}

export class Inspector {
  private disposed = false;

  private constructor(
    readonly engine: Engine,
    private readonly model: DefectClassifier,
    readonly meta: ModelMetadata,
    private readonly ownsEngine: boolean,
    private readonly batchSize: number,
  ) {}

  static async load(modelDir: string, options: InspectorOptions = {}): Promise<Inspector> {
    const ownsEngine = !options.engine;
    const engine = options.engine ?? (await Engine.create());
    if (ownsEngine) loadTuned(engine); // measured variant choices for this adapter, if cached
    try {
      const { model, meta } = loadModelDir(modelDir, engine);
      return new Inspector(engine, model, meta, ownsEngine, options.batchSize ?? 32);
    } catch (e) {
      if (ownsEngine) engine.destroy();
      throw e;
    }
  }

  get classes(): string[] {
    return this.meta.classes;
  }

  /** Inspects one image (a path or an encoded image Buffer). */
  async inspect(image: string | Buffer): Promise<Inspection> {
    return (await this.inspectBatch([image]))[0];
  }

  /** Inspects many images, in GPU batches. Throws ImageDecodeError naming the first bad image. */
  async inspectBatch(images: (string | Buffer)[]): Promise<Inspection[]> {
    if (this.disposed) throw new WgslNnError('Inspector used after dispose()');
    const size = this.meta.inputSize;
    const fit = this.meta.preprocessing?.resize ?? 'fill';
    const out: Inspection[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const chunk = images.slice(start, start + this.batchSize);
      const pixels = await Promise.all(chunk.map((img, i) => decodeImage(img, { size, fit, name: typeof img === 'string' ? img : `buffer #${start + i}` })));
      const x = new Float32Array(chunk.length * size * size);
      pixels.forEach((p, i) => x.set(p, i * size * size));
      const probs = noGrad(() => this.engine.tidy(() => this.model.probabilities(this.model.inputTensor(x, chunk.length))));
      const p = (await probs.toArray()) as Float32Array;
      probs.dispose();
      for (let i = 0; i < chunk.length; i++) out.push(this.interpret(p, i));
    }
    return out;
  }

  private interpret(p: Float32Array, row: number): Inspection {
    const classes = this.meta.classes;
    if (this.meta.task === 'binary') {
      const defect = p[row];
      const scores = { [classes[0]]: 1 - defect, [classes[1]]: defect };
      return defect > 0.5 ? { label: classes[1], score: defect, scores } : { label: classes[0], score: 1 - defect, scores };
    }
    const k = classes.length;
    const scores: Record<string, number> = {};
    let best = 0;
    for (let j = 0; j < k; j++) {
      scores[classes[j]] = p[row * k + j];
      if (p[row * k + j] > p[row * k + best]) best = j;
    }
    return { label: classes[best], score: p[row * k + best], scores };
  }

  /** Releases the model's GPU memory (and the engine, if the inspector created it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
    if (this.ownsEngine) this.engine.destroy();
  }
}
