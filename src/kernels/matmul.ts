// Matrix multiply, and the GEMM core (shaders/matmul.wgsl) that dense, conv2d and conv-transpose2d
// also run on. `gemm()` records one GEMM with a given operand reader/writer mode; the public kernels
// (matmul here, linear* in dense.ts, conv* in conv2d.ts / conv-transpose2d.ts) only describe their
// problem as a GemmProblem.
import { availableParallelism } from 'node:os';
import type { Engine } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { A_MODE, B_MODE, B_VEC4, BIAS_MODE, C_MODE, GEMM_PARAMS, type AMode, type BiasMode, type BMode, type BVec4, type CMode } from './gemm-layout.js';
import { ACTIVATION_CODE, type Activation, type ActivationGate } from './activation.js';
import { defineOp, log2Bucket, type KernelFn, type OpDescriptor, type VariantOptions } from './registry.js';

/**
 * Which kernel runs a GEMM: gemm_register or gemm_tiled of shaders/matmul.wgsl, gemm_subgroup of
 * shaders/matmul_subgroups.wgsl ('subgroup': the register kernel with its A loads shared by subgroup
 * broadcasts), or gemm_vec4 of shaders/matmul_vec4.wgsl ('subgroup-vec4': 16x4 outputs per invocation,
 * k in groups of 4 read as vec4 where the layout allows, A rows shared by subgroup broadcasts). On
 * devices without the 'subgroups' feature the subgroup cores run as 'register'.
 */
export type GemmCore = 'register' | 'subgroup' | 'subgroup-vec4' | 'tiled';

/** True when the engine's device can run shaders/matmul_subgroups.wgsl (subgroups of >= 8 invocations). */
export function hasSubgroups(e: Engine): boolean {
  const info = e.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
  return e.device.features.has('subgroups') && (info.subgroupMinSize ?? 0) >= 8;
}

/** Register block of gemm_register (TM x TN in the shader); TM is 4 for GEMMs of at most 4 rows. */
const TN = 8;
const tmFor = (M: number) => (M <= 4 ? 4 : 16);
/** gemm_vec4 (shaders/matmul_vec4.wgsl): rows and columns of C per workgroup (16 invocations of 16 x 4). */
const VEC4_ROWS = 16;
const VEC4_BLOCK_COLS = 64;
/**
 * gemm_vec4 splits K when a GEMM has fewer workgroups than this (lavapipe runs each workgroup on one
 * thread: a few per thread balance the load), in chunks of at least VEC4_MIN_CHUNK.
 */
const VEC4_TARGET_WORKGROUPS = 32;
const VEC4_MIN_CHUNK = 256;
/**
 * For a GEMM whose rows (or columns) are the batch (GemmProblem.batchDim), gemm_vec4 splits K from the
 * other dimension alone: when one block of 16 batch rows offers fewer workgroups than the adapter runs
 * at once. On a CPU adapter that is its threads (lavapipe: one per core); splitting further only adds
 * partial sums and a reduction pass (the seed dense GAN iteration: 22.5 -> 20 ms with 2 instead of 16
 * on 2 cores). Elsewhere 16.
 */
function batchBlockTarget(e: Engine): number {
  return e.info.software ? CPU_BLOCK_TARGET : 16;
}
/** CPU threads (read once, not per GEMM), at most 16. */
const CPU_BLOCK_TARGET = Math.max(1, Math.min(16, availableParallelism()));
/** gemm_vec4 steps k in groups of 4 (its K chunks are multiples of it). */
const VEC4_K_GROUP = 4;
/** C tile of gemm_tiled. */
const TILE = 64;
/** Invocations with real work that a GEMM should offer; fewer, and K gets split (when allowed). */
const REGISTER_TARGET_LANES = 512;
const TILED_TARGET_INVOCATIONS = 32768;

/** Forward-conv geometry: x [nimg, xc, xh, xw] -> y [nimg, yc, yh, yw], kernel kh x kw. */
export interface ConvGeometry {
  nimg: number;
  xc: number;
  xh: number;
  xw: number;
  yc: number;
  yh: number;
  yw: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
}

