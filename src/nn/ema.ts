// An exponential moving average of a module's weights (Polyak averaging), kept in a second instance of
// the same architecture: after every optimizer step,
//
//   target = decay * target + (1 - decay) * source     for every parameter and float buffer
//
// BatchNorm's running statistics are averaged too, so the averaged weights are evaluated with matching
// statistics. Why: a GAN's generator oscillates around its equilibrium from step to step; the average of
// its recent iterates samples better than the last one (Yazici et al., "The Unusual Effectiveness of
// Averaging in GAN Training", ICLR 2019; every StyleGAN samples from such an average).
import { shapeString } from '../gpu/device-tensor.js';
import { WgslNnError } from '../gpu/errors.js';
import { binary, scale } from '../kernels/elementwise.js';
import type { Module } from './modules.js';
import type { Tensor } from './tensor.js';

export class WeightAverage {
  /** [source tensor, target tensor] for every parameter and float buffer, matched by name. */
  private readonly pairs: [Tensor, Tensor][];

  constructor(
    readonly source: Module,
    readonly target: Module,
    readonly decay: number,
  ) {
    if (!(decay >= 0 && decay < 1)) throw new WgslNnError(`weight average: decay must be in [0, 1), got ${decay}`);
    const floats = (m: Module) => [...m.namedParameters(), ...m.namedBuffers()].filter(([, t]) => t.dtype === 'f32');
    const targets = new Map(floats(target));
    this.pairs = floats(source).map(([name, s]) => {
      const t = targets.get(name);
      if (!t || t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]))
        throw new WgslNnError(`weight average: the target has no ${name} of shape ${shapeString(s.shape)}: it must be the source's architecture`);
      return [s, t];
    });
  }

  /** target := source (the average's start). */
  copy(): void {
    for (const [s, t] of this.pairs) t.setValue(scale(s.value, 1));
  }

  /** One averaging step (after an optimizer step of the source). */
  update(): void {
    for (const [s, t] of this.pairs) {
      const kept = scale(t.value, this.decay);
      const added = scale(s.value, 1 - this.decay);
      t.setValue(binary(kept, added, 'add'));
      kept.dispose();
      added.dispose();
    }
  }
}
