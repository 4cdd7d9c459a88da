import { describe, expect, it } from 'vitest';
import { LAMBDA_MAX_SYNC_PAYLOAD_BYTES } from '../../local/sqs-poller.js';

// The local SQS event source mapping keeps to the limits Lambda keeps to.

describe('event size', () => {
  it('is capped by default at Lambda’s synchronous invocation payload limit, 6 MB', () => {
    expect(LAMBDA_MAX_SYNC_PAYLOAD_BYTES).toBe(6_291_456);
  });
});
