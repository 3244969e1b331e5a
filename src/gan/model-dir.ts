// The GAN model format: a directory with
//   generator.safetensors      the generator's weights (torch names; see models.ts for the torch modules)
//   discriminator.safetensors  the discriminator's weights (kept so training can be continued or audited)
//   model.json                 format 'wgsl-nn-gan/1', the architecture, classes, image size, pixel range,
//                              how it was trained (command, split, history)
// Each file is written atomically and model.json last, so a reader never sees new JSON with old weights.
import type { Engine } from '../gpu/engine.js';
import { ModelFormatError, readModelJson, readModelWeights, writeModelDir } from '../model-dir.js';
import { Discriminator, Generator, resolveGanConfig, pixelRange, type ResolvedGanConfig } from './models.js';

export const GAN_FORMAT = 'wgsl-nn-gan/1';

export interface GanMetadata {
  format: typeof GAN_FORMAT;
  architecture: ResolvedGanConfig;
  classes: string[];
  imageSize: number;
  /** Generator output range: 'unit' = [0,1] (sigmoid), 'signed' = [-1,1] (tanh, maps to (v+1)/2). */
  pixelRange: 'unit' | 'signed';
  /** Where the training images came from: dataset root, class filter, split seed and fractions, file lists. */
  data?: unknown;
  training?: Record<string, unknown>;
  createdAt: string;
}

export async function saveGanDir(
  dir: string,
  G: Generator,
  D: Discriminator,
  meta: Pick<GanMetadata, 'data' | 'training'> = {},
): Promise<void> {
  const [generator, discriminator] = await Promise.all([G.stateDict(), D.stateDict()]);
  const full: Omit<GanMetadata, 'format'> = {
    architecture: G.config,
    classes: G.config.classes,
    imageSize: G.config.imageSize,
    pixelRange: pixelRange(G.config.arch),
    ...meta,
    createdAt: new Date().toISOString(),
  };
  writeModelDir(dir, GAN_FORMAT, { generator, discriminator }, full);
}

export function readGanMetadata(dir: string): GanMetadata {
  return readModelJson<GanMetadata>(dir, GAN_FORMAT);
}

/** Loads the generator (and, with `discriminator: true`, the discriminator) of a GAN directory. */
export function loadGanDir(
  dir: string,
  engine?: Engine,
  opts: { discriminator?: boolean } = {},
): { meta: GanMetadata; generator: Generator; discriminator: Discriminator | null } {
  const meta = readGanMetadata(dir);
  const config = resolveGanConfig(meta.architecture);
  const generator = new Generator(config, engine);
  generator.loadStateDict(weights(dir, 'generator'));
  let discriminator: Discriminator | null = null;
  if (opts.discriminator) {
    discriminator = new Discriminator(config, engine);
    discriminator.loadStateDict(weights(dir, 'discriminator'));
  }
  return { meta, generator, discriminator };
}

function weights(dir: string, name: string) {
  try {
    return readModelWeights(dir, name);
  } catch (e) {
    throw new ModelFormatError(`${dir}: cannot read ${name}.safetensors (${(e as Error).message})`);
  }
}
