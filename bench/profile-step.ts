// Where the time of one end-to-end step goes, dispatch by dispatch (a probe, not part of the suite):
//
//   npx tsx bench/profile-step.ts [--case DCGAN] [--repeat 3] [--top 25] [--out bench/results/<file>.md]
//
// lavapipe has no timestamp queries, and a step records all its dispatches before one submit, so the
// GPU time of a single dispatch is not observable inside a step. Instead: one warm-up step, then one
// step whose dispatches are captured (their specs, with every tensor kept alive: dispose() is
// suspended for that step), then each captured dispatch is replayed alone, `--repeat` times between
// two syncs, and timed by the wall clock. The replays read whatever the buffers hold by then (shapes,
// grids and uniforms are the step's own, so the work is the same; the values are not checked). The sum
// of the replayed times is printed beside the measured step time: when they agree, the per-op split is
// a fair picture of the step. Per op, and for the `--top` most expensive dispatch labels.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DeviceTensor } from '../src/gpu/device-tensor.js';
import { Engine, type DispatchSpec } from '../src/gpu/engine.js';
import '../src/kernels/index.js';
import { findCase, type EndToEndCase } from './cases.js';

const { values: args } = parseArgs({
  options: {
    case: { type: 'string', default: 'DCGAN' },
    repeat: { type: 'string', default: '3' },
    top: { type: 'string', default: '25' },
    out: { type: 'string' },
  },
});
const repeat = Math.max(1, Number(args.repeat));
const engine = await Engine.create();
let benchCase: EndToEndCase;
try {
  benchCase = findCase(args.case!);
} catch (e) {
  console.error(`--case: ${(e as Error).message}`);
  process.exit(2);
}
const step = await benchCase.setup(engine);
await step.step();
const t0 = performance.now();
await step.step();
const stepMs = performance.now() - t0;

// Capture one step's dispatches, keeping their tensors alive.
const captured: DispatchSpec[] = [];
const dispatch = engine.dispatch.bind(engine);
const dispose = DeviceTensor.prototype.dispose;
engine.dispatch = (spec: DispatchSpec) => {
  captured.push(spec);
  dispatch(spec);
};
DeviceTensor.prototype.dispose = () => {};
try {
  await step.step();
} finally {
  engine.dispatch = dispatch;
  DeviceTensor.prototype.dispose = dispose;
}

const byLabel = new Map<string, { ms: number; calls: number }>();
let total = 0;
for (const spec of captured) {
  dispatch(spec); // its pipeline compiled and its buffers resident before timing
  await engine.sync();
  const start = performance.now();
  for (let i = 0; i < repeat; i++) dispatch(spec);
  await engine.sync();
  const ms = (performance.now() - start) / repeat;
  total += ms;
  const label = spec.label ?? `${spec.shader}:${spec.entry ?? 'main'}`;
  const entry = byLabel.get(label) ?? { ms: 0, calls: 0 };
  entry.ms += ms;
  entry.calls++;
  byLabel.set(label, entry);
}
const byOp = new Map<string, { ms: number; calls: number }>();
for (const [label, v] of byLabel) {
  const op = label.split(' ')[0].replace(/:$/, '');
  const entry = byOp.get(op) ?? { ms: 0, calls: 0 };
  entry.ms += v.ms;
  entry.calls += v.calls;
  byOp.set(op, entry);
}
const pct = (ms: number) => `${((100 * ms) / total).toFixed(1)} %`;
const sorted = (m: Map<string, { ms: number; calls: number }>) => [...m.entries()].sort((a, b) => b[1].ms - a[1].ms);
const lines = [
  `# Step profile: ${benchCase.name}`,
  '',
  `Adapter: ${engine.info.description || engine.info.device} (${engine.info.backend}${engine.info.software ? ", software" : ""}). ${captured.length} dispatches; measured step ${stepMs.toFixed(1)} ms; sum of the dispatches replayed alone ${total.toFixed(1)} ms (${repeat} replays each). Command: \`npx tsx bench/profile-step.ts --case '${args.case}' --repeat ${repeat}\`.`,
  '',
  '| op | dispatches | ms | share |',
  '|---|---:|---:|---:|',
  ...sorted(byOp).map(([op, v]) => `| ${op} | ${v.calls} | ${v.ms.toFixed(2)} | ${pct(v.ms)} |`),
  '',
  `Top ${args.top} dispatch labels:`,
  '',
  '| dispatch | calls | ms | share |',
  '|---|---:|---:|---:|',
  ...sorted(byLabel)
    .slice(0, Number(args.top))
    .map(([label, v]) => `| ${label} | ${v.calls} | ${v.ms.toFixed(2)} | ${pct(v.ms)} |`),
];
console.log(lines.join('\n'));
if (args.out) writeFileSync(args.out, lines.join('\n') + '\n');
step.dispose();
engine.destroy();
