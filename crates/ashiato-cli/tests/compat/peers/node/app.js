// A small express shop service, run unmodified under the OpenTelemetry
// zero-code loader:
//
//   node --require @opentelemetry/auto-instrumentations-node/register app.js
//
// Everything about telemetry comes from OTEL_* variables; this file only
// uses @opentelemetry/api where an application would (recording a handled
// error on the active span). PORT is where it listens.
//
//   GET /checkout/:id         calls GET /inventory/:id of this same service
//                             over http (a client span joined to a second
//                             server span)
//   GET /inventory/:id        answers the stock of an item
//   GET /payments/pay/:id     (a router) an async handler throws
//                             PaymentDeclined; express 5 hands the
//                             rejection to the error handler (500)
//   GET /payments/refund/:id  records a handled RefundRejected on the
//                             active span with attributes of its own (502)
//
// Every request goes through express.json(), a middleware as most apps
// have one.
'use strict';

const http = require('node:http');
const express = require('express');
const { trace, SpanStatusCode } = require('@opentelemetry/api');

// Does not set `name`, as plenty of code does not: it inherits `Error`,
// which is what the stack's first line and the SDK's exception.type say;
// the class name appears nowhere in what is exported.
class PaymentDeclined extends Error {}

// Sets `name`, the other common style: exception.type is `RefundRejected`.
class RefundRejected extends Error {
  constructor(message) {
    super(message);
    this.name = 'RefundRejected';
  }
}

const port = Number(process.env.PORT);
const app = express();
app.use(express.json());

function getJson(path) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(JSON.parse(body)));
    });
    request.on('error', reject);
  });
}

app.get('/inventory/:id', (req, res) => {
  res.json({ item: req.params.id, in_stock: 3 });
});

app.get('/checkout/:id', async (req, res) => {
  const stock = await getJson(`/inventory/${req.params.id}`);
  res.json({ order: req.params.id, stock });
});

const payments = express.Router();

async function chargeCard(orderId) {
  await new Promise((resolve) => setImmediate(resolve));
  throw new PaymentDeclined(`card declined for order ${orderId}`);
}

payments.get('/pay/:id', async (req, res) => {
  await chargeCard(req.params.id);
  res.json({ paid: true });
});

function refund(orderId) {
  throw new RefundRejected(`refund window closed for order ${orderId}`);
}

payments.get('/refund/:id', (req, res) => {
  try {
    refund(req.params.id);
    res.json({ refunded: true });
  } catch (error) {
    const span = trace.getActiveSpan();
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.setAttributes({ 'refund.order_id': req.params.id, 'refund.amount': 42.5, 'refund.retryable': false });
    res.status(502).json({ refunded: false });
  }
});

app.use('/payments', payments);

// express 5 passes a rejected async handler's error here.
app.use((error, req, res, next) => {
  res.status(500).json({ error: error.message });
});

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${port}`);
});

// The loader's own SIGTERM handler flushes the SDK, but a SIGTERM listener
// replaces Node's default exit, so the app closes its server to let the
// process end once the flush is done.
process.on('SIGTERM', () => server.close());
