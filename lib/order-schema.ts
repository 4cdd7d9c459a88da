import { en } from 'zod/locales';
import * as z from 'zod/mini';
import { containsCardNumber } from './card-data.js';
import { isCountryCode } from './country-codes.js';

// zod/mini: the same validation core as zod's chained API (same checks, same issues), written as
// functions (`.check(...)`) so that a bundle holds only what it uses: 30 KB minified, where
// `import { z } from 'zod'` put all of zod, every locale included, in every bundle (444 KB), and
// `import * as z from 'zod'` about 90 KB (docs/decisions.md, "Bundles that start fast"). zod/mini
// loads no locale, so zod's English messages are configured here, before any schema parses.
z.config(en());

// What a client may send to POST /orders. Limits are part of the contract. A business order of
// 5,000 lines makes an OrderPlaced event of up to about 450 KB, past the SNS/SQS 256 KB message
// limit: such an event travels through S3 (claim-check, lib/order-events-topic.ts), and the order
// item stores such a list compressed (lib/order-store.ts) to stay far under DynamoDB's 400 KB.
export const MAX_ITEMS = 5000;
export const MAX_QUANTITY = 1000;

/** A card number typed where it does not belong is refused, never stored (see card-numbers.ts). */
const NO_CARD_NUMBER = { message: 'must not contain a card number', abort: true } as const;
const withoutCardNumber = (value: string) => !containsCardNumber(value);

const SKU_PATTERN = /^[A-Z0-9][A-Z0-9-]{0,63}$/;
const sku = z
  .string()
  .check(z.regex(SKU_PATTERN, 'must be 1-64 upper-case letters, digits or dashes'), z.refine(withoutCardNumber, NO_CARD_NUMBER));

export const orderItemSchema = z.strictObject({
  sku,
  quantity: z.number().check(z.int('must be a whole number'), z.minimum(1), z.maximum(MAX_QUANTITY)),
});

// Control characters (category Cc: tab, newline, NUL...) and the line and paragraph separators
// break the label, the CSV export or the log line an address ends up in.
const CONTROL_CHARACTER = /[\p{Cc}\u2028\u2029]/u;
// White space and format characters (category Cf: U+200B, U+FEFF, U+2060...) show nothing.
const INVISIBLE_CHARACTERS = /[\p{White_Space}\p{Cf}]/gu;

/**
 * Free text a person typed. Control characters are refused before trimming (a trailing newline is
 * as wrong as an inner one); a value with nothing visible is blank, whatever its length.
 */
function text(maxLength: number) {
  return z.string().check(
    z.refine((value) => !CONTROL_CHARACTER.test(value), {
      message: 'must not contain control characters (such as tab or newline) or line/paragraph separators',
      abort: true,
    }),
    z.refine(withoutCardNumber, NO_CARD_NUMBER),
    z.trim(),
    z.refine((value) => value.replace(INVISIBLE_CHARACTERS, '') !== '', {
      message: 'must not be blank (white space and invisible characters such as U+200B do not count)',
      abort: true,
    }),
    z.maxLength(maxLength),
  );
}

export const shippingAddressSchema = z.strictObject({
  name: text(200),
  line1: text(200),
  /** Left out when there is none: present, it must say something, like every other line. */
  line2: z.optional(text(200)),
  city: text(100),
  postalCode: text(20),
  country: z.string().check(
    z.refine(isCountryCode, {
      // UK is the one reserved code people send for a real country.
      error: (issue) =>
        `must be an assigned ISO 3166-1 alpha-2 code such as GB, US or DE${issue.input === 'UK' ? ' (the United Kingdom is GB)' : ''}`,
    }),
  ),
});

export const paymentSchema = z.strictObject({
  // A token stands for a card the payment provider holds; a card number dressed as one is refused.
  token: z
    .string()
    .check(
      z.regex(/^tok_[A-Za-z0-9_]{1,64}$/, 'must be a card token such as tok_visa'),
      z.refine(withoutCardNumber, { message: 'must be a card token, not a card number', abort: true }),
    ),
});

/**
 * The customer is the subject of the caller's token, never a body field: a UUID from Cognito, other
 * shapes from other issuers (`auth0|5f7c...`), so any visible ASCII.
 */
