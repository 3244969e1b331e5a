// The anomaly detector's configuration: how images become patches, and the sizes of the three networks
// (the DCGAN generator and discriminator of src/gan/models.ts, and the encoder of encoder.ts).
//
// Images of any size are scaled by `scale` (the working resolution), standardised per image (robust
// median and spread, see patches.ts), and cut into `patchSize` x `patchSize` patches: random ones for
// training, a grid with `stride` for scoring. At the defaults (0.5, 32 px, stride 16) a magnetic-tile
// blowhole of 8-20 px becomes 4-10 px, and a patch sees 64 x 64 px of the original tile.
import { WgslNnError } from '../gpu/errors.js';
import { dcganDepth } from '../gan/models.js';

export interface AnomalyConfig {
  /** Side of the square patches (a DCGAN size: 16, 32, 64, ...). */
  patchSize: number;
  /** Working resolution = original size x scale, in (0, 4]. */
  scale: number;
  /** Step between scoring patches (they overlap when stride < patchSize). */
  stride: number;
  /** Latent dimension of the generator and the encoder. */
  latentDim: number;
  /** Base widths of the generator, the discriminator and the encoder. */
  ngf: number;
  ndf: number;
  nef: number;
  /** Per-image standardisation maps median +- contrast * robust std to [0, 1] (then clamps). */
  contrast: number;
}

export type ResolvedAnomalyConfig = Required<AnomalyConfig>;

export const DEFAULT_ANOMALY_CONFIG: ResolvedAnomalyConfig = {
  patchSize: 32,
  scale: 0.5,
  stride: 16,
  latentDim: 64,
  ngf: 32,
  ndf: 32,
  nef: 32,
  contrast: 3,
};

export function resolveAnomalyConfig(c: Partial<AnomalyConfig> = {}): ResolvedAnomalyConfig {
  const r: ResolvedAnomalyConfig = { ...DEFAULT_ANOMALY_CONFIG };
  for (const [k, v] of Object.entries(c)) if (v !== undefined) (r as unknown as Record<string, number>)[k] = v as number;
  dcganDepth(r.patchSize);
  for (const k of ['latentDim', 'ngf', 'ndf', 'nef', 'stride'] as const)
    if (!Number.isInteger(r[k]) || r[k] < 1) throw new WgslNnError(`${k} must be a positive integer, got ${r[k]}`);
  if (r.stride > r.patchSize) throw new WgslNnError(`stride ${r.stride} is larger than the patch size ${r.patchSize}: parts of the image would not be scored`);
  if (!(r.scale > 0 && r.scale <= 4)) throw new WgslNnError(`scale must be in (0, 4], got ${r.scale}`);
  if (!(r.contrast > 0)) throw new WgslNnError(`contrast must be positive, got ${r.contrast}`);
  return r;
}
