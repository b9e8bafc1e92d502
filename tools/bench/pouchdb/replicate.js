// The PouchDB side of tools/bench/sync.sh (a benchmark, not a test).
//
//   node replicate.js push RECORDS.jsonl SERVER_URL DIR
//   node replicate.js pull RECORDS.jsonl SERVER_URL DIR
//
// push: loads the records (one JSON document per line, the same
// beneficiaries as the spro-sync side) into a local PouchDB (LevelDB in
// DIR/src), then replicates them to the database "bench" of a
// pouchdb-server.  pull: replicates that database into a fresh local
// PouchDB (DIR/dst), the initial sync of a new device, then checks every
// field of every document.  Both replications use batch_size 500.  Prints
// one line: "pouchdb-push key value ..." or "pouchdb-pull key value ...".
'use strict';

const fs = require('fs');
const PouchDB = require('pouchdb-node');

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

async function push(docs, url, dir) {
  const src = new PouchDB(`${dir}/src`);
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < docs.length; i += 1000) {
    const res = await src.bulkDocs(docs.slice(i, i + 1000));
    if (res.some((r) => !r.ok)) throw new Error('local load failed');
  }
  const loadS = seconds(t0);
  const remote = new PouchDB(`${url}/bench`);
  await remote.info(); // creates the database
  t0 = process.hrtime.bigint();
  const rep = await PouchDB.replicate(src, remote, { batch_size: 500 });
  const s = seconds(t0);
  if (!rep.ok || rep.docs_written !== docs.length) {
    throw new Error(`push wrote ${rep.docs_written} of ${docs.length}`);
  }
  console.log(
    `pouchdb-push docs ${docs.length} seconds ${s.toFixed(2)} ` +
      `docs/s ${(docs.length / s).toFixed(0)} local_load_s ${loadS.toFixed(2)}`
  );
  await Promise.all([src.close(), remote.close()]);
}

async function pull(docs, url, dir) {
  const remote = new PouchDB(`${url}/bench`, { skip_setup: true });
  const dst = new PouchDB(`${dir}/dst`);
  const t0 = process.hrtime.bigint();
  const rep = await PouchDB.replicate(remote, dst, { batch_size: 500 });
  const s = seconds(t0);
  if (!rep.ok || rep.docs_written !== docs.length) {
    throw new Error(`pull wrote ${rep.docs_written} of ${docs.length}`);
  }
  let bad = 0;
  for (let i = 0; i < docs.length; i += 1000) {
    const keys = docs.slice(i, i + 1000).map((d) => d._id);
    const got = await dst.allDocs({ keys, include_docs: true });
    got.rows.forEach((row, k) => {
      const want = docs[i + k];
      const doc = row.doc || {};
      for (const f of Object.keys(want)) if (doc[f] !== want[f]) bad++;
    });
  }
  if (bad !== 0) throw new Error(`${bad} fields differ after the round trip`);
  console.log(
    `pouchdb-pull docs ${docs.length} seconds ${s.toFixed(2)} ` +
      `docs/s ${(docs.length / s).toFixed(0)} bad ${bad}`
  );
  await Promise.all([dst.close(), remote.close()]);
}

async function main() {
  const [mode, file, url, dir] = process.argv.slice(2);
  if (!['push', 'pull'].includes(mode) || !file || !url || !dir) {
    console.error('usage: node replicate.js push|pull RECORDS.jsonl SERVER_URL DIR');
    process.exit(2);
  }
  const docs = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  await (mode === 'push' ? push : pull)(docs, url, dir);
}

main().catch((e) => {
  console.error(`replicate.js: ${e.stack || e}`);
  process.exit(1);
});
