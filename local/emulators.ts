// The AWS services the stack uses, emulated in this process: fauxqs for SNS, SQS and S3, dynalite for
// DynamoDB. Both listen on fixed ports by default so that the AWS CLI and other tools can reach
// them; tests pass port 0. Both listen on 127.0.0.1 only: nothing here checks credentials.

import type { AddressInfo } from 'node:net';
import type { FauxqsServer } from 'fauxqs';
import dynalite from 'dynalite';
import { startFauxqsOnLoopback } from './fauxqs-loopback.js';

export interface Emulators {
  fauxqs: FauxqsServer;
  /** fauxqs serves SNS, SQS and S3 on one port: the same URL for the three (S3 path-style). */
  endpoints: { sqs: string; sns: string; s3: string; dynamodb: string };
  /** The listening sockets' addresses, as the operating system reports them. */
  addresses: { sqs: AddressInfo; dynamodb: AddressInfo };
  stop(): Promise<void>;
}

export const LOCAL_REGION = 'us-east-1';
/** The account fauxqs puts in every ARN and queue URL. */
export const LOCAL_ACCOUNT_ID = '000000000000';
/** Credentials are required by the SDK's request signing; the emulators do not check them. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export async function startEmulators(options: { sqsPort: number; dynamodbPort: number }): Promise<Emulators> {
  // fauxqs serves SNS and SQS on one port. Its message spy lets tests await deliveries, DLQ moves
  // and deletions instead of polling.
  const fauxqs = await startFauxqsOnLoopback({
    port: options.sqsPort,
    logger: false,
    defaultRegion: LOCAL_REGION,
    messageSpies: { bufferSize: 1000 },
  });
  const dynamo = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      dynamo.once('error', reject);
      dynamo.listen(options.dynamodbPort, '127.0.0.1', () => resolve());
    });
  } catch (error) {
    await fauxqs.stop();
    throw error;
  }
  // Endpoints from the addresses actually bound, so they say where the emulators listen.
  const addresses = { sqs: fauxqs.boundAddress, dynamodb: dynamo.address() as AddressInfo };
  const sqs = `http://${addresses.sqs.address}:${addresses.sqs.port}`;
  return {
    fauxqs,
    endpoints: { sqs, sns: sqs, s3: sqs, dynamodb: `http://${addresses.dynamodb.address}:${addresses.dynamodb.port}` },
    addresses,
    async stop() {
      dynamo.closeAllConnections();
      await Promise.all([fauxqs.stop(), new Promise<void>((resolve) => dynamo.close(() => resolve()))]);
    },
  };
}

/** SDK client configuration for the emulators; never the developer's own AWS profile. */
export function clientConfig(endpoint: string) {
  return { endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 3 };
}
