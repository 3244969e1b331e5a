// 2-D convolution (NCHW, OIHW weights, zero padding, dilation 1, groups 1): forward, input gradient
// and weight gradient.
//
// The implicit-GEMM variants run on the shared GEMM core (shaders/matmul.wgsl) with conv readers:
//   forward  y[n,o,pix]  = sum_{c,u,v} w[o,(c,u,v)] * im2col(x)[(c,u,v),(n,pix)]      (+ bias, act)
//   d/dx     dx[n,c,pix] = per stride phase, sum_{o,u',v'} w[o,c,u,v] * dy[n,o,...]
//   d/dw     dw[o,(c,u,v)] = sum_{n,pix} dy[n,o,pix] * im2col(x)[(n,pix),(c,u,v)]     (split-K)
// The 'gemm-subgroup-vec4' variants may run forward and d/dw transposed (pixels or taps as rows), see
// convForwardGemm and convBackwardWeightGemm.
// The 'direct' forward (shaders/conv2d.wgsl) loops over (c, u, v) without the GEMM indirection.
// Tensors over one storage binding are split along the batch (src/kernels/batch-split.ts): forward
// and d/dx run per range of images, d/dw adds the ranges' partial gradients.
import { f32, type Engine } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { ACTIVATION_CODE, checkGate, gatePart, gateSplitOperands, type Activation, type ActivationGate } from './activation.js';
import {
  CONV_GEMM_VARIANT_NAMES,
  CORE_INFO,
  checkF32,
  cheaperForm,
  gemm,
  plainGemm,
  registerPerCore,
  type ConvGeometry,
  type GemmCore,
  type GemmProblem,
} from './matmul.js';
import { defineOp, log2Bucket } from './registry.js';
import { forEachSplit, sumParts, type SplitOperand } from './batch-split.js';
import { col2im } from './col2im.js';

export interface Conv2dParams {
  stride: [number, number];
  padding: [number, number];
}

export interface Epilogue {
  activation?: Activation;
  slope?: number;
}

/** Parameters of the backward ops: with `gate`, dy is read as dy * act'(gate.y) (see ActivationGate). */
export interface BackwardParams extends Conv2dParams {
  gate?: ActivationGate;
}

const str = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Output size floor((h + 2p - k) / s) + 1 per axis. */
export function conv2dOutputSize(h: number, w: number, k: [number, number], p: Conv2dParams): [number, number] {
  return [
    Math.floor((h + 2 * p.padding[0] - k[0]) / p.stride[0]) + 1,
    Math.floor((w + 2 * p.padding[1] - k[1]) / p.stride[1]) + 1,
  ];
}

function checkParams(op: string, p: Conv2dParams): void {
  const ok = (v: unknown, min: number) => Number.isInteger(v) && (v as number) >= min;
  if (!p || !Array.isArray(p.stride) || !Array.isArray(p.padding) || !ok(p.stride[0], 1) || !ok(p.stride[1], 1) || !ok(p.padding[0], 0) || !ok(p.padding[1], 0))
    throw new ShapeError(`${op}: stride must be two integers >= 1 and padding two integers >= 0 (got stride ${JSON.stringify(p?.stride)}, padding ${JSON.stringify(p?.padding)})`);
}

/**
 * Geometry of the forward conv x [n,c,h,w] * w [o,c,kh,kw] -> y; checks that the shapes fit
 * (and, when given, that y has the expected shape).
 */
