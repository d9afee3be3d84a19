import { defineConfig } from "vitest/config";

// Two suites: "unit" is pure and fast; "world" drives real components (Nix stores, namespaced sshd targets,
// terraform) and runs files one at a time because the machine has 2 cores and targets share the kernel.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/**/*.world.test.ts", "node_modules/**"],
          setupFiles: ["test/harness/cdktf-matchers.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "world",
          include: ["test/**/*.world.test.ts"],
          globalSetup: ["test/harness/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
