// The f-AnoGAN encoder E: a patch [N, 1, S, S] -> a latent code [N, latentDim] for the generator, so
// that G(E(x)) reconstructs x. It mirrors the DCGAN discriminator body (strided 4x4 convolutions with
// BatchNorm and LeakyReLU) and ends in a 4x4 convolution to the latent code, linear (the GAN's noise
// is N(0, 1), unbounded, so no tanh as in the paper's uniform-noise version).
//   torch: Sequential(Conv2d(1, nef, 4, 2, 1), LeakyReLU(0.2),
//                     [Conv2d(c, 2c, 4, 2, 1, bias=False), BatchNorm2d(2c), LeakyReLU(0.2)] x (k-1),
//                     Conv2d(nef*2^(k-1), latentDim, 4, 1, 0))           with S = 4 * 2^k
import type { Engine } from '../gpu/engine.js';
import { dcganDepth } from '../gan/models.js';
import * as F from '../nn/functional.js';
import { nn } from '../nn/index.js';
import type { Tensor } from '../nn/tensor.js';

export class Encoder extends nn.Module {
  readonly net: nn.Sequential;

  constructor(
    readonly imageSize: number,
    readonly latentDim: number,
    readonly nef: number,
    engine?: Engine,
  ) {
    super();
    const o = { engine };
    const k = dcganDepth(imageSize);
    let ch = nef;
    const layers: nn.Module[] = [new nn.Conv2d(1, ch, 4, { ...o, stride: 2, padding: 1 }), new nn.LeakyReLU(0.2)];
    for (let i = 0; i < k - 1; i++) {
      layers.push(new nn.Conv2d(ch, ch * 2, 4, { ...o, stride: 2, padding: 1, bias: false }), new nn.BatchNorm2d(ch * 2, o), new nn.LeakyReLU(0.2));
      ch *= 2;
    }
    layers.push(new nn.Conv2d(ch, latentDim, 4, { ...o, stride: 1, padding: 0 }));
    this.net = new nn.Sequential(...layers);
    this.registerModule('net', this.net);
  }

  /** x: [N, 1, S, S] in the generator's range [-1, 1] -> z: [N, latentDim]. */
  forward(x: Tensor): Tensor {
    return F.reshape(this.net.forward(x), [x.shape[0], this.latentDim]);
  }
}
