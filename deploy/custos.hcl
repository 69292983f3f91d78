# Example single-node configuration. Start with:
#   custos server -config=deploy/custos.hcl
# then initialise and unseal:
#   export VAULT_ADDR=https://127.0.0.1:8200 VAULT_CACERT=/etc/custos/tls/ca.pem
#   custos operator init
#   custos operator unseal   (three times, with three different keys)

storage "raft" {
  path    = "/var/lib/custos"
  node_id = "node-1"
}

listener "tcp" {
  address          = "127.0.0.1:8200"
  cluster_address  = "127.0.0.1:8201"
  tls_cert_file    = "/etc/custos/tls/server.pem"
  tls_key_file     = "/etc/custos/tls/server-key.pem"
  tls_min_version  = "tls12"
  max_request_size = 33554432
  # Vault's listener timeouts ("0" turns one off) and a cap on open connections.
  http_read_header_timeout = "10s"
  http_read_timeout        = "30s"
  max_connections          = 4096
}

# Snapshot restores are stored here while they arrive (never inside raft/ or fsm/), and
# refused when they would leave less than this share of the volume free.
snapshot_spool_dir             = "/var/lib/custos/snapshot-spool"
snapshot_spool_reserve_percent = 10

api_addr     = "https://127.0.0.1:8200"
cluster_addr = "https://127.0.0.1:8201"
log_level    = "info"
