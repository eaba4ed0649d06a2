/**
 * Every installed package supports the Node versions K2 promises (`engines.node` in package.json):
 * `npm ci` on the project's Node must not warn EBADENGINE. A dependency that declares a newer Node
 * (as @nats-io/nuid 3, @platformatic/kafka ≥ 1.27's buffers and cookie 2 do: Node ≥ 22) fails here,
 * naming the package, its range and how it was pulled in.
 */
import { readFileSync } from "node:fs";
import semver from "semver";
import { describe, expect, it } from "vitest";

const read = (file: string) => JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), "utf8"));
const pkg = read("package.json") as { engines: { node: string }; allowScripts?: Record<string, boolean> };
const lock = read("package-lock.json") as {
  packages: Record<
    string,
    { engines?: { node?: string } | string[]; optional?: boolean; dev?: boolean; hasInstallScript?: boolean }
  >;
};

describe("dependencies' engines", () => {
  const promised = pkg.engines.node;
  const oldest = semver.minVersion(promised)?.version as string;

  it("promise a Node version that this machine runs", () => {
    expect(semver.satisfies(process.versions.node, promised)).toBe(true);
  });

  it(`every package in package-lock.json accepts the oldest promised Node (${oldest}) and this one`, () => {
    const refused: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      if (!path || !range) continue;
      for (const version of [oldest, process.versions.node]) {
        if (!semver.satisfies(version, range, { includePrerelease: true })) {
          refused.push(`${path.replace(/^.*node_modules\//, "")} wants node ${range}, not ${version}`);
        }
      }
    }
    expect(refused).toEqual([]);
  });
});

describe("dependencies' install scripts", () => {
  // npm 11 skips the install scripts of dependencies not listed in `allowScripts` and ends `npm ci`
  // with a warning naming them: each is decided in package.json (zeromq ships prebuilt binaries and
  // esbuild its platform package, so neither script is needed), and `npm ci` stays quiet
  it("every package with an install script is approved or denied in package.json's allowScripts", () => {
    const undecided: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!path || !entry.hasInstallScript) continue;
      const name = path.replace(/^.*node_modules\//, "");
      if (typeof pkg.allowScripts?.[name] !== "boolean") undecided.push(name);
    }
    expect(undecided).toEqual([]);
  });
});