export function convGeometry(
  op: string,
  xShape: readonly number[],
  wShape: readonly number[],
  p: Conv2dParams,
  yShape?: readonly number[],
): ConvGeometry {
  checkParams(op, p);
  const what = `${op}: x ${str(xShape)}, w ${str(wShape)}${yShape ? `, dy ${str(yShape)}` : ''}, stride ${str(p.stride)}, padding ${str(p.padding)}`;
  if (xShape.length !== 4 || wShape.length !== 4) throw new ShapeError(`${what}: x and w must be 4-D, x [N,C,H,W] and w [O,C,kH,kW]`);
  const [nimg, xc, xh, xw] = xShape;
  const [yc, wc, kh, kw] = wShape;
  if (wc !== xc) throw new ShapeError(`${what}: x has ${xc} channels but weight ${str(wShape)} expects ${wc}`);
  if (kh < 1 || kw < 1) throw new ShapeError(`${what}: empty kernel`);
  const [yh, yw] = conv2dOutputSize(xh, xw, [kh, kw], p);
  if (yh < 1 || yw < 1) throw new ShapeError(`${what}: the kernel does not fit the padded input (output ${yh}x${yw})`);
  if (yShape && (yShape.length !== 4 || yShape[0] !== nimg || yShape[1] !== yc || yShape[2] !== yh || yShape[3] !== yw))
    throw new ShapeError(`${what}: dy must be ${str([nimg, yc, yh, yw])}`);
  return geometryOf(xShape, wShape, p);
}

/** The geometry of convGeometry without its checks: for variants, whose op check has run convGeometry. */
export function geometryOf(xShape: readonly number[], wShape: readonly number[], p: Conv2dParams): ConvGeometry {
  const [nimg, xc, xh, xw] = xShape;
  const [yc, , kh, kw] = wShape;
  const [yh, yw] = conv2dOutputSize(xh, xw, [kh, kw], p);
  return { nimg, xc, xh, xw, yc, yh, yw, kh, kw, sh: p.stride[0], sw: p.stride[1], ph: p.padding[0], pw: p.padding[1] };
}

function checkBias(what: string, b: DeviceTensor | null, n: number): void {
  if (b && (b.shape.length !== 1 || b.shape[0] !== n)) throw new ShapeError(`${what}: bias ${str(b.shape)} must be [${n}]`);
}

// ------------------------------------------------------------------------------------ GEMM forms

/**
 * y = act(conv(x, w) + b) by implicit GEMM: rows = output channels, columns = (n, oh, ow); or, where
 * gemm_vec4 runs it better (see cheaperForm), the transpose: rows = pixels (im2col of x, shared by
 * subgroup broadcasts), columns = output channels (w rows, vec4 reads when C*kH*kW is a multiple of 4).
 * `xGate`: x is read as x * act'(xGate.y) (the conv-transpose input gradient, whose dy is this conv's x).
 */
export function convForwardGemm(
  core: GemmCore, x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, g: ConvGeometry, epi: Epilogue, label: string, xGate?: ActivationGate,
): DeviceTensor {
  const y = x.engine.empty([g.nimg, g.yc, g.yh, g.yw]);
  const K = g.xc * g.kh * g.kw;
  const operands = [...imageOperands(g, { tensor: x, name: 'x', side: 'x' }, { tensor: y, name: 'y', side: 'y', output: true }), ...gateSplitOperands(xGate, imageUnit(g, 'x'))];
  forEachSplit(x.engine, label, g.nimg, operands, (r, [xs, ys, gys]) => {
    const gs = { ...g, nimg: r.count };
    const gate = gatePart(xGate, gys);
    const pixels = gs.nimg * gs.yh * gs.yw;
    const shared = { out: ys, bias: b, activation: epi.activation, slope: epi.slope, conv: gs, K };
    const channelRows: GemmProblem = {
      ...shared, label, a: w, b: xs, bGate: gate, biasMode: 'perRow',
      aMode: 'plain', bMode: 'im2col', cMode: 'nchw', M: gs.yc, N: pixels, aStrides: [0, K, 1],
    };
    const pixelRows: GemmProblem = {
      ...shared, label: `${label} (pixel rows)`, a: xs, aGate: gate, b: w, biasMode: 'perColumn',
      aMode: 'im2col', bMode: 'plain', cMode: 'nchwT', M: pixels, N: gs.yc, bStrides: [0, 1, K],
    };
    gemm(core, cheaperForm(core, channelRows, pixelRows, false));
  });
  return y;
}