export interface GemmProblem {
  label: string;
  a: DeviceTensor;
  b: DeviceTensor;
  /** The result (allocated by the caller; every element must be covered by the problem). */
  out: DeviceTensor;
  bias?: DeviceTensor | null;
  /** Default 'perColumn' (with a bias). */
  biasMode?: Exclude<BiasMode, 'none'>;
  activation?: Activation;
  slope?: number;
  /** Operand modes (the table in shaders/matmul.wgsl); default 'plain'. */
  aMode?: AMode;
  bMode?: BMode;
  cMode?: CMode;
  M: number;
  /** Columns (bMode 'phase': the largest phase's column count). */
  N: number;
  /** Reduction length (unused by bMode 'phase', which derives it per phase). */
  K: number;
  /** Batch of plain GEMMs, or number of stride phases for bMode 'phase'. */
  batch?: number;
  /** Plain-mode strides [batch, row, k] of A, [batch, k, column] of B, [batch, row, column] of C. */
  aStrides?: [number, number, number];
  bStrides?: [number, number, number];
  cStrides?: [number, number, number];
  conv?: ConvGeometry;
  /**
   * A fused activation's backward folded into the operand that is dy: it is read as dy * act'(gate.y)
   * (y: the forward output, dy's shape). At most one of the two.
   */
  aGate?: ActivationGate;
  bGate?: ActivationGate;
  /** Allow splitting K over several partial results (cMode 'plain', batch 1 only). */
  allowSplit?: boolean;
  /**
   * The dimension that is the batch (a dense layer's rows of x), when a sample's result must not depend
   * on how many samples share the call: on the 'subgroup-vec4' core gemm_vec4 then runs for any batch
   * size and the K split depends on the other dimensions only (batchInvariantSplits), so every output
   * is summed in the same order whatever the batch. (Each core sums k in order; only the split changes it.)
   */
  batchDim?: 'M' | 'N';
}

/**
 * The K split of a GEMM with a batch dimension on gemm_vec4: from `fixed` (the non-batch output
 * dimension), K and the adapter's `target` (batchBlockTarget) only. One block of 16 batch rows has
 * ceil(fixed / 64) workgroups; below `target`, K is split into chunks of at least VEC4_MIN_CHUNK. The
 * same for both forms of the problem (C or C^T), so the form may change with the batch size without
 * changing the sums.
 */
export function batchInvariantSplits(fixed: number, K: number, target: number): number {
  const workgroups = Math.ceil(fixed / VEC4_BLOCK_COLS);
  if (workgroups >= target) return 1;
  return Math.max(1, Math.min(Math.ceil(target / workgroups), Math.floor(K / VEC4_MIN_CHUNK)));
}

const NO_CONV: ConvGeometry = { nimg: 0, xc: 0, xh: 0, xw: 0, yc: 0, yh: 0, yw: 0, kh: 0, kw: 0, sh: 1, sw: 1, ph: 0, pw: 0 };

/** Fraction of a workgroup's columns that are real for N columns and WG invocations of TN columns. */
function laneUse(n: number, wg: number): number {
  return Math.ceil(n / TN) / (Math.ceil(n / (wg * TN)) * wg);
}

interface Plan {
  splits: number;
  /** k per split chunk. */
  kChunk: number;
  wg: number;
  splitLanes: boolean;
}

/**
 * How to run a GEMM: invocations per workgroup and how many chunks K is split into. Long reductions
 * that yield few outputs (conv d/dw, dense layers with few outputs) would leave most of the machine
 * idle, so K is cut into chunks whose partial sums are added afterwards; on the register core the
 * chunks go to the invocations of a workgroup (SPLIT_LANES), which also keeps narrow results from
 * idling most of each workgroup.
 */
