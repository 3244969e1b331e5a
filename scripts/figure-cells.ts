// Building blocks of the side-by-side figures (scripts/gradcam-masks.ts, scripts/anomaly-figure.ts):
// an image fitted into a fixed cell, and a one-line text label, both as PNG/SVG buffers for sharp's composite.
import sharp from 'sharp';

export const CELL_W = 220;
export const CELL_H = 200;
export const LABEL_H = 22;
export const GAP = 6;

/** An image (raw, 1 or 3 channels) fitted into a CELL_W x CELL_H box on dark gray, as a PNG buffer. */
export async function cell(data: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  return sharp(Buffer.from(data.buffer, data.byteOffset, data.length), { raw: { width, height, channels } })
    .resize(CELL_W, CELL_H, { fit: 'contain', background: { r: 40, g: 40, b: 40 } })
    .png()
    .toBuffer();
}

/** A white label strip with black text, `width` wide, as an SVG buffer. */
export function label(text: string, width: number): Buffer {
  const esc = text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return Buffer.from(
    `<svg width="${width}" height="${LABEL_H}"><rect width="100%" height="100%" fill="#ffffff"/>` +
      `<text x="4" y="16" font-family="DejaVu Sans, sans-serif" font-size="13" fill="#000">${esc}</text></svg>`,
  );
}
