import assert from "node:assert/strict";
import { isDiskError } from "./_disk_failure.ts";
import { DiskFailedError } from "./errors.ts";
import { typedErrorResponse } from "./_http_errors.ts";

Deno.test("isDiskError: what Deno.Kv and the OS throw for a full, read-only or failing disk", () => {
  for (
    const e of [
      new TypeError("database or disk is full"), // Deno.Kv commit on a full tmpfs
      new TypeError("disk I/O error"), // Deno.Kv commit after ext4 remounted read-only
      new TypeError("Can not write to a read-only database."), // opened on a read-only fs
      new Error("attempt to write a readonly database"),
      new Error("unable to open database file"),
      new Deno.errors.PermissionDenied("Permission denied (os error 13)"),
      new Error("No space left on device (os error 28)"),
      new Error("Read-only file system (os error 30)"),
      new Error("Input/output error (os error 5)"),
      new Error("Cannot commit", { cause: new TypeError("database or disk is full") }),
    ]
  ) {
    assert.equal(isDiskError(e), true, e.message);
  }
});

Deno.test("isDiskError: bugs and Deno permission checks are not disk problems", () => {
  for (
    const e of [
      new RangeError("Cannot append entries from 7: the log accepts 1..5"),
      new Error("assertion failed: term going back from 3 to 2"),
      new Deno.errors.NotCapable('Requires write access to "data"'),
      new Error("os error 13x"),
      "database or disk is full", // not an Error: nothing Deno.Kv throws
    ]
  ) {
    assert.equal(isDiskError(e), false, String(e));
  }
});

Deno.test("DiskFailedError answers 503 disk_failed with retry-after", async () => {
  const r = typedErrorResponse(new DiskFailedError("The write was refused: disk full"))!;
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "1");
  assert.deepEqual(await r.json(), {
    error: { code: "disk_failed", message: "The write was refused: disk full" },
  });
});
