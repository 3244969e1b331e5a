// Inspector: the embedding API. Load a model once, inspect images for months.
//
//   const insp = await Inspector.load('models/neu');
//   const { label, score, scores } = await insp.inspect('part.png');   // or a Buffer
//   insp.dispose();
//
// Binary models decide with the threshold stored in model.json (src/cnn/calibration.ts): 'defect' when
// P(defect) >= insp.threshold (0.5 when none is stored). insp.inspect(img, { heatmap: true }) also returns
// a Grad-CAM heatmap at the image's size (src/cnn/gradcam.ts).
//
// Every call decodes with the model's own preprocessing (grayscale, resize, [0,1], standardise) and runs in one
// tidy() scope, so GPU memory stays flat however many images go through.
//
// Concurrency: inspect() may be called many times without awaiting. Each call decodes its own image
// (so a bad image fails only its own call), then joins a micro-batch queue (batch-queue.ts) that puts
// up to `maxBatch` images at a time onto the GPU; every caller gets its own result.
//
// Device loss: an inspector that created its engine survives the loss of the GPU device. It drops the
// lost engine, creates a new one (pipelines recompile lazily on it), reloads the weights from the
// model directory and goes on. A batch that was on the GPU when the device was lost is retried once on
// the new device; if that retry (or the recovery itself) fails, its calls reject with
// InspectionFailedError saying so. Calls made later recover again if needed. An inspector given an
// `engine` by its caller does not own it and cannot replace it: its calls fail with DeviceLostError.
import { Engine, type EngineOptions } from '../gpu/engine.js';
import { DeviceLostError, WgslNnError } from '../gpu/errors.js';
import { loadTuned } from '../kernels/tuning-cache.js';
import { decodeImage, loadGray8 } from '../data/images.js';
import type { DefectClassifier } from './model.js';
import { decisionThreshold, loadModelDir, type ModelMetadata } from './model-dir.js';
import { gradCam, upsampleCam, type CamAlignment, type Heatmap } from './gradcam.js';
import { BatchQueue, type BatchQueueStats } from './batch-queue.js';

export interface Inspection {
  /** The predicted class. */
  label: string;
  /** Probability of the predicted class. */
  score: number;
  /** Probability per class (binary: { good, defect }). */
  scores: Record<string, number>;
}

/** Options of one inspect() call. */
export interface InspectOptions {
  /** Name for error messages when the image is a Buffer. */
  name?: string;
  /**
   * Also compute a Grad-CAM heatmap (src/cnn/gradcam.ts) at the image's own size. Such calls run one
   * image at a time outside the micro-batch queue, and are not retried after a GPU device loss.
   */
  heatmap?: boolean;
  /** The class whose score the heatmap explains (default: binary 'defect', multiclass the predicted class). */
  heatmapClass?: string;
  /** Heatmap upsampling (default 'receptive-field'). */
  heatmapAlignment?: CamAlignment;
}

/** An inspection with its Grad-CAM heatmap. */
export interface HeatmapInspection extends Inspection {
  heatmap: Heatmap;
}

export interface InspectorOptions {
  /** Engine to run on; by default one is created (and destroyed with the inspector, and replaced after a device loss). */
  engine?: Engine;
  /** Options for the engines the inspector creates (the first one and any after a device loss). */
  engineOptions?: EngineOptions;
  /** Images per GPU batch in inspectBatch (default 32). */
  batchSize?: number;
  /** Largest GPU batch formed from concurrent inspect() calls (default 16). */
  maxBatch?: number;
  /** How long an inspect() call waits for others to share its GPU batch when the GPU is idle (default 2 ms). */
  maxWaitMs?: number;
  /**
   * Override the model's stored test-time flips (ModelConfig.testTimeFlips). Its stored decision
   * threshold was chosen with the stored setting; `wgsl-nn calibrate --test-time-flips` changes both.
   */
  testTimeFlips?: boolean;
}

/** An inspection failed for a reason other than its image: the GPU device was lost and the retry on a new device failed too. */
export class InspectionFailedError extends WgslNnError {}

/** Counters for monitoring. */
export interface InspectorStats {
  /** Device losses recovered from (a new engine and a reload of the weights each). */
  deviceRecoveries: number;
  /** Device losses after which recovery failed (retried on the next call). */
  failedRecoveries: number;
  /** The micro-batch queue of inspect(). */
  queue: BatchQueueStats;
}

export class Inspector {
  private disposed = false;
  /** The engine and model in use; `released` once a recovery has freed them. */
  private current: { engine: Engine; model: DefectClassifier; stopWatching: () => void; released: boolean };
  private recovering: Promise<void> | undefined;
  private deviceRecoveries = 0;
  private failedRecoveries = 0;
  private readonly queue: BatchQueue<Float32Array, Inspection>;
  /** Binary models: P(defect) >= threshold is 'defect' (stored in model.json, else 0.5); null for multiclass. */
  readonly threshold: number | null;