// No card-number check here: the subject is the issuer's, not typed by a customer, and a UUID's
// digits (across its dashes) would sometimes look like one and lock its customer out.
export const customerIdSchema = z.string().check(z.regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 visible ASCII characters'));

/**
 * How fast the customer wants the parcel. An express order's events take the express lane: a queue
 * of their own per consumer, with its own concurrency, so a backlog of standard orders does not
 * hold them up (docs/architecture.md, "The express lane"). Standard when left out.
 */
export const SHIPPING_SPEEDS = ['standard', 'express'] as const;
export type ShippingSpeed = (typeof SHIPPING_SPEEDS)[number];
export const shippingSpeedSchema = z.enum(SHIPPING_SPEEDS, `must be ${SHIPPING_SPEEDS.map((speed) => `"${speed}"`).join(' or ')}`);

/** The lines of each SKU that is on more than one, in order of first appearance. */
function repeatedSkus(items: ReadonlyArray<{ sku: unknown }>): Array<{ sku: unknown; indexes: number[] }> {
  const lines = new Map<unknown, number[]>();
  items.forEach((item, index) => {
    const seen = lines.get(item.sku);
    if (seen) seen.push(index);
    else lines.set(item.sku, [index]);
  });
  return [...lines].filter(([, indexes]) => indexes.length > 1).map(([sku, indexes]) => ({ sku, indexes }));
}

/**
 * Which SKU repeats, and on which lines: in an order of thousands of lines, "a sku repeats" alone
 * is hard to act on. The SKU is quoted only when it is one (a refused value is not echoed back:
 * it may be huge, or hold a card number), and the lines are counted past two.
 */
export function repeatedSkuMessage(items: ReadonlyArray<{ sku: unknown }>): string {
  const [first, ...others] = repeatedSkus(items);
  if (!first) return 'must not repeat a sku';
  const name = typeof first.sku === 'string' && SKU_PATTERN.test(first.sku) && withoutCardNumber(first.sku) ? `${first.sku} ` : '';
  const [a, b, ...more] = first.indexes.map((index) => `items[${index}]`);
  const lines = more.length === 0 ? `${a} and ${b}` : `${a}, ${b} and ${more.length} more`;
  const alsoRepeated = others.length === 0 ? '' : `; ${others.length} other sku${others.length === 1 ? '' : 's'} repeat too`;
  return `must not repeat a sku (${name}at ${lines}${alsoRepeated})`;
}

export const orderRequestSchema = z.strictObject({
  items: z.array(orderItemSchema).check(
    z.minLength(1, 'must hold at least one item'),
    z.maxLength(MAX_ITEMS, `must hold at most ${MAX_ITEMS} items`),
    z.refine((items) => new Set(items.map((i) => i.sku)).size === items.length, {
      error: (issue) => repeatedSkuMessage(Array.isArray(issue.input) ? (issue.input as Array<{ sku: unknown }>) : []),
    }),
  ),
  payment: paymentSchema,
  shippingAddress: shippingAddressSchema,
  shippingSpeed: z.optional(shippingSpeedSchema),
});

export type OrderRequest = z.infer<typeof orderRequestSchema>;
export type OrderItem = z.infer<typeof orderItemSchema>;
export type ShippingAddress = z.infer<typeof shippingAddressSchema>;

export const ORDER_ID_PATTERN = /^ord_[0-9a-f]{32}$/;
/**
 * The order id, one schema for the API and the consumers: an id GET /orders/{orderId} refuses as
 * malformed is refused in an event too, so such an event goes to the DLQ instead of being worked on.
 */
export const orderIdSchema = z.string().check(z.regex(ORDER_ID_PATTERN, 'must look like ord_ followed by 32 hex digits'));
/**
 * The saga participants: each does its part for every order and records a result, and the order
 * is decided when all three have. (A queue consumer is not necessarily one: a consumer that only
 * reacts to outcomes, such as notifications, must not be listed here, or every order waits for it.)
 */
export const PARTICIPANTS = ['inventory', 'payment', 'shipping'] as const;
export type Participant = (typeof PARTICIPANTS)[number];
export type OrderStatus = 'PENDING' | 'CONFIRMED' | 'CANCELLED';

export { maskToken } from './card-data.js';