/**
 * The split operands of a conv over images: tensors of the input's shape [n, xc, xh, xw] ('x' side)
 * and of the output's shape [n, yc, yh, yw] ('y' side), split along n.
 */
function imageOperands(g: ConvGeometry, ...ops: { tensor: DeviceTensor; name: string; side: 'x' | 'y'; output?: boolean }[]): SplitOperand[] {
  return ops.map((o) => ({ tensor: o.tensor, name: o.name, output: o.output, unit: imageUnit(g, o.side) }));
}

/** Elements of one image in a tensor of the input's ('x') or the output's ('y') shape. */
function imageUnit(g: ConvGeometry, side: 'x' | 'y'): number {
  return side === 'x' ? g.xc * g.xh * g.xw : g.yc * g.yh * g.yw;
}

/**
 * A 1x1 dy without padding whose kernel covers all of x (a DCGAN discriminator's head; as the conv-transpose
 * forward, a generator's first layer, noise [N, Cin, 1, 1] to [N, Cout, k, k]): the input gradient is one
 * plain GEMM. The phase GEMM would run all kh*kw taps of every dx pixel, all but one outside the 1x1 dy (16x
 * the work at k = 4). Not with a bias, which is per channel c, not per column of that GEMM.
 */
function isPointGradient(g: ConvGeometry): boolean {
  return g.yh === 1 && g.yw === 1 && g.ph === 0 && g.pw === 0 && g.xh === g.kh && g.xw === g.kw;
}

/** Number of output positions t (ih = s*t + r - p in [0, size)) of stride phase r. */
function phaseCount(size: number, s: number, p: number, r: number): number {
  const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
  return Math.max(ceilDiv(size + p - r, s) - ceilDiv(p - r, s), 0);
}

/**
 * When the input gradient runs in column form (columnFormInputGradient). The phase GEMM has the xc input
 * channels as rows, and its row blocks are 16 high (gemm_vec4, gemm_subgroup) or 64 (gemm_tiled), so a
 * 1-channel dx (a generator's image layer, a discriminator's first conv's input gradient) does 16x the
 * multiply-adds it needs; its time grows with yc (its reduction) and hardly with xc. The column form does
 * only the needed ones but writes xc*kh*kw columns per dy pixel and gathers them again, so its time grows
 * with xc (about 15 ms per input channel at 64 x 64 x 64 dx pixels on lavapipe beside a training job, nearly independent of
 * yc). Measured on lavapipe in two runs (bench/col2im-ab.ts; bench/results/mesa-lavapipe-vulkan.col2im-ab.md):
 * the column form took 0.22-0.44x the phase GEMM's time for xc = 1 (yc 16 and 32), 0.41-0.54x for xc = 2
 * at yc = 32 and 0.70-0.92x at yc = 16, 0.71-0.74x for xc = 3 at yc = 32; level at xc = yc / 8
 * (0.98-1.08x) and slower beyond (up to 2.3x). Hence: column form iff xc * yPerX <= yc. Not measured on a
 * real GPU (where gemm_tiled's 64-row blocks waste even more); `columnForm.yPerX` = Infinity turns the
 * column form off (the A/B does so to time the phase GEMM on the same shapes).
 */
export const columnForm = { yPerX: 8 };

/** Whether the input gradient of geometry `g` runs in column form: few input channels, and the columns fit one binding. */
function useColumnForm(e: Engine, g: ConvGeometry): boolean {
  const taps = g.xc * g.kh * g.kw;
  return g.xc * columnForm.yPerX <= g.yc && taps > g.xc && g.nimg * taps * g.yh * g.yw * 4 <= e.limits.maxStorageBufferBindingSize;
}

