// Training plots as PNG, for every model: an SVG string rendered by sharp (librsvg). No other dependency.
//   writeCurvesPng     any named series vs epoch (train and validation loss; a GAN's lossD, lossG, diversity);
//                      historySeries picks them from per-epoch records
//   writeConfusionPng  confusion-matrix heatmap, counts and row percentages in the cells
// Text uses the generic sans-serif font; on a machine without fonts the labels are missing but
// the PNG is still written.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

const FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Round numbers for axis ticks between lo and hi (about `target` of them). */
export function niceTicks(lo: number, hi: number, target = 6): { lo: number; hi: number; step: number; ticks: number[] } {
  if (!(hi > lo)) {
    const d = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  const step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  const a = Math.floor(lo / step + 1e-9) * step;
  const b = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = a; v <= b + step * 1e-6; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { lo: a, hi: b, step, ticks };
}

function fmtTick(v: number, step: number): string {
  const dec = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(dec);
}

async function renderSvg(file: string, svg: string): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await sharp(Buffer.from(svg)).png({ compressionLevel: 9 }).toFile(file);
}

export interface CurveSeries {
  name: string;
  /** values[i] is epoch i+1; NaN or non-finite values leave a gap. */
  values: number[];
}

/**
 * Named series from per-epoch records (history[i] is epoch i+1): `fields` maps each series name to a record
 * key or a function of the record, e.g. { lossD: 'lossD', lossG: 'lossG' }. Missing or non-numeric values are gaps.
 */
export function historySeries<R>(history: readonly R[], fields: Record<string, keyof R | ((record: R) => number)>): CurveSeries[] {
  return Object.entries(fields).map(([name, field]) => ({
    name,
    values: history.map((r) => {
      const v = typeof field === 'function' ? field(r) : r[field];
      return typeof v === 'number' ? v : NaN;
    }),
  }));
}

export interface CurvesOptions {
  title: string;
  yLabel: string;
  xLabel?: string;
  width?: number;
  height?: number;
  /** Fix the y range (e.g. 0 and 1 for accuracy); default from the data. */
  yMin?: number;
  yMax?: number;
}

