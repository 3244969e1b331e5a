// Synthetic surface images with defects, deterministic from a seed.
//
// Backgrounds: 'steel' (rolled-strip grain: streaky noise along one axis, fine noise, slow
// illumination changes) or 'tile' (isotropic mottled noise and a lighting gradient).
// Classes (multiclass, sorted):
//   clean      background only
//   crack      dark jagged polyline (random-walk direction) with 1-2 side branches
//   inclusion  1-3 dark elongated soft streaks (ellipses ~6:1), broken along their length
//   patch      1-2 large soft-edged irregular regions, low contrast (brighter or darker)
//   scratch    1-2 thin, long, straight sharp lines, bright or dark
//   spot       2-5 small round dark pits with soft edges
// Position, orientation, size and intensity are random, so the task is not trivial, but each
// class has a distinct shape signature that a small CNN separates at 32-64 px.
// Each sample uses its own Rng(mixSeed(seed, fnv1a(class), i)), so a sample does not depend on
// how many others are generated or in what order.

import { mkdir, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Rng } from '../util/rng.js';
import { writeGrayPng } from './images.js';
import { fnv1a, mixSeed } from './split.js';

export const SYNTHETIC_CLASSES = ['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot'] as const;
export type SyntheticClass = (typeof SYNTHETIC_CLASSES)[number];
export const SYNTHETIC_DEFECTS: readonly SyntheticClass[] = SYNTHETIC_CLASSES.filter((c) => c !== 'clean');

export interface SyntheticOptions {
  outDir: string;
  perClass: number;
  size: number;
  seed: number;
  task?: 'multiclass' | 'binary';
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

/** Value noise in about [-1, 1]: a random (gx+1) x (gy+1) lattice, smoothstep-interpolated. */
function valueNoise(size: number, gx: number, gy: number, rng: Rng): Float32Array {
  const lw = gx + 1;
  const lat = new Float32Array(lw * (gy + 1));
  for (let i = 0; i < lat.length; i++) lat[i] = rng.uniform(-1, 1);
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    const fy = ((y + 0.5) / size) * gy;
    const iy = Math.min(gy - 1, Math.floor(fy));
    const ty = smooth(fy - iy);
    for (let x = 0; x < size; x++) {
      const fx = ((x + 0.5) / size) * gx;
      const ix = Math.min(gx - 1, Math.floor(fx));
      const tx = smooth(fx - ix);
      const a = lat[iy * lw + ix];
      const b = lat[iy * lw + ix + 1];
      const c = lat[(iy + 1) * lw + ix];
      const d = lat[(iy + 1) * lw + ix + 1];
      const top = a + (b - a) * tx;
      const bot = c + (d - c) * tx;
      out[y * size + x] = top + (bot - top) * ty;
    }
  }
  return out;
}

function background(size: number, rng: Rng): Float32Array {
  const img = new Float32Array(size * size);
  const steel = rng.next() < 0.5;
  const base = rng.uniform(0.35, 0.6);
  const fine = rng.uniform(0.012, 0.028);
  if (steel) {
    const vertical = rng.next() < 0.5;
    const along = 2 + rng.int(4);
    const across = Math.max(4, Math.round(size * rng.uniform(0.3, 0.5)));
    const grain = valueNoise(size, vertical ? across : along, vertical ? along : across, rng);
    const light = valueNoise(size, 2, 2, rng);
    const ga = rng.uniform(0.03, 0.06);
    const la = rng.uniform(0.02, 0.05);
    for (let i = 0; i < img.length; i++) img[i] = base + ga * grain[i] + la * light[i] + fine * rng.normal();
  } else {
    const cells = 3 + rng.int(5);
    const mottle = valueNoise(size, cells, cells, rng);
    const ma = rng.uniform(0.025, 0.05);
    const th = rng.uniform(0, 2 * Math.PI);
    const gxv = Math.cos(th) * rng.uniform(0.02, 0.06);
    const gyv = Math.sin(th) * rng.uniform(0.02, 0.06);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const i = y * size + x;
        img[i] = base + ma * mottle[i] + gxv * (x / size - 0.5) * 2 + gyv * (y / size - 0.5) * 2 + fine * rng.normal();
      }
    }
  }
  return img;
}

