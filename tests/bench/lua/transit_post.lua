-- transit_post.lua: wrk script for transit_bench.sh. Every request POSTs the JSON body read
-- from the file TR_BODY to the path TR_PATH (e.g. /v1/transit/encrypt/bench): one fixed
-- request, so the figure is the engine's cost per request, not the client's.
function init(args)
   local f = assert(io.open(os.getenv("TR_BODY"), "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.path = os.getenv("TR_PATH")
   wrk.headers["Content-Type"] = "application/json"
end