  private constructor(
    engine: Engine,
    model: DefectClassifier,
    readonly meta: ModelMetadata,
    readonly modelDir: string,
    private readonly ownsEngine: boolean,
    private readonly options: InspectorOptions,
  ) {
    this.threshold = decisionThreshold(meta);
    this.current = { engine, model, stopWatching: this.watch(engine), released: false };
    this.queue = new BatchQueue((pixels) => this.run(pixels), { maxBatch: options.maxBatch ?? 16, maxWaitMs: options.maxWaitMs ?? 2 });
  }

  static async load(modelDir: string, options: InspectorOptions = {}): Promise<Inspector> {
    const ownsEngine = !options.engine;
    const engine = options.engine ?? (await Inspector.createEngine(options));
    try {
      const { model, meta } = loadModelDir(modelDir, engine, { testTimeFlips: options.testTimeFlips });
      return new Inspector(engine, model, meta, modelDir, ownsEngine, options);
    } catch (e) {
      if (ownsEngine) engine.destroy();
      throw e;
    }
  }

  private static async createEngine(options: InspectorOptions): Promise<Engine> {
    const engine = await Engine.create(options.engineOptions);
    loadTuned(engine); // measured variant choices for this adapter, if cached
    return engine;
  }

  /** The engine in use now (a new one after each recovered device loss). */
  get engine(): Engine {
    return this.current.engine;
  }

  get classes(): string[] {
    return this.meta.classes;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  stats(): InspectorStats {
    return { deviceRecoveries: this.deviceRecoveries, failedRecoveries: this.failedRecoveries, queue: this.queue.stats() };
  }

  /**
   * Inspects one image (a path or an encoded image Buffer). Concurrent calls share GPU batches.
   * Rejects with ImageDecodeError for an unreadable image (that call only).
   */
  async inspect(image: string | Buffer, options: InspectOptions & { heatmap: true }): Promise<HeatmapInspection>;
  async inspect(image: string | Buffer, nameOrOptions?: string | InspectOptions): Promise<Inspection>;
  async inspect(image: string | Buffer, nameOrOptions?: string | InspectOptions): Promise<Inspection> {
    this.assertUsable();
    const opts: InspectOptions = typeof nameOrOptions === 'string' ? { name: nameOrOptions } : (nameOrOptions ?? {});
    const name = opts.name ?? (typeof image === 'string' ? image : '<buffer>');
    if (opts.heatmap) return this.inspectWithHeatmap(image, name, opts);
    const pixels = await this.decode(image, name);
    this.assertUsable();
    return this.queue.push(pixels);
  }

  /** Inspects many images, in GPU batches. Throws ImageDecodeError naming the first bad image. */
  async inspectBatch(images: (string | Buffer)[]): Promise<Inspection[]> {
    this.assertUsable();
    const batchSize = this.options.batchSize ?? 32;
    const out: Inspection[] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const chunk = images.slice(start, start + batchSize);
      const pixels = await Promise.all(chunk.map((img, i) => this.decode(img, typeof img === 'string' ? img : `buffer #${start + i}`)));
      this.assertUsable();
      out.push(...(await this.run(pixels)));
    }
    return out;
  }

  /** One image through Grad-CAM: the same decode and decision as inspect(), plus the map at the image's size. */
  private async inspectWithHeatmap(image: string | Buffer, name: string, opts: InspectOptions): Promise<HeatmapInspection> {
    let classIndex: number | undefined;
    if (opts.heatmapClass !== undefined) {
      classIndex = this.classes.indexOf(opts.heatmapClass);
      if (classIndex < 0) throw new WgslNnError(`heatmap class '${opts.heatmapClass}' is not a class of the model (${this.classes.join(', ')})`);
    }
    const [pixels, original] = await Promise.all([this.decode(image, name), loadGray8(image, { name })]);
    this.assertUsable();
    if (this.ownsEngine && this.current.engine.isLost) await this.recover(this.current.engine);
    const model = this.current.model;
    const cam = await gradCam(model, pixels, { classIndex });
    // The decision is inspect()'s: with test-time flips it averages four views (the image's own from
    // Grad-CAM's forward, the three flips run here); the map explains the image itself.
    const inspection = this.interpret(await model.predict(pixels, 1, cam.probabilities), 0);
    const data = upsampleCam(cam, {
      width: original.width,
      height: original.height,
      inputSize: this.meta.inputSize,
      fit: this.meta.preprocessing?.resize ?? 'fill',
      alignment: opts.heatmapAlignment,
    });
    return { ...inspection, heatmap: { width: original.width, height: original.height, data, class: this.classes[cam.classIndex] } };
  }

  private decode(image: string | Buffer, name: string): Promise<Float32Array> {
    return decodeImage(image, { size: this.meta.inputSize, fit: this.meta.preprocessing?.resize ?? 'fill', name });
  }

