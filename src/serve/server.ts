// HTTP front of the inspection station (node:http, no framework):
//
//   POST /inspect   body: the encoded image (PNG, JPEG, TIFF or WebP; Content-Type image/* or
//                   application/octet-stream, or none) -> 200 {label, score, scores, decision?}
//                   decision ('accept' | 'reject') is given for binary models: reject when the defect
//                   probability is >= the threshold (?threshold=0.7 per request, else the server option,
//                   else the model's stored decision threshold, 0.5 if it has none).
//                   ?heatmap=1 adds heatmap {width, height, class, png}: the Grad-CAM map at the image's
//                   size as a base64 8-bit grayscale PNG (255 = the map's maximum); such requests run one
//                   at a time outside the GPU batches.
//   GET  /health    -> 200 {status: 'ok', ...}; 503 while the GPU device is being replaced or the server stops
//   GET  /metrics   -> 200 JSON: request counts by status, inspection latency p50/p90/p99, GPU bytes
//                   (engine.memory()), host RSS, device recoveries, batch-queue counters
//
// Every error is JSON {error: message} with a 4xx/5xx status: 400 undecodable image or bad query,
// 404 unknown path, 405 wrong method (with Allow), 413 body over the limit, 415 unsupported
// Content-Type, 503 shutting down or the GPU was lost and the retry failed, 500 anything else.
// Concurrent requests share GPU batches through the Inspector's queue. Listens on loopback by default;
// there is no authentication, so a non-loopback host is for trusted networks only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeviceLostError, WgslNnError } from '../gpu/errors.js';
import sharp from 'sharp';
import { floatToU8, ImageDecodeError } from '../data/images.js';
import type { Heatmap } from '../cnn/gradcam.js';
import { Inspector, InspectionFailedError, type Inspection } from '../cnn/inspector.js';

export interface ServeOptions {
  /** Model directory (ignored when `inspector` is given). */
  model?: string;
  /** Use this inspector instead of loading `model`; it is not disposed by close(). */
  inspector?: Inspector;
  /** TCP port; 0 picks a free one (default 8080). */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Largest accepted request body in bytes (default 20 MiB); larger bodies get 413. */
  maxBodyBytes?: number;
  /** Largest GPU batch formed from concurrent requests (default 16). */
  maxBatch?: number;
  /** How long a request waits for others to share its GPU batch when the GPU is idle (default 2 ms). */
  maxWaitMs?: number;
  /** Binary models: defect probability at or above which the decision is 'reject' (default: the model's stored threshold, 0.5 if none). */
  threshold?: number;
  /** After close() is called, connections still open after this long are cut (default 30 s). */
  shutdownTimeoutMs?: number;
  /** Where log lines go (default: nowhere). */
  log?: (line: string) => void;
}

export interface InspectResponse extends Inspection {
  decision?: 'accept' | 'reject';
  /** With ?heatmap=1: the Grad-CAM map as a base64 grayscale PNG at the image's size. */
  heatmap?: { width: number; height: number; class: string; png: string };
}

export interface ServerMetrics {
  uptimeSeconds: number;
  requests: { total: number; inFlight: number; byStatus: Record<string, number> };
  inspections: { ok: number; failed: number };
  errors: { client: number; server: number };
  /** Of successful POST /inspect requests, over the last `window` of them (receive to response). */
  latencyMs: { p50: number; p90: number; p99: number; max: number; window: number };
  gpu: ReturnType<Inspector['engine']['memory']>;
  host: { rssBytes: number; heapUsedBytes: number };
  deviceRecoveries: number;
  failedRecoveries: number;
  queue: ReturnType<Inspector['stats']>['queue'];
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  inspector: Inspector;
  metrics(): ServerMetrics;
  /** Stops accepting connections, lets requests in flight finish, then disposes the inspector it loaded. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 20 * 2 ** 20;
const LATENCY_WINDOW = 10_000;
const IMAGE_TYPES = /^(image\/[a-z0-9.+-]+|application\/octet-stream)$/;

/** A request that cannot be served, with its HTTP status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Latencies of the last LATENCY_WINDOW requests: memory stays bounded however long the server runs. */
class LatencyWindow {
  private readonly values = new Float64Array(LATENCY_WINDOW);
  private count = 0;

  add(ms: number): void {
    this.values[this.count % LATENCY_WINDOW] = ms;
    this.count++;
  }

