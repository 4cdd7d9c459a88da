// What Lambda's CreateEventSourceMapping and UpdateEventSourceMapping refuse for an SQS queue, in
// Lambda's own words: `npm start` refuses a mapping that AWS would refuse at deploy time, instead
// of running it locally as if it were fine.

export interface SqsMappingSettings {
  /** BatchSize (Lambda's default 10). */
  batchSize: number;
  /** MaximumBatchingWindowInSeconds (Lambda's default 0). */
  maximumBatchingWindowInSeconds: number;
  /** ScalingConfig.MaximumConcurrency, when the mapping sets one. */
  maximumConcurrency?: number;
  /** The function's Timeout. */
  functionTimeoutSeconds: number;
  /** The queue's VisibilityTimeout, as SQS reports it. */
  queueVisibilityTimeoutSeconds: number;
  /** The queue's FifoQueue attribute, as SQS reports it. */
  queueIsFifo?: boolean;
}

export interface MappingRefusal {
  /** The exception Lambda answers with. */
  code: 'ValidationException' | 'InvalidParameterValueException';
  message: string;
}

/** The API model's bounds, checked before anything else (a request outside them goes no further). */
const MODEL_BOUNDS = [
  { member: 'batchSize', value: (s: SqsMappingSettings) => s.batchSize, min: 1, max: 10_000 },
  { member: 'maximumBatchingWindowInSeconds', value: (s: SqsMappingSettings) => s.maximumBatchingWindowInSeconds, min: 0, max: 300 },
  { member: 'scalingConfig.maximumConcurrency', value: (s: SqsMappingSettings) => s.maximumConcurrency, min: 2, max: 1000 },
] as const;

/** Why Lambda would refuse this mapping; empty when it would accept it. */
export function sqsMappingRefusals(settings: SqsMappingSettings): MappingRefusal[] {
  const outOfBounds: string[] = [];
  for (const bound of MODEL_BOUNDS) {
    const value = bound.value(settings);
    if (value === undefined) continue;
    if (value < bound.min) outOfBounds.push(constraint(bound.member, value, `greater than or equal to ${bound.min}`));
    else if (value > bound.max) outOfBounds.push(constraint(bound.member, value, `less than or equal to ${bound.max}`));
  }
  if (outOfBounds.length > 0) {
    const count = outOfBounds.length === 1 ? '1 validation error' : `${outOfBounds.length} validation errors`;
    return [{ code: 'ValidationException', message: `${count} detected: ${outOfBounds.join('; ')}` }];
  }

  const refusals: MappingRefusal[] = [];
  // A FIFO queue takes no batching window (AWS's SQS mapping parameters); with none, a batch over
  // 10 is refused by the rule below, so FIFO's 10-record maximum needs no rule of its own.
  if (settings.queueIsFifo && settings.maximumBatchingWindowInSeconds > 0) {
    refusals.push({ code: 'InvalidParameterValueException', message: 'Batching window is not supported for FIFO queues' });
  }
  if (settings.batchSize > 10 && settings.maximumBatchingWindowInSeconds === 0) {
    refusals.push({
      code: 'InvalidParameterValueException',
      message: 'Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10',
    });
  }
  if (settings.queueVisibilityTimeoutSeconds < settings.functionTimeoutSeconds) {
    refusals.push({
      code: 'InvalidParameterValueException',
      message: `Queue visibility timeout: ${settings.queueVisibilityTimeoutSeconds} seconds is less than Function timeout: ${settings.functionTimeoutSeconds} seconds`,
    });
  }
  return refusals;
}

function constraint(member: string, value: number, bound: string): string {
  return `Value '${value}' at '${member}' failed to satisfy constraint: Member must have value ${bound}`;
}

/** Thrown by startLocalPipeline when the template holds a mapping AWS would refuse. */
export class EventSourceMappingRefused extends Error {
  override readonly name = 'EventSourceMappingRefused';
  readonly refusals: Array<{ mappingId: string; refusal: MappingRefusal }>;

  constructor(refusals: Array<{ mappingId: string; refusal: MappingRefusal }>) {
    super(
      [
        `AWS would refuse ${refusals.length === 1 ? 'an event source mapping' : 'event source mappings'} of this template (CreateEventSourceMapping):`,
        ...refusals.map(({ mappingId, refusal }) => `  ${mappingId}: ${refusal.code}: ${refusal.message}`),
      ].join('\n'),
    );
    this.refusals = refusals;
  }
}