/**
 * The input gradient as one GEMM into columns and a gather (col2im):
 *   cols[n, (c,u,v), pix] = sum_o w[o, (c,u,v)] dy[n, o, pix]      (rows: the xc*kh*kw taps)
 *   dx[n, c, ih, iw] = act(b[c] + sum of the columns whose tap lands on (ih, iw))
 * dy is read as the input of a 1x1 conv (im2col without padding); or, where gemm_vec4 runs it better,
 * the transpose (rows = pixels of dy, columns = taps, w read as vec4 along the taps).
 */
function columnFormInputGradient(
  core: GemmCore, dy: DeviceTensor, w: DeviceTensor, dx: DeviceTensor, g: ConvGeometry, b: DeviceTensor | null, epi: Epilogue, label: string, dyGate?: ActivationGate,
): void {
  const taps = g.xc * g.kh * g.kw;
  const pixels = g.nimg * g.yh * g.yw;
  const cols = dy.engine.empty([g.nimg, taps, g.yh, g.yw]);
  // dy as the input of a 1x1 conv from its yc channels to the taps.
  const pointwise: ConvGeometry = { nimg: g.nimg, xc: g.yc, xh: g.yh, xw: g.yw, yc: taps, yh: g.yh, yw: g.yw, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0 };
  const shared = { label: `${label} (columns)`, out: cols, conv: pointwise, K: g.yc };
  const tapRows: GemmProblem = { ...shared, a: w, b: dy, bGate: dyGate, aMode: 'plain', bMode: 'im2col', cMode: 'nchw', M: taps, N: pixels, aStrides: [0, 1, taps] };
  const pixelRows: GemmProblem = { ...shared, a: dy, aGate: dyGate, b: w, aMode: 'im2col', bMode: 'plain', cMode: 'nchwT', M: pixels, N: taps, bStrides: [0, taps, 1] };
  gemm(core, cheaperForm(core, tapRows, pixelRows, false));
  col2im(cols, dx, g, b, epi, label);
  cols.dispose();
}

/**
 * dx = conv2d input gradient of dy (shape of y) with w [o,c,kh,kw], into [nimg, xc, xh, xw]; optionally
 * with a per-channel bias and activation (conv-transpose forward is this op).
 * `dyGate`: dy is read as dy * act'(dyGate.y).
 */
export function convBackwardInputGemm(
  core: GemmCore, dy: DeviceTensor, w: DeviceTensor, g: ConvGeometry, b: DeviceTensor | null, epi: Epilogue, label: string, dyGate?: ActivationGate,
): DeviceTensor {
  const dx = dy.engine.empty([g.nimg, g.xc, g.xh, g.xw]);
  const operands = [...imageOperands(g, { tensor: dy, name: 'dy', side: 'y' }, { tensor: dx, name: 'dx', side: 'x', output: true }), ...gateSplitOperands(dyGate, imageUnit(g, 'y'))];
  forEachSplit(dy.engine, label, g.nimg, operands, (r, [dys, dxs, gys]) => {
    const gs = { ...g, nimg: r.count };
    if (!b && isPointGradient(gs)) {
      // dx[n, (c, u, v)] = sum_o dy[n, o] w[o, (c, u, v)]: dy [n, yc] times w [yc, xc*kh*kw], whose
      // result is dx in NCHW (as a linear layer's input gradient).
      const cols = gs.xc * gs.kh * gs.kw;
      plainGemm(core, label, dys, w, dxs, { M: gs.nimg, N: cols, K: gs.yc, batch: 1 }, [0, gs.yc, 1], [0, cols, 1], [0, cols, 1], {
        activation: epi.activation, slope: epi.slope, aGate: gatePart(dyGate, gys),
      });
      return;
    }
    if (useColumnForm(dy.engine, gs)) {
      columnFormInputGradient(core, dys, w, dxs, gs, b, epi, label, gatePart(dyGate, gys));
      return;
    }
    let maxCols = 0;
    for (let rh = 0; rh < gs.sh; rh++)
      for (let rw = 0; rw < gs.sw; rw++)
        maxCols = Math.max(maxCols, gs.nimg * phaseCount(gs.xh, gs.sh, gs.ph, rh) * phaseCount(gs.xw, gs.sw, gs.pw, rw));
    gemm(core, {
      label, a: w, b: dys, bGate: gatePart(dyGate, gys), out: dxs, bias: b, biasMode: 'perRow', activation: epi.activation, slope: epi.slope,
      aMode: 'convWT', bMode: 'phase', cMode: 'phase',
      M: gs.xc, N: maxCols, K: 0, batch: gs.sh * gs.sw, conv: gs,
    });
  });
  return dx;
}

