// An item's size as DynamoDB counts it against the 400 KB limit and bills it (1 WRU per KB
// written), by the rules of the DynamoDB Developer Guide ("Item sizes and formats"): attribute
// names and strings by their UTF-8 bytes, binary by its bytes, a number by about one byte per two
// significant digits plus one, true/false/null one byte, a list or map 3 bytes plus one byte per
// element plus what it holds.

export function dynamoDbItemSize(item: Record<string, unknown>): number {
  return Object.entries(item).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + valueSize(value), 0);
}

function valueSize(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === 'number') return Math.ceil(String(Math.abs(value)).replace(/[.]|^0+|e.*$/g, '').length / 2) + 1;
  if (value === null || typeof value === 'boolean') return 1;
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, element) => sum + 1 + valueSize(element), 0);
  if (typeof value === 'object')
    return 3 + Object.entries(value).reduce((sum, [name, element]) => sum + 1 + Buffer.byteLength(name) + valueSize(element), 0);
  throw new Error(`No DynamoDB type for ${typeof value}`);
}
