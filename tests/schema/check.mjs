// Parse every session document of a project on the Firestore emulator with
// a copy of the web app's zod schema (the contract firesyncd writes to).
// usage: node check.mjs HOST:PORT PROJECT
// Prints one line per document that fails and exits 1 if any does.
import { z } from 'zod';

const sessionStateSchema = z.enum([
  'created', 'captured', 'transforming', 'ready', 'error',
]);
const stepInputValueSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), value: z.string() }),
  z.object({ type: z.literal('boolean'), value: z.boolean() }),
  z.object({ type: z.literal('number'), value: z.number() }),
  z.object({ type: z.literal('selection'), selectedId: z.string() }),
  z.object({ type: z.literal('selections'), selectedIds: z.array(z.string()) }),
  z.object({ type: z.literal('photo'), url: z.string().url() }),
]);
const sessionDataSchema = z.object({
  selected_experience_id: z.string().optional(),
}).catchall(stepInputValueSchema.optional());
const sessionSchema = z.object({
  id: z.string(),
  eventId: z.string(),
  state: sessionStateSchema,
  inputImagePath: z.string().optional(),
  resultImagePath: z.string().url().optional(),
  error: z.string().optional(),
  journeyId: z.string().optional(),
  currentStepIndex: z.number().int().min(0).optional(),
  data: sessionDataSchema.optional(),
  createdAt: z.number(),
  updatedAt: z.number(),
});

// Firestore REST Value -> plain JS, as the web SDK hands it to the app.
function plain(v) {
  if ('nullValue' in v) return null;
  if ('booleanValue' in v) return v.booleanValue;
  if ('integerValue' in v) return Number(v.integerValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('stringValue' in v) return v.stringValue;
  if ('timestampValue' in v) return new Date(v.timestampValue);
  if ('bytesValue' in v) return v.bytesValue;
  if ('referenceValue' in v) return v.referenceValue;
  if ('geoPointValue' in v) return v.geoPointValue;
  if ('arrayValue' in v) return (v.arrayValue.values || []).map(plain);
  if ('mapValue' in v) return fields(v.mapValue.fields || {});
  throw new Error('unknown value ' + JSON.stringify(v));
}
function fields(f) {
  const o = {};
  for (const [k, v] of Object.entries(f)) o[k] = plain(v);
  return o;
}

const [host, project] = process.argv.slice(2);
if (!host || !project) {
  console.error('usage: node check.mjs HOST:PORT PROJECT');
  process.exit(2);
}
const url = `http://${host}/v1/projects/${project}/databases/(default)/documents:runQuery`;
const res = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: 'Bearer owner' },
  body: JSON.stringify({
    structuredQuery: { from: [{ collectionId: 'sessions', allDescendants: true }] },
  }),
});
if (!res.ok) {
  console.error(`runQuery failed: ${res.status} ${await res.text()}`);
  process.exit(2);
}
let n = 0, bad = 0;
for (const row of await res.json()) {
  if (!row.document) continue;
  n++;
  const doc = fields(row.document.fields || {});
  const r = sessionSchema.safeParse(doc);
  if (!r.success) {
    bad++;
    console.log(`schema violation: ${row.document.name}: ${JSON.stringify(r.error.issues)}`);
  }
}
console.log(`schema check: ${n} session document(s), ${bad} invalid`);
process.exit(bad ? 1 : 0);