/** Build the SVG of a line chart (exported for tests and for embedding). */
export function curvesSvg(series: CurveSeries[], opts: CurvesOptions): { svg: string; width: number; height: number } {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  const m = { l: 78, r: 24, t: 48, b: 58 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = Math.max(1, ...series.map((s) => s.values.length));
  const finite = series.flatMap((s) => s.values.filter((v) => Number.isFinite(v)));
  let lo = opts.yMin ?? (finite.length ? Math.min(...finite) : 0);
  let hi = opts.yMax ?? (finite.length ? Math.max(...finite) : 1);
  if (opts.yMin === undefined && opts.yMax === undefined && hi > lo) {
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
  }
  const yt = niceTicks(lo, hi, 6);
  if (opts.yMin !== undefined) yt.lo = opts.yMin;
  if (opts.yMax !== undefined) yt.hi = opts.yMax;
  const yTicks = yt.ticks.filter((v) => v >= yt.lo - 1e-12 && v <= yt.hi + 1e-12);
  const xt = niceTicks(1, Math.max(2, n), Math.min(10, Math.max(1, n - 1)));
  const xStep = Math.max(1, Math.round(xt.step));
  const xTicks: number[] = [1];
  for (let e = xStep; e <= n; e += xStep) if (e > 1 && (e - 1) / n > 0.04) xTicks.push(e);
  const X = (e: number): number => m.l + (n === 1 ? pw / 2 : ((e - 1) / (n - 1)) * pw);
  const Y = (v: number): number => m.t + ph - ((v - yt.lo) / (yt.hi - yt.lo)) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="30" font-size="18" font-weight="bold" text-anchor="middle" fill="#222">${escapeXml(opts.title)}</text>`);
  for (const v of yTicks) {
    const y = Y(v).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#e4e4e4" stroke-width="1"/>`);
    out.push(`<text x="${m.l - 8}" y="${y}" font-size="12" text-anchor="end" dominant-baseline="middle" fill="#333">${fmtTick(v, yt.step)}</text>`);
  }
  for (const e of xTicks) {
    const x = X(e).toFixed(1);
    out.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#f0f0f0" stroke-width="1"/>`);
    out.push(`<text x="${x}" y="${m.t + ph + 18}" font-size="12" text-anchor="middle" fill="#333">${e}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#555" stroke-width="1"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 14}" font-size="14" text-anchor="middle" fill="#222">${escapeXml(opts.xLabel ?? 'epoch')}</text>`);
  out.push(`<text transform="translate(20 ${m.t + ph / 2}) rotate(-90)" font-size="14" text-anchor="middle" fill="#222">${escapeXml(opts.yLabel)}</text>`);

  out.push(`<clipPath id="plot"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath>`);
  out.push('<g clip-path="url(#plot)">');
  series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    let seg: string[] = [];
    const flush = (): void => {
      if (seg.length > 1) out.push(`<polyline points="${seg.join(' ')}" fill="none" stroke="${color}" stroke-width="2.2" stroke-linejoin="round"/>`);
      seg = [];
    };
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v)) return flush();
      seg.push(`${X(i + 1).toFixed(1)},${Y(v).toFixed(1)}`);
    });
    flush();
    if (s.values.length <= 60) {
      s.values.forEach((v, i) => {
        if (Number.isFinite(v)) out.push(`<circle cx="${X(i + 1).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="3" fill="${color}"/>`);
      });
    }
  });
  out.push('</g>');

  // Legend, top right inside the plot.
  if (series.length > 0) {
    const lw = Math.max(...series.map((s) => s.name.length)) * 7.5 + 44;
    const lh = series.length * 20 + 10;
    // The corner whose legend box covers the fewest data points.
    const pts = series.flatMap((s) => s.values.map((v, i) => [X(i + 1), Y(v)] as const).filter(([, y]) => Number.isFinite(y)));
    const corners = [
      [m.l + pw - lw - 10, m.t + 10],
      [m.l + 10, m.t + 10],
      [m.l + pw - lw - 10, m.t + ph - lh - 10],
      [m.l + 10, m.t + ph - lh - 10],
    ];
    let lx = corners[0][0];
    let ly = corners[0][1];
    let best = Infinity;
    for (const [cx, cy] of corners) {
      const hits = pts.filter(([x, y]) => x >= cx - 6 && x <= cx + lw + 6 && y >= cy - 6 && y <= cy + lh + 6).length;
      if (hits < best) {
        best = hits;
        lx = cx;
        ly = cy;
      }
    }
    out.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${lh}" fill="#ffffff" fill-opacity="0.85" stroke="#bbb"/>`);
    series.forEach((s, si) => {
      const y = ly + 15 + si * 20;
      const color = PALETTE[si % PALETTE.length];
      out.push(`<line x1="${lx + 8}" y1="${y}" x2="${lx + 30}" y2="${y}" stroke="${color}" stroke-width="2.5"/>`);
      out.push(`<text x="${lx + 36}" y="${y}" font-size="12" dominant-baseline="middle" fill="#222">${escapeXml(s.name)}</text>`);
    });
  }
  out.push('</svg>');
  return { svg: out.join('\n'), width: W, height: H };
}

/** Line chart of one or more series vs epoch, written as PNG. Returns the image size. */
export async function writeCurvesPng(file: string, series: CurveSeries[], opts: CurvesOptions): Promise<{ width: number; height: number }> {
  const { svg, width, height } = curvesSvg(series, opts);
  await renderSvg(file, svg);
  return { width, height };
}

export interface ConfusionOptions {
  title?: string;
  /** Cell side in pixels; default from the number of classes (40-100). */
  cell?: number;
}

