-- wrk script for etcd's v3 JSON gateway (koi's bench/compare_etcd.sh): KOI_OP=put writes
-- 100-byte values, get reads linearizably, stale reads serializably; keys uniform over
-- KOI_KEYS (default 10000), named bench-<n> like wrk_koi.lua's.
local op = os.getenv("KOI_OP") or "put"
local keys = tonumber(os.getenv("KOI_KEYS") or "10000")
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local value = b64(string.rep("v", 100))
local encoded = {}
for i = 0, keys - 1 do encoded[i] = b64("bench-" .. i) end
local headers = { ["Content-Type"] = "application/json" }

request = function()
  local k = encoded[math.random(0, keys - 1)]
  if op == "put" then
    return wrk.format("POST", "/v3/kv/put", headers, '{"key":"' .. k .. '","value":"' .. value .. '"}')
  elseif op == "stale" then
    return wrk.format("POST", "/v3/kv/range", headers, '{"key":"' .. k .. '","serializable":true}')
  end
  return wrk.format("POST", "/v3/kv/range", headers, '{"key":"' .. k .. '"}')
end
