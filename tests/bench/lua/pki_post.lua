-- pki_post.lua: wrk script for pki_bench.sh. Every request POSTs the JSON body in the
-- environment variable BODY (an issue/:role request built by the script).
function init(args)
   wrk.method = "POST"
   wrk.body = os.getenv("BODY")
   wrk.headers["Content-Type"] = os.getenv("CTYPE") or "application/json"
end
