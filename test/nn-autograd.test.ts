// Autograd on composite graphs (finite differences), the GAN detach pattern, tidy/noGrad, and a
// 1000-step training loop whose GPU memory must stay flat.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, F, manualSeed, nn, noGrad, optim, Tensor } from '../src/index.js';
import { randArray, rng } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ poisonAllocations: true, makeDefault: true });
});
afterAll(() => engine.destroy());

/**
 * Float32 central differences on the GPU: d loss / d p[i] ~ (L(p + h e_i) - L(p - h e_i)) / 2h, on a
 * few coordinates of each parameter, compared with the analytic gradient from backward().
 * h = 1e-3: small enough that a ReLU/max-pool kink is rarely crossed, large enough that float32
 * loss rounding (~6e-8) adds only ~3e-5 to the quotient. Tolerance: |analytic - numeric| <=
 * 2e-2 * max|analytic of that parameter| + 5e-4.
 */
async function gradCheck(params: Tensor[], lossFn: () => Tensor, coordsPerParam = 5): Promise<void> {
  const loss = lossFn();
  loss.backward();
  const r = rng(99);
  for (const [pi, p] of params.entries()) {
    const analytic = (await p.grad!.toArray()) as Float32Array;
    const base = (await p.toArray()) as Float32Array;
    let scale = 0;
    for (const v of analytic) scale = Math.max(scale, Math.abs(v));
    for (let k = 0; k < coordsPerParam; k++) {
      const i = r.int(base.length);
      const h = 1e-3;
      const evalAt = async (v: number) => {
        const data = base.slice();
        data[i] = v;
        p.setValue(engine.fromArray(data, p.shape));
        return noGrad(() => engine.tidy(() => lossFn())).item();
      };
      const numeric = ((await evalAt(base[i] + h)) - (await evalAt(base[i] - h))) / (2 * h);
      p.setValue(engine.fromArray(base, p.shape));
      expect(Math.abs(analytic[i] - numeric), `param ${pi} element ${i}: analytic ${analytic[i]} numeric ${numeric}`).toBeLessThanOrEqual(2e-2 * scale + 5e-4);
    }
  }
}

