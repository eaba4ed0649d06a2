import { describe, expect, it } from "vitest";
import { bookPageSize, HistoryPacer, HistoryQueue, LiveActivity } from "../../src/serve/ws/history-queue.js";

/** Holds the event loop for `ms` (a page read's or a send's synchronous work). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("HistoryQueue", () => {
  it("runs page reads one at a time, in the order asked, each resolving with its own result", async () => {
    const q = new HistoryQueue(1);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const read = (i: number) =>
      q.run(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setImmediate(r));
        order.push(i);
        running--;
        return i * 10;
      });
    const results = await Promise.all([0, 1, 2, 3, 4].map(read));
    expect(results).toEqual([0, 10, 20, 30, 40]);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(1);
  });

  it("passes a failed read's error on and goes on with the next", async () => {
    const q = new HistoryQueue(1);
    const failed = q.run(() => Promise.reject(new Error("store gone")));
    const next = q.run(() => Promise.resolve("page"));
    await expect(failed).rejects.toThrow("store gone");
    await expect(next).resolves.toBe("page");
  });

  it("runs reads back to back while no live work is pending (at a share that would hold them for half an hour)", async () => {
    // with live work pending each 2 ms read would be followed by ~2·10⁶ ms (half an hour) of rest: only the
    // busy flag being honoured lets these finish
    const q = new HistoryQueue(1e-6, () => false);
    const results = await Promise.all(
      [1, 2, 3].map((i) =>
        q.run(async () => {
          spin(2);
          return i;
        }),
      ),
    );
    expect(results).toEqual([1, 2, 3]);
  });

  it("refuses the reads still queued once closed", async () => {
    const q = new HistoryQueue(1);
    let release: (() => void) | null = null;
    const first = q.run(
      () =>
        new Promise<string>((r) => {
          release = () => r("first");
        }),
    );
    const queued = q.run(() => Promise.resolve("second"));
    expect(q.waiting).toBe(1);
    q.close();
    (release as (() => void) | null)?.();
    await expect(first).resolves.toBe("first");
    await expect(queued).rejects.toThrow("closed");
    await expect(q.run(() => Promise.resolve(1))).rejects.toThrow("closed");
  });
});

describe("HistoryPacer", () => {
  it("lets every replay through, taking turns rather than one replay's records all first", async () => {
    const pacer = new HistoryPacer(2, 1);
    const sent: string[] = [];
    const replay = async (name: string) => {
      for (let i = 0; i < 200; i++) {
        await pacer.turn();
        sent.push(name);
      }
    };
    await Promise.all(["a", "b", "c"].map(replay));
    expect(sent).toHaveLength(600);
    for (const name of ["a", "b", "c"]) expect(sent.filter((s) => s === name)).toHaveLength(200);
    // round-robin: among the first 30 records each replay has some
    for (const name of ["a", "b", "c"]) expect(sent.slice(0, 30)).toContain(name);
  });

  it("gives the event loop a turn between slices: a callback queued before the sends runs before they end", async () => {
    const pacer = new HistoryPacer(0, 1);
    let sent = 0;
    let sentWhenIoRan = -1;
    setImmediate(() => {
      sentWhenIoRan = sent;
    });
    for (let i = 0; i < 50; i++) {
      await pacer.turn();
      sent++;
    }
    expect(sentWhenIoRan).toBeGreaterThanOrEqual(0);
    expect(sentWhenIoRan).toBeLessThan(50);
  });
});

describe("HistoryPacer without live work pending", () => {
  it("starts each slice at the next turn of the event loop instead of waiting out its share", async () => {
    // 300 sends of 0.05 ms in slices of 1 ms: with live work pending, each slice would be followed by
    // ~10⁶ ms (a quarter of an hour) of rest at this share
    const pacer = new HistoryPacer(1, 1e-6, () => false);
    let sent = 0;
    const replay = async () => {
      for (let i = 0; i < 100; i++) {
        await pacer.turn();
        spin(0.05);
        sent++;
      }
    };
    await Promise.all([replay(), replay(), replay()]);
    expect(sent).toBe(300);
  });
});

describe("LiveActivity", () => {
  it("counts live work as pending from a mark on, and reports marks at most once per half quiet time", () => {
    const reports: number[] = [];
    const live = new LiveActivity(60_000, () => reports.push(1));
    expect(live.busy()).toBe(false);
    live.mark();
    expect(live.busy()).toBe(true);
    live.mark();
    live.mark();
    expect(reports).toHaveLength(1);
    expect(new LiveActivity(0).busy()).toBe(false);
  });
});

describe("bookPageSize", () => {
  it("keeps deep books' pages small and shallow ones' at 500 snapshots at most", () => {
    expect(bookPageSize(1)).toBeLessThanOrEqual(500);
    expect(bookPageSize(1)).toBeGreaterThan(100);
    expect(bookPageSize(1000)).toBe(10);
    expect(bookPageSize(20)).toBeLessThan(100);
  });
});
