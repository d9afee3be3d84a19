/** The EC2 Query API's wire format: form-encoded requests, XML responses (ec2.amazonaws.com/doc/2016-11-15). */

export type Params = Map<string, string>;

export function parseParams(body: string, url: string): Params {
  const params = new Map<string, string>();
  const query = url.includes("?") ? url.slice(url.indexOf("?") + 1) : "";
  for (const part of [query, body]) {
    for (const [k, v] of new URLSearchParams(part)) params.set(k, v);
  }
  return params;
}

/** `Prefix.1`, `Prefix.2`, … as a list. */
export function list(params: Params, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; params.has(`${prefix}.${i}`); i++) out.push(params.get(`${prefix}.${i}`)!);
  return out;
}

/** `Filter.N.Name` / `Filter.N.Value.M` as name → values. */
export function filters(params: Params): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 1; params.has(`Filter.${i}.Name`); i++) out.set(params.get(`Filter.${i}.Name`)!, list(params, `Filter.${i}.Value`));
  return out;
}

/** EC2 filter values are globs with * and ?. */
export function globMatch(pattern: string, value: string): boolean {
  const regex = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${regex}$`).test(value);
}

export type XmlValue = string | number | boolean | null | undefined | XmlValue[] | { [key: string]: XmlValue };

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Objects become elements; arrays become `<item>` lists, as EC2 writes its `…Set` elements. */
export function toXml(value: XmlValue): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map((v) => `<item>${toXml(v)}</item>`).join("");
  if (typeof value === "object") {
    return Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `<${k}>${toXml(v)}</${k}>`)
      .join("");
  }
  return escape(String(value));
}

export function response(action: string, body: Record<string, XmlValue>, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
    `<requestId>${requestId}</requestId>${toXml(body)}</${action}Response>`;
}

export function errorResponse(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escape(code)}</Code>` +
    `<Message>${escape(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}
