/** POSIX single-quote quoting; plain words stay as they are so commands read like the ones users type. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_\-./=:@+,]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
