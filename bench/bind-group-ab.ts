// Interleaved A/B of the recorder's bind-group cache (src/gpu/bind-groups.ts) on one end-to-end case:
// `npx tsx bench/bind-group-ab.ts <case substring> [iterations per round] [rounds]`; "off" makes a new bind group
// for every dispatch, as before the cache. [rounds] rounds (default 6), the order alternating.
import { Engine } from '../src/gpu/engine.js';
import { endToEndCases } from './cases.js';
import { BindGroupCache } from '../src/gpu/bind-groups.js';
import { median as med } from './timing.js';
const which = process.argv[2] ?? 'dense GAN';
const iters = Number(process.argv[3] ?? 30);
const engine = await Engine.create();
const c = endToEndCases().find((x) => x.name.includes(which))!;
const s = await c.setup(engine);
const cached = BindGroupCache.prototype.get;
const uncached = function (this: any, pipeline: GPUComputePipeline, entries: any[], label: string) {
  return this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: entries.map((e: any) => ({ binding: e.binding, resource: { buffer: e.buffer, offset: e.offset, size: e.size } })), label });
};
for (let i = 0; i < 3; i++) await s.step();
const res: Record<string, number[]> = { on: [], off: [] };
const cpu: Record<string, number[]> = { on: [], off: [] };
const rounds = Number(process.argv[4] ?? 6);
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? ['off', 'on'] : ['on', 'off']) {
    BindGroupCache.prototype.get = mode === 'on' ? cached : (uncached as any);
    await s.step();
    const c0 = process.cpuUsage(); const t0 = performance.now();
    for (let i = 0; i < iters; i++) await s.step();
    res[mode].push((performance.now() - t0) / iters);
    const u = process.cpuUsage(c0); cpu[mode].push((u.user + u.system) / 1000 / iters);
  }
}
console.log(which, 'ms/iter on', res.on.map((x) => x.toFixed(1)).join(' '), '| off', res.off.map((x) => x.toFixed(1)).join(' '));
console.log('median on', med(res.on).toFixed(2), 'off', med(res.off).toFixed(2), '; process CPU ms/iter on', med(cpu.on).toFixed(1), 'off', med(cpu.off).toFixed(1));
const pairs = res.on.map((x, i) => res.off[i] - x);
console.log('rounds where on was faster:', pairs.filter((d) => d > 0).length, 'of', pairs.length, '; median of (off - on) per round', med(pairs).toFixed(2), 'ms');