function plan(core: GemmCore, M: number, N: number, K: number, canSplit: boolean, batch: number, batchDim?: 'M' | 'N', batchTarget = 16): Plan {
  const chunked = (splits: number, wg: number, splitLanes: boolean): Plan => ({ splits, kChunk: Math.max(1, Math.ceil(K / splits)), wg, splitLanes });
  // (at most 64 chunks, and at most 2^24 floats of partial sums)
  const maxSplits = Math.min(64, Math.floor(2 ** 24 / (M * N)));
  if (core === 'tiled') {
    const invocations = Math.ceil(M / TILE) * Math.ceil(N / TILE) * 256;
    let splits = 1;
    if (canSplit && K >= 2048 && invocations < TILED_TARGET_INVOCATIONS)
      splits = Math.max(1, Math.min(Math.ceil(TILED_TARGET_INVOCATIONS / invocations), Math.floor(K / 512), maxSplits));
    return chunked(splits, 256, false);
  }
  if (core === 'subgroup-vec4') {
    // gemm_vec4: workgroups of 16 x 64 outputs; K chunks are multiples of 4 (its k groups, and the
    // alignment of its vec4 reads).
    const workgroups = Math.ceil(M / VEC4_ROWS) * Math.ceil(N / VEC4_BLOCK_COLS) * batch;
    let splits = 1;
    if (canSplit && batchDim) {
      // Independent of the batch size; beyond 2^24 floats of partials (huge batches) not split at all.
      const want = batchInvariantSplits(batchDim === 'M' ? N : M, K, batchTarget);
      splits = want <= maxSplits ? want : 1;
    } else if (canSplit && workgroups < VEC4_TARGET_WORKGROUPS)
      splits = Math.max(1, Math.min(Math.ceil(VEC4_TARGET_WORKGROUPS / workgroups), Math.floor(K / VEC4_MIN_CHUNK), maxSplits));
    const kChunk = Math.max(VEC4_K_GROUP, VEC4_K_GROUP * Math.ceil(K / (VEC4_K_GROUP * splits)));
    return { splits: Math.max(1, Math.ceil(K / kChunk)), kChunk, wg: 16, splitLanes: false };
  }
  // Register and subgroup cores: one block of tmFor(M) x TN outputs per invocation.
  const blocks = Math.ceil(M / tmFor(M)) * Math.ceil(N / TN);
  if (canSplit && blocks < REGISTER_TARGET_LANES) {
    const want = Math.min(Math.ceil(REGISTER_TARGET_LANES / blocks), Math.floor(K / 64));
    if (want >= 8) {
      const wg = want >= 64 ? 64 : 16;
      return chunked(Math.max(wg, Math.floor(want / wg) * wg), wg, true);
    }
  }
  return chunked(1, laneUse(N, 16) > laneUse(N, 64) + 0.1 ? 16 : 64, false);
}

/**
 * Whether gemm_vec4 runs a GEMM (otherwise the 'subgroup-vec4' core runs it as the 'subgroup' core,
 * that is on gemm_subgroup or gemm_register). It needs subgroups; more than 4 rows (its row block is
 * 16; gemm_register has a 4-row block for the smallest GEMMs), except for a problem with a batch
 * dimension (batchDim), which runs here at any batch size; and an operand it can read as vec4:
 * with scalar reads only, it loads more per multiply-add than gemm_subgroup (each A value it loads
 * serves 4 columns instead of 8) and steps the k indices twice as often.
 */
export function runsVec4(e: Engine, pr: GemmProblem): boolean {
  if (!hasSubgroups(e) || (tmFor(pr.M) !== 16 && !pr.batchDim)) return false;
  const { aVec4, bVec4 } = vec4Reads(pr, VEC4_K_GROUP, 1);
  return aVec4 || bVec4 !== 'scalar';
}

/**
 * How gemm_vec4 may read the operands (the override constants A_VEC4 and B_VEC4 of shaders/lib/gemm.wgsl):
 * a vec4 load needs 4 consecutive k (A) or k or columns (B) that start 16 bytes into the tensor's
 * binding, for every row, column, batch entry and k group the kernel reads. k groups start at the
 * slice's k0, a multiple of `kChunk`.
 */
