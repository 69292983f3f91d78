-- transit_load.lua: the slow background load of transit_bench.sh. Each connection
-- alternates between creating a new RSA-4096 key (transit/keys/<KEY_PREFIX><thread>-<n>,
-- generated on the worker pool) and signing with the RSA-2048 key TR_SIGN_KEY (signed on
-- the pool too).
local id = 0

function setup(thread)
   id = id + 1
   thread:set("tid", id)
end

local counter = 0
local prefix, sign_path
local sign_body = '{"input":"aGVsbG8gd29ybGQgZnJvbSB0aGUgYmVuY2htYXJr"}'
local key_body = '{"type":"rsa-4096"}'

function init(args)
   prefix = os.getenv("KEY_PREFIX") or "load-"
   sign_path = "/v1/transit/sign/" .. (os.getenv("TR_SIGN_KEY") or "rsa2048")
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   if counter % 2 == 1 then
      local path = "/v1/transit/keys/" .. prefix .. tostring(tid) .. "-" .. tostring(counter)
      return wrk.format("POST", path, nil, key_body)
   end
   return wrk.format("POST", sign_path, nil, sign_body)
end
