-- pki_ocsp_post.lua: wrk script for pki_bench.sh. Every request POSTs the DER OCSP request
-- in the file OCSP_DER to the URL given to wrk (RFC 6960 Appendix A.1).
function init(args)
   local f = assert(io.open(os.getenv("OCSP_DER"), "rb"))
   wrk.method = "POST"
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Content-Type"] = "application/ocsp-request"
end
