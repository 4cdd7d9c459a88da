// Card data must never be stored, logged or echoed outside the payment path: PCI DSS scope starts
// with the first card number (PAN) a system keeps, and a token stands for a card. A PAN is 13 to
// 19 digits whose last is the Luhn check digit; people write them with spaces or dashes between
// groups, and someone hiding one writes it with odd separators (dots, slashes, non-breaking or
// zero-width spaces), full-width digits, or glued to a word. So a run is digits (any script's, after
// NFKC) with at most three characters that are neither letters nor digits between two of them, and
// a run of 13 digits or more is a card number when any 13 to 19 consecutive digits of it pass the
// Luhn check: appending digits does not hide one. The cost is that a long digit string (two phone
// numbers in one field) may be refused; in an order's free text that is rare, and a refusal names
// the field. Letters end a run: "4111x1111..." is not caught, and neither are digits spelled out.

const MAX_GAP = 3;
const MIN_DIGITS = 13;
const MAX_DIGITS = 19;
const DECIMAL_DIGIT = /\p{Nd}/u;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
/** Masking leaves digits inside a word alone: `ord_0123...` is an id (a token's digits are masked as a token). */
const PART_OF_A_WORD = /[\p{L}\p{N}_]/u;

/** The value of a decimal digit of any script: its distance from the zero of its block of ten. */
function digitValue(char: string): number {
  let code = char.codePointAt(0)!;
  let value = 0;
  while (value < 9 && DECIMAL_DIGIT.test(String.fromCodePoint(code - 1))) {
    code -= 1;
    value += 1;
  }
  return value;
}

interface DigitRun {
  /** UTF-16 offsets of the first digit and just past the last. */
  start: number;
  end: number;
  digits: string;
}

function digitRuns(text: string): DigitRun[] {
  const runs: DigitRun[] = [];
  let current: DigitRun | undefined;
  let gap = 0;
  for (let index = 0; index < text.length; ) {
    const char = String.fromCodePoint(text.codePointAt(index)!);
    if (DECIMAL_DIGIT.test(char)) {
      if (!current) current = { start: index, end: index, digits: '' };
      current.digits += String(digitValue(char));
      current.end = index + char.length;
      gap = 0;
    } else if (current && !LETTER_OR_DIGIT.test(char) && gap < MAX_GAP) {
      gap += 1;
    } else if (current) {
      runs.push(current);
      current = undefined;
      gap = 0;
    }
    index += char.length;
  }
  if (current) runs.push(current);
  return runs;
}

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let index = 0; index < digits.length; index++) {
    let digit = digits.charCodeAt(digits.length - 1 - index) - 48;
    if (index % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** Some 13 to 19 consecutive digits of the run pass the Luhn check. */
function holdsCardNumber(digits: string): boolean {
  for (let length = MIN_DIGITS; length <= Math.min(MAX_DIGITS, digits.length); length++) {
    for (let start = 0; start + length <= digits.length; start++) if (luhnValid(digits.slice(start, start + length))) return true;
  }
  return false;
}

/** True when the text holds what looks like a card number, however it is written. */
export function containsCardNumber(text: string): boolean {
  return digitRuns(text.normalize('NFKC')).some((run) => run.digits.length >= MIN_DIGITS && holdsCardNumber(run.digits));
}

/** Shows enough of a card token to recognise it, never the whole of it. */
export function maskToken(token: string): string {
  return token.length <= 8 ? 'tok_****' : `tok_****${token.slice(-4)}`;
}

/** A card token anywhere in a string (an error message, a message body). */
const CARD_TOKEN = /\btok_[A-Za-z0-9_]{1,64}/g;

/** The text with card tokens and card numbers masked: for log lines and error messages. */
export function maskCardData(text: string): string {
  const withoutTokens = text.includes('tok_') ? text.replace(CARD_TOKEN, (token) => maskToken(token)) : text;
  // Cheap test first: most strings hold no digits at all.
  return /\p{Nd}/u.test(withoutTokens) ? maskCardNumbers(withoutTokens) : withoutTokens;
}

/**
 * The text with every card number replaced by its last four digits, as receipts show them. A run
 * glued to a word on either side (letters, digits, `_`) is left alone here: a log line's ids
 * (`ord_` and hex) hold digit runs. The API refuses such input before it is ever stored or logged.
 */
export function maskCardNumbers(text: string): string {
  let masked = '';
  let from = 0;
  for (const run of digitRuns(text)) {
    if (run.digits.length < MIN_DIGITS || !holdsCardNumber(run.digits)) continue;
    const before = text.slice(0, run.start);
    const after = text.slice(run.end);
    if (PART_OF_A_WORD.test(before.slice(-1)) || PART_OF_A_WORD.test(after.slice(0, 1))) continue;
    masked += `${text.slice(from, run.start)}****${run.digits.slice(-4)}`;
    from = run.end;
  }
  return masked + text.slice(from);
}