function vec4Reads(pr: GemmProblem, kChunk: number, splits: number): { aVec4: boolean; bVec4: BVec4 } {
  const m4 = (...xs: number[]) => xs.every((x) => x % 4 === 0);
  const kGroupsAligned = splits === 1 || kChunk % 4 === 0;
  // An image's pixel count: k = (n, pixel) groups of 4 stay in one image and are aligned iff it is a multiple of 4.
  const imagePixels = pr.conv ? pr.conv.yh * pr.conv.yw : 1;
  const [asb, asm, ask] = pr.aStrides ?? [0, 0, 0];
  const [bsb, bsk, bsn] = pr.bStrides ?? [0, 0, 0];
  const aMode = pr.aMode ?? 'plain';
  const bMode = pr.bMode ?? 'plain';
  let aVec4 = false;
  // A 'plain': k-contiguous rows. A 'nchwRows' / B 'nchwCols' (conv d/dw, k = (n, pixel)): see imagePixels.
  if (aMode === 'plain') aVec4 = ask === 1 && m4(asb, asm);
  else if (aMode === 'nchwRows') aVec4 = m4(imagePixels);
  let bVec4: BVec4 = 'scalar';
  if (bMode === 'plain' && bsk === 1 && m4(bsb, bsn)) bVec4 = 'vec4K';
  else if (bMode === 'plain' && bsn === 1 && m4(bsb, bsk)) bVec4 = 'vec4Columns';
  else if (bMode === 'nchwCols' && m4(imagePixels)) bVec4 = 'vec4K';
  // An operand smaller than one vec4 cannot be read as array<vec4f> (gemm() binds a scratch instead).
  return {
    aVec4: aVec4 && kGroupsAligned && pr.a.byteLength >= 16,
    bVec4: kGroupsAligned && pr.b.byteLength >= 16 ? bVec4 : 'scalar',
  };
}