/** Blue scale from white (0) to dark blue (1). */
function blue(t: number): string {
  const a = [247, 251, 255];
  const b = [8, 48, 107];
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * Math.max(0, Math.min(1, t))));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function confusionSvg(confusion: number[][], classes: string[], opts: ConfusionOptions = {}): { svg: string; width: number; height: number } {
  const k = classes.length;
  if (confusion.length !== k || confusion.some((r) => r.length !== k)) throw new RangeError(`confusion matrix must be ${k}x${k} for ${k} classes`);
  const cell = opts.cell ?? Math.max(40, Math.min(100, Math.floor(560 / Math.max(1, k))));
  const maxName = Math.max(4, ...classes.map((c) => c.length));
  const charW = 7.2;
  const left = Math.ceil(maxName * charW + 48);
  const top = 56;
  const bottom = Math.ceil(maxName * charW * 0.66 + 46);
  const right = 24;
  const W = Math.max(left + k * cell + right, 360); // room for the title
  const H = top + k * cell + bottom;
  const total = confusion.flat().reduce((a, b) => a + b, 0);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="30" font-size="17" font-weight="bold" text-anchor="middle" fill="#222">${escapeXml(opts.title ?? `Confusion matrix (n = ${total})`)}</text>`);
  const big = Math.max(11, Math.min(18, Math.round(cell / 4)));
  const small = Math.max(9, Math.round(big * 0.65));
  for (let t = 0; t < k; t++) {
    const rowSum = confusion[t].reduce((a, b) => a + b, 0);
    for (let p = 0; p < k; p++) {
      const v = confusion[t][p];
      const frac = rowSum > 0 ? v / rowSum : 0;
      const x = left + p * cell;
      const y = top + t * cell;
      out.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${blue(frac)}" stroke="#ffffff" stroke-width="1"/>`);
      const fg = frac > 0.5 ? '#ffffff' : '#1a1a1a';
      const showPct = cell >= 48 && rowSum > 0;
      out.push(`<text x="${x + cell / 2}" y="${y + cell / 2 - (showPct ? small * 0.45 : 0)}" font-size="${big}" font-weight="${t === p ? 'bold' : 'normal'}" text-anchor="middle" dominant-baseline="middle" fill="${fg}">${v}</text>`);
      if (showPct) out.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + big * 0.75}" font-size="${small}" text-anchor="middle" dominant-baseline="middle" fill="${fg}">${(frac * 100).toFixed(0)}%</text>`);
    }
    out.push(`<text x="${left - 8}" y="${top + t * cell + cell / 2}" font-size="13" text-anchor="end" dominant-baseline="middle" fill="#222">${escapeXml(classes[t])}</text>`);
  }
  for (let p = 0; p < k; p++) {
    const x = left + p * cell + cell / 2;
    const y = top + k * cell + 10;
    out.push(`<text transform="translate(${x} ${y}) rotate(-40)" font-size="13" text-anchor="end" dominant-baseline="middle" fill="#222">${escapeXml(classes[p])}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${k * cell}" height="${k * cell}" fill="none" stroke="#555"/>`);
  out.push(`<text x="${left + (k * cell) / 2}" y="${H - 12}" font-size="14" text-anchor="middle" fill="#222">predicted</text>`);
  out.push(`<text transform="translate(18 ${top + (k * cell) / 2}) rotate(-90)" font-size="14" text-anchor="middle" fill="#222">true</text>`);
  out.push('</svg>');
  return { svg: out.join('\n'), width: W, height: H };
}

/** Confusion-matrix heatmap (rows = true, columns = predicted; colour = row fraction), as PNG. */
export async function writeConfusionPng(file: string, confusion: number[][], classes: string[], opts: ConfusionOptions = {}): Promise<{ width: number; height: number }> {
  const { svg, width, height } = confusionSvg(confusion, classes, opts);
  await renderSvg(file, svg);
  return { width, height };
}
