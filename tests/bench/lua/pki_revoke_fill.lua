-- pki_revoke_fill.lua: wrk script for pki_bench.sh's CRL figure. Each thread issues up to
-- N_PER_THREAD certificates from the stored role "stored" of MOUNT (default "pki") and
-- revokes each by the serial number its answer carries; once its quota is issued and
-- revoked it only reads sys/health. done() prints "REVOKED <n> FAILED <n>".
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   queue = {}
   issued, revoked, failed = 0, 0, 0
   limit = tonumber(os.getenv("N_PER_THREAD") or "1000")
   mount = os.getenv("MOUNT") or "pki"
   hdr = {["X-Vault-Token"] = os.getenv("TOKEN"), ["Content-Type"] = "application/json"}
end

function request()
   if #queue > 0 then
      local sn = table.remove(queue)
      return wrk.format("POST", "/v1/" .. mount .. "/revoke", hdr,
                        '{"serial_number":"' .. sn .. '"}')
   end
   if issued < limit then
      issued = issued + 1
      return wrk.format("POST", "/v1/" .. mount .. "/issue/stored", hdr,
                        '{"common_name":"r.example"}')
   end
   return wrk.format("GET", "/v1/sys/health")
end

function response(status, headers, body)
   if body:find('"certificate"', 1, true) then
      local sn = body:match('"serial_number":"([0-9a-f:]+)"')
      if sn then table.insert(queue, sn) else failed = failed + 1 end
   elseif body:find('"revocation_time"', 1, true) then
      revoked = revoked + 1
   elseif status ~= 200 then
      failed = failed + 1
   end
end

function done(summary, latency, requests)
   local r, f = 0, 0
   for _, t in ipairs(threads) do
      r = r + t:get("revoked")
      f = f + t:get("failed")
   end
   io.write(string.format("REVOKED %d FAILED %d\n", r, f))
end
