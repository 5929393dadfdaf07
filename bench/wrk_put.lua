-- wrk script: PUT unique keys with 100-byte values (koi bench, single cluster).
local body = string.rep("v", 100)
local counter = 0
local prefix = tostring(math.random(1, 1e9))

request = function()
  counter = counter + 1
  return wrk.format("PUT", "/v1/kv/bench-" .. prefix .. "-" .. counter, nil, body)
end