/** Records one GEMM (plus a reduction of split-K partials when that pays off). */
export function gemm(core: GemmCore, pr: GemmProblem): void {
  const e = pr.out.engine;
  const batch = pr.batch ?? 1;
  const cMode = pr.cMode ?? 'plain';
  if (pr.M === 0 || pr.N === 0 || batch === 0) return;
  // gemm_vec4 runs the 'subgroup-vec4' core where it can (see runsVec4); elsewhere the core runs as 'subgroup'.
  const vec4 = core === 'subgroup-vec4' && runsVec4(e, pr);
  // With a batch dimension, only gemm_vec4 has a K split that does not depend on the batch size.
  const canSplit = !!pr.allowSplit && batch === 1 && cMode === 'plain' && pr.bMode !== 'phase' && (vec4 || !pr.batchDim);
  const kernelCore: GemmCore = core === 'subgroup-vec4' && !vec4 ? 'subgroup' : core;
  const pl = plan(kernelCore, pr.M, pr.N, pr.K, canSplit, batch, vec4 ? pr.batchDim : undefined, batchBlockTarget(e));
  const kChunk = pl.kChunk;
  const split = pl.splits > 1;

  const act = ACTIVATION_CODE[pr.activation ?? 'none'];
  const slope = pr.slope ?? 0.01;
  if (pr.aGate && pr.bGate) throw new ShapeError(`${pr.label}: only one GEMM operand can be gated by an activation`);
  const gate = pr.aGate ?? pr.bGate;
  const biasMode: BiasMode = pr.bias ? (pr.biasMode ?? 'perColumn') : 'none';
  const g = pr.conv ?? NO_CONV;
  const [aSb, aSm, aSk] = pr.aStrides ?? [0, 0, 0];
  const [bSb, bSk, bSn] = pr.bStrides ?? [0, 0, 0];
  const [csb, csm, csn] = pr.cStrides ?? [0, 0, 0];
  const uniforms = (cs: [number, number, number], epilogue: boolean) =>
    GEMM_PARAMS.pack({
      M: pr.M, N: pr.N, K: pr.K, batch, splits: pl.splits, kChunk, slope, gateSlope: gate?.slope ?? 0.01,
      act: epilogue ? act : 0, biasMode: BIAS_MODE[epilogue ? biasMode : 'none'],
      aSb, aSm, aSk, bSb, bSk, bSn, cSb: cs[0], cSm: cs[1], cSn: cs[2],
      nimg: g.nimg, xc: g.xc, xh: g.xh, xw: g.xw, yc: g.yc, yh: g.yh, yw: g.yw,
      kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, ph: g.ph, pw: g.pw,
    });

  // With split-K the gemm writes [splits, M, N] partial sums and reduce_splits applies the epilogue.
  const target = split ? e.empty([pl.splits, pr.M, pr.N]) : pr.out;
  const max = e.limits.maxComputeWorkgroupsPerDimension;
  let grid: number[];
  const constants: Record<string, number | boolean> = {
    A_MODE: A_MODE[pr.aMode ?? 'plain'],
    B_MODE: B_MODE[pr.bMode ?? 'plain'],
    C_MODE: C_MODE[cMode],
    IM2COL_PADDED: im2colPadded(pr),
    A_GATE: ACTIVATION_CODE[pr.aGate?.activation ?? 'none'],
    B_GATE: ACTIVATION_CODE[pr.bGate?.activation ?? 'none'],
  };
  // The subgroup kernel covers the 16-row blocks without SPLIT_LANES; the rest runs on gemm_register.
  const subgroup = kernelCore === 'subgroup' && !pl.splitLanes && tmFor(pr.M) === 16 && hasSubgroups(e);
  // gemm_vec4 also binds the operands as vec4 arrays (bindings 6 and 7). Such a binding needs at least
  // 16 bytes even where the kernel never reads it (scalar reads): a small scratch tensor stands in.
  let vec4Bindings: DeviceTensor[] = [];
  let scratch: DeviceTensor | undefined;
  if (vec4) {
    const { aVec4, bVec4 } = vec4Reads(pr, kChunk, pl.splits);
    constants.A_VEC4 = aVec4;
    constants.B_VEC4 = B_VEC4[bVec4];
    const bindable = (t: DeviceTensor) => (t.byteLength >= 16 ? t : (scratch ??= e.zeros([4])));
    vec4Bindings = [bindable(pr.a), bindable(pr.b)];
    grid = [Math.ceil(pr.N / VEC4_BLOCK_COLS), Math.ceil(pr.M / VEC4_ROWS), batch * pl.splits];
  } else if (core !== 'tiled') {
    const tm = tmFor(pr.M);
    constants.WG = pl.wg;
    if (!subgroup) {
      constants.TM = tm;
      constants.SPLIT_LANES = pl.splitLanes;
    }
    grid = pl.splitLanes
      ? [Math.ceil(pr.N / TN), Math.ceil(pr.M / tm), Math.ceil(pl.splits / pl.wg)]
      : [Math.ceil(pr.N / (pl.wg * TN)), Math.ceil(pr.M / tm), batch * pl.splits];
  } else {
    grid = [Math.ceil(pr.N / TILE), Math.ceil(pr.M / TILE), batch * pl.splits];
  }
  // The shader loops over its grid with the grid's stride, so clamping only serialises work.
  const workgroups = grid.map((n) => Math.min(n, max)) as [number, number, number];
  e.dispatch({
    shader: vec4 ? 'matmul_vec4' : subgroup ? 'matmul_subgroups' : 'matmul',
    entry: vec4 ? 'gemm_vec4' : subgroup ? 'gemm_subgroup' : core === 'tiled' ? 'gemm_tiled' : 'gemm_register',
    constants,
    uniforms: uniforms(split ? [pr.M * pr.N, pr.N, 1] : [csb, csm, csn], !split),
    bindings: [pr.a, pr.b, target, pr.bias ?? pr.a, gate?.y ?? pr.a, ...vec4Bindings],
    workgroups,
    label: pr.label,
  });
  scratch?.dispose();
  if (split) {
    e.dispatch({
      shader: 'matmul',
      entry: 'reduce_splits',
      uniforms: uniforms([csb, csm, csn], true),
      bindings: [target, target, pr.out, pr.bias ?? target],
      workgroups: [Math.min(Math.ceil((pr.M * pr.N) / 256), max)],
      label: `${pr.label} (split-K reduction)`,
    });
    target.dispose();
  }
}

/** Whether the im2col readers must test for zero padding (IM2COL_PADDED): only a padded conv reads outside x. */
function im2colPadded(pr: GemmProblem): boolean {
  return !pr.conv || pr.conv.ph > 0 || pr.conv.pw > 0;
}

/**
 * Relative cost per multiply-add of a GEMM on gemm_vec4 (lower is better; Infinity where gemm_vec4
 * does not run it), to choose between equivalent forms of a problem (C or C^T: plainGemm and the conv
 * GEMMs). Both forms do the same multiply-adds, so the loads decide (on lavapipe each costs about as
 * much as a dozen multiply-adds): per group of 4 k steps an invocation loads its 2 A rows and 4 B
 * columns, each one vec4 or 4 scalars; a bounded conv read (zero padding) counts 1.5 for its index
 * test. Divided by the share of the 16 x 64 workgroup blocks that holds real outputs.
 */
