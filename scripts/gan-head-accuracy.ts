// Diagnostic (report-only): accuracy of an AC-GAN discriminator's auxiliary class head (gan train
// --aux-classifier) on the real validation and test images of models/neu's split (NEU, 64 px, the GAN's [-1, 1]
// range; sharp's lanczos resize, as decodeImage, where training used the loader's bilinear one).
//   npx tsx scripts/gan-head-accuracy.ts <gan dir>
import { join } from 'node:path';
import { Engine } from '../src/gpu/engine.js';
import { loadGanDir } from '../src/gan/model-dir.js';
import { readModelMetadata } from '../src/cnn/model-dir.js';
import { decodeImage } from '../src/data/images.js';
import { noGrad } from '../src/nn/tensor.js';
import { oneHot } from '../src/gan/models.js';
import { argmaxRows } from '../src/eval/metrics.js';

const gan = process.argv[2];
if (!gan) throw new Error('usage: npx tsx scripts/gan-head-accuracy.ts <gan dir trained with --aux-classifier>');
const engine = await Engine.create();
const { meta, discriminator: D } = loadGanDir(gan, engine, { discriminator: true });
if (!D?.classifier) throw new Error(`${gan}: the discriminator has no auxiliary classifier (train with --aux-classifier)`);
D.eval();
const classes = meta.classes;
const files = (readModelMetadata('models/neu').split as { files: Record<string, string[]> }).files;
for (const part of ['val', 'test']) {
  const list = files[part];
  let correct = 0;
  for (let s = 0; s < list.length; s += 32) {
    const chunk = list.slice(s, s + 32);
    const n = chunk.length;
    const x = new Float32Array(n * 64 * 64);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const cls = chunk[i].split('/').at(-2)!;
      labels[i] = classes.indexOf(cls);
      const px = await decodeImage(join('../shared/datasets/neu', chunk[i]), { size: 64 });
      for (let j = 0; j < px.length; j++) x[i * 4096 + j] = px[j] * 2 - 1;
    }
    const out = noGrad(() => D.scores(engine.tensor(x, [n, 1, 64, 64]), engine.tensor(oneHot(labels, classes.length), [n, classes.length])).classLogits!);
    argmaxRows(await out.toArray(), classes.length).forEach((best, i) => {
      if (best === labels[i]) correct++;
    });
  }
  console.log(`${gan} D head accuracy on real ${part}: ${((100 * correct) / list.length).toFixed(1)} % of ${list.length}`);
}
engine.destroy();