/**
 * dw[o, c, u, v] = sum_{n, oh, ow} dy[n, o, oh, ow] x[n, c, oh*s-p+u, ow*s-p+v]: rows = output channels,
 * columns = taps (c, u, v); or, where gemm_vec4 runs it better, the transpose (rows = taps, read from x
 * and shared by subgroup broadcasts; columns = output channels of dy). `gate`: the activation gate of x
 * or of dy (the conv-transpose weight gradient runs this with the roles of x and dy exchanged, so its dy
 * is this function's x).
 */
export function convBackwardWeightGemm(
  core: GemmCore, x: DeviceTensor, dy: DeviceTensor, g: ConvGeometry, label: string, gate?: { of: 'x' | 'dy'; gate: ActivationGate },
): DeviceTensor {
  const taps = g.xc * g.kh * g.kw;
  // One partial dw per range of images (one range, the whole dw, when x and dy fit their bindings).
  const parts: DeviceTensor[] = [];
  const operands = [...imageOperands(g, { tensor: x, name: 'x', side: 'x' }, { tensor: dy, name: 'dy', side: 'y' }), ...gateSplitOperands(gate?.gate, imageUnit(g, gate?.of === 'x' ? 'x' : 'y'))];
  forEachSplit(x.engine, label, g.nimg, operands, (r, [xs, dys, gys]) => {
    const gs = { ...g, nimg: r.count };
    const part = gatePart(gate?.gate, gys);
    const xGate = gate?.of === 'x' ? part : undefined;
    const dyGate = gate?.of === 'dy' ? part : undefined;
    const dw = x.engine.empty([g.yc, g.xc, g.kh, g.kw]);
    parts.push(dw);
    const shared = { out: dw, K: gs.nimg * gs.yh * gs.yw, conv: gs, allowSplit: true };
    const channelRows: GemmProblem = {
      ...shared, label, a: dys, aGate: dyGate, b: xs, bGate: xGate, aMode: 'nchwRows', bMode: 'im2colT', cMode: 'plain',
      M: gs.yc, N: taps, cStrides: [0, taps, 1],
    };
    const tapRows: GemmProblem = {
      ...shared, label: `${label} (tap rows)`, a: xs, aGate: xGate, b: dys, bGate: dyGate, aMode: 'im2colT', bMode: 'nchwCols', cMode: 'plain',
      M: taps, N: gs.yc, cStrides: [0, 1, taps],
    };
    gemm(core, cheaperForm(core, channelRows, tapRows, false));
  });
  return sumParts(parts);
}

// ------------------------------------------------------------------------------------ direct forward

/** Output channels x adjacent output pixels per invocation of shaders/conv2d.wgsl (OT x PT there). */
const DIRECT_OT = 8;
const DIRECT_PT = 8;
const DIRECT_WG = 64;
const DIRECT_SPAN_MAX = 32;

