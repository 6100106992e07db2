// Drives @google-cloud/pubsub (the Node client, pinned in package.json) against
// the server named by PUBSUB_EMULATOR_HOST, following a JSON plan in argv[2];
// prints one JSON document: {"results": [...]}, one entry per step.
//
// Steps (topic / subscription: full resource paths):
//   {op: "publish", topic, ordering?, messages: [{text | base64, attributes?, orderingKey?}]}
//       -> {ids}
//   {op: "subscribe", subscriptions: [...], expect, action, timeoutMs?, holdMs?,
//    maxAckDeadlineSeconds?}
//       -> {received: [{subscription, id, text, attributes, orderingKey, deliveryAttempt}]}
// subscribe opens every subscription at once in this one process (the client's
// default of 5 streams each) and returns once `expect` deliveries arrived.
// action: ack | nackFirst (nack each message's first delivery, ack the rest)
//         | nackAll. holdMs waits that long before acking (the client extends
// the lease meanwhile, every maxAckDeadlineSeconds or less when given).
import { Duration, PubSub } from "@google-cloud/pubsub";

const plan = JSON.parse(process.argv[2]);
const pubsub = new PubSub({ projectId: plan.projectId });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function publish(step) {
  const topic = pubsub.topic(step.topic, step.ordering ? { messageOrdering: true } : {});
  const ids = [];
  for (const m of step.messages) {
    const data = m.base64 !== undefined ? Buffer.from(m.base64, "base64") : Buffer.from(m.text);
    const message = { data, attributes: m.attributes ?? {} };
    if (m.orderingKey) message.orderingKey = m.orderingKey;
    ids.push(await topic.publishMessage(message));
  }
  await topic.flush();
  return { ids };
}

async function subscribe(step) {
  const received = [];
  const seenOnce = new Set();
  const options = {};
  if (step.maxAckDeadlineSeconds) {
    options.minAckDeadline = Duration.from({ seconds: 1 });
    options.maxAckDeadline = Duration.from({ seconds: step.maxAckDeadlineSeconds });
  }
  const subscriptions = step.subscriptions.map((name) => pubsub.subscription(name, options));
  let finish;
  let fail;
  const done = new Promise((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const timer = setTimeout(finish, step.timeoutMs ?? 30000);
  for (const [index, subscription] of subscriptions.entries()) {
    subscription.on("error", fail);
    subscription.on("message", async (message) => {
      received.push({
        subscription: step.subscriptions[index],
        id: message.id,
        text: message.data.toString(),
        attributes: { ...message.attributes },
        orderingKey: message.orderingKey || null,
        deliveryAttempt: message.deliveryAttempt ?? null,
      });
      if (received.length >= step.expect) finish();
      const first = !seenOnce.has(message.id);
      seenOnce.add(message.id);
      if (step.action === "nackAll" || (step.action === "nackFirst" && first)) {
        message.nack();
        return;
      }
      if (step.holdMs) await sleep(step.holdMs);
      message.ack();
    });
  }
  try {
    await done;
  } finally {
    clearTimeout(timer);
    // Acks are sent in batches: give the last ones time to leave before closing.
    await sleep(300);
    await Promise.all(subscriptions.map((s) => s.close()));
  }
  return { received };
}

const results = [];
for (const step of plan.steps) {
  try {
    if (step.op === "publish") results.push(await publish(step));
    else if (step.op === "subscribe") results.push(await subscribe(step));
    else throw new Error(`unknown op ${step.op}`);
  } catch (error) {
    results.push({
      error: { name: error.name ?? null, code: error.code ?? null, message: String(error.message) },
    });
  }
}
await pubsub.close();
process.stdout.write(JSON.stringify({ results }) + "\n");