  summary(): ServerMetrics['latencyMs'] {
    const n = Math.min(this.count, LATENCY_WINDOW);
    if (n === 0) return { p50: 0, p90: 0, p99: 0, max: 0, window: 0 };
    const sorted = this.values.slice(0, n).sort();
    const q = (p: number) => sorted[Math.min(n - 1, Math.ceil(p * n) - 1)];
    return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted[n - 1], window: n };
  }
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const log = options.log ?? (() => {});
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new WgslNnError(`port must be an integer in 0..65535, got ${port}`);
  if (!Number.isInteger(maxBody) || maxBody < 1) throw new WgslNnError(`maxBodyBytes must be a positive integer, got ${maxBody}`);
  if (options.threshold !== undefined) checkThreshold(options.threshold);
  if (!options.inspector && !options.model) throw new WgslNnError('startServer needs a model directory (or an inspector)');

  const ownsInspector = !options.inspector;
  const inspector = options.inspector ?? (await Inspector.load(options.model!, { maxBatch: options.maxBatch, maxWaitMs: options.maxWaitMs }));
  const threshold = options.threshold ?? inspector.threshold ?? 0.5;
  const started = Date.now();
  const byStatus: Record<string, number> = {};
  const latency = new LatencyWindow();
  let total = 0;
  let inFlight = 0;
  let inspectionsOk = 0;
  let inspectionsFailed = 0;
  let stopping = false;

  const metrics = (): ServerMetrics => {
    let client = 0;
    let server = 0;
    for (const [s, n] of Object.entries(byStatus)) {
      if (s.startsWith('4')) client += n;
      else if (s.startsWith('5')) server += n;
    }
    const mem = process.memoryUsage();
    const stats = inspector.stats();
    return {
      uptimeSeconds: (Date.now() - started) / 1000,
      requests: { total, inFlight, byStatus: { ...byStatus } },
      inspections: { ok: inspectionsOk, failed: inspectionsFailed },
      errors: { client, server },
      latencyMs: latency.summary(),
      gpu: inspector.engine.memory(),
      host: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
      deviceRecoveries: stats.deviceRecoveries,
      failedRecoveries: stats.failedRecoveries,
      queue: stats.queue,
    };
  };

  const health = () => {
    const status = stopping ? 'shutting-down' : inspector.engine.isLost ? 'recovering' : 'ok';
    return {
      code: status === 'ok' ? 200 : 503,
      body: {
        status,
        model: inspector.modelDir,
        task: inspector.meta.task,
        classes: inspector.classes,
        inputSize: inspector.meta.inputSize,
        adapter: inspector.engine.describe(),
        deviceRecoveries: inspector.stats().deviceRecoveries,
        uptimeSeconds: (Date.now() - started) / 1000,
      },
    };
  };

