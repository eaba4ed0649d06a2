/**
 * Redis Streams transport (`redis`, node-redis 6, RESP3), following the Redis docs (redis.io:
 * "Redis Streams", `XADD`, `XREADGROUP`, `XACK`, `XAUTOCLAIM`, `XCLAIM`, `XINFO GROUPS`); needs
 * Redis 7.0 or later (`XAUTOCLAIM` reporting deleted entries, the `lag` field of `XINFO GROUPS`).
 *
 * Keys (`{p}` = `prefix:` when a prefix is given, else nothing):
 *
 * | key                         | type   | what                                                   |
 * |-----------------------------|--------|--------------------------------------------------------|
 * | `{p}{topic}`                | stream | one stream per bus topic, e.g. `market.crypto.trades.binance` |
 * | `{p}k2:bus:topics`          | set    | the topics published to, for consumers to find streams  |
 * | `{p}k2:bus:id:{message_id}` | string | dedupe marker, expires after the dedupe window          |
 *
 * An entry's fields: `key` (the bus key, the symbol), `id` (the message id), `value` (the record as
 * JSON: DECIMAL(18,8) strings, µs numbers).
 *
 * Publish: each message is one `EVALSHA` of a small script that sets the dedupe marker
 * (`SET NX PX window`) and, only when it was not set already, `XADD {p}{topic} MAXLEN ~ maxLen *`
 * (approximate trimming: Redis drops whole macro-nodes, so a stream holds at least `maxLen`
 * entries). A repeat of an id within the window is acknowledged and dropped, across clients, as
 * JetStream does with `Nats-Msg-Id`. Commands of one `publish()` are pipelined on one connection
 * (sent in order, so one key's records are stored in order), at most `maxPublishInFlight` at a
 * time; it resolves when Redis has answered every one. Commands are not queued while the connection
 * is down: a publish then fails at once (`Redis bus: publish failed: ...`), and the publisher's
 * retry / journal upstream takes over; the client reconnects in the background. Redis acknowledges
 * in memory: a message survives a Redis restart only as far as the server's own persistence (AOF /
 * RDB) and replication go.
 *
 * Consume: one consumer group per bus consume group on each stream whose topic starts with one of
 * the topic prefixes (`XGROUP CREATE ... 0 MKSTREAM`: a new group starts at the beginning of the
 * stream). Streams are found in the topic set, re-read every `topicRefreshMs`. One consumer reads
 * every stream with one `XREADGROUP ... BLOCK` on its own connection (consumer name
 * `{name}-{host}-{pid}-{random}`), up to `maxBatchSize` entries per read; a batch is handed over
 * once `batchSize` entries are waiting, or `maxWaitMs` after the first of them was read, or at once
 * when a read shows a backlog (the batch then grows up to `maxBatchSize`). Every entry of the
 * batch is `XACK`ed after the handler resolves; when it rejects, the same batch is handed over again
 * after a backoff (100 ms doubling to 5 s), each message counted as a redelivery. While a batch is
 * held its entries' idle time is reset (`XCLAIM ... JUSTID`, which does not count a delivery) every
 * `claimIdleMs / 3`, so a slow store write is not taken over. Entries a dead consumer left pending
 * for `claimIdleMs` are taken over with `XAUTOCLAIM`, checked every `claimIdleMs / 3`, and handed
 * over first, counted as redeliveries. Consumers with nothing pending that have not read for
 * `claimIdleMs` are removed from the group (`XGROUP DELCONSUMER`; a live one is re-created by its
 * next read). After a Redis restart (no group: `NOGROUP`), the groups are created again.
 * Consumer lag = Σ over the streams of the group's `lag` (entries not yet delivered to the group)
 * `+ pending` (delivered, not acknowledged), from `XINFO GROUPS` refreshed every `lagRefreshMs`.
 *
 * Retention is by length only: an entry trimmed before a group read it is lost to that group, and a
 * pending entry trimmed before it was acknowledged is reported (through `onError`) when a claim finds
 * it gone. Size `maxLen` above the longest backlog the store may build up.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { createClient, type RedisClientType } from "redis";
import { BUS_TOPIC_RE, type Bus, type BusMessage, type ConsumeOptions, type Consumer, latch } from "./bus.js";

/** Options of {@link RedisBus.connect}. */
export interface RedisBusOptions {
  /** Server URL: `redis://127.0.0.1:6379`. */
  url: string;
  /** Database number (default 0). */
  database?: number;
  /** Namespace of every key (letters, digits, `_`, `-`), e.g. a test run id: keys become `{prefix}:...`. */
  prefix?: string;
  /** Approximate length kept per stream, entries (`XADD MAXLEN ~`; default 1,000,000). */
  maxLen?: number;
  /** Dedupe window for message ids, ms (default 120000; 0 disables: plain `XADD`). */
  duplicateWindowMs?: number;
  /** A pending entry idle this long belongs to a dead consumer and is claimed, ms (default 30000). */
  claimIdleMs?: number;
  /** How long a publish waits for Redis's answers before failing, ms (default 10000). */
  publishTimeoutMs?: number;
  /** Commands outstanding at once within one `publish()` call (default 2048). */
  maxPublishInFlight?: number;
  /** `XINFO GROUPS` refresh period for `lag()`, ms (default 1000). */
  lagRefreshMs?: number;
  /** How often a consumer re-reads the topic set for new streams, ms (default 1000). */
  topicRefreshMs?: number;
  /** Client name shown by `CLIENT LIST` and prefix of consumer names (default `k2`). */
  name?: string;
  /** Called with errors a consumer recovers from (read failures, undecodable entries, lost entries). */
  onError?: (err: Error, context: string) => void;
}

