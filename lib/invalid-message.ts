/**
 * A message that can never be processed: a consumer reports it failed until SQS moves it to the
 * DLQ, body intact. In a module of its own so that lib/claim-check.ts (a pointer it refuses) and
 * lib/queued-message.ts (a body it refuses) throw the same error without importing each other.
 */
export class InvalidMessageError extends Error {
  override name = 'InvalidMessageError';
}
