// The JavaScript peers of bench/peers (see README.md): run one after the
// other with the Go rows on the same Redis, and compared by ratio.
//
//   node bench.mjs [-addr 127.0.0.1:6390] [-rows get50,size] [-runs 3] [-dur 1]
//
// get50: 1,000 hot keys of 100-byte values; 50 async loops GET a random one
// through one node-redis client with default options (which pipelines the
// commands issued in one tick), for -dur seconds after a fifth of it
// unmeasured; ns per operation (the inverse of throughput).
// size: BaseMap's size (backtest-kit's BaseMap.ts, L180-190: SCAN MATCH
// ns:* COUNT 100, count += keys.length, on ioredis 5.6.1, the client
// BaseMap uses) of a namespace of 100,000 keys among 100,000 keys of another
// namespace, and alone; milliseconds, median of 5 passes.
import { createClient } from "redis";
import IORedis from "ioredis";
import { randomBytes } from "node:crypto";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("-") ? [...acc, [a.slice(1), all[i + 1]]] : acc), []),
);
const addr = args.addr ?? "127.0.0.1:6390";
const rows = (args.rows ?? "get50,size").split(",");
const runs = Number(args.runs ?? 3);
const dur = Number(args.dur ?? 1) * 1000;
const [host, port] = addr.split(":");

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function get50(prefix) {
  const c = createClient({ url: `redis://${addr}` });
  c.on("error", (e) => console.error("node-redis:", e.message));
  await c.connect();
  const value = "v".repeat(100);
  const keys = Array.from({ length: 1000 }, (_, i) => `${prefix}:hot${i}`);
  await Promise.all(keys.map((k) => c.set(k, value)));
  let stop = false;
  let ops = 0;
  let counting = false;
  const loop = async () => {
    while (!stop) {
      await c.get(keys[(Math.random() * keys.length) | 0]);
      if (counting) ops++;
    }
  };
  const loops = Array.from({ length: 50 }, loop);
  await new Promise((r) => setTimeout(r, dur / 5));
  counting = true;
  const start = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, dur));
  const el = Number(process.hrtime.bigint() - start);
  counting = false;
  stop = true;
  await Promise.all(loops);
  await c.del(keys);
  await c.quit();
  return el / ops;
}

// baseMapSize is BaseMap.size, as written there (no TYPE filter; a key
// returned twice by SCAN is counted twice).
async function baseMapSize(redis, ns) {
  let cursor = "0";
  let count = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${ns}:*`, "COUNT", 100);
    cursor = next;
    count += keys.length;
  } while (cursor !== "0");
  return count;
}

async function fill(redis, ns, n) {
  for (let i = 0; i < n; i += 1000) {
    const p = redis.pipeline();
    for (let j = i; j < Math.min(n, i + 1000); j++) p.set(`${ns}:k${j}`, "v".repeat(100));
    await p.exec();
  }
}

async function clear(redis, ns) {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${ns}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
}

async function size(prefix) {
  const redis = new IORedis({ host, port: Number(port), lazyConnect: true });
  await redis.connect();
  const ns = `${prefix}size`;
  const other = `${prefix}other`;
  await fill(redis, ns, 100000);
  const out = {};
  for (const [name, withOthers] of [["alone", false], ["among 100k", true]]) {
    if (withOthers) await fill(redis, other, 100000);
    const times = [];
    for (let i = 0; i < 5; i++) {
      const start = process.hrtime.bigint();
      const n = await baseMapSize(redis, ns);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (n < 100000) throw new Error(`size ${n}, want at least 100000`);
    }
    out[name] = median(times);
  }
  await clear(redis, ns);
  await clear(redis, other);
  await redis.quit();
  return out;
}

const results = { get50: [], size: [] };
for (let run = 1; run <= runs; run++) {
  const prefix = `peersjs${randomBytes(4).toString("hex")}`;
  if (rows.includes("get50")) {
    const ns = await get50(prefix);
    results.get50.push(ns);
    console.log(`run ${run}: get50 node-redis ${ns.toFixed(0)} ns/op (${(1e9 / ns / 1000).toFixed(1)}k ops/s)`);
  }
  if (rows.includes("size")) {
    const s = await size(prefix);
    results.size.push(s);
    console.log(`run ${run}: size basemap-js alone ${s.alone.toFixed(1)} ms, among 100k ${s["among 100k"].toFixed(1)} ms`);
  }
}
if (results.get50.length) console.log(`median get50 node-redis ${median(results.get50).toFixed(0)} ns/op`);
if (results.size.length) {
  console.log(`median size basemap-js alone ${median(results.size.map((s) => s.alone)).toFixed(1)} ms, among 100k ${median(results.size.map((s) => s["among 100k"])).toFixed(1)} ms`);
}
