import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["lib/**", "dist/**", "node_modules/**", "cdktf.out/**", "**/cdktf.out/**", "**/.terraform/**", "bench/results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.cjs"],
    languageOptions: {
      sourceType: "commonjs",
      globals: { require: "readonly", process: "readonly", __dirname: "readonly", module: "writable" },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  {
    // One source, two packages (cdktf-nixos and cdktn-nixos): the CDK core and the provider bindings are imported in
    // src/constructs/core.ts alone, the one module the CDK Terrain build rewrites.
    files: ["src/**/*.ts"],
    ignores: ["src/constructs/core.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": ["error", {
        patterns: [{
          regex: "^(cdktf|cdktn)(/|$)|^@(cdktf|cdktn)/provider-",
          message: "import it from src/constructs/core.ts: the one module the cdktn build rewrites",
        }],
      }],
    },
  },
);
