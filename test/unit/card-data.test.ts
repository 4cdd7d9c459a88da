import { describe, expect, it } from 'vitest';
import { containsCardNumber, maskCardData } from '../../lib/card-data.js';

// Card numbers however they are written, as an outside review tried to slip them past the API:
// odd separators, invisible characters, other digits, glued to a word, digits added around them.

const PAN = '4111111111111111';
const group = (separator: string, digits = PAN) => digits.replace(/(\d{4})(?=\d)/g, `$1${separator}`);

describe('containsCardNumber', () => {
  it.each([
    ['plain', PAN],
    ['spaces', group(' ')],
    ['double spaces', group('  ')],
    ['spaced dashes', group(' - ')],
    ['non-breaking spaces', group('\u00a0')],
    ['zero-width spaces', group('\u200b')],
    ['dots', group('.')],
    ['slashes', group('/')],
    ['underscores', group('_')],
    ['parentheses', `(${group(')(')})`],
    ['full-width digits', '４１１１１１１１１１１１１１１１'],
    ['Arabic-Indic digits', '٤١١١١١١١١١١١١١١١'],
    ['glued to a word', `Ada${PAN}`],
    ['in a token', `tok_${PAN}`],
    ['with digits added after', `${PAN}2222`],
    ['with digits added before', `99${PAN}`],
    ['an Amex', '378282246310005'],
    ['a 19-digit one', '6011000000000000004'],
  ])('finds one written with %s', (_how, text) => {
    expect(containsCardNumber(`name ${text} here`)).toBe(true);
  });

  it.each([
    ['a phone number', '+44 20 7946 0958'],
    ['a house number and a postal code', '221B Baker St, NW1 6XE'],
    ['a 13-digit run that fails the Luhn check', '1234567890123'],
    ['a 12-digit run', '411111111111'],
    ['an order id', 'ord_01a21b0d7223749d9ba85857f21a0578'],
    ['digits kept apart by more than three characters', '4111 -- 1111 -- 1111 -- 1111'],
  ])('leaves %s alone', (_what, text) => {
    expect(containsCardNumber(text)).toBe(false);
  });
});

describe('maskCardData', () => {
  it('masks tokens and card numbers however they are written, keeping the last four digits', () => {
    expect(maskCardData(`card ${group('  ')} and tok_visa_debit`)).toBe('card ****1111 and tok_****ebit');
    expect(maskCardData(`name ${group('\u00a0')}.`)).toBe('name ****1111.');
  });

  it('leaves ids alone: a digit run glued to letters or an underscore is part of a word', () => {
    for (const id of [
      'ord_01a21b0d7223749d9ba85857f21a0578',
      'ord_00000000000000000000000000000000',
      'ord_41111111111111110000000000000000',
    ]) {
      expect(maskCardData(`No order ${id}`)).toBe(`No order ${id}`);
    }
  });
});

describe('customer ids (the token subject)', () => {
  it('accepts a UUID whose digits, across its dashes, would pass for a card number in free text', async () => {
    const { customerIdSchema } = await import('../../lib/order-schema.js');
    const sub = '41111111-1111-4111-8111-111111111111';
    expect(containsCardNumber(sub)).toBe(true);
    expect(customerIdSchema.safeParse(sub).success).toBe(true);
  });
});
