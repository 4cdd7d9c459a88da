import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';

/**
 * Runs a conditional DynamoDB write and tells "the condition said no" apart from a failure: the
 * write's response when it was applied, undefined when its condition failed (something the caller
 * expects: a duplicate, a race lost, a state already moved on). Any other error is thrown.
 */
export async function unlessConditionFails<T>(write: () => Promise<T>): Promise<T | undefined> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return undefined;
    throw error;
  }
}
