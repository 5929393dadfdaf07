/** The key connections are counted by for the per-address bound. */
import assert from "node:assert/strict";
import { remoteAddressKey } from "./_address.ts";

Deno.test("remoteAddressKey: IPv4 as it is, IPv4-mapped unmapped, IPv6 by its /64", () => {
  assert.equal(remoteAddressKey("127.0.0.1"), "127.0.0.1");
  assert.equal(remoteAddressKey("::ffff:10.0.0.7"), "10.0.0.7");
  assert.equal(remoteAddressKey("::1"), "0:0:0:0::/64");
  assert.equal(remoteAddressKey("2001:db8:0:1::5"), "2001:db8:0:1::/64");
  assert.equal(remoteAddressKey("2001:DB8:0000:0001:aaaa:bbbb:cccc:dddd"), "2001:db8:0:1::/64");
  assert.equal(remoteAddressKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(remoteAddressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(remoteAddressKey("64:ff9b::192.0.2.1"), "64:ff9b:0:0::/64");
  assert.equal(remoteAddressKey(undefined), "");
});
