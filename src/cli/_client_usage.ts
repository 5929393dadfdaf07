/**
 * The usage texts of `koi client` and of each of its commands.
 *
 * @module
 */
import { LIST_LIMIT_MAX } from "../client/mod.ts";
import { DEFAULT_ADMIN } from "./_client_args.ts";

const COMMON_OPTIONS = `Options of every command:
      --admin <url>     the admin's URL or host:port (default: $KOI_ADMIN, else
                        ${DEFAULT_ADMIN}); https:// for a deployment with [tls]
      --ca <file>       trust the CA certificates (PEM) in <file> for https:// (the
                        [tls] ca of config.toml; default: $KOI_CA, else the system's)
      --timeout <ms>    each call's time budget, retries included (default: 10000)
      --json            print JSON instead of text (for scripts)
  -h, --help            show the command's help`;

const EXIT_CODES =
  `Exit codes: 0 done, 1 failure (unavailable, timeout, refused by a node; a write whose
outcome is unknown says so), 2 usage error (also a key over 1024 bytes or a value over
1 MiB), 3 key not found (get), 4 condition not met (put --if-rev/--if-absent, del --if-rev).
A stdout closed by its reader (koi client get k | head -c 10) ends a command quietly, exit 0.`;

/** The usage of `koi client`. */
export const CLIENT_USAGE = `Usage: koi client <command> [arguments] [options]

Talks to a koi deployment the way the library does: fetches the routing table from the
admin, sends each key to the leader of the cluster that owns it, and retries 503s,
timeouts, broken connections and wrong-shard answers within --timeout. Keys and values
given as arguments are UTF-8 text (--b64: keys as base64url). A key or value that starts
with "-" goes after "--", which ends the flags: koi client put --if-absent -- -k -1.

Commands:
  get <key>             print a key's value (raw bytes on stdout)
  put <key> [<value>]   write a value (from stdin when <value> is absent)
  del <key>             delete a key
  list                  list the keys of every cluster, in byte order
  watch [<prefix>]      print every change to keys under <prefix>, until Ctrl-C
  where <key>           which cluster owns a key, its nodes and leader
  status                one table of every cluster and node, from the admin

${COMMON_OPTIONS}

koi client <command> --help shows each command's options.

${EXIT_CODES}`;

/** The usage of `koi client get`. */
export const GET_USAGE = `Usage: koi client get <key> [--stale] [--b64] [--json] [options]

Prints the value of <key> to stdout as raw bytes (no newline added, except on a terminal).
The read is linearizable (the leader confirms it is current) unless --stale.

Options:
      --stale           let any node of the cluster answer from its own state (works
                        without a leader; may miss recent writes)
      --b64             <key> is base64url (RFC 4648 §5): any bytes
      --json            print {"key", "key_b64", "rev", "value_b64"} and "value" (the text)
                        when the value is valid UTF-8

${COMMON_OPTIONS}

Exit codes: 0 found, 1 failure, 2 usage error, 3 key not found ("koi: key ... not found"
on stderr, nothing on stdout).`;

/** The usage of `koi client put`. */
export const PUT_USAGE =
  `Usage: koi client put <key> [<value>] [--if-rev <rev> | --if-absent] [--b64] [--json] [options]

Writes <value> (UTF-8 text) under <key>, or, without <value>, the bytes read from stdin
(at most 1 MiB). Prints the new revision. Retries carry the same request id, so the write
is applied at most once. Without <value>, a stdin that is a terminal, closed (<&-) or not
readable is a usage error; an empty one (</dev/null, printf '' |) writes the empty value.

Options:
      --if-rev <rev>    write only if the key exists with exactly this revision
      --if-absent       write only if the key does not exist
      --b64             <key> is base64url (the value stays text or stdin bytes)
      --json            print {"rev": n}

${COMMON_OPTIONS}

Exit codes: 0 written, 1 failure (a write whose outcome is unknown says "may or may not
have been applied"), 2 usage error, 4 condition not met (stderr names the current rev).`;

/** The usage of `koi client del`. */
export const DEL_USAGE = `Usage: koi client del <key> [--if-rev <rev>] [--b64] [--json] [options]

Deletes <key>. Deleting an absent key is not an error (it prints "absent"); it is still a
write with a revision.

Options:
      --if-rev <rev>    delete only if the key exists with exactly this revision
      --b64             <key> is base64url
      --json            print {"rev": n, "deleted": bool}

${COMMON_OPTIONS}

Exit codes: 0 done, 1 failure, 2 usage error, 4 condition not met.`;

