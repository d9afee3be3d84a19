import { describe, expect, it } from "vitest";
import type { FleetHost } from "../../src/fleet/inventory";
import { SelectionError, selectHosts } from "../../src/fleet/selection";

const host = (name: string, tags: Record<string, string> = {}): FleetHost =>
  ({ name, tags, spec: {} as FleetHost["spec"], applied: { created: false, reason: "" } });
const fleet = [host("web-1", { role: "web" }), host("web-2", { role: "web", canary: "" }), host("app", { role: "app" }), host("db/replica", { role: "db", az: "b" })];
const names = (selectors: string[]) => selectHosts(fleet, selectors).map((h) => h.name);

describe("selectHosts (--on)", () => {
  it("selects every host without selectors, in inventory order", () => {
    expect(names([])).toEqual(["web-1", "web-2", "app", "db/replica"]);
  });

  it("selects by name, glob, @key=value, @value and @key, as the union of all selectors", () => {
    expect(names(["app"])).toEqual(["app"]);
    expect(names(["web-*"])).toEqual(["web-1", "web-2"]);
    expect(names(["db/?eplica"])).toEqual(["db/replica"]);
    expect(names(["@role=db", "web-1"])).toEqual(["web-1", "db/replica"]);
    expect(names(["@web"])).toEqual(["web-1", "web-2"]);
    expect(names(["@canary"])).toEqual(["web-2"]);
    expect(names(["@role=w*"])).toEqual(["web-1", "web-2"]);
  });

  it("treats regular-expression characters in names literally", () => {
    expect(() => names(["web.1"])).toThrow(SelectionError);
  });

  it("refuses a selector that matches nothing, listing the hosts and tags there are", () => {
    expect(() => names(["web-3"])).toThrow(
      "--on 'web-3' matches no host. Hosts: web-1, web-2, app, db/replica; tags: @az=b, @canary=, @role=app, @role=db, @role=web",
    );
    expect(() => names(["@"])).toThrow("--on '@' is empty: give a host name, a glob or @tag");
  });

  it("says what a glob takes and that lists need one --on each", () => {
    expect(() => names(["[wd]*"])).toThrow(new SelectionError("--on '[wd]*' matches no host. Hosts: web-1, web-2, app, db/replica; " +
      "tags: @az=b, @canary=, @role=app, @role=db, @role=web. A glob takes * and ? only (no [...] or {...}): give one --on per pattern"));
    expect(() => names(["web-1,app"])).toThrow(new SelectionError("--on 'web-1,app' matches no host. Hosts: web-1, web-2, app, db/replica; " +
      "tags: @az=b, @canary=, @role=app, @role=db, @role=web. One host, glob or tag per --on: repeat --on for several"));
  });
});
