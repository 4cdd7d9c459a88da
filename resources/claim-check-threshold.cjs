// The claimCheckThresholdBytes param, checked when the stack is packaged: an event at or under it
// is published as it is, so a threshold over what SNS takes (262,144 bytes, attributes included)
// would have the publishers send messages SNS refuses, and one of 0 or less (or not a number)
// would put every event through the bucket or none. serverless.yml resolves
// `custom.claimCheckThresholdBytes` through this file (the functions' environments read the param
// itself, where test/infra/wiring.test.ts finds it), so a bad value fails the packaging with the
// param's name and range, in one line without a stack trace, as queue-type.cjs refuses its own.
// lib/config.ts checks the same range at run time, for an environment set by other means.
//
// CommonJS: osls loads a `${file()}` source with require(), and the project is ESM.
'use strict';

/** SNS's limit for one message, body and attributes. */
const SNS_MAX_MESSAGE_BYTES = 262144;

/**
 * A refusal osls prints as its message alone: it prints a variable source's rejection with the
 * error's stack when there is one, which says nothing to someone who mistyped a param.
 */
function refusal(message) {
  const error = new Error(message);
  error.stack = message;
  return error;
}

/** The threshold as a number; throws naming the param and its range. */
function checkedThreshold(value) {
  const bytes = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > SNS_MAX_MESSAGE_BYTES) {
    throw refusal(
      `param claimCheckThresholdBytes is a whole number of bytes from 1 to ${SNS_MAX_MESSAGE_BYTES} (SNS's message limit, attributes included), not ${JSON.stringify(value)}`,
    );
  }
  return bytes;
}

/** `${file(resources/claim-check-threshold.cjs):threshold}`: the param, resolved and checked. */
async function threshold({ resolveVariable }) {
  return checkedThreshold(await resolveVariable('param:claimCheckThresholdBytes'));
}

module.exports = { threshold, checkedThreshold, SNS_MAX_MESSAGE_BYTES };
