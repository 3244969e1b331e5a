// The global seeded generator behind parameter initialisation, randn/uniform without a seed, and
// dropout masks without a seed. `manualSeed(s)` makes a run reproducible, as torch.manual_seed.
import { Rng } from '../util/rng.js';

let rng = new Rng(0x5eed);

export function manualSeed(seed: number): void {
  rng = new Rng(seed);
}

export function globalRng(): Rng {
  return rng;
}
