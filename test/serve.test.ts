// The HTTP front (src/serve): real requests with Node's fetch against servers started here on
// 127.0.0.1 with port 0, and `wgsl-nn serve` in a child process stopped with SIGTERM while a request
// is in flight. Nothing depends on timing; the child has only a hang guard.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/serve/server.js';
import { Inspector, type Inspection } from '../src/cnn/inspector.js';
import { NEU_MODEL, ROOT, syntheticPngs } from './inspection-fixtures.js';

const MAX_BODY = 256 * 1024;
let server: RunningServer;
let images: Buffer[];
let baseline: Inspection[];

beforeAll(async () => {
  images = await syntheticPngs(16, 96, 5);
  server = await startServer({ model: NEU_MODEL, port: 0, host: '127.0.0.1', maxBodyBytes: MAX_BODY });
  baseline = [];
  for (const img of images) baseline.push(await server.inspector.inspect(img));
});
afterAll(async () => {
  await server?.close();
});

const post = (body: BodyInit, headers: Record<string, string> = { 'Content-Type': 'image/png' }, path = '/inspect') =>
  fetch(server.url + path, { method: 'POST', body, headers });

describe('wgsl-nn serve: endpoints', () => {
  it('listens on loopback and POST /inspect answers with the label and scores of the image', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await post(images[3]);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const j = await res.json();
    expect(j).toEqual(baseline[3]); // multiclass model: no decision field
    expect(Object.values(j.scores as Record<string, number>).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('accepts application/octet-stream and no Content-Type', async () => {
    expect(await (await post(images[4], { 'Content-Type': 'application/octet-stream' })).json()).toEqual(baseline[4]);
    expect(await (await post(new Blob([images[5]]), {})).json()).toEqual(baseline[5]);
  });

  it('16 concurrent requests each get the answer for their own image', async () => {
    const before = server.inspector.stats().queue.items;
    const responses = await Promise.all(images.map((img) => post(img)));
    expect(responses.map((r) => r.status)).toEqual(Array(16).fill(200));
    expect(await Promise.all(responses.map((r) => r.json()))).toEqual(baseline);
    expect(server.inspector.stats().queue.items - before).toBe(16);
  });

  it('bad input gets a clear 4xx JSON error, and the server keeps serving', async () => {
    const cases: [Promise<Response>, number, RegExp][] = [
      [post(Buffer.from('definitely not an image')), 400, /not an image: unrecognised content.*request body/],
      [post(images[0].subarray(0, 80)), 400, /corrupt PNG/],
      [post(Buffer.alloc(0)), 400, /empty request body/],
      [post(Buffer.from('{"image": 1}'), { 'Content-Type': 'application/json' }), 415, /unsupported Content-Type 'application\/json'/],
      [post(Buffer.alloc(MAX_BODY + 1, 7)), 413, new RegExp(`over the limit of ${MAX_BODY} bytes`)],
      [post(images[0], { 'Content-Type': 'image/png' }, '/inspect?threshold=2'), 400, /threshold must be a number in \[0, 1\]/],
      [fetch(server.url + '/inspect'), 405, /GET not allowed on \/inspect; use POST/],
      [post(images[0], {}, '/health'), 405, /POST not allowed on \/health/],
      [fetch(server.url + '/nothing-here'), 404, /no such endpoint: \/nothing-here/],
    ];
    for (const [response, status, message] of cases) {
      const res = await response;
      expect(res.status, message.source).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect((await res.json()).error).toMatch(message);
      if (status === 405) expect(res.headers.get('allow')).toMatch(/POST|GET/);
    }
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(MAX_BODY / 4));
        c.close();
      },
    });
    const res = await fetch(server.url + '/inspect', { method: 'POST', body: chunked, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413); // no Content-Length: caught while reading
    expect(await (await post(images[6])).json()).toEqual(baseline[6]);
  });

  it('GET /health reports the model and adapter', async () => {
    const res = await fetch(server.url + '/health');
    expect(res.status).toBe(200);
    const j = await res.json();
    expect(j).toMatchObject({ status: 'ok', task: 'multiclass', inputSize: 64, deviceRecoveries: 0 });
    expect(j.classes).toEqual(server.inspector.classes);
    expect(typeof j.adapter).toBe('string');
  });

  it('GET /metrics counts requests and errors and reports latency, GPU bytes and RSS', async () => {
    const m0 = await (await fetch(server.url + '/metrics')).json();
    await post(images[7]);
    await post(Buffer.from('nope'));
    await fetch(server.url + '/missing');
    const m = await (await fetch(server.url + '/metrics')).json();
    expect(m.requests.total - m0.requests.total).toBe(4); // the three above and the first /metrics
    expect(m.requests.byStatus['200'] - m0.requests.byStatus['200']).toBe(2);
    expect((m.requests.byStatus['400'] ?? 0) - (m0.requests.byStatus['400'] ?? 0)).toBe(1);
    expect((m.requests.byStatus['404'] ?? 0) - (m0.requests.byStatus['404'] ?? 0)).toBe(1);
    expect(m.errors.client - m0.errors.client).toBe(2);
    expect(m.inspections.ok - m0.inspections.ok).toBe(1);
    expect(m.inspections.failed - m0.inspections.failed).toBe(1);
    expect(m.latencyMs.window).toBe(m.inspections.ok);
    expect(m.latencyMs.p50).toBeGreaterThan(0);
    expect(m.latencyMs.p50).toBeLessThanOrEqual(m.latencyMs.p90);
    expect(m.latencyMs.p90).toBeLessThanOrEqual(m.latencyMs.p99);
    expect(m.latencyMs.p99).toBeLessThanOrEqual(m.latencyMs.max);
    expect(m.gpu.bytesAllocated).toBeGreaterThan(0);
    expect(m.gpu.bytesInUse).toBeGreaterThan(0);
    expect(m.host.rssBytes).toBeGreaterThan(0);
    expect(m.queue.items).toBeGreaterThan(0);
  });

  it('binary models add a decision, with the threshold adjustable per request', async () => {
    const dir = join(ROOT, 'models', 'magnetic-tile');
    const insp = await Inspector.load(dir);
    const bin = await startServer({ inspector: insp, port: 0, threshold: 0.5 });
    try {
      const img = images[8];
      const r = await (await fetch(bin.url + '/inspect', { method: 'POST', body: img })).json();
      const defect = r.scores.defect as number;
      expect(r.decision).toBe(defect >= 0.5 ? 'reject' : 'accept');
      const strict = await (await fetch(bin.url + '/inspect?threshold=0', { method: 'POST', body: img })).json();
      expect(strict.decision).toBe('reject');
      const lax = await (await fetch(bin.url + '/inspect?threshold=1', { method: 'POST', body: img })).json();
      expect(lax.decision).toBe(defect >= 1 ? 'reject' : 'accept');
    } finally {
      await bin.close();
    }
    expect(insp.isDisposed).toBe(false); // a given inspector belongs to the caller
    insp.dispose();
  });

  it('close() stops accepting and disposes the inspector it loaded', async () => {
    const s = await startServer({ model: NEU_MODEL, port: 0 });
    expect((await fetch(s.url + '/health')).status).toBe(200);
    await s.close();
    expect(s.inspector.isDisposed).toBe(true);
    await expect(fetch(s.url + '/health')).rejects.toThrow();
  });
});

