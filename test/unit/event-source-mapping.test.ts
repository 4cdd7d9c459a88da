import { describe, expect, it } from 'vitest';
import { sqsMappingRefusals } from '../../local/event-source-mapping-rules.js';
import { LAMBDA_MAX_SYNC_PAYLOAD_BYTES } from '../../local/sqs-poller.js';

// The local SQS event source mapping keeps to the limits Lambda keeps to.

describe('event size', () => {
  it('is capped by default at Lambda’s synchronous invocation payload limit, 6 MB', () => {
    expect(LAMBDA_MAX_SYNC_PAYLOAD_BYTES).toBe(6_291_456);
  });
});

describe('sqsMappingRefusals: what CreateEventSourceMapping refuses, in Lambda’s words', () => {
  // The packaged stack's own mapping: batch 10, 1 s window, concurrency 5, 5 s function, 31 s queue.
  const accepted = {
    batchSize: 10,
    maximumBatchingWindowInSeconds: 1,
    maximumConcurrency: 5,
    functionTimeoutSeconds: 5,
    queueVisibilityTimeoutSeconds: 31,
  };

  it('accepts the stack’s own mappings, and the limits themselves', () => {
    expect(sqsMappingRefusals(accepted)).toEqual([]);
    expect(sqsMappingRefusals({ ...accepted, maximumConcurrency: 2 })).toEqual([]);
    expect(sqsMappingRefusals({ ...accepted, maximumConcurrency: 1000 })).toEqual([]);
    expect(sqsMappingRefusals({ ...accepted, batchSize: 10_000, maximumBatchingWindowInSeconds: 300 })).toEqual([]);
    expect(sqsMappingRefusals({ ...accepted, batchSize: 10, maximumBatchingWindowInSeconds: 0 })).toEqual([]);
    // Equal is enough: the rule is "not less than".
    expect(sqsMappingRefusals({ ...accepted, functionTimeoutSeconds: 31 })).toEqual([]);
    // No ScalingConfig: nothing to check.
    const { maximumConcurrency: _, ...unscaled } = accepted;
    expect(sqsMappingRefusals(unscaled)).toEqual([]);
  });

  it('refuses a function timeout above the queue’s visibility timeout', () => {
    expect(sqsMappingRefusals({ ...accepted, functionTimeoutSeconds: 60, queueVisibilityTimeoutSeconds: 30 })).toEqual([
      { code: 'InvalidParameterValueException', message: 'Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds' },
    ]);
  });

  it('refuses MaximumConcurrency outside 2–1000', () => {
    expect(sqsMappingRefusals({ ...accepted, maximumConcurrency: 1 })).toEqual([
      {
        code: 'ValidationException',
        message:
          "1 validation error detected: Value '1' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have value greater than or equal to 2",
      },
    ]);
    expect(sqsMappingRefusals({ ...accepted, maximumConcurrency: 1001 })[0]?.message).toBe(
      "1 validation error detected: Value '1001' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have value less than or equal to 1000",
    );
  });

  it('refuses a batch over 10 without a batching window, and any batch over 10,000', () => {
    expect(sqsMappingRefusals({ ...accepted, batchSize: 11, maximumBatchingWindowInSeconds: 0 })).toEqual([
      {
        code: 'InvalidParameterValueException',
        message: 'Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10',
      },
    ]);
    expect(sqsMappingRefusals({ ...accepted, batchSize: 10_001 })).toEqual([
      {
        code: 'ValidationException',
        message:
          "1 validation error detected: Value '10001' at 'batchSize' failed to satisfy constraint: Member must have value less than or equal to 10000",
      },
    ]);
  });

  it('on a FIFO queue: accepts the FIFO stack’s mapping (10 records, no window, a maximum concurrency), refuses a batching window', () => {
    // AWS's SQS mapping parameters: "Batching window is not supported for FIFO queues"; maximum
    // concurrency is (FIFO concurrency is the lower of it and the number of active message groups).
    const fifo = { ...accepted, maximumBatchingWindowInSeconds: 0, queueIsFifo: true };
    expect(sqsMappingRefusals(fifo)).toEqual([]);
    expect(sqsMappingRefusals({ ...fifo, maximumBatchingWindowInSeconds: 1 })).toEqual([
      { code: 'InvalidParameterValueException', message: 'Batching window is not supported for FIFO queues' },
    ]);
    // FIFO's 10 records at most: with no window a larger batch is refused as on any queue, with one
    // the window is.
    expect(sqsMappingRefusals({ ...fifo, batchSize: 11 })[0]?.message).toBe(
      'Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10',
    );
    expect(sqsMappingRefusals({ ...fifo, batchSize: 100, maximumBatchingWindowInSeconds: 5 })).toEqual([
      { code: 'InvalidParameterValueException', message: 'Batching window is not supported for FIFO queues' },
    ]);
    // The same window on a standard queue is fine.
    expect(sqsMappingRefusals({ ...fifo, queueIsFifo: false, maximumBatchingWindowInSeconds: 1 })).toEqual([]);
  });

  it('reports every bound broken in one validation error, as the API does', () => {
    expect(sqsMappingRefusals({ ...accepted, batchSize: 0, maximumConcurrency: 1 })).toEqual([
      {
        code: 'ValidationException',
        message:
          "2 validation errors detected: Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1; " +
          "Value '1' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have value greater than or equal to 2",
      },
    ]);
  });
});
