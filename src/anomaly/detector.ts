// AnomalyDetector: the embedding API of the anomaly detector, shaped like Inspector.
//
//   const det = await AnomalyDetector.load('models/magnetic-tile-anomaly');
//   const { score, isDefect, map } = await det.score('tile.png');   // or a Buffer
//   det.dispose();
//
// `map` is the per-pixel anomaly map at the image's own size (row-major, width x height), in the
// calibrated units of the score: about 1 on defect-free surface, `threshold` and above where the
// image would be called defective.
import { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { loadTuned } from '../kernels/tuning-cache.js';
import type { ResolvedAnomalyConfig } from './config.js';
import { disposeNetworks, loadAnomalyDir, type AnomalyMetadata } from './model-dir.js';
import { loadWorkImage, resizeBilinear, type WorkImage } from './patches.js';
import { anomalyMap, scoringResiduals, topKMean, type AnomalyNetworks } from './scorer.js';

export interface AnomalyMap {
  width: number;
  height: number;
  data: Float32Array;
}

export interface AnomalyResult {
  /** Image anomaly score (higher = more anomalous). */
  score: number;
  /** score > the model's threshold. */
  isDefect: boolean;
  /** The anomaly map at the image's size (unless { map: false }). */
  map?: AnomalyMap;
}

export interface AnomalyDetectorOptions {
  /** Engine to run on; by default one is created (and destroyed with the detector). */
  engine?: Engine;
  /** Patches per GPU batch (default 128). */
  batchSize?: number;
  /** Overrides the model's decision threshold. */
  threshold?: number;
  /**
   * With no `engine` given: the most bytes of released GPU buffers the detector's own engine keeps for reuse
   * (default 256 MiB). Images of every size from several callers would otherwise keep adding buffers of new
   * sizes to the pool (scripts/soak.ts); with a cap, GPU memory stays within what is in use plus this.
   */
  maxPooledBytes?: number;
}

export interface ScoreOptions {
  /** Return the anomaly map (default true). */
  map?: boolean;
}

export class AnomalyDetector {
  private disposed = false;
  /** A score above this is a defect (the model's threshold unless overridden). */
  readonly threshold: number;

  private constructor(
    readonly engine: Engine,
    private readonly nets: AnomalyNetworks,
    readonly meta: AnomalyMetadata,
    readonly config: ResolvedAnomalyConfig,
    private readonly ownsEngine: boolean,
    private readonly batchSize: number,
    threshold: number | undefined,
  ) {
    this.threshold = threshold ?? meta.threshold.value;
  }

  static async load(modelDir: string, options: AnomalyDetectorOptions = {}): Promise<AnomalyDetector> {
    const ownsEngine = !options.engine;
    const engine = options.engine ?? (await Engine.create({ maxPooledBytes: options.maxPooledBytes ?? 256 * 2 ** 20 }));
    if (ownsEngine) loadTuned(engine);
    let nets: AnomalyNetworks | undefined;
    try {
      const loaded = loadAnomalyDir(modelDir, engine);
      nets = loaded.nets;
      // The memories' search indexes (a few seconds on the software adapter), so that the first image scores as fast as the rest.
      for (const m of nets.memories ?? []) await m.prepareSearch();
      return new AnomalyDetector(engine, nets, loaded.meta, loaded.config, ownsEngine, options.batchSize ?? 128, options.threshold);
    } catch (e) {
      if (nets) disposeNetworks(nets);
      if (ownsEngine) engine.destroy();
      throw e;
    }
  }

  /** Scores one image (a path or an encoded image Buffer); ImageDecodeError names a bad one. */
  async score(image: string | Buffer, options: ScoreOptions = {}): Promise<AnomalyResult> {
    return (await this.scoreBatch([image], options))[0];
  }

  /** Scores several images, their patches sharing GPU batches. Throws ImageDecodeError naming the first bad image. */
  async scoreBatch(images: (string | Buffer)[], options: ScoreOptions = {}): Promise<AnomalyResult[]> {
    this.check();
    const work = await Promise.all(images.map((img, i) => this.load(img, typeof img === 'string' ? img : `buffer #${i}`)));
    return this.scoreWorkImages(work, options);
  }

  /** Decodes and standardises an image as the model expects. */
  load(image: string | Buffer, name?: string): Promise<WorkImage> {
    return loadWorkImage(image, { scale: this.config.scale, contrast: this.config.contrast, name });
  }

  /** Scores already-decoded working images (see load()). */
  async scoreWorkImages(work: readonly WorkImage[], options: ScoreOptions = {}): Promise<AnomalyResult[]> {
    this.check();
    const residuals = await scoringResiduals(this.nets, this.config, work, this.meta.scoring, this.batchSize).catch((e: unknown) => {
      // dispose() freed the networks (and maybe the engine) under this call: say so, not what failed after.
      throw this.disposed ? new WgslNnError('AnomalyDetector disposed while scoring', { cause: e }) : e;
    });
    return residuals.map((r, i) => {
      const m = anomalyMap(r, this.meta.scoring);
      const score = topKMean(m, this.meta.scoring.topK);
      const out: AnomalyResult = { score, isDefect: score > this.threshold };
      if (options.map ?? true) {
        const w = work[i];
        out.map = { width: w.originalWidth, height: w.originalHeight, data: resizeBilinear(m, r.width, r.height, w.originalWidth, w.originalHeight) };
      }
      return out;
    });
  }

  private check(): void {
    if (this.disposed) throw new WgslNnError('AnomalyDetector used after dispose()');
  }

  /**
   * Releases the networks' GPU memory (and the engine, if the detector created it). Calls in flight then
   * reject with "AnomalyDetector disposed while scoring" (or finish, if their GPU work was done).
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeNetworks(this.nets);
    if (this.ownsEngine) this.engine.destroy();
  }
}
