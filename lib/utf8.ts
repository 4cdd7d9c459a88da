/**
 * The offset (from 0) of the first byte that does not start or continue a well-formed UTF-8
 * sequence, or -1 when all of `bytes` is well-formed. A sequence cut short or holding a bad
 * continuation byte is reported at its first byte, where a decoder would put U+FFFD.
 *
 * Well-formed means Unicode's table 3-7, the rules TextDecoder applies with `fatal`: no overlong
 * forms, no surrogates (U+D800-U+DFFF), nothing past U+10FFFF.
 */
export function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  let index = 0;
  while (index < bytes.length) {
    const lead = bytes[index]!;
    if (lead < 0x80) {
      index++;
      continue;
    }
    let length: number;
    // The allowed range of the second byte depends on the lead; the later ones are 80..BF.
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) length = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead === 0xe0) low = 0xa0;
      else if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead === 0xf0) low = 0x90;
      else if (lead === 0xf4) high = 0x8f;
    } else return index;
    if (index + length > bytes.length) return index;
    const second = bytes[index + 1]!;
    if (second < low || second > high) return index;
    for (let next = index + 2; next < index + length; next++) {
      const byte = bytes[next]!;
      if (byte < 0x80 || byte > 0xbf) return index;
    }
    index += length;
  }
  return -1;
}
