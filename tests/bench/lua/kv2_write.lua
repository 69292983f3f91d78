-- kv2_write.lua: wrk script for access_bench.sh. Every request writes version 1 of a new
-- KV v2 secret secret/data/w/<thread>-<n> with one field of VALUE_BYTES bytes.
local id = 0

function setup(thread)
   id = id + 1
   thread:set("tid", id)
end

local counter = 0
local body

function init(args)
   local n = tonumber(os.getenv("VALUE_BYTES") or "64")
   body = '{"data":{"value":"' .. string.rep("x", n) .. '"}}'
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local path = "/v1/secret/data/w/" .. tostring(tid) .. "-" .. tostring(counter)
   return wrk.format("POST", path, nil, body)
end