/** Distance from (px, py) to segment (ax, ay)-(bx, by). */
export function segDist(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const l2 = dx * dx + dy * dy;
  let t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  const ex = px - (ax + t * dx);
  const ey = py - (ay + t * dy);
  return Math.sqrt(ex * ex + ey * ey);
}

/** Add `delta` times the anti-aliased coverage of a polyline of half-width hw (pixels). */
function drawPolyline(img: Float32Array, size: number, pts: [number, number][], hw: number, delta: number): void {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const [x, y] of pts) {
    minX = Math.min(minX, x); maxX = Math.max(maxX, x);
    minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  const pad = hw + 1.5;
  const x0 = Math.max(0, Math.floor(minX - pad));
  const x1 = Math.min(size - 1, Math.ceil(maxX + pad));
  const y0 = Math.max(0, Math.floor(minY - pad));
  const y1 = Math.min(size - 1, Math.ceil(maxY + pad));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      let d = Infinity;
      for (let k = 0; k + 1 < pts.length; k++) d = Math.min(d, segDist(px, py, pts[k][0], pts[k][1], pts[k + 1][0], pts[k + 1][1]));
      const cov = hw + 0.5 - d;
      if (cov > 0) img[y * size + x] += delta * (cov > 1 ? 1 : cov);
    }
  }
}

function scratch(img: Float32Array, size: number, rng: Rng): void {
  const n = 1 + (rng.next() < 0.35 ? 1 : 0);
  const th0 = rng.uniform(0, Math.PI);
  const sign = rng.next() < 0.6 ? 1 : -1;
  for (let k = 0; k < n; k++) {
    const th = th0 + rng.uniform(-0.15, 0.15);
    const len = size * rng.uniform(0.55, 0.95);
    const cx = size * rng.uniform(0.3, 0.7);
    const cy = size * rng.uniform(0.3, 0.7);
    const dx = (Math.cos(th) * len) / 2;
    const dy = (Math.sin(th) * len) / 2;
    const hw = Math.max(0.45, size * rng.uniform(0.006, 0.012));
    drawPolyline(img, size, [[cx - dx, cy - dy], [cx + dx, cy + dy]], hw, sign * rng.uniform(0.15, 0.32));
  }
}

function crack(img: Float32Array, size: number, rng: Rng): void {
  const walk = (x: number, y: number, th: number, steps: number, step: number): [number, number][] => {
    const pts: [number, number][] = [[x, y]];
    for (let s = 0; s < steps; s++) {
      th += rng.uniform(-0.7, 0.7);
      x += Math.cos(th) * step * rng.uniform(0.7, 1.3);
      y += Math.sin(th) * step * rng.uniform(0.7, 1.3);
      pts.push([x, y]);
    }
    return pts;
  };
  const step = size * rng.uniform(0.05, 0.075);
  const th = rng.uniform(0, 2 * Math.PI);
  const steps = 8 + rng.int(6);
  // Start so that the walk's mean direction stays inside the image.
  const sx = size / 2 - (Math.cos(th) * step * steps) / 2 + size * rng.uniform(-0.12, 0.12);
  const sy = size / 2 - (Math.sin(th) * step * steps) / 2 + size * rng.uniform(-0.12, 0.12);
  const main = walk(sx, sy, th, steps, step);
  const depth = -rng.uniform(0.2, 0.4);
  const hw = Math.max(0.5, size * rng.uniform(0.008, 0.014));
  drawPolyline(img, size, main, hw, depth);
  const branches = 1 + rng.int(2);
  for (let b = 0; b < branches; b++) {
    const at = main[2 + rng.int(main.length - 4)];
    const bth = th + (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.1);
    drawPolyline(img, size, walk(at[0], at[1], bth, 3 + rng.int(4), step * 0.8), hw * 0.8, depth * 0.85);
  }
}

