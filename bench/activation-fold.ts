// A/B of the two ways F differentiates a fused activation (F.setActivationBackward, src/nn/functional.ts):
// 'separate' (one activation-backward pass writes dz = dy * act'(y) for dx, dw and db to read) against
// 'folded' (dx, dw and db read dy through act'(y) themselves: one pass fewer, y read by each). It chooses
// the 'auto' default per adapter kind. Two parts, each timed in interleaved rounds (one sample in each
// mode per round, the order alternating), so drift on a shared machine hits both modes alike; medians:
//   layers      the backward of single layers with fused activations from the benchmark models (dx, dw
//               and db, plus the activation pass in 'separate'), `--reps` times between two syncs;
//   end to end  the end-to-end cases with fused activations (bench/cases.ts), ms per step.
//
//   npx tsx bench/activation-fold.ts [--rounds 15] [--reps 5] [--filter GAN] [--out bench/results/<adapter>.activation-fold.md]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/gpu/engine.js';
import '../src/kernels/index.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { activationBackward, type Activation, type ActivationGate } from '../src/kernels/activation.js';
import { biasGrad } from '../src/kernels/bias-grad.js';
import { conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from '../src/kernels/conv2d.js';
import { convTranspose2dBackwardInput, convTranspose2dBackwardWeight, convTranspose2dForward } from '../src/kernels/conv-transpose2d.js';
import { linearBackwardInput, linearBackwardWeight, linearForward } from '../src/kernels/dense.js';
import { setActivationBackward, type ActivationBackward } from '../src/nn/functional.js';
import { caseData } from './kernel-cases.js';
import { endToEndCases } from './cases.js';
import { adapterSlug, median } from './timing.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    filter: { type: 'string', default: '' },
    reps: { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const rounds = Math.max(1, Number(args.rounds));
const engine = await Engine.create();
// The cases whose models fuse activations into conv / dense layers (the seed CNN's dense head, the GANs).
const cases = endToEndCases().filter((c) => /training step|GAN iteration/.test(c.name) && !/224/.test(c.name) && c.name.toLowerCase().includes(args.filter!.toLowerCase()));
const rows: string[] = [];
const layerRows: string[] = [];
const info = engine.info;
const adapter = `${info.vendor} ${info.description || info.device} (${info.backend}${info.software ? ', software' : ''})`;
console.log(`adapter: ${adapter}`);

type Mode = Exclude<ActivationBackward, 'auto'>;
/**
 * The table row of one case: a warm-up sample per mode (pipelines compiled), then `rounds` rounds of one
 * sample per mode, the order alternating; medians in ms with `digits` decimals.
 */
async function abRow(name: string, digits: number, sample: (mode: Mode) => Promise<number>): Promise<string> {
  const times: Record<Mode, number[]> = { separate: [], folded: [] };
  for (const m of ['separate', 'folded'] as const) await sample(m);
  for (let r = 0; r < rounds; r++)
    for (const m of r % 2 ? (['folded', 'separate'] as const) : (['separate', 'folded'] as const)) times[m].push(await sample(m));
  const [s, f] = [median(times.separate), median(times.folded)];
  const line = `| ${name} | ${s.toFixed(digits)} | ${f.toFixed(digits)} | ${((f / s - 1) * 100).toFixed(1)} % |`;
  console.log(line);
  return line;
}

/** A layer's backward in both modes: `run(gate?)` records dx, dw, db (reading dy through the gate if given). */
interface LayerCase {
  name: string;
  y: DeviceTensor;
  dy: DeviceTensor;
  act: Activation;
  run(dz: DeviceTensor, gate?: ActivationGate): DeviceTensor[];
}
const reps = Math.max(1, Number(args.reps));
const t = (shape: number[], seed: number) => engine.fromArray(caseData(shape.reduce((a, b) => a * b, 1), seed, -1, 1), shape);
const s2 = { stride: [2, 2] as [number, number], padding: [1, 1] as [number, number] };
function layerCases(): LayerCase[] {
  // DCGAN (ngf = ndf = 32, b64): D's first conv 1 -> 32, 64 -> 32 px, LeakyReLU 0.2; G's last convT 32 -> 1, 32 -> 64 px, tanh.
  const dx0 = t([64, 1, 64, 64], 1);
  const dw0 = t([32, 1, 4, 4], 2);
  const db0 = t([32], 3);
  const dY = conv2dForward(dx0, dw0, db0, { ...s2, activation: 'leakyRelu', slope: 0.2 });
  const gx = t([64, 32, 32, 32], 4);
  const gw = t([32, 1, 4, 4], 5);
  const gb = t([1], 6);
  const gY = convTranspose2dForward(gx, gw, gb, { ...s2, activation: 'tanh' });
  // The seed dense GAN's G output layer (128 -> 784, sigmoid, b128); the seed CNN's hidden layer (4608 -> 128, ReLU, b32).
  const lx = t([128, 128], 7);
  const lw = t([784, 128], 8);
  const lY = linearForward(lx, lw, t([784], 9), { activation: 'sigmoid' });
  const hx = t([32, 4608], 10);
  const hw = t([128, 4608], 11);
  const hY = linearForward(hx, hw, t([128], 12), { activation: 'relu' });
  return [
    { name: 'DCGAN D conv 1->32, 64->32 px, b64, LeakyReLU', y: dY, dy: t(dY.shape as number[], 13), act: 'leakyRelu',
      run: (dz, gate) => [conv2dBackwardInput(dz, dw0, dx0.shape, { ...s2, gate }), conv2dBackwardWeight(dx0, dz, dw0.shape, { ...s2, gate }), biasGrad(dz, gate)] },
    { name: 'DCGAN G convT 32->1, 32->64 px, b64, tanh', y: gY, dy: t(gY.shape as number[], 14), act: 'tanh',
      run: (dz, gate) => [convTranspose2dBackwardInput(dz, gw, gx.shape, { ...s2, gate }), convTranspose2dBackwardWeight(gx, dz, gw.shape, { ...s2, gate }), biasGrad(dz, gate)] },
    { name: 'dense GAN G linear 128->784, b128, sigmoid', y: lY, dy: t([128, 784], 15), act: 'sigmoid',
      run: (dz, gate) => [linearBackwardInput(dz, lw, { gate }), linearBackwardWeight(lx, dz, { gate }), biasGrad(dz, gate)] },
    { name: 'seed CNN linear 4608->128, b32, ReLU', y: hY, dy: t([32, 128], 16), act: 'relu',
      run: (dz, gate) => [linearBackwardInput(dz, hw, { gate }), linearBackwardWeight(hx, dz, { gate }), biasGrad(dz, gate)] },
  ];
}

/** One sample of a layer's backward in `mode`: `reps` backward passes between two syncs, ms per pass. */
async function layerSample(c: LayerCase, mode: Mode): Promise<number> {
  const gate: ActivationGate = { y: c.y, activation: c.act, slope: 0.2 };
  await engine.sync();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    const dz = mode === 'separate' ? activationBackward(c.y, c.dy, c.act, 0.2) : c.dy;
    for (const out of c.run(dz, mode === 'folded' ? gate : undefined)) out.dispose();
    if (dz !== c.dy) dz.dispose();
  }
  await engine.sync();
  return (performance.now() - t0) / reps;
}

for (const c of layerCases().filter((l) => l.name.toLowerCase().includes(args.filter!.toLowerCase())))
  layerRows.push(await abRow(c.name, 2, (m) => layerSample(c, m)));
for (const c of cases) {
  const step = c.setup(engine);
  try {
    rows.push(
      await abRow(c.name, 1, async (m) => {
        setActivationBackward(m);
        const t0 = performance.now();
        await step.step();
        return performance.now() - t0;
      }),
    );
  } finally {
    setActivationBackward('auto');
    step.dispose();
  }
}
const out = args.out ?? join(import.meta.dirname, 'results', `${adapterSlug(engine)}.activation-fold.md`);
const md = [
  `# Fused activation backward: 'separate' pass vs 'folded' into dx / dw / db (${new Date().toISOString().slice(0, 16)}Z)`,
  '',
  `Adapter: ${adapter}. ` +
    `\`npx tsx bench/activation-fold.ts --rounds ${rounds} --reps ${reps}\`: ${rounds} interleaved rounds, one sample per mode each; medians.`,
  '',
  `Single layers' backward (dx, dw, db; in 'separate' also the activation pass), ms per backward (${reps} per sample):`,
  '',
  "| layer | 'separate' ms | 'folded' ms | folded vs separate |",
  '|---|---:|---:|---:|',
  ...layerRows,
  '',
  'End to end, ms per step:',
  '',
  "| case | 'separate' ms | 'folded' ms | folded vs separate |",
  '|---|---:|---:|---:|',
  ...rows,
  '',
];
if (rows.length || layerRows.length) writeFileSync(out, md.join('\n'));
console.log(`written: ${out}`);
engine.destroy();
