// Loads WGSL sources from the package's `shaders/` folder at run time.
//
// A shader may start with `//! import <lib>` lines; each names `shaders/lib/<lib>.wgsl`, whose text is
// placed before the shader's own (once), or `generated:<name>`, WGSL text that a kernel module defines
// with defineGeneratedLib (uniform structs and mode constants declared once in TypeScript, see
// src/gpu/uniform-layout.ts). That is the only preprocessing: shapes go in uniforms and
// specialisation in `override` constants, so a shader file is always the code that runs.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findShaderDir(): string {
  // src/gpu/shaders.ts and dist/gpu/shaders.js both sit two levels below the package root.
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, '..', '..', 'shaders'), join(here, '..', 'shaders')]) {
    if (existsSync(join(candidate, 'lib'))) return candidate;
  }
  throw new Error(`wgsl-nn: cannot find the shaders/ folder next to ${here}`);
}

let shaderDir: string | undefined;
const cache = new Map<string, string>();
const generatedLibs = new Map<string, string>();
const GENERATED = 'generated:';

/**
 * Defines the text of `//! import generated:<name>`; `declaredIn` (the TS file) is named in a comment
 * above it. Kernel modules call it when loaded, so the library exists before any of their shaders is
 * compiled.
 */
export function defineGeneratedLib(name: string, declaredIn: string, wgsl: string): void {
  generatedLibs.set(name, `// generated:${name}, declared in ${declaredIn}\n${wgsl}`);
}

export interface ShaderSource {
  code: string;
  /** Number of lines placed before the shader's own first line (to map compiler line numbers back). */
  preludeLines: number;
}

/** The source of `shaders/<name>.wgsl`, with its `//! import` libraries prepended. */
export function loadShader(name: string): ShaderSource {
  shaderDir ??= findShaderDir();
  const own = readSource(name);
  // A library may itself import generated libraries (lib/common.wgsl: the activation codes); those go
  // before it. Each library is placed once.
  const placed = new Set<string>();
  const parts: string[] = [];
  const place = (lib: string): void => {
    if (placed.has(lib)) return;
    placed.add(lib);
    if (lib.startsWith(GENERATED)) {
      parts.push(generatedLib(name, lib.slice(GENERATED.length)));
      return;
    }
    const text = readSource(`lib/${lib}`);
    for (const inner of importsOf(text)) if (inner.startsWith(GENERATED)) place(inner);
    parts.push(text);
  };
  importsOf(own).forEach(place);
  const prelude = parts.join('\n');
  const code = prelude ? `${prelude}\n${own}` : own;
  return { code, preludeLines: prelude ? prelude.split('\n').length : 0 };
}

/** The `//! import` lines of a shader or library, in order. */
function importsOf(text: string): string[] {
  return [...text.matchAll(/^\/\/!\s*import\s+((?:generated:)?[\w-]+)\s*$/gm)].map((m) => m[1]);
}

function generatedLib(shader: string, lib: string): string {
  const text = generatedLibs.get(lib);
  if (text === undefined)
    throw new Error(`wgsl-nn: shader '${shader}' imports generated:${lib}, which no loaded module defines (import the kernel module that calls defineGeneratedLib('${lib}', ...))`);
  return text;
}

function readSource(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    const path = join(shaderDir!, `${name}.wgsl`);
    if (!existsSync(path)) throw new Error(`wgsl-nn: shader '${name}' not found (${path})`);
    text = readFileSync(path, 'utf8');
    cache.set(name, text);
  }
  return text;
}
