-- wrk script: linearizable GETs of keys the PUT run wrote (bench-seed-1 .. bench-seed-N).
local counter = 0
local keys = tonumber(os.getenv("KOI_KEYS") or "10000")

request = function()
  counter = counter + 1
  return wrk.format("GET", "/v1/kv/read-" .. (counter % keys), nil, nil)
end