/** Defaults of {@link RedisBusOptions}. */
export const REDIS_BUS_DEFAULTS = {
  maxLen: 1_000_000,
  duplicateWindowMs: 120_000,
  claimIdleMs: 30_000,
  publishTimeoutMs: 10_000,
  maxPublishInFlight: 2048,
  lagRefreshMs: 1000,
  topicRefreshMs: 1000,
  name: "k2",
};

type Client = RedisClientType;
/** A stream entry as RESP3 returns it: [entry id, [field, value, ...]]. */
type Entry = [string, string[]];
/** A read entry with the stream it came from. */
interface Held {
  stream: string;
  entryId: string;
  fields: string[];
}

/**
 * Sets the dedupe marker KEYS[2] for ARGV[1] ms; only when it was not there, appends to stream
 * KEYS[1] trimmed to about ARGV[2] entries. Returns the entry id, or false for a duplicate.
 */
const PUBLISH_SCRIPT = `if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'key', ARGV[3], 'id', ARGV[4], 'value', ARGV[5])
end
return false`;

/**
 * Publish commands carry no per-command timer (node-redis 6 arms one per command, 5 s by default,
 * costing about a fifth of the publish CPU): `publish()` has its own `publishTimeoutMs` watchdog.
 */
const UNTIMED = { timeout: 0 };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const backoff = (failures: number) => Math.min(5000, 50 * 2 ** Math.min(failures, 7));

/** Redis Streams transport; create with {@link RedisBus.connect}. */
export class RedisBus implements Bus {
  readonly name = "redis";
  /** Publishes dropped as duplicates (the id's marker was still set). */
  deduplicated = 0;
  /** Key prefix: `{prefix}:` or "". */
  readonly keyPrefix: string;
  private readonly topicsKey: string;
  private readonly knownTopics = new Set<string>();
  private readonly consumers = new Set<{ stop(o?: { drain?: boolean }): Promise<void>; kill(): void }>();
  private readonly readers = new Set<Client>();
  private scriptSha: string | null = null;
  private disconnectedSince = 0;
  private closed = false;
  private readonly opts: Required<Omit<RedisBusOptions, "onError" | "prefix" | "database">> & {
    database: number | undefined;
    onError: NonNullable<RedisBusOptions["onError"]>;
  };

  private constructor(
    /** The command connection (publish, acks, claims, lag); consumers read on their own. */
    readonly client: Client,
    opts: RedisBusOptions,
  ) {
    this.keyPrefix = opts.prefix ? `${opts.prefix}:` : "";
    this.topicsKey = `${this.keyPrefix}k2:bus:topics`;
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = {
      ...REDIS_BUS_DEFAULTS,
      database: undefined,
      onError: () => {},
      ...(given as RedisBusOptions),
    };
  }

