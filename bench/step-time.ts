// Milliseconds per step of one end-to-end or probe case (bench/cases.ts), with the process's and the Node
// main thread's CPU time per step: a probe for comparing two checkouts by running them alternately
// (the machine's speed drifts, so only interleaved pairs compare), not part of `npm run bench`.
//
//   npx tsx bench/step-time.ts "<case name fragment>" [steps = 200]
//
// 10 warm-up steps, then `steps` timed ones. Main-thread CPU is read from /proc (Linux only; "n/a" elsewhere).
import { readFileSync } from 'node:fs';
import { Engine } from '../src/gpu/engine.js';
import '../src/kernels/index.js';
import { endToEndCases, probeCases } from './cases.js';

function mainThreadCpuMs(): number {
  try {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

const fragment = (process.argv[2] ?? '').toLowerCase();
const steps = Number(process.argv[3] ?? 200);
const all = [...endToEndCases(), ...probeCases()];
const found = all.filter((c) => c.name.toLowerCase().includes(fragment));
if (!fragment || found.length !== 1) {
  console.error(`the case fragment must match exactly one case; '${fragment}' matches ${found.length}: ${all.map((c) => c.name).join(' | ')}`);
  process.exit(2);
}
const engine = await Engine.create();
const step = await found[0].setup(engine);
for (let i = 0; i < 10; i++) await step.step();
const cpu0 = process.cpuUsage();
const main0 = mainThreadCpuMs();
const t0 = performance.now();
for (let i = 0; i < steps; i++) await step.step();
const ms = (performance.now() - t0) / steps;
const cpu = process.cpuUsage(cpu0);
const main = (mainThreadCpuMs() - main0) / steps;
console.log(
  `${found[0].name}: ${ms.toFixed(2)} ms/step; process CPU ${((cpu.user + cpu.system) / 1000 / steps).toFixed(2)} ms/step; ` +
    `main thread ${Number.isNaN(main) ? 'n/a' : main.toFixed(2)} ms/step (${steps} steps)`,
);
step.dispose();
engine.destroy();
