import { Testing } from "cdktf";
import { expect } from "vitest";

// cdktf ships its matchers as a Jest adapter that extends the global `expect`; vitest's is Jest-compatible.
(globalThis as { expect?: unknown }).expect = expect;
Testing.setupJest();

/** A generated provider class such as Instance: the matchers read its static tfResourceType. */
type Construct = { tfResourceType: string };

declare module "vitest" {
  interface Assertion {
    toHaveResource(resource: Construct): void;
    toHaveResourceWithProperties(resource: Construct, properties: Record<string, unknown>): void;
    toHaveDataSource(dataSource: Construct): void;
    toHaveDataSourceWithProperties(dataSource: Construct, properties: Record<string, unknown>): void;
  }
}