  const inspect = async (req: IncomingMessage, url: URL): Promise<InspectResponse> => {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== '' && !IMAGE_TYPES.test(type))
      throw new HttpError(415, `unsupported Content-Type '${type}': send the image bytes as the body, with image/png, image/jpeg, image/tiff, image/webp or application/octet-stream`);
    let t = threshold;
    const q = url.searchParams.get('threshold');
    if (q !== null) {
      t = Number(q);
      if (q.trim() === '' || !(t >= 0 && t <= 1)) throw new HttpError(400, `threshold must be a number in [0, 1], got '${q}'`);
    }
    const h = url.searchParams.get('heatmap');
    if (h !== null && !['0', '1', 'true', 'false'].includes(h)) throw new HttpError(400, `heatmap must be 1 or 0, got '${h}'`);
    const withHeatmap = h === '1' || h === 'true';
    const body = await readBody(req, maxBody);
    if (body.length === 0) throw new HttpError(400, 'empty request body: send the encoded image (PNG, JPEG, TIFF or WebP) as the body');
    let r: Inspection | InspectResponse;
    try {
      if (withHeatmap) {
        const { heatmap, ...rest } = await inspector.inspect(body, { name: 'request body', heatmap: true });
        r = { ...rest, heatmap: { width: heatmap.width, height: heatmap.height, class: heatmap.class, png: await mapPng(heatmap) } };
      } else r = await inspector.inspect(body, 'request body');
    } catch (e) {
      if (e instanceof ImageDecodeError) throw new HttpError(400, e.message);
      if (e instanceof InspectionFailedError || e instanceof DeviceLostError) throw new HttpError(503, e.message, { 'Retry-After': '1' });
      if (inspector.isDisposed) throw new HttpError(503, 'the server is shutting down');
      throw e;
    }
    if (inspector.meta.task !== 'binary') return r;
    const defect = r.scores[inspector.classes[1]];
    return { ...r, decision: defect >= t ? 'reject' : 'accept' };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = ROUTES[url.pathname];
    if (!route) throw new HttpError(404, `no such endpoint: ${url.pathname} (POST /inspect, GET /health, GET /metrics)`);
    if (!route.includes(req.method ?? '')) throw new HttpError(405, `${req.method} not allowed on ${url.pathname}; use ${route.join(' or ')}`, { Allow: route.join(', ') });
    if (url.pathname === '/health') {
      const h = health();
      return send(res, h.code, h.body);
    }
    if (url.pathname === '/metrics') return send(res, 200, metrics());
    if (stopping) throw new HttpError(503, 'the server is shutting down');
    try {
      const r = await inspect(req, url);
      inspectionsOk++;
      latency.add(performance.now() - t0);
      send(res, 200, r);
    } catch (e) {
      inspectionsFailed++;
      throw e;
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (res.headersSent) return;
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    const text = JSON.stringify(body);
    const h: Record<string, string | number> = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers };
    if (stopping) h.Connection = 'close';
    res.writeHead(status, h);
    res.end(res.req.method === 'HEAD' ? undefined : text);
  };

  const server: Server = createServer((req, res) => {
    total++;
    inFlight++;
    res.on('close', () => {
      inFlight--;
      if (stopping) server.closeIdleConnections();
    });
    handle(req, res).catch((e: unknown) => {
      if (e instanceof HttpError) {
        if (e.status === 413) {
          // Say so and close the connection rather than read the rest of an oversized upload.
          send(res, 413, { error: e.message }, { ...e.headers, Connection: 'close' });
          req.resume();
        } else send(res, e.status, { error: e.message }, e.headers);
        if (e.status >= 500) log(`${req.method} ${req.url}: ${e.status} ${e.message}`);
        return;
      }
      log(`${req.method} ${req.url}: 500 ${(e as Error)?.stack ?? String(e)}`);
      send(res, 500, { error: `internal error: ${(e as Error)?.message ?? String(e)}` });
    });
  });
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    if (ownsInspector) inspector.dispose();
    throw new WgslNnError(`cannot listen on ${host}:${port}: ${(e as Error).message}`, { cause: e });
  }
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  if (!isLoopback(host)) log(`warning: listening on ${host}, not loopback; the endpoints have no authentication`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      stopping = true;
      const force = setTimeout(() => server.closeAllConnections(), options.shutdownTimeoutMs ?? 30_000);
      force.unref(); // never keeps the process alive by itself
      server.close((err) => {
        clearTimeout(force);
        if (ownsInspector) inspector.dispose();
        if (err) reject(err);
        else resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };

  return { url, port: addr.port, inspector, metrics, close };
}

const ROUTES: Record<string, string[]> = {
  '/inspect': ['POST'],
  '/health': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
};

/** A [0, 1] map as a base64 8-bit grayscale PNG. */
async function mapPng(map: Heatmap): Promise<string> {
  const u8 = floatToU8(map.data);
  const png = await sharp(Buffer.from(u8.buffer, u8.byteOffset, u8.length), { raw: { width: map.width, height: map.height, channels: 1 } }).toColourspace('b-w').png().toBuffer();
  return png.toString('base64');
}

function checkThreshold(t: number): void {
  if (!(t >= 0 && t <= 1)) throw new WgslNnError(`threshold must be in [0, 1], got ${t}`);
}

/** The body as one Buffer; HttpError 413 as soon as it is known to exceed `max` bytes (the rest is then discarded). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = (n: string) => new HttpError(413, `request body of ${n} bytes is over the limit of ${max} bytes`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.reject(tooLarge(String(declared)));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        done();
        reject(tooLarge(`more than ${max}`));
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      done();
      reject(new HttpError(400, `could not read the request body: ${e.message}`));
    };
    const onAborted = () => {
      done();
      reject(new HttpError(400, 'the client aborted the request'));
    };
    const done = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
    };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