export function convForwardDirect(x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, g: ConvGeometry, epi: Epilogue, label: string): DeviceTensor {
  // The window row of PT outputs must fit the shader's register array; wider kernels use the GEMM.
  if ((DIRECT_PT - 1) * g.sw + g.kw > DIRECT_SPAN_MAX) return convForwardGemm('register', x, w, b, g, epi, label);
  const e = x.engine;
  const y = e.empty([g.nimg, g.yc, g.yh, g.yw]);
  const max = e.limits.maxComputeWorkgroupsPerDimension;
  forEachSplit(e, label, g.nimg, imageOperands(g, { tensor: x, name: 'x', side: 'x' }, { tensor: y, name: 'y', side: 'y', output: true }), (r, [xs, ys]) => {
    const blocks = r.count * g.yh * Math.ceil(g.yw / DIRECT_PT);
    e.dispatch({
      shader: 'conv2d',
      entry: 'forward_direct',
      constants: { KH: g.kh, KW: g.kw, SH: g.sh, SW: g.sw },
      uniforms: [r.count, g.xc, g.xh, g.xw, g.yc, g.yh, g.yw, g.ph, g.pw, b ? 1 : 0, ACTIVATION_CODE[epi.activation ?? 'none'], f32(epi.slope ?? 0.01)],
      bindings: [xs, w, ys, b ?? w],
      workgroups: [Math.min(Math.ceil(blocks / DIRECT_WG), max), Math.min(Math.ceil(g.yc / DIRECT_OT), max)],
      label,
    });
  });
  return y;
}

// ------------------------------------------------------------------------------------ public API

export type ForwardParams = Conv2dParams & Epilogue;

/** y = act(conv2d(x, w) + b): x [N,C,H,W], w [O,C,kH,kW], b [O] or null -> [N,O,Ho,Wo]. */
export type Conv2dForwardFn = (x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, p: ForwardParams) => DeviceTensor;
/** dx (shape xShape) from dy [N,O,Ho,Wo] and w [O,C,kH,kW]. */
export type Conv2dBackwardInputFn = (dy: DeviceTensor, w: DeviceTensor, xShape: readonly number[], p: BackwardParams) => DeviceTensor;
/** dw (shape wShape) from x [N,C,H,W] and dy [N,O,Ho,Wo]. */
export type Conv2dBackwardWeightFn = (x: DeviceTensor, dy: DeviceTensor, wShape: readonly number[], p: BackwardParams) => DeviceTensor;

const forwardLabel = (x: DeviceTensor, w: DeviceTensor, p: Conv2dParams) => `conv2d.forward x ${str(x.shape)} w ${str(w.shape)} s${str(p.stride)} p${str(p.padding)}`;
const backwardInputLabel = (dy: DeviceTensor, w: DeviceTensor, p: Conv2dParams) =>
  `conv2d.backwardInput dy ${str(dy.shape)} w ${str(w.shape)} s${str(p.stride)} p${str(p.padding)}`;
const backwardWeightLabel = (x: DeviceTensor, dy: DeviceTensor, p: Conv2dParams) =>
  `conv2d.backwardWeight x ${str(x.shape)} dy ${str(dy.shape)} s${str(p.stride)} p${str(p.padding)}`;

/**
 * Shape bucket of a convolution for tuned variant choices: input and output channels, kernel size,
 * stride and log2-rounded input height and width (`xShape` is the forward input [N, C, H, W]).
 */
export function convBucket(xShape: readonly number[], cin: number, cout: number, kh: number, kw: number, p: Conv2dParams): string {
  const [sh, sw] = p.stride;
  return `c${cin} o${cout} k${kh}x${kw} s${sh}x${sw} hw${log2Bucket(xShape[2])}x${log2Bucket(xShape[3])}`;
}

type Shape = readonly number[];
const oihw = (xShape: Shape, w: Shape, p: Conv2dParams) => convBucket(xShape, w[1], w[0], w[2], w[3], p);

export const conv2dForwardOp = defineOp<Conv2dForwardFn>('conv2d.forward', {
  check: (x, w, b, p) => {
    checkF32('conv2d.forward', x, w, b);
    const g = convGeometry('conv2d.forward', x.shape, w.shape, p);
    checkBias(forwardLabel(x, w, p), b, g.yc);
  },
  bucket: (x, w, _b, p) => oihw(x.shape, w.shape, p),
});