  /** A connection that fails at once when the first connect fails, and reconnects after that. */
  private static async open(opts: RedisBusOptions, name: string): Promise<Client> {
    let connected = false;
    const client = createClient({
      url: opts.url,
      database: opts.database,
      name,
      RESP: 3,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 5000,
        reconnectStrategy: (retries, cause) => (connected ? Math.min(100 * 2 ** retries, 2000) : cause),
      },
    }) as unknown as Client;
    client.on("error", () => undefined); // reported through publish / consume / check()
    try {
      await client.connect();
    } catch (e) {
      client.destroy();
      throw new Error(`Redis bus: cannot connect to ${opts.url}: ${(e as Error).message}`);
    }
    connected = true;
    return client;
  }

  /**
   * Connects and checks the server (Redis 7 or later).
   * @throws when the server cannot be reached (the message names the URL) or is older than 7.0
   */
  static async connect(opts: RedisBusOptions): Promise<RedisBus> {
    if (opts.prefix !== undefined && !/^[A-Za-z0-9_-]+$/.test(opts.prefix)) {
      throw new Error(`Redis bus: prefix "${opts.prefix}" must be letters, digits, "_" or "-"`);
    }
    const client = await RedisBus.open(opts, opts.name ?? "k2");
    try {
      const info = String(await client.sendCommand(["INFO", "server"]));
      const version = /redis_version:(\d+)/.exec(info)?.[1];
      if (version !== undefined && Number(version) < 7) {
        throw new Error(
          `Redis bus: ${opts.url} runs Redis ${version}; Redis Streams as a bus needs 7.0 or later`,
        );
      }
    } catch (e) {
      client.destroy();
      throw e;
    }
    const bus = new RedisBus(client, opts);
    client.on("end", () => {
      bus.disconnectedSince ||= Date.now();
    });
    client.on("reconnecting", () => {
      bus.disconnectedSince ||= Date.now();
    });
    client.on("ready", () => {
      bus.disconnectedSince = 0;
      bus.knownTopics.clear(); // a restarted server lost the topic set: register topics again
    });
    return bus;
  }

  /** Stream key of a topic: `{prefix:}{topic}`. */
  streamOf(topic: string): string {
    return this.keyPrefix + topic;
  }

  /**
   * Publishes every message and resolves when Redis has appended (or, for a repeated id, dropped)
   * all of them.
   * @throws when a topic is not a bus topic, the connection is down, Redis refuses a command, or no
   *   answer arrives for `publishTimeoutMs`; republishing the whole batch is safe within the dedupe
   *   window
   */
  async publish(messages: BusMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const fresh: string[] = [];
    for (const m of messages) {
      if (this.knownTopics.has(m.topic) || fresh.includes(m.topic)) continue;
      if (!BUS_TOPIC_RE.test(m.topic)) throw new Error(`Redis bus: not a bus topic: "${m.topic}"`);
      fresh.push(m.topic);
    }
    if (!this.client.isReady) {
      throw new Error(`Redis bus: publish failed: not connected to ${this.opts.url} (reconnecting)`);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from ${this.opts.url} for ${this.opts.publishTimeoutMs} ms`)),
        this.opts.publishTimeoutMs,
      );
    });
    try {
      await Promise.race([this.send(messages, fresh), timeout]);
    } catch (e) {
      throw new Error(`Redis bus: publish failed: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async send(messages: BusMessage[], fresh: string[]): Promise<void> {
    if (fresh.length > 0) {
      await this.client.sendCommand(["SADD", this.topicsKey, ...fresh], UNTIMED);
      for (const t of fresh) this.knownTopics.add(t);
    }
    const window = this.opts.duplicateWindowMs;
    const maxLen = String(this.opts.maxLen);
    const step = this.opts.maxPublishInFlight;
    for (let i = 0; i < messages.length; i += step) {
      const chunk = messages.slice(i, i + step);
      if (window <= 0) {
        await Promise.all(
          chunk.map((m) =>
            this.client.sendCommand(
              [
                ...["XADD", this.streamOf(m.topic), "MAXLEN", "~", maxLen, "*"],
                ...["key", m.key, "id", m.id, "value", JSON.stringify(m.value)],
              ],
              UNTIMED,
            ),
          ),
        );
        continue;
      }
      const sha = await this.loadScript();
      const run = (s: string) =>
        Promise.all(
          chunk.map((m) =>
            this.client.sendCommand(
              [
                ...["EVALSHA", s, "2", this.streamOf(m.topic), `${this.keyPrefix}k2:bus:id:${m.id}`],
                ...[String(window), maxLen, m.key, m.id, JSON.stringify(m.value)],
              ],
              UNTIMED,
            ),
          ),
        );
      let replies: unknown[];
      try {
        replies = await run(sha);
      } catch (e) {
        if (!/NOSCRIPT/.test(String(e))) throw e;
        this.scriptSha = null; // the server restarted or flushed its scripts: load again, resend
        replies = await run(await this.loadScript());
      }
      for (const r of replies) if (r === null || r === false) this.deduplicated++;
    }
  }

  private async loadScript(): Promise<string> {
    this.scriptSha ??= String(await this.client.sendCommand(["SCRIPT", "LOAD", PUBLISH_SCRIPT]));
    return this.scriptSha;
  }

  /** The topics published to on this server (under this bus's prefix). */
  async topics(): Promise<string[]> {
    return ((await this.client.sendCommand(["SMEMBERS", this.topicsKey])) as string[]) ?? [];
  }

  /** Deletes this bus's streams, topic set and dedupe markers (tests with a prefix clean up with it). */
  async deleteStreams(): Promise<void> {
    if (!this.keyPrefix) throw new Error("Redis bus: deleteStreams() needs a prefix");
    let cursor = "0";
    do {
      const [next, keys] = (await this.client.sendCommand([
        ...["SCAN", cursor, "MATCH", `${this.keyPrefix}*`, "COUNT", "1000"],
      ])) as [string, string[]];
      if (keys.length > 0) await this.client.sendCommand(["UNLINK", ...keys]);
      cursor = next;
    } while (cursor !== "0");
  }

  consume(opts: ConsumeOptions, handler: (batch: BusMessage[]) => Promise<void>): Consumer {
    const group = opts.group;
    const me = `${this.opts.name}-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    const claimIdle = this.opts.claimIdleMs;
    const streams: string[] = [];
    const lagByStream = new Map<string, number>();
    const buffer: Held[] = [];
    let batchHeld: Held[] = [];
    let reader: Client | null = null;
    let stopping = false;
    let drain = true;
    let dead = false;
    let redeliveries = 0;
    let lagValue = 0;
    let topicsAt = 0;
    let claimAt = 0;

    const matches = (topic: string) => opts.topicPrefixes.some((p) => topic.startsWith(p));

    // `from: "now"`: the group starts at the end of the streams there at the first look ("$"); a stream
    // that appears later is new, read from its beginning ("0")
    let firstLook = true;
    // ready: once the first look has made the group on every stream there (later ones start at "0")
    const joined = latch();
    const refreshTopics = async () => {
      topicsAt = Date.now();
      const start = firstLook && opts.from === "now" ? "$" : "0";
      for (const topic of await this.topics()) {
        const stream = this.streamOf(topic);
        if (!matches(topic) || streams.includes(stream)) continue;
        try {
          await this.client.sendCommand(["XGROUP", "CREATE", stream, group, start, "MKSTREAM"]);
        } catch (e) {
          if (!/BUSYGROUP/.test(String(e))) throw e;
        }
        streams.push(stream);
      }
      firstLook = false;
      joined.open();
    };

    const refreshLag = async () => {
      for (const stream of streams) {
        try {
          const groups = (await this.client.sendCommand(["XINFO", "GROUPS", stream])) as {
            name: string;
            pending: number;
            lag: number | null;
          }[];
          const g = groups.find((x) => x.name === group);
          // lag is null when Redis cannot tell (entries deleted in between): keep the last value
          if (g && g.lag !== null) lagByStream.set(stream, g.lag + g.pending);
          else if (!g) lagByStream.set(stream, 0);
        } catch {
          // keep the last value; the read loop reports connection problems
        }
      }
      let sum = 0;
      for (const v of lagByStream.values()) sum += v;
      lagValue = sum;
    };

    /** Resets the idle time of what this consumer holds, so no other member claims it. */
    const keepHeld = async () => {
      const byStream = new Map<string, string[]>();
      for (const h of [...batchHeld, ...buffer]) {
        const ids = byStream.get(h.stream) ?? [];
        ids.push(h.entryId);
        byStream.set(h.stream, ids);
      }
      for (const [stream, ids] of byStream) {
        await this.client.sendCommand(["XCLAIM", stream, group, me, "0", ...ids, "JUSTID"]);
      }
    };

    const hold = (stream: string, entries: (Entry | null)[]): number => {
      let n = 0;
      for (const e of entries) {
        if (!e) continue; // deleted entry (Redis before 7)
        buffer.push({ stream, entryId: e[0], fields: e[1] });
        n++;
      }
      return n;
    };

    /** Takes over entries idle for `claimIdleMs` (dead consumers'), up to `max`; counts them. */
    const claim = async (max: number) => {
      claimAt = Date.now();
      for (const stream of streams) {
        let cursor = "0-0";
        do {
          if (max <= 0) return;
          const [next, entries, deleted] = (await this.client.sendCommand([
            ...["XAUTOCLAIM", stream, group, me, String(claimIdle), cursor, "COUNT", String(max)],
          ])) as [string, (Entry | null)[], string[] | undefined];
          const n = hold(stream, entries);
          redeliveries += n;
          max -= n;
          if (deleted && deleted.length > 0) {
            this.opts.onError(
              new Error(
                `${deleted.length} pending entries of ${stream} were trimmed before they were acknowledged`,
              ),
              `consumer group ${group}: raise maxlen above the backlog`,
            );
          }
          cursor = next;
        } while (cursor !== "0-0");
        const members = (await this.client.sendCommand(["XINFO", "CONSUMERS", stream, group])) as {
          name: string;
          pending: number;
          idle: number;
        }[];
        for (const c of members) {
          if (c.name !== me && c.pending === 0 && c.idle > claimIdle) {
            await this.client.sendCommand(["XGROUP", "DELCONSUMER", stream, group, c.name]);
          }
        }
      }
    };

    /** One `XREADGROUP` of new entries; returns how many arrived. */
    const read = async (count: number, blockMs: number): Promise<number> => {
      if (!reader) {
        const opened = await RedisBus.open(this.opts, `${me}-reader`);
        if (dead || this.closed) {
          opened.destroy();
          throw new Error("consumer stopped");
        }
        reader = opened;
        this.readers.add(opened);
      }
      const conn = reader;
      const args = ["XREADGROUP", "GROUP", group, me, "COUNT", String(count)];
      if (blockMs > 0) args.push("BLOCK", String(Math.ceil(blockMs)));
      args.push("STREAMS", ...streams, ...streams.map(() => ">"));
      // a large read on a loaded machine may take a while: longer than node-redis's 5 s default
      const reply = (await conn.sendCommand(args, { timeout: blockMs + 30_000 })) as Record<
        string,
        Entry[]
      > | null;
      if (!reply) return 0;
      let n = 0;
      for (const [stream, entries] of Object.entries(reply)) n += hold(stream, entries);
      return n;
    };

    const decode = (h: Held): BusMessage | null => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < h.fields.length; i += 2) f[h.fields[i]] = h.fields[i + 1];
      try {
        return {
          topic: h.stream.slice(this.keyPrefix.length),
          key: f.key ?? "",
          id: f.id ?? `${h.stream}:${h.entryId}`,
          value: JSON.parse(f.value ?? ""),
        };
      } catch (e) {
        this.opts.onError(e as Error, `undecodable entry ${h.stream}#${h.entryId}; dropped`);
        return null;
      }
    };

    const ack = async (held: Held[]) => {
      const byStream = new Map<string, string[]>();
      for (const h of held) {
        const ids = byStream.get(h.stream) ?? [];
        ids.push(h.entryId);
        byStream.set(h.stream, ids);
      }
      await Promise.all(
        [...byStream].map(([stream, ids]) => this.client.sendCommand(["XACK", stream, group, ...ids])),
      );
    };

    /** Reads until a batch is due: `batchSize` waiting, `maxWaitMs` since the first, or a backlog. */
    const fill = async () => {
      let firstAt = buffer.length > 0 ? Date.now() : 0;
      while (!dead && buffer.length < opts.batchSize) {
        if (stopping) {
          if (!drain || (await read(opts.maxBatchSize - buffer.length, 0)) === 0) return;
          continue;
        }
        const left = firstAt ? opts.maxWaitMs - (Date.now() - firstAt) : 1000;
        if (left <= 0) return;
        const want = opts.maxBatchSize - buffer.length;
        const n = await read(want, Math.min(left, 1000));
        if (n === 0 && !firstAt) return; // idle: back to the housekeeping
        if (n >= want) return; // a backlog: hand it over now
        if (n > 0) firstAt ||= Date.now();
      }
    };

    const loop = async () => {
      let failures = 0;
      while (!dead) {
        // without drain, what was read and not handed over stays pending, for a member to claim
        if (stopping && !drain) return;
        try {
          if (Date.now() - topicsAt >= this.opts.topicRefreshMs || stopping) await refreshTopics();
          if (streams.length === 0) {
            if (stopping) return;
            await sleep(Math.min(this.opts.topicRefreshMs, 1000));
            continue;
          }
          if (!stopping && Date.now() - claimAt >= claimIdle / 3)
            await claim(opts.maxBatchSize - buffer.length);
          await fill();
          if (dead) return;
          if (buffer.length === 0) {
            if (stopping) return;
            continue;
          }
          const take = buffer.splice(0, opts.maxBatchSize);
          batchHeld = take;
          const batch: BusMessage[] = [];
          const undecodable: Held[] = [];
          for (const h of take) {
            const m = decode(h);
            if (m) batch.push(m);
            else undecodable.push(h);
          }
          if (undecodable.length > 0) await ack(undecodable);
          for (;;) {
            if (batch.length === 0) break;
            try {
              await handler(batch);
              failures = 0;
              break;
            } catch {
              if (dead) return;
              redeliveries += batch.length;
              failures++;
              await sleep(backoff(failures));
              // not acked: after stop() the entries stay pending for another member to claim
              if (dead || stopping) return;
            }
          }
          if (dead) return;
          await ack(take);
          batchHeld = [];
        } catch (e) {
          if (dead || this.closed) return;
          // a batch whose ack failed is no longer kept alive: after claimIdleMs it is claimed again
          batchHeld = [];
          if (/NOGROUP/.test(String(e))) {
            streams.length = 0; // the server lost the group (restart): create it again
            lagByStream.clear();
            topicsAt = 0;
            continue;
          }
          failures++;
          this.opts.onError(e as Error, `consumer ${me} of group ${group}`);
          if (stopping) return;
          await sleep(backoff(failures));
        }
      }
    };

    const lagTimer = setInterval(() => void refreshLag(), this.opts.lagRefreshMs);
    lagTimer.unref();
    const keepTimer = setInterval(
      () => {
        if (batchHeld.length + buffer.length > 0) void keepHeld().catch(() => undefined);
      },
      Math.max(100, claimIdle / 3),
    );
    keepTimer.unref();
    const done = loop().finally(() => {
      clearInterval(lagTimer);
      clearInterval(keepTimer);
      if (reader) {
        this.readers.delete(reader);
        const r = reader;
        reader = null;
        void r.close().catch(() => r.destroy());
      }
    });
    const handle = {
      ready: () => joined.promise,
      lag: () => lagValue,
      redeliveries: () => redeliveries,
      stop: async (o?: { drain?: boolean }) => {
        stopping = true;
        drain = o?.drain ?? true;
        joined.open();
        if (dead) return;
        await done;
        await refreshLag().catch(() => undefined);
        this.consumers.delete(handle);
        if (opts.transient && !this.closed) {
          for (const stream of streams) {
            await this.client.sendCommand(["XGROUP", "DESTROY", stream, group]).catch((e: unknown) => {
              this.opts.onError(e as Error, `removing transient group ${group} of ${stream}`);
            });
          }
        }
      },
      kill: () => {
        dead = true;
        joined.open();
        clearInterval(lagTimer);
        clearInterval(keepTimer);
        this.consumers.delete(handle);
      },
    };
    this.consumers.add(handle);
    return handle;
  }

  /**
   * Simulates the death of this process for tests: every consumer stops at once without acking (its
   * handler is not awaited nor called again), and every connection is dropped. What the consumers
   * held stays pending in their groups, for another member to claim after `claimIdleMs`.
   */
  abandon(): void {
    this.closed = true;
    for (const c of [...this.consumers]) c.kill();
    for (const r of this.readers) r.destroy();
    this.readers.clear();
    this.client.destroy();
  }

  /** Null while connected; else since when the connection has been down (it keeps reconnecting). */
  async check(): Promise<string | null> {
    if (this.closed || !this.client.isOpen) return "redis connection closed";
    if (!this.client.isReady) {
      const s = Math.round((Date.now() - (this.disconnectedSince || Date.now())) / 1000);
      return `redis disconnected for ${s} s; reconnecting`;
    }
    return null;
  }

  /**
   * Stops every consumer (finishing its batch in flight), then closes the connections (at once when
   * they do not close within 5 s, e.g. while the server is down).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.consumers].map((c) => c.stop({ drain: false })));
    this.closed = true;
    const all = [this.client, ...this.readers];
    this.readers.clear();
    await Promise.race([Promise.all(all.map((c) => c.close().catch(() => undefined))), sleep(5000)]);
    for (const c of all) if (c.isOpen) c.destroy();
  }
}
