-- identity_fill.lua: wrk script for identity_bench.sh. Every request creates one entity
-- with one alias on the AppRole mount (identity/entity-alias without canonical_id makes
-- the entity too): alias names are "<run>-<thread>-<n>", so every request is new.
local id = 0

function setup(thread)
   id = id + 1
   thread:set("tid", id)
end

local counter = 0
local acc, run

function init(args)
   acc = os.getenv("ALIAS_ACCESSOR")
   run = os.getenv("FILL_RUN") or "0"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local body = '{"name":"u' .. run .. "-" .. tid .. "-" .. counter ..
      '","mount_accessor":"' .. acc .. '"}'
   return wrk.format("POST", "/v1/identity/entity-alias", nil, body)
end
