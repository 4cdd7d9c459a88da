// The queue consumers, each declared once. serverless.yml turns every entry into its function,
// queue, dead-letter queue, queue policies, filtered subscription to the order events topic, event
// source mapping (one of each per lane: standard and express), IAM role, alarms, dashboard widgets and outputs (resources/consumer-resources.cjs
// and resources/monitoring.cjs), and the local runtime and the tools find the consumers in the
// packaged template. Adding one: docs/adding-a-consumer.md.
//
// A consumer is not a saga participant: only the participants in lib/order-schema.ts (PARTICIPANTS) decide an
// order. A consumer that only reacts to events (a notification, say) is declared here alone.
//
// Each entry, keyed by the consumer's name (lowerCamelCase: the function's key and the middle of
// its queue's name, <service>-<stage>-<name>):
//   handler       the Lambda handler, as in serverless.yml
//   eventTypes    the `eventType` values its subscription's filter policy lets through
//   tables        table logical id -> the DynamoDB actions its role may call on it (without the
//                 `dynamodb:` prefix); each table also reaches the function as <NAME>_TABLE
//                 (PaymentTokensTable -> PAYMENT_TOKENS_TABLE, what lib/config.ts reads). A key
//                 `<Table>/index/<Index>` grants actions on that index alone, with no variable.
//   publishes     true: may publish to the order events topic (ORDER_EVENTS_TOPIC_ARN, sns:Publish,
//                 and the topic key's grant, custom.topicKeyGrant)
//   participant   true for a saga participant (lib/order-schema.ts PARTICIPANTS, and the
//                 `participant` option of its createQueueConsumer): may delete claim-check objects,
//                 as the one whose result completes an order deletes its OrderPlaced object. Every
//                 consumer may read them (resources/consumer-resources.cjs claimCheckStatements)
//   batchSize, batchWindowSeconds, maximumConcurrency, expressMaximumConcurrency
//                 optional: this consumer's event source mapping settings instead of the params
//                 of the same names (serverless.yml); expressMaximumConcurrency is its express
//                 queue's mapping's. With queueType=fifo: batchSize at most 10 and no
//                 batchWindowSeconds, as AWS allows on FIFO queues (packaging refuses others)
//   memorySize    optional: MB, instead of the consumers' 256 (resources/consumer-resources.cjs)
//   timeoutSeconds, queueVisibilityTimeoutSeconds
//                 optional, both or neither: this consumer's function timeout and its queue's
//                 visibility timeout (>= 6 x timeout + window) instead of the params
//                 consumerTimeoutSeconds and queueVisibilityTimeoutSeconds; seconds, or a ${self:custom...}
//
// Every consumer gets two queues, each with its dead-letter queue, subscription and mapping: the
// standard lane (<service>-<stage>-<name>) and the express lane (<name>-express), which takes the
// events of express orders (docs/architecture.md, "The express lane").

// What every saga participant needs besides its own tables: its result on the order item, written
// once by a conditional UpdateItem, and read back (lib/order-outcome.ts).
const RESULT_ON_ORDER = ['GetItem', 'UpdateItem'];

module.exports = {
  // Reserves stock when an order is placed, gives it back when the order is cancelled.
  inventory: {
    handler: 'functions/inventory.handler',
    // No OrderConfirmed: the units of a confirmed order left the stock when they were reserved.
    eventTypes: ['OrderPlaced', 'OrderCancelled'],
    tables: {
      // Stock counters and their markers: conditional UpdateItem, read back on a conflict.
      InventoryTable: ['GetItem', 'UpdateItem'],
      OrdersTable: RESULT_ON_ORDER,
    },
    publishes: true,
    participant: true,
    // A 5,000-line order is about 10,000 stock writes: longer than the other consumers need (serverless.yml).
    timeoutSeconds: '${self:custom.inventoryTimeoutSeconds}',
    queueVisibilityTimeoutSeconds: '${self:custom.inventoryQueueVisibilityTimeoutSeconds}',
  },

  // Charges when an order is placed, refunds when it is cancelled.
  payment: {
    handler: 'functions/payment.handler',
    eventTypes: ['OrderPlaced', 'OrderCancelled'],
    tables: {
      // The payment simulator's own storage (a flaky test card's attempts).
      PaymentsTable: ['UpdateItem'],
      // The card token the order API left: taken (marked and read) to charge, deleted once the charge is decided.
      PaymentTokensTable: ['UpdateItem', 'DeleteItem'],
      // Powertools idempotency around the provider calls, the one side effect outside DynamoDB.
      IdempotencyTable: ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem'],
      OrdersTable: RESULT_ON_ORDER,
    },
    publishes: true,
    participant: true,
  },

  // Prepares a shipment when an order is placed, dispatches or cancels it once decided.
  shipping: {
    handler: 'functions/shipping.handler',
    eventTypes: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'],
    tables: {
      OrdersTable: RESULT_ON_ORDER,
    },
    publishes: true,
    participant: true,
  },
};