/** The usage of `koi client list`. */
export const LIST_USAGE =
  `Usage: koi client list [--prefix <p>] [--after <key> | --after-b64 <b64>] [--limit <n>] [--all] [--stale] [--b64] [--json] [options]

Lists the keys of every cluster, merged in byte order, one per line (a key that is not
printable UTF-8 prints as base64url:<key>). Without --all it prints one page; when more
keys follow, stderr says how to go on: add --after=<key> or --after-b64=<b64> to the same
command.

Options:
      --prefix <p>      only keys starting with <p>
      --after <key>     only keys after <key> (the last key of the previous page)
      --after-b64 <b64> the same, <key> as base64url whether or not --b64 is given
      --limit <n>       keys per page, 1 .. ${LIST_LIMIT_MAX} (default: 100)
      --all             every matching key, page after page
      --stale           let any node of each cluster answer
      --b64             --prefix and --after are base64url, and keys print as base64url
      --json            print {"items": [{"key", "key_b64", "rev", "cluster"}], "more",
                        "next_b64"}

${COMMON_OPTIONS}

Exit codes: 0 done, 1 failure (any cluster unavailable), 2 usage error.`;

/** The usage of `koi client watch`. */
export const WATCH_USAGE =
  `Usage: koi client watch [<prefix>] [--from-rev <cluster>=<rev> ...] [--b64] [--json] [options]

Prints every change (put and delete) to the keys starting with <prefix> (default: every
key), in every cluster, as it happens, one line per change, until Ctrl-C:

  <cluster> <rev> put <key> <value>      (the value as text, or <N bytes> when it is
  <cluster> <rev> delete <key>            binary or over 256 bytes)

Each cluster's changes come in rev order. A broken stream resumes from the last rev
printed, on another node if need be: no change is missed or printed twice. A key that is
not printable UTF-8 prints as base64url:<key>.

Options:
      --from-rev <cluster>=<rev>
                        start that cluster after <rev> (repeat per cluster); e.g. the last
                        rev printed by an earlier watch. Other clusters start now
      --b64             <prefix> is base64url, and keys print as base64url
      --json            print one JSON object per change: {"cluster", "rev", "type", "key",
                        "key_b64", "value", "value_b64", "size"}

${COMMON_OPTIONS}

Exit codes: 0 stopped by Ctrl-C, 1 failure (a cluster's changes after --from-rev are no
longer held: list the keys again and watch from the rev the message names; a node refused
the watch), 2 usage error.`;

/** The usage of `koi client where`. */
export const WHERE_USAGE = `Usage: koi client where <key> [--b64] [--json] [options]

Prints which cluster owns <key> under the admin's routing table (CARP), the cluster's
nodes, and the leader the admin knows. Asks the admin only, no node.

Options:
      --b64             <key> is base64url
      --json            print {"key", "key_b64", "cluster", "leader", "nodes", "epoch",
                        "scheme"}

${COMMON_OPTIONS}

Exit codes: 0 done, 1 failure (admin unreachable), 2 usage error.`;

/** The usage of `koi client status`. */
export const STATUS_USAGE = `Usage: koi client status [--json] [options]

Prints one table of every cluster and node as the admin sees them (GET /v1/clusters):
role, the leader each node knows, term, commit and applied index, keys, pid and restarts;
a node the admin cannot reach shows why. Works while clusters are unhealthy (no routing
table needed). --json prints the admin's JSON.

${COMMON_OPTIONS}

Exit codes: 0 the admin answered (healthy or not: see the first line or "healthy"),
1 failure (admin unreachable), 2 usage error.`;

const USAGES: Record<string, string> = {
  get: GET_USAGE,
  put: PUT_USAGE,
  del: DEL_USAGE,
  list: LIST_USAGE,
  watch: WATCH_USAGE,
  where: WHERE_USAGE,
  status: STATUS_USAGE,
};

/** The usage of the `koi client` subcommand named in `args`, if there is one. */
export function clientUsageFor(args: readonly string[]): string | undefined {
  return Object.hasOwn(USAGES, args[0] ?? "") ? USAGES[args[0]] : undefined;
}

/** Prints `usage` (for `--help`); returns exit code 0. */
export function help(usage: string): number {
  console.log(usage);
  return 0;
}