export function vec4Cost(e: Engine, pr: GemmProblem): number {
  if (!runsVec4(e, pr)) return Infinity;
  const { aVec4, bVec4 } = vec4Reads(pr, VEC4_K_GROUP, 1);
  const aMode = pr.aMode ?? 'plain';
  const bMode = pr.bMode ?? 'plain';
  const aBounded = aMode === 'im2col' || aMode === 'im2colT';
  const bBounded = bMode === 'im2col' || bMode === 'im2colT' || bMode === 'phase';
  // A gated operand (aGate / bGate) also loads y, one scalar per element.
  const aLoads = (aVec4 ? 2 : 8 * (aBounded ? 1.5 : 1)) + (pr.aGate ? 8 : 0);
  const bLoads = (bVec4 !== 'scalar' ? 4 : 16 * (bBounded ? 1.5 : 1)) + (pr.bGate ? 16 : 0);
  const loads = aLoads + bLoads;
  const used = (pr.M * pr.N) / (Math.ceil(pr.M / VEC4_ROWS) * VEC4_ROWS * Math.ceil(pr.N / VEC4_BLOCK_COLS) * VEC4_BLOCK_COLS);
  return loads / used;
}

/**
 * A plain (strided) GEMM C[z] = A[z] B[z] (+ bias, activation), or C^T = B^T A^T where that runs
 * better: on the register kernels (which spread columns over invocations) when the result is much
 * narrower than tall; on gemm_vec4 when that form has the lower vec4Cost (more vec4 reads, fewer idle
 * columns).
 */
export function plainGemm(
  core: GemmCore,
  label: string,
  a: DeviceTensor,
  b: DeviceTensor,
  out: DeviceTensor,
  dims: { M: number; N: number; K: number; batch: number },
  aStrides: [number, number, number],
  bStrides: [number, number, number],
  cStrides: [number, number, number],
  epi: { bias?: DeviceTensor | null; biasPerRow?: boolean; activation?: Activation; slope?: number; batchRows?: boolean; aGate?: ActivationGate; bGate?: ActivationGate },
  allowSplit = true,
): void {
  const { M, N, K, batch } = dims;
  const biasPerRow = epi.biasPerRow ?? false;
  const direct: GemmProblem = {
    label, a, b, out, M, N, K, batch, aStrides, bStrides, cStrides, allowSplit,
    batchDim: epi.batchRows ? 'M' : undefined,
    bias: epi.bias, biasMode: biasPerRow ? 'perRow' : 'perColumn',
    activation: epi.activation, slope: epi.slope, aGate: epi.aGate, bGate: epi.bGate,
  };
  // C^T[j, m] = sum_k B[k, j] A[m, k]: A' = B^T (rows j), B' = A^T, output strides swapped.
  const transposed: GemmProblem = {
    label: `${label} (transposed)`, a: b, b: a, out, M: N, N: M, K, batch, allowSplit,
    batchDim: epi.batchRows ? 'N' : undefined,
    aStrides: [bStrides[0], bStrides[2], bStrides[1]],
    bStrides: [aStrides[0], aStrides[2], aStrides[1]],
    cStrides: [cStrides[0], cStrides[2], cStrides[1]],
    bias: epi.bias, biasMode: biasPerRow ? 'perColumn' : 'perRow',
    activation: epi.activation, slope: epi.slope, aGate: epi.bGate, bGate: epi.aGate,
  };
  gemm(core, cheaperForm(core, direct, transposed, core !== 'tiled' && N < 16 * TN && M > 2 * N));
}

/**
 * The form of a GEMM to run on `core`: for 'subgroup-vec4', the one with the lower vec4Cost where
 * gemm_vec4 runs either; otherwise (and on the other cores) `other` if `preferOther`.
 */
export function cheaperForm(core: GemmCore, direct: GemmProblem, other: GemmProblem, preferOther: boolean): GemmProblem {
  if (core === 'subgroup-vec4') {
    const e = direct.out.engine;
    const [cd, co] = [vec4Cost(e, direct), vec4Cost(e, other)];
    if (cd !== Infinity || co !== Infinity) return co < cd ? other : direct;
  }
  return preferOther ? other : direct;
}

// ------------------------------------------------------------------------------------ matmul

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** [N], added to every row before the activation. */
  bias?: DeviceTensor | null;
  activation?: Activation;
  slope?: number;
}

