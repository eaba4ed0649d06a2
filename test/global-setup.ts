/** Builds dist/ once before the suite: end-to-end tests run the real CLI (`node dist/src/cli.js`). */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export default function setup(): void {
  const root = fileURLToPath(new URL("..", import.meta.url));
  execFileSync(
    process.execPath,
    [`${root}node_modules/typescript/bin/tsc`, "-p", `${root}tsconfig.build.json`],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
}
