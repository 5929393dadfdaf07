-- wrk script for koi's node HTTP API (koi's bench/compare_etcd.sh): KOI_OP=put writes 100-byte
-- values, get reads linearizably, stale reads with ?consistency=stale; keys uniform over
-- KOI_KEYS (default 10000), named bench-<n> like wrk_etcd.lua's.
local op = os.getenv("KOI_OP") or "put"
local keys = tonumber(os.getenv("KOI_KEYS") or "10000")
local value = string.rep("v", 100)

request = function()
  local path = "/v1/kv/bench-" .. math.random(0, keys - 1)
  if op == "put" then return wrk.format("PUT", path, nil, value) end
  if op == "stale" then return wrk.format("GET", path .. "?consistency=stale") end
  return wrk.format("GET", path)
end
