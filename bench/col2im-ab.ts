// Interleaved A/B of the conv input gradient's column form (GEMM into columns + col2im, src/kernels/conv2d.ts)
// against the phase GEMM, on conv-transpose forwards and conv input gradients with few input-side channels:
//   npx tsx bench/col2im-ab.ts [rounds] [calls per sample] [end-to-end rounds]
// Each round times every shape in both modes (order alternating by round); medians over the rounds.
// Then two GAN iterations end to end, 3 steps per sample, in interleaved rounds with the column form on
// and off: the DCGAN case of `npm run bench` (ngf = ndf = 32, batch 64) and the recipe of models/neu-gan
// (ngf = ndf = 16, spectral norm, 6 classes, batch 64).
import { Engine } from '../src/gpu/engine.js';
import { columnForm, conv2dBackwardInput } from '../src/kernels/conv2d.js';
import { convTranspose2dForward } from '../src/kernels/conv-transpose2d.js';
import { median } from './timing.js';
import { endToEndCases, probeCases } from './cases.js';
import { caseData } from './kernel-cases.js';

const rounds = Number(process.argv[2] ?? 8);
const calls = Number(process.argv[3] ?? 5);
const e2eRounds = Number(process.argv[4] ?? 8);
const engine = await Engine.create();
// Uniform [-1, 1) inputs, as the kernel cases' (bench/kernel-cases.ts).
const data = (shape: number[], seed: number) => engine.fromArray(caseData(shape.reduce((a, b) => a * b, 1), seed), shape);
const p = { stride: [2, 2] as [number, number], padding: [1, 1] as [number, number] };

interface Shape { name: string; run: () => void; macs: number }
const shapes: Shape[] = [];
// A DCGAN generator's last layers (ngf 16 and 32, batch 64): x [64, cin, 32, 32] -> [64, cout, 64, 64], tanh.
for (const cin of [16, 32])
  for (const cout of [1, 2, 3, 4, 6, 8]) {
    const x = data([64, cin, 32, 32], 1);
    const w = data([cin, cout, 4, 4], 2);
    shapes.push({
      name: `convTranspose2d.forward x [64, ${cin}, 32, 32] w [${cin}, ${cout}, 4, 4] s2 p1 tanh`,
      run: () => convTranspose2dForward(x, w, null, { ...p, activation: 'tanh' }).dispose(),
      macs: 64 * cout * 64 * 64 * cin * 4,
    });
  }
// A DCGAN discriminator's first conv's input gradient (ndf 32): dy [64, 32, 32, 32], w [32, 1, 4, 4].
{
  const dy = data([64, 32, 32, 32], 3);
  const w = data([32, 1, 4, 4], 4);
  shapes.push({
    name: 'conv2d.backwardInput dy [64, 32, 32, 32] w [32, 1, 4, 4] s2 p1',
    run: () => conv2dBackwardInput(dy, w, [64, 1, 64, 64], p).dispose(),
    macs: 64 * 64 * 64 * 32 * 4,
  });
}

// yPerX 0: the column form wherever it fits; Infinity: never.
const defaultYPerX = columnForm.yPerX;
const modes = { column: 0, phase: Infinity } as const;
const times: Record<string, Record<string, number[]>> = {};
for (const s of shapes) {
  times[s.name] = { column: [], phase: [] };
  for (const m of Object.values(modes)) {
    columnForm.yPerX = m;
    s.run();
    await engine.sync();
  }
}
for (let r = 0; r < rounds; r++)
  for (const s of shapes)
    for (const mode of (r % 2 ? ['phase', 'column'] : ['column', 'phase']) as (keyof typeof modes)[]) {
      columnForm.yPerX = modes[mode];
      await engine.sync();
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) s.run();
      await engine.sync();
      times[s.name][mode].push((performance.now() - t0) / calls);
    }

// End to end: the bench's DCGAN iteration, and the iteration of the shipped NEU GAN's recipe
// (models/neu-gan: ngf = ndf = 16, spectral norm, 6 classes, batch 64; labels all class 0 here).
const e2eCases = [endToEndCases().find((c) => c.name.startsWith('DCGAN iteration'))!, ...probeCases()];
const e2eLines: string[] = [];
for (const c of e2eCases) {
  const run = await c.setup(engine);
  const e2e: Record<string, number[]> = { column: [], phase: [] };
  for (const mode of ['column', 'phase'] as const) {
    columnForm.yPerX = mode === 'column' ? defaultYPerX : Infinity;
    await run.step();
  }
  for (let r = 0; r < e2eRounds; r++)
    for (const mode of (r % 2 ? ['phase', 'column'] : ['column', 'phase']) as ('column' | 'phase')[]) {
      columnForm.yPerX = mode === 'column' ? defaultYPerX : Infinity;
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await run.step();
      e2e[mode].push((performance.now() - t0) / 3);
    }
  run.dispose();
  const [ec, ep] = [median(e2e.column), median(e2e.phase)];
  const wins = e2e.column.filter((t, i) => t < e2e.phase[i]).length;
  e2eLines.push(`| ${c.name} | ${ep.toFixed(1)} | ${ec.toFixed(1)} | ${(((ec - ep) / ep) * 100).toFixed(1)} % | ${wins} of ${e2eRounds} |`);
}
columnForm.yPerX = defaultYPerX;

console.log(`# Conv input gradient: column form (GEMM into columns + col2im) vs phase GEMM (${new Date().toISOString().slice(0, 16)}Z)\n`);
console.log(`Adapter: ${engine.describe()}. \`npx tsx bench/col2im-ab.ts ${rounds} ${calls} ${e2eRounds}\`: ${rounds} interleaved rounds of ${calls} calls per shape and mode; medians, ms per call.\n`);
console.log('| shape | phase GEMM ms | column form ms | column / phase | column GFLOP/s | rounds column faster |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const s of shapes) {
  const { column, phase } = times[s.name];
  const [c, ph] = [median(column), median(phase)];
  const wins = column.filter((t, i) => t < phase[i]).length;
  console.log(`| ${s.name} | ${ph.toFixed(2)} | ${c.toFixed(2)} | ${(c / ph).toFixed(2)} | ${((2 * s.macs) / c / 1e6).toFixed(1)} | ${wins} of ${rounds} |`);
}
console.log(`\nEnd to end, ${e2eRounds} interleaved rounds of 3 steps per mode (the column form as shipped: xc * ${defaultYPerX} <= yc), median ms per iteration:\n`);
console.log('| iteration | phase GEMM only | with the column form | change | rounds column faster |');
console.log('|---|---:|---:|---:|---:|');
for (const l of e2eLines) console.log(l);
engine.destroy();
