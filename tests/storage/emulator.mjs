// Google's Cloud Storage for Firebase emulator (the StorageEmulator class
// of the firebase-tools package), started on loopback for the tests.
//
// The command line's start downloads a security-rules runtime; instead,
// the rules below stand in for it: the rules a Firebase app serving
// firesync would deploy.  Clients (anything but the admin credential,
// which bypasses rules as on Google's servers) may upload their own
// capture and nothing else; nobody reads captures/, results/ or
// references/ directly: a result opens only with its download token.
//
//   node emulator.mjs PORT PROJECT
// prints "ready PORT" on stdout once it listens; stops on SIGTERM.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { StorageEmulator } = require(
  "firebase-tools/lib/emulator/storage/index.js");
const { EmulatorRegistry } = require(
  "firebase-tools/lib/emulator/registry.js");
const { StorageRulesIssues } = require(
  "firebase-tools/lib/emulator/storage/rules/runtime.js");

// The emulator's own warnings (a failed request's stack) on stderr.
process.env.IS_FIREBASE_CLI = "true";
require("firebase-tools/lib/logger.js").useConsoleLoggers();

const [port, project] = [Number(process.argv[2]), process.argv[3] || "demo-firesync"];
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node emulator.mjs PORT [PROJECT]");
  process.exit(2);
}

// request.path is "/b/BUCKET/o/NAME"; request.token is the bearer token
// of a signed-in client, if any.
function permit({ method, path, token }) {
  const m = /^\/b\/[^/]+\/o\/(.*)$/.exec(path);
  if (!m) return false;
  const name = m[1];
  if (method === "create" &&
      /^captures\/[^/]+\/[^/]+\/[^/]+$/.test(name))
    return token !== undefined;	// request.auth != null
  return false;
}

const ruleset = {
  async verify(opts) {
    return { permitted: permit(opts), issues: new StorageRulesIssues() };
  },
};

// Blobs in a directory of our own, removed at exit.
const dir = mkdtempSync(join(tmpdir(), "firesync-storage-"));
process.env.TMPDIR = dir;

const emu = new StorageEmulator({
  projectId: project, host: "127.0.0.1", port,
  rules: { name: "firesync-test.rules", content: "" },
  auto_download: false,
});
emu._rulesRuntime = { start: async () => {}, stop: async () => {} };
emu.createRulesManager = () => ({
  start: async () => new StorageRulesIssues(),
  stop: async () => {},
  getRuleset: () => ruleset,
});
emu._rulesManager = emu.createRulesManager();

// through the registry, where the emulator looks up its own address
await EmulatorRegistry.start(emu);
console.log(`ready ${port}`);

async function stop() {
  try { await emu.stop(); } finally {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
