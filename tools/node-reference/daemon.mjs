// The job firesyncd does, written with the official Firestore Node client:
// a reference point for tools/firesync-bench, not part of the product.
//
// Listens to sessions in state "captured" (collection group) and to the
// experiences collection (a live cache), claims a session with an
// update-time precondition, reads the capture from local storage, writes
// results/{event}/{session}/result.png and finishes "ready".  It does less
// work than firesyncd per session (it copies the capture's bytes instead of
// decoding and re-encoding them), so the comparison favours it.
//
// usage: node daemon.mjs --emulator HOST:PORT --project ID --storage-root DIR
import { Firestore, FieldValue } from '@google-cloud/firestore';
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises';
import path from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
process.env.FIRESTORE_EMULATOR_HOST = args.emulator;
const db = new Firestore({ projectId: args.project });
const root = args['storage-root'];
const experiences = new Map();
const inflight = new Set();

db.collection('experiences').onSnapshot((snap) => {
  for (const ch of snap.docChanges()) {
    if (ch.type === 'removed') experiences.delete(ch.doc.id);
    else experiences.set(ch.doc.id, ch.doc.data());
  }
});

async function run(doc) {
  const ref = doc.ref;
  const eventId = ref.parent.parent.id;
  const sessionId = ref.id;
  let claim;
  try {
    claim = await ref.update({ state: 'transforming', updatedAt: Date.now() },
      { lastUpdateTime: doc.updateTime });
  } catch (e) {
    return;   // someone else got there first
  }
  const finish = (fields) => ref.update({ ...fields, updatedAt: Date.now() },
    { lastUpdateTime: claim.writeTime });
  try {
    const data = doc.data();
    const exp = experiences.get(data.data?.selected_experience_id);
    if (!exp) throw new Error('experience not found');
    if (exp.aiPhotoConfig?.enabled) throw new Error('no plugin');
    const bytes = await readFile(path.join(root, data.inputImagePath));
    const rel = `results/${eventId}/${sessionId}/result.png`;
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    const tmp = path.join(root, rel + '.tmp');
    await writeFile(tmp, bytes);
    await rename(tmp, path.join(root, rel));
    await finish({ state: 'ready', resultImagePath: `file://${root}/${rel}`,
      error: FieldValue.delete() });
  } catch (e) {
    await finish({ state: 'error', error: `AI transform failed: ${e.message}` });
  }
}

db.collectionGroup('sessions').where('state', '==', 'captured').onSnapshot((snap) => {
  for (const ch of snap.docChanges()) {
    if (ch.type === 'removed' || inflight.has(ch.doc.ref.path)) continue;
    inflight.add(ch.doc.ref.path);
    run(ch.doc).finally(() => inflight.delete(ch.doc.ref.path));
  }
});

process.on('SIGTERM', () => process.exit(0));