function shp(t: DeviceTensor): string {
  return `[${t.shape.join(', ')}]`;
}

/** Throws a ShapeError unless every tensor given is float32 (the GEMM kernels read f32 only). */
export function checkF32(op: string, ...ts: (DeviceTensor | null | undefined)[]): void {
  for (const t of ts)
    if (t && t.dtype !== 'f32') throw new ShapeError(`${op}: tensor ${shp(t)} has dtype ${t.dtype}; f32 is required`);
}

function matmulWith(core: GemmCore, a: DeviceTensor, b: DeviceTensor, opts: MatmulOptions = {}): DeviceTensor {
  const { transA = false, transB = false } = opts;
  const what = () => `matmul: a ${shp(a)}${transA ? ' (transA)' : ''}, b ${shp(b)}${transB ? ' (transB)' : ''}`;
  checkF32('matmul', a, b, opts.bias);
  if (a.shape.length < 2 || a.shape.length > 3 || b.shape.length < 2 || b.shape.length > 3)
    throw new ShapeError(`${what()}: operands must be 2-D or 3-D`);
  const ab = a.shape.length === 3 ? a.shape[0] : 0;
  const bb = b.shape.length === 3 ? b.shape[0] : 0;
  if (ab && bb && ab !== bb) throw new ShapeError(`${what()}: batch sizes differ`);
  const batch = Math.max(ab, bb, 1);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = transB ? [bc, br] : [br, bc];
  if (K !== Kb) throw new ShapeError(`${what()}: inner dimensions ${K} and ${Kb} differ`);
  const bias = opts.bias ?? null;
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N))
    throw new ShapeError(`${what()}: bias ${shp(bias)} must be [${N}]`);
  const e = a.engine;
  const out = e.empty(ab || bb ? [batch, M, N] : [M, N]);
  if (M * N === 0) return out;
  // (K = 0 is an empty sum: the core then writes the epilogue of 0.)
  // Element (m, k) of a: row-major [.., ar, ac]; transposition just swaps the strides.
  const aStrides: [number, number, number] = [ab ? ar * ac : 0, transA ? 1 : ac, transA ? ac : 1];
  const bStrides: [number, number, number] = [bb ? br * bc : 0, transB ? 1 : bc, transB ? bc : 1];
  plainGemm(core, `matmul ${what()}`, a, b, out, { M, N, K, batch }, aStrides, bStrides, [M * N, N, 1], {
    bias, activation: opts.activation, slope: opts.slope,
  });
  return out;
}

export const matmulRegister = (a: DeviceTensor, b: DeviceTensor, opts?: MatmulOptions) => matmulWith('register', a, b, opts);
export const matmulSubgroup = (a: DeviceTensor, b: DeviceTensor, opts?: MatmulOptions) => matmulWith('subgroup', a, b, opts);
export const matmulSubgroupVec4 = (a: DeviceTensor, b: DeviceTensor, opts?: MatmulOptions) => matmulWith('subgroup-vec4', a, b, opts);
export const matmulTiled = (a: DeviceTensor, b: DeviceTensor, opts?: MatmulOptions) => matmulWith('tiled', a, b, opts);

/**
 * a: [M,K] or [B,M,K] (transA: [K,M] / [B,K,M]); b: [K,N] or [B,K,N] (transB: [N,K] / [B,N,K]); a 2-D
 * operand broadcasts over the batch of a 3-D one. bias [N] is added to every row before the activation.
 * Returns [M,N] or [B,M,N].
 */
export function matmul(a: DeviceTensor, b: DeviceTensor, opts?: MatmulOptions): DeviceTensor {
  return matmulOp.get(a.engine)(a, b, opts);
}

