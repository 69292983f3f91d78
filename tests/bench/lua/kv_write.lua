-- kv_write.lua: wrk script for kv_bench.sh and cluster_bench.sh. Every request writes a
-- new key kv/<KEY_PREFIX><thread>-<n> (KEY_PREFIX default "bench/w/") with one field of
-- VALUE_BYTES bytes, so the benchmark measures real raft commits rather than overwrites
-- of one hot key. Give each wrk run its own KEY_PREFIX to keep keys unique across runs.
local id = 0

function setup(thread)
   id = id + 1
   thread:set("tid", id)
end

local counter = 0
local body
local prefix

function init(args)
   local n = tonumber(os.getenv("VALUE_BYTES") or "64")
   prefix = os.getenv("KEY_PREFIX") or "bench/w/"
   body = '{"value":"' .. string.rep("x", n) .. '"}'
   wrk.method = "PUT"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local path = "/v1/kv/" .. prefix .. tostring(tid) .. "-" .. tostring(counter)
   return wrk.format("PUT", path, nil, body)
end
