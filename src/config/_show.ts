/** How a bad value is quoted in an error message. */

const SHOWN_CHARS_MAX = 80;

/** Renders a parsed TOML value the way the file spells it, shortened when long. */
export function show(value: unknown): string {
  const text = render(value);
  return text.length <= SHOWN_CHARS_MAX ? text : `${text.slice(0, SHOWN_CHARS_MAX - 1)}…`;
}

function render(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "nan";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    return String(value);
  }
  if (typeof value === "bigint" || typeof value === "boolean") return String(value);
  if (value instanceof Date) return `a date (${value.toISOString()})`;
  if (Array.isArray(value)) return `[${value.map(render).join(", ")}]`;
  return "a table";
}
