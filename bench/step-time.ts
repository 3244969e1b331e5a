// Milliseconds per step of one end-to-end or probe case (bench/cases.ts), with the process's and the Node
// main thread's CPU time per step: a probe for comparing two checkouts by running them alternately
// (the machine's speed drifts, so only interleaved pairs compare), not part of `npm run bench`.
//
//   npx tsx bench/step-time.ts "<case name fragment>" [steps = 200]
//
// 10 warm-up steps, then `steps` timed ones. Main-thread CPU is read from /proc (Linux only; "n/a" elsewhere).
import { Engine } from '../src/gpu/engine.js';
import '../src/kernels/index.js';
import { findCase, type EndToEndCase } from './cases.js';
import { mainThreadCpuMs } from './timing.js';

const steps = Number(process.argv[3] ?? 200);
let benchCase: EndToEndCase;
try {
  benchCase = findCase(process.argv[2] ?? '');
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}
const engine = await Engine.create();
const step = await benchCase.setup(engine);
for (let i = 0; i < 10; i++) await step.step();
const cpu0 = process.cpuUsage();
const main0 = mainThreadCpuMs();
const t0 = performance.now();
for (let i = 0; i < steps; i++) await step.step();
const ms = (performance.now() - t0) / steps;
const cpu = process.cpuUsage(cpu0);
const main1 = mainThreadCpuMs();
const main = main0 !== undefined && main1 !== undefined ? (main1 - main0) / steps : undefined;
console.log(
  `${benchCase.name}: ${ms.toFixed(2)} ms/step; process CPU ${((cpu.user + cpu.system) / 1000 / steps).toFixed(2)} ms/step; ` +
    `main thread ${main === undefined ? 'n/a' : main.toFixed(2)} ms/step (${steps} steps)`,
);
step.dispose();
engine.destroy();
