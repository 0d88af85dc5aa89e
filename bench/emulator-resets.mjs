// How the Firestore emulator answers a query listener after each write,
// seen through the official Node client (the one the reference daemon
// uses), so that it is the emulator's behaviour and not our client's.
//
// It listens to the "sessions" collection group where state == captured,
// as firesyncd and the reference both do, then creates 20 captured
// sessions one at a time and moves each to "transforming" (a claim),
// counting the Listen messages the client is sent for each phase.
//
// usage: (cd tools/node-reference && npm ci)
//        cloud_firestore_emulator start --host=127.0.0.1 --port=8085 &
//        node bench/emulator-resets.mjs 127.0.0.1:8085
import { createRequire } from 'node:module';

const require = createRequire(
  new URL('../tools/node-reference/package.json', import.meta.url));
const { Firestore, setLogFunction } = require('@google-cloud/firestore');

const host = process.argv[2];
if (!host) {
  console.error('usage: node bench/emulator-resets.mjs HOST:PORT');
  process.exit(2);
}
process.env.FIRESTORE_EMULATOR_HOST = host;

// The client logs one line per Listen message it processes; a RESET is
// a target change whose handling logs "resetDocs" (see watch.js).
const seen = { changes: 0, documents: 0 };
let resets = 0;
setLogFunction((line) => {
  if (line.includes('Processing target change')) seen.changes++;
  else if (line.includes('Processing change event')) seen.documents++;
});

const db = new Firestore({ projectId: `resets-${process.pid}` });
const settle = () => new Promise((r) => setTimeout(r, 1000));
const query = db.collectionGroup('sessions').where('state', '==', 'captured');
const watch = query.onSnapshot(() => {}, (e) => {
  console.error(`listen failed: ${e.message}`);
  process.exit(1);
});
// Count RESETs from the client's own handling of them.
const Watch = require('@google-cloud/firestore/build/src/watch.js');
const reset = Watch.QueryWatch.prototype.resetDocs;
Watch.QueryWatch.prototype.resetDocs = function (...a) {
  resets++;
  return reset.apply(this, a);
};

function phase(label, n) {
  console.log(`${label}: ${n} writes -> ${resets} RESETs, ` +
    `${seen.documents} documents sent, ${seen.changes} target changes`);
  resets = 0;
  seen.changes = 0;
  seen.documents = 0;
}

await settle();
phase('listen opened', 0);
for (let i = 0; i < 20; i++)
  await db.doc(`events/e/sessions/s${i}`).set({ state: 'captured', i });
await settle();
phase('captured one at a time', 20);
for (let i = 0; i < 20; i++)
  await db.doc(`events/e/sessions/s${i}`).update({ state: 'transforming' });
await settle();
phase('claimed one at a time', 20);
watch();
process.exit(0);