export const conv2dBackwardInputOp = defineOp<Conv2dBackwardInputFn>('conv2d.backwardInput', {
  check: (dy, w, xShape, p) => {
    checkF32('conv2d.backwardInput', dy, w);
    convGeometry('conv2d.backwardInput', xShape, w.shape, p, dy.shape);
    checkGate('conv2d.backwardInput', dy, p.gate);
  },
  bucket: (_dy, w, xShape, p) => oihw(xShape, w.shape, p),
});

export const conv2dBackwardWeightOp = defineOp<Conv2dBackwardWeightFn>('conv2d.backwardWeight', {
  check: (x, dy, wShape, p) => {
    checkF32('conv2d.backwardWeight', x, dy);
    convGeometry('conv2d.backwardWeight', x.shape, wShape, p, dy.shape);
    checkGate('conv2d.backwardWeight', dy, p.gate);
  },
  bucket: (x, _dy, wShape, p) => oihw(x.shape, wShape, p),
});

/** y = act(conv2d(x, w) + b): x [N,C,H,W], w [O,C,kH,kW], b [O] or null -> [N,O,Ho,Wo]. */
export function conv2dForward(x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, p: ForwardParams): DeviceTensor {
  return conv2dForwardOp.get(x.engine)(x, w, b, p);
}

/** dx (shape xShape) from dy [N,O,Ho,Wo] and w [O,C,kH,kW]. */
export function conv2dBackwardInput(dy: DeviceTensor, w: DeviceTensor, xShape: readonly number[], p: BackwardParams): DeviceTensor {
  return conv2dBackwardInputOp.get(dy.engine)(dy, w, xShape, p);
}

/** dw (shape wShape) from x [N,C,H,W] and dy [N,O,Ho,Wo]. */
export function conv2dBackwardWeight(x: DeviceTensor, dy: DeviceTensor, wShape: readonly number[], p: BackwardParams): DeviceTensor {
  return conv2dBackwardWeightOp.get(x.engine)(x, dy, wShape, p);
}

// The variants assume arguments that passed their op's check (the registry runs it first).
const conv = (core: GemmCore, what: string) => ({
  description: `${what}; ${CORE_INFO[core].description}`,
  preferredOn: CORE_INFO[core].preferredOn,
});
registerPerCore(
  conv2dForwardOp,
  CONV_GEMM_VARIANT_NAMES,
  (core) => (x, w, b, p) => convForwardGemm(core, x, w, b, geometryOf(x.shape, w.shape, p), p, forwardLabel(x, w, p)),
  (core) => conv(core, 'implicit GEMM'),
);
conv2dForwardOp.register('direct', (x, w, b, p) => convForwardDirect(x, w, b, geometryOf(x.shape, w.shape, p), p, forwardLabel(x, w, p)), {
  description: 'direct convolution: 16 channels x 8 adjacent pixels per invocation, loops over (c, u, v)',
});
registerPerCore(
  conv2dBackwardInputOp,
  CONV_GEMM_VARIANT_NAMES,
  (core) => (dy, w, xShape, p) => convBackwardInputGemm(core, dy, w, geometryOf(xShape, w.shape, p), null, {}, backwardInputLabel(dy, w, p), p.gate),
  (core) => conv(core, 'implicit GEMM per stride phase'),
);
registerPerCore(
  conv2dBackwardWeightOp,
  CONV_GEMM_VARIANT_NAMES,
  (core) => (x, dy, wShape, p) =>
    convBackwardWeightGemm(core, x, dy, geometryOf(x.shape, wShape, p), backwardWeightLabel(x, dy, p), p.gate && { of: 'dy', gate: p.gate }),
  (core) => conv(core, 'implicit GEMM, split-K over images and pixels'),
);
