-- kv_fill.lua: wrk script for cluster_bench.sh. Each wrk thread writes new keys
-- kv/<KEY_PREFIX><thread>-<n> (KEY_PREFIX default "fill/", one field of VALUE_BYTES
-- bytes) until FILL_PER_THREAD of them were acknowledged with a 2xx, then stops sending.
-- wrk itself still runs for its whole -d, so cluster_bench.sh fills in short rounds
-- (a fresh KEY_PREFIX each) and counts the keys after each round. Requests in flight
-- when a thread stops add a few keys more (at most one per connection).
local id = 0

function setup(thread)
   id = id + 1
   thread:set("tid", id)
end

local sent, done, limit, body, prefix = 0, 0, 0, nil, nil

function init(args)
   local n = tonumber(os.getenv("VALUE_BYTES") or "64")
   limit = tonumber(os.getenv("FILL_PER_THREAD") or "50000")
   prefix = os.getenv("KEY_PREFIX") or "fill/"
   body = '{"value":"' .. string.rep("x", n) .. '"}'
   -- into wrk.headers: a headers table given to wrk.format would replace the -H ones
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   sent = sent + 1
   local path = "/v1/kv/" .. prefix .. tostring(tid) .. "-" .. tostring(sent)
   return wrk.format("PUT", path, nil, body)
end

function response(status, headers, resp_body)
   if status >= 200 and status < 300 then
      done = done + 1
      if done >= limit then
         wrk.thread:stop()
      end
   end
end