/** Registry descriptions shared by the GEMM-based ops. */
export const CORE_INFO = {
  register: {
    description: 'register-blocked GEMM core (16x8 outputs per invocation, no shared memory or barriers)',
    preferredOn: [] as ('software' | 'hardware')[],
  },
  subgroup: {
    description:
      "register-blocked GEMM core with A loads shared by subgroup broadcasts (needs the device feature 'subgroups'; runs as the register core without it)",
    preferredOn: ['software'] as ('software' | 'hardware')[],
  },
  'subgroup-vec4': {
    description:
      "GEMM core for CPU adapters: 16x4 outputs per invocation, k in groups of 4 read as vec4 where the layout allows, A rows shared by subgroup broadcasts (needs the device feature 'subgroups'; where no operand can be read as vec4 it runs as the subgroup core, without subgroups as the register core)",
    preferredOn: [] as ('software' | 'hardware')[],
  },
  tiled: {
    description: 'shared-memory tiled GEMM core (64x64 tiles, 16x16 invocations of 4x4)',
    preferredOn: ['hardware'] as ('software' | 'hardware')[],
  },
};

/**
 * The plain matmul op is where the vec4 core wins clearly on lavapipe (42 vs 29 GFLOP/s at 1024^3);
 * conv and dense keep the subgroup core by default (it ties or wins on their shapes, and dense results
 * then do not depend on the batch size, see dense.ts). `npm run autotune` measures per shape bucket.
 */
export const SOFTWARE_GEMM_INFO = { ...CORE_INFO['subgroup-vec4'], preferredOn: ['software'] as ('software' | 'hardware')[] };

/** Variant options of an op whose software default is the vec4 core (instead of the subgroup core). */
export function softwareVec4Info(core: GemmCore): VariantOptions {
  return core === 'subgroup-vec4' ? SOFTWARE_GEMM_INFO : core === 'subgroup' ? { ...CORE_INFO.subgroup, preferredOn: [] } : CORE_INFO[core];
}

/** The GEMM cores in the order their variants register (the first is the fallback default). */
export const GEMM_CORES: readonly GemmCore[] = ['register', 'subgroup', 'subgroup-vec4', 'tiled'];

/** Variant names of the plain GEMM ops (matmul, linear.*): one per core. */
export const GEMM_VARIANT_NAMES: Record<GemmCore, string> = {
  register: 'register',
  subgroup: 'register-subgroup',
  'subgroup-vec4': 'subgroup-vec4',
  tiled: 'tiled',
};

/** Variant names of the implicit-GEMM convolution ops (conv2d.*, convTranspose2d.*): one per core. */
export const CONV_GEMM_VARIANT_NAMES: Record<GemmCore, string> = {
  register: 'gemm',
  subgroup: 'gemm-subgroup',
  'subgroup-vec4': 'gemm-subgroup-vec4',
  tiled: 'gemm-tiled',
};

/**
 * Registers one variant of `op` per GEMM core, named by `names`: `implFor(core)` closes over the core,
 * so which kernel a variant runs is fixed here, not read back from its name.
 */
export function registerPerCore<F extends KernelFn>(
  op: OpDescriptor<F>,
  names: Record<GemmCore, string>,
  implFor: (core: GemmCore) => F,
  options: (core: GemmCore) => VariantOptions = (core) => CORE_INFO[core],
): void {
  for (const core of GEMM_CORES) op.register(names[core], implFor(core), options(core));
}

/** Shape bucket of a GEMM for tuned variant choices: log2-rounded M, N, K and batch. */
export function gemmBucket(M: number, N: number, K: number, batch = 1): string {
  return `m${log2Bucket(M)} n${log2Bucket(N)} k${log2Bucket(K)}${batch > 1 ? ` b${log2Bucket(batch)}` : ''}`;
}

/** The matmul op (see `matmul`); its variants are the GEMM cores. */
export const matmulOp = defineOp<typeof matmul>('matmul', {
  bucket: (a, b, opts = {}) => {
    const [ar, ac] = a.shape.slice(-2);
    const [br, bc] = b.shape.slice(-2);
    const batch = Math.max(a.shape.length === 3 ? a.shape[0] : 1, b.shape.length === 3 ? b.shape[0] : 1);
    return gemmBucket(opts.transA ? ac : ar, opts.transB ? br : bc, opts.transA ? ar : ac, batch);
  },
});
const MATMUL_BY_CORE: Record<GemmCore, typeof matmul> = {
  register: matmulRegister,
  subgroup: matmulSubgroup,
  'subgroup-vec4': matmulSubgroupVec4,
  tiled: matmulTiled,
};
registerPerCore(matmulOp, GEMM_VARIANT_NAMES, (core) => MATMUL_BY_CORE[core], softwareVec4Info);
