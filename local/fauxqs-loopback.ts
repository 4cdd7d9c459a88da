// fauxqs (SNS and SQS) listening on 127.0.0.1 only. fauxqs 1.9.2's startFauxqs always listens on
// 0.0.0.0, which would let anyone on the same network (a workshop's Wi-Fi) read and write the
// queues; its buildApp is exported, so this builds the same app and listens on loopback itself,
// with everything else startFauxqs does: the stores, the message spy, the default region, port 0,
// the FauxqsServer methods and stop().
//
// buildApp needs the stores, and fauxqs exports neither them nor its MessageSpy, so they are
// loaded from its dist files next to the package entry (the package's `exports` do not list
// them). That ties this file to fauxqs 1.9.2, the exact version package.json pins; re-read
// node_modules/fauxqs/dist/app.js (startFauxqs) when upgrading.

import type { AddressInfo } from 'node:net';
import { buildApp, type BuildAppOptions, type FauxqsInitConfig, type FauxqsServer, type MessageSpyParams } from 'fauxqs';

type Stores = NonNullable<BuildAppOptions['stores']>;
type MessageSpy = NonNullable<Stores['sqsStore']['spy']>;

/** What startFauxqs uses that the package does not export. */
interface FauxqsInternals {
  SqsStore: new () => Stores['sqsStore'];
  SnsStore: new () => Stores['snsStore'];
  S3Store: new () => Stores['s3Store'];
  MessageSpy: new (params?: MessageSpyParams) => MessageSpy;
  applyInitConfig(
    config: FauxqsInitConfig,
    sqs: Stores['sqsStore'],
    sns: Stores['snsStore'],
    s3: Stores['s3Store'],
    context: { port: number; region: string },
  ): void;
  sqsQueueArn(name: string, region: string): string;
  snsTopicArn(name: string, region: string): string;
  DEFAULT_REGION: string;
}

const LOOPBACK = '127.0.0.1';

async function loadInternals(): Promise<FauxqsInternals> {
  const entry = import.meta.resolve('fauxqs');
  const load = (file: string) => import(new URL(file, entry).href) as Promise<Record<string, unknown>>;
  const [sqs, sns, s3, spy, init, arn, types] = await Promise.all(
    [
      './sqs/sqsStore.js',
      './sns/snsStore.js',
      './s3/s3Store.js',
      './spy.js',
      './initConfig.js',
      './common/arnHelper.js',
      './common/types.js',
    ].map(load),
  );
  const internals = {
    SqsStore: sqs!.SqsStore,
    SnsStore: sns!.SnsStore,
    S3Store: s3!.S3Store,
    MessageSpy: spy!.MessageSpy,
    applyInitConfig: init!.applyInitConfig,
    sqsQueueArn: arn!.sqsQueueArn,
    snsTopicArn: arn!.snsTopicArn,
    DEFAULT_REGION: types!.DEFAULT_REGION,
  };
  const missing = Object.entries(internals)
    .filter(([, value]) => value === undefined)
    .map(([name]) => name);
  if (missing.length > 0) throw new Error(`fauxqs changed: ${missing.join(', ')} not found in ${entry}; see local/fauxqs-loopback.ts`);
  return internals as unknown as FauxqsInternals;
}

export interface LoopbackFauxqsOptions {
  /** 0 for any free port. */
  port: number;
  logger?: boolean;
  /** Used when a request's signature names no region; fauxqs's us-east-1 by default. */
  defaultRegion?: string;
  /** Record messages for `server.spy` (true, or a buffer size). */
  messageSpies?: boolean | MessageSpyParams;
}

export interface LoopbackFauxqsServer extends FauxqsServer {
  /** The listening socket's address, as the operating system reports it. */
  readonly boundAddress: AddressInfo;
}

/** startFauxqs, listening on 127.0.0.1 instead of every interface. */
export async function startFauxqsOnLoopback(options: LoopbackFauxqsOptions): Promise<LoopbackFauxqsServer> {
  const fauxqs = await loadInternals();
  const sqsStore = new fauxqs.SqsStore();
  const snsStore = new fauxqs.SnsStore();
  const s3Store = new fauxqs.S3Store();
  const messageSpy = options.messageSpies
    ? new fauxqs.MessageSpy(typeof options.messageSpies === 'object' ? options.messageSpies : undefined)
    : undefined;
  if (messageSpy) {
    sqsStore.spy = messageSpy;
    snsStore.spy = messageSpy;
    s3Store.spy = messageSpy;
  }
  const app = buildApp({
    logger: options.logger ?? false,
    ...(options.defaultRegion === undefined ? {} : { defaultRegion: options.defaultRegion }),
    stores: { sqsStore, snsStore, s3Store },
  });
  const listenAddress = await app.listen({ port: options.port, host: LOOPBACK });
  const boundAddress = app.server.address() as AddressInfo;
  const port = boundAddress.port;
  const region = options.defaultRegion ?? fauxqs.DEFAULT_REGION;
  const queueUrl = (name: string, queueRegion: string) => sqsStore.buildQueueUrl(name, String(port), `${LOOPBACK}:${port}`, queueRegion);

  return {
    port,
    address: listenAddress,
    boundAddress,
    get spy() {
      if (!messageSpy) throw new Error('MessageSpy is not enabled: pass messageSpies to startFauxqsOnLoopback.');
      return messageSpy;
    },
    stop: () => app.close(),
    createQueue(name, queueOptions) {
      const queueRegion = queueOptions?.region ?? region;
      const queueArn = fauxqs.sqsQueueArn(name, queueRegion);
      const url = queueUrl(name, queueRegion);
      sqsStore.createQueue(name, url, queueArn, queueOptions?.attributes, queueOptions?.tags);
      return { queueUrl: url, queueArn, queueName: name };
    },
    inspectQueue: (name) => sqsStore.inspectQueue(name),
    createTopic(name, topicOptions) {
      const topicRegion = topicOptions?.region ?? region;
      snsStore.createTopic(name, topicOptions?.attributes, topicOptions?.tags, topicRegion);
      return { topicArn: fauxqs.snsTopicArn(name, topicRegion) };
    },
    subscribe(subscription) {
      const subscriptionRegion = subscription.region ?? region;
      snsStore.subscribe(
        fauxqs.snsTopicArn(subscription.topic, subscriptionRegion),
        'sqs',
        fauxqs.sqsQueueArn(subscription.queue, subscriptionRegion),
        subscription.attributes,
      );
    },
    createBucket(name) {
      s3Store.createBucket(name);
      return { bucketName: name };
    },
    deleteQueue(name, queueOptions) {
      const queue = sqsStore.getQueueByArn(fauxqs.sqsQueueArn(name, queueOptions?.region ?? region));
      if (queue) sqsStore.deleteQueue(queue.url);
    },
    deleteTopic(name, topicOptions) {
      snsStore.deleteTopic(fauxqs.snsTopicArn(name, topicOptions?.region ?? region));
    },
    emptyBucket: (name) => s3Store.emptyBucket(name),
    setup: (config) => fauxqs.applyInitConfig(config, sqsStore, snsStore, s3Store, { port, region }),
    reset() {
      sqsStore.clearMessages();
      s3Store.clearObjects();
      messageSpy?.clear();
    },
    purgeAll() {
      sqsStore.purgeAll();
      snsStore.purgeAll();
      s3Store.purgeAll();
    },
  };
}