describe('autograd', () => {
  it('conv -> relu -> pool -> flatten -> linear -> sigmoid -> BCE matches finite differences', async () => {
    const r = rng(3);
    const x = engine.tensor(randArray(r, 2 * 2 * 9 * 9), [2, 2, 9, 9], { requiresGrad: true });
    const w = engine.tensor(randArray(r, 3 * 2 * 3 * 3, 0.5), [3, 2, 3, 3], { requiresGrad: true });
    const b = engine.tensor(randArray(r, 3, 0.1), [3], { requiresGrad: true });
    const lw = engine.tensor(randArray(r, 48, 0.3), [1, 48], { requiresGrad: true });
    const lb = engine.tensor([0.05], [1], { requiresGrad: true });
    const target = engine.tensor([1, 0], [2, 1]);
    const lossFn = () => {
      const h = F.maxPool2d(F.relu(F.conv2d(x, w, b, { padding: 1 })), { kernelSize: 2 });
      return F.binaryCrossEntropy(F.sigmoid(F.linear(F.flatten(h), lw, lb)), target);
    };
    await gradCheck([x, w, b, lw, lb], lossFn);
  });

  it('fused conv+relu and linear+sigmoid give the same gradients as the separate ops', async () => {
    const r = rng(5);
    const x = engine.tensor(randArray(r, 3 * 7 * 7), [1, 3, 7, 7], { requiresGrad: true });
    const w = engine.tensor(randArray(r, 4 * 3 * 9), [4, 3, 3, 3], { requiresGrad: true });
    const grads = async (fused: boolean) => {
      x.grad = null;
      w.grad = null;
      const y = fused ? F.conv2d(x, w, null, { activation: 'relu' }) : F.relu(F.conv2d(x, w));
      F.sum(y).backward();
      return [await x.grad!.toArray(), await w.grad!.toArray(), await y.toArray()];
    };
    const a = await grads(true);
    const b = await grads(false);
    for (let k = 0; k < 3; k++) for (let i = 0; i < a[k].length; i++) expect(a[k][i]).toBeCloseTo(b[k][i], 5);
  });

  it('GAN step: a detached generator output gets no generator gradient; both updates match finite differences', async () => {
    manualSeed(11);
    const G = new nn.Sequential(new nn.Linear(4, 8), new nn.Tanh(), new nn.Linear(8, 6), new nn.Tanh());
    const D = new nn.Sequential(new nn.Linear(6, 5), new nn.LeakyReLU(0.2), new nn.Linear(5, 1), new nn.Sigmoid());
    const r = rng(12);
    const z = engine.tensor(randArray(r, 3 * 4), [3, 4]);
    const real = engine.tensor(randArray(r, 3 * 6, 0.8), [3, 6]);
    const ones = engine.onesTensor([3, 1]);
    const zeros = engine.zerosTensor([3, 1]);
    // Discriminator loss on real and detached fake.
    const dLoss = () => F.add(F.binaryCrossEntropy(D.forward(real), ones), F.binaryCrossEntropy(D.forward(G.forward(z).detach()), zeros));
    await gradCheck(D.parameters(), dLoss, 3);
    for (const p of G.parameters()) expect(p.grad).toBeNull();
    for (const p of D.parameters()) p.grad = null;
    // Generator loss through the discriminator.
    const gLoss = () => F.binaryCrossEntropy(D.forward(G.forward(z)), ones);
    await gradCheck(G.parameters(), gLoss, 3);
  });

  it('mean, sum, sub, mul and div with broadcasting have correct gradients', async () => {
    const r = rng(8);
    const a = engine.tensor(randArray(r, 12), [3, 4], { requiresGrad: true });
    const b = engine.tensor(Float32Array.from(randArray(r, 4), (v) => v + 2), [4], { requiresGrad: true });
    const lossFn = () => F.mean(F.mul(F.div(F.sub(a, b), b), F.sum(a, 0, true)));
    await gradCheck([a, b], lossFn, 4);
  });

  it('gradients accumulate over backward() calls until zeroGrad', async () => {
    const x = engine.tensor([1, 2, 3], [3], { requiresGrad: true });
    F.sum(F.mul(x, 2)).backward();
    F.sum(F.mul(x, 3)).backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([5, 5, 5]);
    new optim.SGD([x], { lr: 0.1 }).zeroGrad();
    expect(x.grad).toBeNull();
  });

  it('backward() frees the graph; a second call says so', () => {
    const x = engine.tensor([1, 2], [2], { requiresGrad: true });
    const y = F.sum(F.relu(x));
    y.backward();
    expect(y.node).toBeNull();
    expect(() => y.backward()).not.toThrow(); // a leaf-like root accumulates nothing new upstream
  });

  it('Sequential folds Conv2d -> ReLU -> MaxPool2d into the pool: the same output and gradients as the unfused chain, to the bit', async () => {
    manualSeed(3);
    const model = new nn.Sequential(new nn.Conv2d(2, 5, 3), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(5, 4, 3, { padding: 1 }), new nn.ReLU(), new nn.MaxPool2d(3, 2));
    const [w1, b1, w2, b2] = model.parameters();
    const r = rng(8);
    const xs = randArray(r, 3 * 2 * 15 * 15);
    const dyOf = (n: number) => engine.tensor(randArray(rng(9), n), [n]);
    const ops: string[][] = [];
    const run = async (forward: (x: Tensor) => Tensor) => {
      for (const p of model.parameters()) p.grad = null;
      const x = engine.tensor(xs, [3, 2, 15, 15], { requiresGrad: true });
      const y = forward(x);
      const tape: string[] = [];
      for (let t: Tensor | undefined = y; t?.node; t = t.node.inputs[0]) tape.push(t.node.op);
      ops.push(tape);
      const loss = F.sum(F.mul(F.reshape(y, [y.size]), dyOf(y.size)));
      loss.backward();
      const out = [await y.toArray(), await x.grad!.toArray(), ...(await Promise.all(model.parameters().map((p) => p.grad!.toArray())))];
      return out.map((a) => Array.from(a as Float32Array));
    };
    const fused = await run((x) => model.forward(x));
    const unfused = await run((x) => {
      const h = F.maxPool2d(F.relu(F.conv2d(x, w1, b1)), { kernelSize: 2 });
      return F.maxPool2d(F.relu(F.conv2d(h, w2, b2, { padding: 1 })), { kernelSize: 3, stride: 2 });
    });
    const names = ['y', 'dx', 'dw1', 'db1', 'dw2', 'db2'];
    fused.forEach((a, i) => expect(a, names[i]).toEqual(unfused[i]));
    expect(fused[0].filter((v) => v === 0).length).toBeGreaterThan(0); // some windows are all <= 0: the gate is exercised
    expect(ops[0]).toEqual(['maxPool2d', 'conv2d', 'maxPool2d', 'conv2d']); // no ReLU pass: folded into the pools
    expect(ops[1]).toEqual(['maxPool2d', 'relu', 'conv2d', 'maxPool2d', 'relu', 'conv2d']);
    model.dispose();
  });

  it('cat and narrow along dimension 0: values, gradients routed to the right rows, clear errors', async () => {
    const a = engine.tensor([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
    const b = engine.tensor([7, 8, 9], [1, 3]);
    const c = engine.tensor([10, 11, 12, 13, 14, 15], [2, 3], { requiresGrad: true });
    const y = F.cat([a, b, c]);
    expect(y.shape).toEqual([5, 3]);
    expect(Array.from(await y.toArray())).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const mid = F.narrow(y, 1, 3);
    expect(mid.shape).toEqual([3, 3]);
    expect(Array.from(await mid.toArray())).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // loss = sum(mid * w): d/dy is w in rows 1..3 and 0 elsewhere; a gets row 1 of that, c row 3.
    const w = engine.tensor([0.5, -1, 2, 3, -0.25, 4, -2, 1.5, 0.75], [3, 3]);
    F.sum(F.mul(mid, w)).backward();
    expect(Array.from(await a.grad!.toArray())).toEqual([0, 0, 0, 0.5, -1, 2]);
    expect(Array.from(await c.grad!.toArray())).toEqual([-2, 1.5, 0.75, 0, 0, 0]);
    expect(b.grad).toBeNull();
    expect(() => F.cat([a, engine.tensor([1, 2], [1, 2])])).toThrow(/cat: .* do not agree beyond dimension 0/);
    expect(() => F.narrow(y, 4, 2)).toThrow(/narrow: rows \[4, 6\) are not within \[5, 3\]/);
  });

  it('noGrad records nothing', () => {
    const x = engine.tensor([1, -2], [2], { requiresGrad: true });
    const y = noGrad(() => F.relu(x));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
  });

  it('a 1000-step training loop keeps bytesAllocated flat', async () => {
    manualSeed(1);
    const model = new nn.Sequential(new nn.Conv2d(1, 4, 3), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(36, 8), new nn.ReLU(), new nn.Dropout(0.5), new nn.Linear(8, 3));
    const opt = new optim.Adam(model.parameters(), { lr: 1e-2 });
    const r = rng(4);
    const x = engine.tensor(randArray(r, 4 * 64), [4, 1, 8, 8]);
    const labels = engine.tensor(new Int32Array([0, 1, 2, 1]), [4]);
    const step = () =>
      engine.tidy(() => {
        opt.zeroGrad();
        const loss = F.crossEntropy(model.forward(x), labels);
        loss.backward();
        opt.step();
        return loss;
      });
    let first = 0;
    let mem = engine.memory();
    for (let i = 0; i < 1000; i++) {
      const loss = step();
      if (i === 0) first = await loss.item();
      loss.dispose();
      if (i === 299) {
        await engine.sync();
        mem = engine.memory();
      }
    }
    await engine.sync();
    const end = engine.memory();
    expect(end.bytesAllocated).toBe(mem.bytesAllocated);
    expect(end.liveBuffers).toBe(mem.liveBuffers);
    model.eval();
    const last = await noGrad(() => engine.tidy(() => F.crossEntropy(model.forward(x), labels))).item();
    expect(last).toBeLessThan(first * 0.5); // it also learned the 4 examples
    opt.dispose();
    model.dispose();
  });
});