describe('wgsl-nn serve: graceful shutdown', () => {
  it('on SIGTERM it finishes the request in flight, then exits 0 by itself', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'serve', '--model', NEU_MODEL, '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000); // hang guard only
    let stdout = '';
    let stderr = '';
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const waitFor = (pattern: RegExp, stream: 'stdout' | 'stderr') =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const m = (stream === 'stdout' ? stdout : stderr).match(pattern);
          if (m) resolve(m);
        };
        child[stream].on('data', (d: Buffer) => {
          if (stream === 'stdout') stdout += d;
          else stderr += d;
          check();
        });
        child.on('exit', () => reject(new Error(`child exited before printing ${pattern}; stderr:\n${stderr}`)));
      });
    const drainingSeen = waitFor(/SIGTERM: shutting down/, 'stderr');
    const url = (await waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 'stdout'))[1];
    const body = images[9];
    // Expect: 100-continue: the server's handler has the request once the client is told to continue.
    const response = new Promise<{ status: number; json: Inspection }>((resolve, reject) => {
      const req = request(`${url}/inspect`, {
        method: 'POST',
        headers: { 'Content-Type': 'image/png', 'Content-Length': body.length, Expect: '100-continue' },
      });
      req.on('continue', async () => {
        child.kill('SIGTERM');
        await drainingSeen; // the server is now shutting down, with this request in flight
        req.end(body);
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      });
      req.on('error', reject);
    });
    const r = await response;
    expect(r.status, stderr).toBe(200);
    expect(r.json).toEqual(baseline[9]);
    const exit = await exited;
    clearTimeout(guard);
    expect(exit.signal, stderr).toBeNull();
    expect(exit.code, stderr).toBe(0);
    expect(stderr).toMatch(/stopped/);
  });
});
