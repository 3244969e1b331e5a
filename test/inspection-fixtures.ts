// Shared by the inspection-service tests: the shipped NEU model and synthetic surface images encoded
// as PNG buffers (in memory, so the tests need no dataset).
import { join } from 'node:path';
import sharp from 'sharp';
import { SYNTHETIC_CLASSES, syntheticSample } from '../src/data/synthetic.js';
import { floatToU8 } from '../src/data/images.js';
import { Rng } from '../src/util/rng.js';

export const ROOT = join(import.meta.dirname, '..');
export const NEU_MODEL = join(ROOT, 'models', 'neu');

/** `count` distinct grayscale PNGs, cycling through the synthetic classes. */
export async function syntheticPngs(count: number, size = 80, seed = 11): Promise<Buffer[]> {
  const rng = new Rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const u8 = floatToU8(syntheticSample(SYNTHETIC_CLASSES[i % SYNTHETIC_CLASSES.length], size, rng));
    out.push(await sharp(Buffer.from(u8.buffer, u8.byteOffset, u8.length), { raw: { width: size, height: size, channels: 1 } }).png().toBuffer());
  }
  return out;
}