  /**
   * One GPU batch, recovering from a device loss: a batch that meets a lost device (lost during the
   * batch, or earlier while idle) runs once more on a new one; if that fails too, its calls fail with
   * InspectionFailedError.
   */
  private async run(pixels: Float32Array[]): Promise<Inspection[]> {
    const attempt = this.current;
    let loss: unknown;
    if (this.ownsEngine && attempt.engine.isLost) {
      loss = new DeviceLostError('the GPU device was lost while the inspector was idle');
    } else {
      try {
        return await this.forward(attempt.model, pixels);
      } catch (e) {
        if (!this.isDeviceLoss(attempt.engine, e) || !this.ownsEngine) throw e;
        if (this.disposed) throw this.disposedError(e);
        loss = e;
      }
    }
    try {
      await this.recover(attempt.engine);
      const retry = this.current;
      return await this.forward(retry.model, pixels);
    } catch (e2) {
      if (this.disposed) throw this.disposedError(e2);
      throw new InspectionFailedError(
        `inspection failed: the GPU device was lost (${(loss as Error).message}) and the one retry on a new device failed: ${(e2 as Error).message}`,
        { cause: e2 },
      );
    }
  }

  private async forward(model: DefectClassifier, pixels: Float32Array[]): Promise<Inspection[]> {
    const area = this.meta.inputSize ** 2;
    const x = new Float32Array(pixels.length * area);
    pixels.forEach((p, i) => x.set(p, i * area));
    const p = await model.predict(x, pixels.length);
    return pixels.map((_, i) => this.interpret(p, i));
  }

  private isDeviceLoss(engine: Engine, e: unknown): boolean {
    return e instanceof DeviceLostError || engine.isLost;
  }

  /**
   * Replaces `lost` (if it is still the current engine) with a new engine and a freshly loaded model.
   * Concurrent callers share one recovery.
   */
  private recover(lost: Engine): Promise<void> {
    if (this.current.engine !== lost) return Promise.resolve(); // someone already replaced it
    this.recovering ??= this.replaceEngine(lost).finally(() => {
      this.recovering = undefined;
    });
    return this.recovering;
  }

  private async replaceEngine(lost: Engine): Promise<void> {
    if (this.current.engine !== lost) return;
    if (this.disposed) throw this.disposedError();
    const old = this.current;
    try {
      if (!old.released) {
        old.released = true;
        old.stopWatching();
        old.model.dispose();
        old.engine.destroy();
      }
      const engine = await Inspector.createEngine(this.options);
      if (this.disposed) {
        engine.destroy();
        throw this.disposedError();
      }
      let model: DefectClassifier;
      try {
        const loaded = loadModelDir(this.modelDir, engine, { testTimeFlips: this.options.testTimeFlips });
        model = loaded.model;
        this.checkSameModel(loaded.meta);
      } catch (e) {
        engine.destroy();
        throw e;
      }
      this.current = { engine, model, stopWatching: this.watch(engine), released: false };
      this.deviceRecoveries++;
    } catch (e) {
      // The lost engine stays current (released, still isLost), so the next call tries again.
      this.failedRecoveries++;
      throw new WgslNnError(`could not recover from the loss of the GPU device: ${(e as Error).message}`, { cause: e });
    }
  }

  /** A model directory replaced on disk while the inspector ran must not change its answers silently. */
  private checkSameModel(meta: ModelMetadata): void {
    const a = this.meta;
    if (
      meta.task !== a.task ||
      meta.inputSize !== a.inputSize ||
      JSON.stringify(meta.classes) !== JSON.stringify(a.classes) ||
      JSON.stringify(meta.architecture) !== JSON.stringify(a.architecture)
    )
      throw new WgslNnError(`the model in ${this.modelDir} changed (task, classes, input size or architecture) since the inspector loaded it`);
  }

  /** After a loss while idle, recover at once so the next call does not wait for it. */
  private watch(engine: Engine): () => void {
    if (!this.ownsEngine) return () => {};
    return engine.onLost(() => {
      if (!this.disposed) this.recover(engine).catch(() => {}); // a failure is counted; the next call retries
    });
  }

  private interpret(p: Float32Array, row: number): Inspection {
    const classes = this.meta.classes;
    if (this.meta.task === 'binary') {
      const defect = p[row];
      const scores = { [classes[0]]: 1 - defect, [classes[1]]: defect };
      return defect >= this.threshold! ? { label: classes[1], score: defect, scores } : { label: classes[0], score: 1 - defect, scores };
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

  private assertUsable(): void {
    if (this.disposed) throw this.disposedError();
  }

  private disposedError(cause?: unknown): WgslNnError {
    return new WgslNnError('Inspector used after dispose()', cause === undefined ? undefined : { cause });
  }

  /**
   * Releases the model's GPU memory (and the engine, if the inspector created it); the process can
   * then exit by itself. Calls still waiting for a GPU batch reject; a batch already running rejects too.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.queue.close('Inspector used after dispose()');
    const c = this.current;
    if (c.released) return;
    c.released = true;
    c.stopWatching();
    c.model.dispose();
    if (this.ownsEngine) c.engine.destroy();
  }
}
