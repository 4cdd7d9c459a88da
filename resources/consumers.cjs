// The queue consumers, each declared once. serverless.yml turns every entry into its function,
// queue, dead-letter queue, queue policies, filtered subscription to the order events topic, event
// source mapping, IAM role, alarms, dashboard widgets and outputs (resources/consumer-resources.cjs
// and resources/monitoring.cjs), and the local runtime and the tools find the consumers in the
// packaged template. Adding one: docs/adding-a-consumer.md.
//
// A consumer is not a saga participant: only the participants in lib/order.ts (STAGES) decide an
// order. A consumer that only reacts to events (a notification, say) is declared here alone.
//
// Each entry, keyed by the consumer's name (lowerCamelCase: the function's key and the middle of
// its queue's name, <service>-<stage>-<name>):
//   handler       the Lambda handler, as in serverless.yml
//   eventTypes    the `eventType` values its subscription's filter policy lets through
//   tables        table logical id -> the DynamoDB actions its role may call on it (without the
//                 `dynamodb:` prefix); each table also reaches the function as <NAME>_TABLE
//                 (ReservationsTable -> RESERVATIONS_TABLE, what lib/config.ts reads). A key
//                 `<Table>/index/<Index>` grants actions on that index alone, with no variable.
//   publishes     true: may publish to the order events topic (ORDER_EVENTS_TOPIC_ARN, sns:Publish,
//                 and the topic key's grant, custom.topicKeyGrant)
//   batchSize, batchWindowSeconds, maximumConcurrency
//                 optional: this consumer's event source mapping settings instead of the params
//                 of the same names (serverless.yml)

// What every saga participant needs besides its own tables: its idempotency records (Powertools,
// lib/queue-consumer.ts) and its result on the order item (lib/order-outcome.ts).
const IDEMPOTENCY_RECORDS = ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem'];
const STAGE_RESULT_ON_ORDER = ['GetItem', 'UpdateItem'];

module.exports = {
  // Reserves stock when an order is placed, sells it when confirmed, releases it when cancelled.
  inventory: {
    handler: 'functions/inventory.handler',
    eventTypes: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'],
    tables: {
      InventoryTable: ['GetItem', 'UpdateItem'],
      // Reservation lines: read, then created or moved by conditional UpdateItem (no PutItem needed).
      ReservationsTable: ['GetItem', 'UpdateItem'],
      IdempotencyTable: IDEMPOTENCY_RECORDS,
      OrdersTable: STAGE_RESULT_ON_ORDER,
    },
    publishes: true,
  },

  // Charges when an order is placed, refunds when it is cancelled.
  payment: {
    handler: 'functions/payment.handler',
    eventTypes: ['OrderPlaced', 'OrderCancelled'],
    tables: {
      // Ledger entries and the simulator's records are read by key (GetItem), never queried:
      // ledgerOf (Query) is for the integration tests, which read with their own credentials.
      PaymentsTable: ['GetItem', 'PutItem', 'UpdateItem'],
      // The card token the order API left: read to charge, deleted once the charge is decided.
      PaymentTokensTable: ['GetItem', 'DeleteItem'],
      IdempotencyTable: IDEMPOTENCY_RECORDS,
      OrdersTable: STAGE_RESULT_ON_ORDER,
    },
    publishes: true,
  },

  // Prepares a shipment when an order is placed, dispatches or cancels it once decided.
  shipping: {
    handler: 'functions/shipping.handler',
    eventTypes: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'],
    tables: {
      ShipmentsTable: ['GetItem', 'PutItem', 'UpdateItem'],
      IdempotencyTable: IDEMPOTENCY_RECORDS,
      OrdersTable: STAGE_RESULT_ON_ORDER,
    },
    publishes: true,
  },
};
