-- kv_write.lua: wrk script for kv_bench.sh. Every request writes a new key
-- kv/bench/w/<thread>-<n> with one field of VALUE_BYTES bytes, so the benchmark measures
-- real raft commits rather than overwrites of one hot key.
local id = 0

function setup(thread)
   id = id + 1
   thread:set("tid", id)
end

local counter = 0
local body

function init(args)
   local n = tonumber(os.getenv("VALUE_BYTES") or "64")
   body = '{"value":"' .. string.rep("x", n) .. '"}'
   wrk.method = "PUT"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local path = "/v1/kv/bench/w/" .. tostring(tid) .. "-" .. tostring(counter)
   return wrk.format("PUT", path, nil, body)
end