function inclusion(img: Float32Array, size: number, rng: Rng): void {
  const n = 1 + rng.int(3);
  const th0 = rng.uniform(0, Math.PI);
  const cx0 = size * rng.uniform(0.3, 0.7);
  const cy0 = size * rng.uniform(0.3, 0.7);
  for (let k = 0; k < n; k++) {
    const th = th0 + rng.uniform(-0.2, 0.2);
    const a = size * rng.uniform(0.15, 0.32);
    const b = Math.max(1.1, size * rng.uniform(0.025, 0.045));
    const off = (k - (n - 1) / 2) * size * rng.uniform(0.08, 0.14);
    const cx = cx0 - Math.sin(th0) * off + Math.cos(th0) * size * rng.uniform(-0.08, 0.08);
    const cy = cy0 + Math.cos(th0) * off + Math.sin(th0) * size * rng.uniform(-0.08, 0.08);
    const depth = rng.uniform(0.2, 0.38);
    const c = Math.cos(th);
    const s = Math.sin(th);
    // Breaks along the streak: a 1-D modulation of 4-7 random knots.
    const knots = 4 + rng.int(4);
    const mod = Array.from({ length: knots + 1 }, () => rng.uniform(0.35, 1));
    const r = a + 2;
    for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(size - 1, Math.ceil(cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(size - 1, Math.ceil(cx + r)); x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const u = (dx * c + dy * s) / a;
        const v = (-dx * s + dy * c) / b;
        const q = u * u + v * v;
        if (q >= 1) continue;
        const t = ((u + 1) / 2) * knots;
        const ti = Math.min(knots - 1, Math.floor(t));
        const m = mod[ti] + (mod[ti + 1] - mod[ti]) * smooth(t - ti);
        img[y * size + x] -= depth * m * (1 - q) * (1 - u * u * 0.5);
      }
    }
  }
}

function patch(img: Float32Array, size: number, rng: Rng): void {
  const n = 1 + (rng.next() < 0.3 ? 1 : 0);
  const sign = rng.next() < 0.5 ? 1 : -1;
  for (let k = 0; k < n; k++) {
    const cx = size * rng.uniform(0.25, 0.75);
    const cy = size * rng.uniform(0.25, 0.75);
    const r0 = size * rng.uniform(0.18, 0.32);
    const amp = sign * rng.uniform(0.1, 0.17);
    // Irregular boundary: radius modulated by 3 low harmonics.
    const h = [2, 3, 5].map((f) => ({ f, a: rng.uniform(0, 0.22), p: rng.uniform(0, 2 * Math.PI) }));
    const soft = size * 0.06;
    const inner = valueNoise(size, 6, 6, rng);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const d = Math.sqrt(dx * dx + dy * dy);
        const ang = Math.atan2(dy, dx);
        let r = r0;
        for (const { f, a, p } of h) r += r0 * a * Math.sin(f * ang + p);
        const w = (r - d) / soft;
        if (w <= -1) continue;
        const cov = w >= 1 ? 1 : smooth((w + 1) / 2);
        const i = y * size + x;
        img[i] += amp * cov * (0.8 + 0.35 * inner[i]);
      }
    }
  }
}

function spot(img: Float32Array, size: number, rng: Rng): void {
  const n = 2 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const r = Math.max(1.4, size * rng.uniform(0.035, 0.075));
    const cx = size * rng.uniform(0.12, 0.88);
    const cy = size * rng.uniform(0.12, 0.88);
    const depth = rng.uniform(0.2, 0.4);
    for (let y = Math.max(0, Math.floor(cy - r - 1)); y <= Math.min(size - 1, Math.ceil(cy + r + 1)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r - 1)); x <= Math.min(size - 1, Math.ceil(cx + r + 1)); x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const d = Math.sqrt(dx * dx + dy * dy) / r;
        if (d >= 1.25) continue;
        const prof = d <= 0.75 ? 1 : smooth((1.25 - d) / 0.5);
        img[y * size + x] -= depth * prof;
      }
    }
  }
}

