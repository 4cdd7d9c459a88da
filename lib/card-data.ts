// Card data must never be stored, logged or echoed outside the payment path: PCI DSS scope starts
// with the first card number (PAN) a system keeps, and a token stands for a card. A PAN is 13 to
// 19 digits whose last is the Luhn check digit; people write them with spaces or dashes between
// groups. A run of digits that long and Luhn-valid is treated as one,
// wherever it appears in free text or an id (a run of a different length, such as a phone number,
// is not). Runs inside longer alphanumeric words (hex ids) are not runs of their own.

/** Digits, optionally separated by one space or dash, not glued to a letter or digit on either side. */
const DIGIT_RUN = /(?<![A-Za-z0-9])\d(?:[ -]?\d){12,18}(?![A-Za-z0-9])/g;

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

function isCardNumber(run: string): boolean {
  const digits = run.replace(/[ -]/g, '');
  return digits.length >= 13 && digits.length <= 19 && luhnValid(digits);
}

/** True when the text holds what looks like a card number. */
export function containsCardNumber(text: string): boolean {
  for (const match of text.matchAll(DIGIT_RUN)) if (isCardNumber(match[0])) return true;
  return false;
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
  // Cheap test first: most strings hold no run of digits at all.
  return /\d{4}/.test(withoutTokens) ? maskCardNumbers(withoutTokens) : withoutTokens;
}

/** The text with every card number replaced by its last four digits, as receipts show them. */
export function maskCardNumbers(text: string): string {
  return text.replace(DIGIT_RUN, (run) => (isCardNumber(run) ? `****${run.replace(/[ -]/g, '').slice(-4)}` : run));
}
