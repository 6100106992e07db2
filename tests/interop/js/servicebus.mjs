// Drives @azure/service-bus (the JavaScript SDK, pinned in package.json)
// through a plan of steps given as JSON in argv[2], and prints one JSON
// document: {"results": [...]}, one entry per step. A step that fails records
// {"error": {"name", "code"}} and the plan goes on, so a test can check that
// the server refused something and what happened after.
//
// Steps (entity = queue name; subQueue "deadLetter" reads the dead-letter queue):
//   {op: "send", entity, messages: [MESSAGE...]}
//   {op: "schedule", entity, messages: [MESSAGE...], inMs}   -> {sequenceNumbers}
//   {op: "cancelScheduled", entity, sequenceNumbers}     ("last": the previous schedule's)
//   {op: "receive", entity, subQueue?, max, waitMs, settle, reason?, description?,
//    renewals?, holdMs?}                                      -> {messages}
//   {op: "receiveDeferred", entity, sequenceNumbers, settle} -> {messages}
//   {op: "peek", entity, max, fresh?}                        -> {messages}
//   (peeks browse on from the last one on the connection; fresh: a new connection)
// MESSAGE: {body | bodyBase64, messageId, correlationId, subject, contentType,
//           applicationProperties, timeToLiveMs, replyTo, to}
// settle: complete | abandon | deadLetter | defer | none. With renewals = n the
// lock is renewed n times, holdMs apart, before settling. Sequence numbers are
// the SDK's Long values seen earlier in the same plan, named by their text.
import { ServiceBusClient } from "@azure/service-bus";

const plan = JSON.parse(process.argv[2]);
const client = new ServiceBusClient(plan.connectionString, {
  retryOptions: { maxRetries: 0, timeoutInMs: 10000 },
});
const receivers = new Map();
const senders = new Map();
const longs = new Map(); // sequence number text -> the SDK's Long, as seen in this run
let lastScheduled = [];

function remembered(text) {
  if (!longs.has(text)) throw new Error(`sequence number ${text} was not seen in this plan`);
  return longs.get(text);
}

function sender(entity) {
  if (!senders.has(entity)) senders.set(entity, client.createSender(entity));
  return senders.get(entity);
}

function receiver(entity, subQueue) {
  const key = `${entity}|${subQueue ?? ""}`;
  if (!receivers.has(key)) {
    const options = subQueue ? { subQueueType: subQueue } : {};
    receivers.set(key, client.createReceiver(entity, options));
  }
  return receivers.get(key);
}

function toMessage(spec) {
  const message = { ...spec };
  delete message.bodyBase64;
  delete message.timeToLiveMs;
  if (spec.bodyBase64 !== undefined) message.body = Buffer.from(spec.bodyBase64, "base64");
  if (spec.timeToLiveMs !== undefined) message.timeToLive = spec.timeToLiveMs;
  return message;
}

function describe(m) {
  if (m.sequenceNumber !== undefined) longs.set(m.sequenceNumber.toString(), m.sequenceNumber);
  const body = Buffer.isBuffer(m.body) ? { base64: m.body.toString("base64") } : { json: m.body };
  const properties = {};
  for (const [k, v] of Object.entries(m.applicationProperties ?? {})) {
    properties[k] = v instanceof Date ? { date: v.toISOString() } : v;
  }
  return {
    body,
    messageId: m.messageId ?? null,
    correlationId: m.correlationId ?? null,
    subject: m.subject ?? null,
    contentType: m.contentType ?? null,
    replyTo: m.replyTo ?? null,
    to: m.to ?? null,
    applicationProperties: properties,
    deliveryCount: m.deliveryCount ?? null,
    sequenceNumber: m.sequenceNumber === undefined ? null : m.sequenceNumber.toString(),
    lockedUntilUtc: m.lockedUntilUtc ? m.lockedUntilUtc.toISOString() : null,
    enqueuedTimeUtc: m.enqueuedTimeUtc ? m.enqueuedTimeUtc.toISOString() : null,
    deadLetterReason: m.deadLetterReason ?? null,
    deadLetterErrorDescription: m.deadLetterErrorDescription ?? null,
    state: m.state ?? null,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function settle(r, m, step, out) {
  const renewed = [];
  for (let i = 0; i < (step.renewals ?? 0); i++) {
    await sleep(step.holdMs ?? 0);
    renewed.push((await r.renewMessageLock(m)).toISOString());
  }
  if (renewed.length) out.renewedUntil = renewed;
  if ((step.renewals ?? 0) === 0 && step.holdMs) await sleep(step.holdMs);
  switch (step.settle ?? "none") {
    case "complete":
      return r.completeMessage(m);
    case "abandon":
      return r.abandonMessage(m);
    case "deadLetter":
      return r.deadLetterMessage(m, {
        deadLetterReason: step.reason,
        deadLetterErrorDescription: step.description,
      });
    case "defer":
      return r.deferMessage(m);
    case "none":
      return undefined;
    default:
      throw new Error(`unknown settle ${step.settle}`);
  }
}

async function run(step) {
  switch (step.op) {
    case "send":
      await sender(step.entity).sendMessages(step.messages.map(toMessage));
      return {};
    case "schedule": {
      const when = new Date(Date.now() + step.inMs);
      const numbers = await sender(step.entity).scheduleMessages(
        step.messages.map(toMessage),
        when,
      );
      for (const n of numbers) longs.set(n.toString(), n);
      lastScheduled = numbers;
      return { sequenceNumbers: numbers.map((n) => n.toString()), at: when.toISOString() };
    }
    case "cancelScheduled":
      await sender(step.entity).cancelScheduledMessages(
        step.sequenceNumbers === "last" ? lastScheduled : step.sequenceNumbers.map(remembered),
      );
      return {};
    case "receive": {
      const r = receiver(step.entity, step.subQueue);
      const got = await r.receiveMessages(step.max ?? 1, { maxWaitTimeInMs: step.waitMs ?? 5000 });
      const out = { messages: got.map(describe) };
      for (const m of got) await settle(r, m, step, out);
      return out;
    }
    case "receiveDeferred": {
      const r = receiver(step.entity, step.subQueue);
      const got = await r.receiveDeferredMessages(step.sequenceNumbers.map(remembered));
      const out = { messages: got.map(describe) };
      for (const m of got) await settle(r, m, step, out);
      return out;
    }
    case "peek": {
      if (!step.fresh) {
        const got = await receiver(step.entity, step.subQueue).peekMessages(step.max ?? 10);
        return { messages: got.map(describe) };
      }
      const other = new ServiceBusClient(plan.connectionString);
      try {
        const got = await other.createReceiver(step.entity).peekMessages(step.max ?? 10);
        return { messages: got.map(describe) };
      } finally {
        await other.close();
      }
    }
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

const results = [];
for (const step of plan.steps) {
  try {
    results.push(await run(step));
  } catch (error) {
    const message = String(error.message ?? "").slice(0, 300);
    results.push({ error: { name: error.name ?? null, code: error.code ?? null, message } });
  }
}
for (const r of receivers.values()) await r.close();
for (const s of senders.values()) await s.close();
await client.close();
process.stdout.write(JSON.stringify({ results }) + "\n");