const DRAW: Record<SyntheticClass, ((img: Float32Array, size: number, rng: Rng) => void) | null> = {
  clean: null,
  crack,
  inclusion,
  patch,
  scratch,
  spot,
};

/** One size x size sample of class `cls`, Float32 in [0, 1]. */
export function syntheticSample(cls: SyntheticClass | string, size: number, rng: Rng): Float32Array {
  if (!(SYNTHETIC_CLASSES as readonly string[]).includes(cls)) throw new RangeError(`unknown synthetic class '${cls}'; expected one of ${SYNTHETIC_CLASSES.join(', ')}`);
  if (!Number.isInteger(size) || size < 8) throw new RangeError(`synthetic size must be an integer >= 8, got ${size}`);
  const img = background(size, rng);
  DRAW[cls as SyntheticClass]?.(img, size, rng);
  for (let i = 0; i < img.length; i++) img[i] = img[i] < 0 ? 0 : img[i] > 1 ? 1 : img[i];
  return img;
}

/** The folder names and, per folder, the synthetic class of sample i. */
function plan(task: 'multiclass' | 'binary'): { folders: string[]; classOf: (folder: string, i: number) => SyntheticClass } {
  if (task === 'binary') {
    return {
      folders: ['defect', 'good'],
      classOf: (f, i) => (f === 'good' ? 'clean' : SYNTHETIC_DEFECTS[i % SYNTHETIC_DEFECTS.length]),
    };
  }
  return { folders: [...SYNTHETIC_CLASSES], classOf: (f) => f as SyntheticClass };
}

function sampleRng(seed: number, folder: string, i: number): Rng {
  return new Rng(mixSeed(seed >>> 0, fnv1a(folder), i));
}

/** In-memory dataset: the same pixels as generateSynthetic (before 8-bit quantisation). Classes as scanDataset names them. */
export function syntheticDataset(opts: Omit<SyntheticOptions, 'outDir'>): { classes: string[]; images: Float32Array[]; labels: Int32Array } {
  const task = opts.task ?? 'multiclass';
  const { folders, classOf } = plan(task);
  const classes = task === 'binary' ? ['good', 'defect'] : folders.slice();
  const images: Float32Array[] = [];
  const labels: number[] = [];
  for (const f of folders) {
    for (let i = 0; i < opts.perClass; i++) {
      images.push(syntheticSample(classOf(f, i), opts.size, sampleRng(opts.seed, f, i)));
      labels.push(classes.indexOf(f));
    }
  }
  return { classes, images, labels: Int32Array.from(labels) };
}

/**
 * Write perClass PNGs per class folder under outDir (multiclass: one folder per synthetic class;
 * binary: good/ (clean) and defect/ (the five defect kinds in turn)). Earlier files of this
 * generator in those folders (<folder>_<n>.png) are removed first; other files are left alone.
 * Returns the class names as scanDataset will report them and the number of files written.
 */
export async function generateSynthetic(opts: SyntheticOptions): Promise<{ classes: string[]; count: number }> {
  const task = opts.task ?? 'multiclass';
  if (!Number.isInteger(opts.perClass) || opts.perClass < 1) throw new RangeError(`perClass must be a positive integer, got ${opts.perClass}`);
  const { folders, classOf } = plan(task);
  let count = 0;
  for (const f of folders) {
    const dir = path.join(opts.outDir, f);
    await mkdir(dir, { recursive: true });
    const own = new RegExp(`^${f}_\\d+\\.png$`);
    for (const name of await readdir(dir)) if (own.test(name)) await unlink(path.join(dir, name));
    const width = Math.max(5, String(opts.perClass - 1).length);
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < opts.perClass; i++) {
      const img = syntheticSample(classOf(f, i), opts.size, sampleRng(opts.seed, f, i));
      jobs.push(writeGrayPng(path.join(dir, `${f}_${String(i).padStart(width, '0')}.png`), img, opts.size, opts.size));
      if (jobs.length >= 16) await Promise.all(jobs.splice(0));
      count++;
    }
    await Promise.all(jobs);
  }
  return { classes: task === 'binary' ? ['good', 'defect'] : folders.slice(), count };
}
