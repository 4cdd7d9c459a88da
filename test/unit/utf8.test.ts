import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstInvalidUtf8Byte } from '../../lib/utf8.js';

// The order API names the offset of the first invalid byte; the offset must agree with what a
// strict decoder refuses, and everything before it must decode.

const strictDecode = (bytes: Uint8Array) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
};

/** Mostly valid text with a few arbitrary bytes spliced in, so that both answers are common. */
const mostlyText = fc
  .tuple(fc.string({ unit: 'binary', maxLength: 40 }), fc.uint8Array({ maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 40 }))
  .map(([before, bytes, after]) => new Uint8Array(Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)])));

describe('firstInvalidUtf8Byte', () => {
  it('is -1 exactly when a strict decoder accepts the bytes, and otherwise the bytes before it decode', () => {
    fc.assert(
      fc.property(fc.oneof(mostlyText, fc.uint8Array({ maxLength: 64 })), (bytes) => {
        const at = firstInvalidUtf8Byte(bytes);
        expect(at === -1).toBe(strictDecode(bytes));
        expect(at === -1).toBe(isUtf8(bytes));
        if (at >= 0) {
          expect(isUtf8(bytes.subarray(0, at))).toBe(true);
          // No well-formed character starts at `at`: none of the next 1 to 4 bytes decode.
          for (let length = 1; length <= 4; length++) expect(isUtf8(bytes.subarray(at, at + length))).toBe(false);
        }
      }),
      { numRuns: 5000, seed: 20_260_601 },
    );
  });

  it.each([
    [[], -1],
    [[0x41, 0xc3, 0xa9], -1],
    [[0xf0, 0x9f, 0x9a, 0x9a], -1],
    [[0xef, 0xbb, 0xbf, 0x7b], -1],
    [[0x41, 0x80], 1],
    [[0x41, 0xc3], 1],
    [[0x41, 0xc3, 0x41], 1],
    [[0xc1, 0xbf], 0],
    [[0xe0, 0x9f, 0xbf], 0],
    [[0xed, 0xbf, 0xbf], 0],
    [[0xf0, 0x8f, 0xbf, 0xbf], 0],
    [[0xf4, 0x90, 0x80, 0x80], 0],
    [[0xf5, 0x80, 0x80, 0x80], 0],
    [[0x41, 0x42, 0xe2, 0x82, 0xac, 0xe2, 0x82], 5],
  ])('%j → %i', (bytes, at) => {
    expect(firstInvalidUtf8Byte(new Uint8Array(bytes))).toBe(at);
  });
});
